"""Blueprint field decoding, validation and plan generation (§8 of `docs/devlake-api.md`)."""

from __future__ import annotations

from datetime import datetime

from .common import ApiError, parse_map_time, parse_rfc3339, validate_cron, weak_bool, weak_int
from .plugins import SCOPE_ID_FIELD, SCOPELESS_OK

_KEYS = ("name", "projectName", "mode", "plan", "enable", "cronConfig", "isManual", "beforePlan",
         "afterPlan", "labels", "connections", "priority", "timeAfter", "skipOnFail")
# mapstructure matches keys case-insensitively; skipCollectors/fullSync sit in a nested embedded
# struct and are ignored by PATCH (§8.2), as are id and createdAt.
_FIELDS = {k.lower(): k for k in _KEYS}
_STRINGS = {"name", "projectName", "mode", "cronConfig"}
_BOOLS = {"enable", "isManual", "skipOnFail"}
_PLANS = {"plan", "beforePlan", "afterPlan"}


def new_blueprint(now: datetime, fields: dict) -> dict:
    """A blueprint row with Go zero values, overlaid with `fields`."""
    bp = {"id": 0, "createdAt": now, "updatedAt": now, "name": "", "projectName": "", "mode": "",
          "plan": None, "enable": False, "cronConfig": "", "isManual": False, "beforePlan": None,
          "afterPlan": None, "labels": [], "connections": [], "priority": 0, "timeAfter": None,
          "skipOnFail": False, "skipCollectors": False, "fullSync": False}
    bp.update(fields)
    return bp


def coerce_patch(body: dict, *, strict_time: bool) -> dict:
    """Decode the known keys of a blueprint body. Decode errors are 500 for PATCH (mapstructure
    errors are untyped) and 400 for the JSON-bound POST."""
    status = 400 if strict_time else 500
    out = {}
    for key, value in body.items():
        canon = _FIELDS.get(key.lower()) if isinstance(key, str) else None
        if canon is None:
            continue
        try:
            out[canon] = _coerce(canon, value, strict_time)
        except ApiError as exc:
            raise ApiError(status, exc.message) from None
        except (ValueError, TypeError, AttributeError) as exc:
            raise ApiError(status, f"error decoding '{canon}': {exc}") from None
    return out


def _coerce(key: str, value, strict_time: bool):
    if key in _STRINGS:
        if isinstance(value, (dict, list)):
            raise ValueError("expected a string")
        return "" if value is None else str(value)
    if key in _BOOLS:
        return False if value is None else weak_bool(value, key)
    if key == "priority":
        return 0 if value is None else weak_int(value, key)
    if key == "labels":
        return [str(v) for v in _list(value)]
    if key in _PLANS:
        return None if value is None else [list(_list(stage)) for stage in _list(value)]
    if key == "connections":
        return [_connection(c) for c in _list(value)]
    if key == "timeAfter":
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError("timeAfter must be a string")
        parsed = parse_rfc3339(value) if strict_time else parse_map_time(value)
        return None if parsed.year == 1 else parsed  # a zero time clears it
    raise ValueError(key)


def _list(value) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError("expected an array")
    return value


def _connection(conn) -> dict:
    if not isinstance(conn, dict):
        raise ValueError("expected an object in connections")
    scopes = []
    for scope in _list(conn.get("scopes")):
        if not isinstance(scope, dict):
            raise ValueError("expected an object in scopes")
        value = scope.get("scopeId")
        scopes.append({"scopeId": "" if value is None else str(value)})
    return {"pluginName": str(conn.get("pluginName") or ""),
            "connectionId": weak_int(conn.get("connectionId") or 0, "connectionId"), "scopes": scopes}


def validate_blueprint(state, bp: dict, *, bp_id: int | None) -> None:
    """validateBlueprintAndMakePlan (backend/server/services/blueprint.go); every failure answers 400."""
    if not bp["name"]:
        raise ApiError(400, "Key: 'Blueprint.Name' Error:Field validation for 'Name' failed on the 'required' tag")
    if bp["mode"] not in ("NORMAL", "ADVANCED"):
        raise ApiError(400, "Key: 'Blueprint.Mode' Error:Field validation for 'Mode' failed on the 'oneof' tag")
    project = bp["projectName"]
    if project:
        if project not in state.projects.projects:
            raise ApiError(400, f"invalid projectName: [{project}] for the blueprint [{bp['name']}]")
        other = state.projects.by_project.get(project)
        if other is not None and other != bp_id:
            name = state.projects.blueprints[other]["name"]
            raise ApiError(400, f"Each project can only be used by one blueprint. The currently selected "
                                f"projectName: [{project}] has been used by blueprint: [id:{other}] "
                                f"[name:{name}] and cannot be reused.")
    if bp["cronConfig"].lower() == "manual":
        bp["isManual"] = True
    if not bp["isManual"]:
        try:
            validate_cron(bp["cronConfig"])
        except ValueError as exc:
            raise ApiError(400, "invalid cronConfig", causes=[f"{exc} (400)"]) from None
    if bp["mode"] == "ADVANCED":
        if not bp["plan"]:
            raise ApiError(400, "invalid plan")
    else:
        bp["plan"] = make_plan(state, bp)


def make_plan(state, bp: dict, *, skip_collectors: bool = False) -> list:
    """A simplified GeneratePlanJsonV200: [org] + [one task per scope] + [metric plugins].

    The org stage exists whenever the blueprint has a project, so a project blueprint without
    connections still yields a one-task plan (as in DevLake); `no task to run` needs an empty plan.
    """
    source_tasks, mappings = [], []
    for index, conn in enumerate(bp["connections"]):
        plugin = conn["pluginName"]
        if not conn["scopes"] and plugin not in SCOPELESS_OK:
            raise ApiError(400, f"connections[{index}].scopes is empty")
        if not state.plugins.plugins.get(plugin):
            raise ApiError(400, f"Plugin `{plugin}` doesn't exist")
        try:
            state.plugins.connection(plugin, conn["connectionId"])
        except ApiError:
            raise ApiError(400, f"connection {plugin}:{conn['connectionId']} not found") from None
        table = state.plugins.rows(plugin, conn["connectionId"])
        field = SCOPE_ID_FIELD.get(plugin, "id")
        for scope in conn["scopes"]:
            row = table.get(scope["scopeId"])
            if row is None:
                raise ApiError(400, f"failed to get scope {plugin}:{conn['connectionId']}:{scope['scopeId']}",
                               causes=["record not found (404)"])
            options = {"connectionId": conn["connectionId"], field: row[field],
                       "scopeConfigId": row.get("scopeConfigId", 0)}
            source_tasks.append({"plugin": plugin, "subtasks": None, "options": options,
                                 **({"skipCollectors": True} if skip_collectors else {})})
            mappings.append({"table": "repos", "rowId": f"{plugin}:{conn['connectionId']}:{scope['scopeId']}"})
    plan = []
    project_name = bp["projectName"]
    if project_name:
        plan.append([{"plugin": "org", "subtasks": ["setProjectMapping"],
                      "options": {"projectMappings": [{"projectName": project_name, "scopes": mappings}]}}])
    if source_tasks:
        plan.append(source_tasks)
    project = state.projects.projects.get(project_name) if project_name else None
    metric_tasks = [{"plugin": m["pluginName"], "subtasks": None,
                     "options": {"projectName": project_name, **_dict(m["pluginOption"])}}
                    for m in (project or {}).get("metrics") or [] if m["enable"]]
    if metric_tasks:
        plan.append(metric_tasks)
    return (bp["beforePlan"] or []) + plan + (bp["afterPlan"] or [])


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}
