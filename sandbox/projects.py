"""Projects and blueprints (§7, §8 of `docs/devlake-api.md`). Callers hold the fake's lock."""

from __future__ import annotations

from itertools import islice

from .blueprint_rules import coerce_patch, make_plan, new_blueprint, validate_blueprint
from .common import PENDING_STATUSES, ApiError, six_months_ago_midnight

_RAW = {"_raw_data_params": "", "_raw_data_table": "", "_raw_data_id": 0, "_raw_data_remark": ""}
UNFINISHED = "There are unfinished pipelines in the current project. It cannot be deleted at this time."


class ProjectStore:
    def __init__(self, state):
        self._state = state
        self.projects: dict[str, dict] = {}  # insertion order = created_at order
        self.blueprints: dict[int, dict] = {}
        self.by_project: dict[str, int] = {}
        self._seq = 0

    # --- projects (§7) -----------------------------------------------------------------------

    def create_project(self, body) -> dict:
        if not isinstance(body, dict):
            raise ApiError(400, "invalid request body")
        name = body.get("name")
        if not isinstance(name, str) or not name or len(name) > 100:
            raise ApiError(400, "data verification failed", causes=["project name is invalid (400)"])
        if name in self.projects:
            raise ApiError(400, f"A project with name [{name}] already exists")
        now = self._state.now()
        inline = body.get("blueprint")
        if isinstance(inline, dict):
            # quirk #23: stored as sent (usually without projectName, enable false), connections dropped
            fields = coerce_patch({k: v for k, v in inline.items() if k not in ("id", "connections")},
                                  strict_time=True)
        else:
            fields = {"name": f"{name}-Blueprint", "projectName": name, "mode": "NORMAL", "enable": True,
                      "cronConfig": "0 0 * * *", "isManual": False,
                      "timeAfter": six_months_ago_midnight(self._state.clock())}
        self.projects[name] = {"name": name, "description": str(body.get("description") or ""),
                               "createdAt": now, "updatedAt": now, **_RAW,
                               "metrics": _metrics(body.get("metrics")) or None}
        self._insert(new_blueprint(now, fields))
        return self.output(name)

    def project(self, name: str) -> dict:
        project = self.projects.get(name)
        if project is None:
            raise ApiError(404, f"could not find project [{name}] in DB", causes=["record not found (404)"])
        return project

    def output(self, name: str, *, with_last: bool = False) -> dict:
        """ApiOutputProject: blueprint (or null), and lastPipeline only in the list (§7)."""
        out = dict(self.project(name))
        bp_id = self.by_project.get(name)
        out["blueprint"] = self.blueprints.get(bp_id) if bp_id else None
        if with_last and bp_id:
            last = self._state.pipelines.latest(bp_id)
            if last is not None:
                out["lastPipeline"] = last
        return out

    def list_projects(self, keyword: str, offset: int, limit: int) -> dict:
        names = reversed(self.projects)
        if keyword:
            needle = keyword.lower()
            hits = [n for n in names if needle in n.lower()]
            count, page = len(hits), hits[offset:offset + limit]
        else:
            count, page = len(self.projects), list(islice(names, offset, offset + limit))
        return {"projects": [self.output(n, with_last=True) for n in page], "count": count}

    def patch_project(self, name: str, body) -> dict:
        project = self.project(name)
        if not isinstance(body, dict):
            raise ApiError(400, "invalid request body")
        new_name = body.get("name") or name
        if new_name != name and new_name in self.projects:
            raise ApiError(400, f"A project with name [{new_name}] already exists")
        project["description"] = str(body.get("description") or "")  # quirk #9: reset when omitted
        metrics = _metrics(body.get("metrics"))
        if metrics:
            project["metrics"] = metrics
        project["updatedAt"] = self._state.now()
        if new_name != name:
            project["name"] = new_name
            self.projects = {(new_name if k == name else k): v for k, v in self.projects.items()}
            bp_id = self.by_project.pop(name, None)
            if bp_id:
                self.by_project[new_name] = bp_id
                self.blueprints[bp_id]["projectName"] = new_name
        return self.output(new_name)

    def delete_project(self, name: str) -> None:
        self.project(name)
        bp_id = self.by_project.get(name)
        if bp_id:
            self._require_finished(bp_id)
            self._remove_blueprint(bp_id)
        del self.projects[name]

    # --- blueprints (§8) ---------------------------------------------------------------------

    def _insert(self, bp: dict) -> dict:
        self._seq += 1
        bp["id"] = self._seq
        self.blueprints[bp["id"]] = bp
        if bp["projectName"] and bp["projectName"] not in self.by_project:
            self.by_project[bp["projectName"]] = bp["id"]
        return bp

    def blueprint(self, bp_id) -> dict:
        try:
            return self.blueprints[int(bp_id)]
        except (KeyError, ValueError, TypeError):
            raise ApiError(404, "blueprint not found") from None

    def create_blueprint(self, body) -> dict:
        """POST /blueprints: strict JSON bind (timeAfter RFC 3339 only, quirk #14)."""
        if not isinstance(body, dict):
            raise ApiError(400, "invalid request body")
        fields = coerce_patch(body, strict_time=True)
        bp = new_blueprint(self._state.now(), fields)
        validate_blueprint(self._state, bp, bp_id=None)
        return self._insert(bp)

    def patch_blueprint(self, bp_id, body) -> dict:
        """Keys present overwrite, arrays replaced whole, then validation + plan (§8.2)."""
        bp = self.blueprint(bp_id)
        if not isinstance(body, dict):
            raise ApiError(400, "invalid request body")
        candidate = {**bp, **coerce_patch(body, strict_time=False)}
        if candidate["mode"] != bp["mode"]:
            raise ApiError(500, "mode is not updatable")
        validate_blueprint(self._state, candidate, bp_id=bp["id"])
        candidate["updatedAt"] = self._state.now()
        if candidate["projectName"] != bp["projectName"]:
            if self.by_project.get(bp["projectName"]) == bp["id"]:
                del self.by_project[bp["projectName"]]
            if candidate["projectName"]:
                self.by_project[candidate["projectName"]] = bp["id"]
        bp.update(candidate)
        return bp

    def delete_blueprint(self, bp_id) -> None:
        bp = self.blueprint(bp_id)
        self._require_finished(bp["id"])
        self._remove_blueprint(bp["id"])

    def _require_finished(self, bp_id: int) -> None:
        newest = self._state.pipelines.by_blueprint.get(bp_id, [])[-50:]
        if any(self._state.pipelines.pipelines[p]["status"] in PENDING_STATUSES for p in newest):
            raise ApiError(500, UNFINISHED)

    def _remove_blueprint(self, bp_id: int) -> None:
        bp = self.blueprints.pop(bp_id)
        if self.by_project.get(bp["projectName"]) == bp_id:
            del self.by_project[bp["projectName"]]

    def list_blueprints(self, *, enable: bool | None, is_manual: bool | None, label: str, kind: str,
                        offset: int, limit: int) -> dict:
        crons = {"DAILY": "0 0 * * *", "WEEKLY": "0 0 * * 1", "MONTHLY": "0 0 1 * *"}
        fixed = set(crons.values())

        def keep(bp):
            if enable is not None and bp["enable"] != enable:
                return False
            if label and label not in bp["labels"]:
                return False
            if is_manual is not None:
                return bp["isManual"] == is_manual
            if kind == "MANUAL":
                return bp["isManual"]
            if kind in crons:
                return not bp["isManual"] and bp["cronConfig"] == crons[kind]
            if kind == "CUSTOM":
                return not bp["isManual"] and bp["cronConfig"] not in fixed
            return True

        items = reversed(self.blueprints.values())
        if enable is None and is_manual is None and not label and kind in ("", "ALL"):
            return {"blueprints": list(islice(items, offset, offset + limit)), "count": len(self.blueprints)}
        hits = [bp for bp in items if keep(bp)]
        return {"blueprints": hits[offset:offset + limit], "count": len(hits)}

    def trigger(self, bp_id, body) -> dict:
        """POST /blueprints/{id}/trigger → a TASK_CREATED pipeline (§8.2, quirk #15)."""
        bp = self.blueprint(bp_id)
        body = body if isinstance(body, dict) else {}
        if not bp["enable"]:
            raise ApiError(400, "blueprint is not enabled")
        skip = bool(body.get("skipCollectors", False))
        plan = make_plan(self._state, bp, skip_collectors=skip) if bp["mode"] == "NORMAL" else bp["plan"]
        return self._state.pipelines.create(
            name=bp["name"], blueprint_id=bp["id"], plan=plan, labels=bp["labels"],
            time_after=bp["timeAfter"], skip_on_fail=bp["skipOnFail"], priority=bp["priority"],
            skip_collectors=skip, full_sync=bool(body.get("fullSync", False)))

    # --- reverse lookups ---------------------------------------------------------------------

    def blueprints_using(self, plugin: str, cid: int, scope_id: str | None) -> list[dict]:
        return [bp for bp in self.blueprints.values() for c in bp["connections"]
                if c["pluginName"] == plugin and c["connectionId"] == cid
                and (scope_id is None or any(s["scopeId"] == scope_id for s in c["scopes"]))]

    def scope_blueprint_index(self) -> dict:
        index: dict[tuple, list] = {}
        for bp in self.blueprints.values():
            for conn in bp["connections"]:
                for scope in conn["scopes"]:
                    index.setdefault((conn["pluginName"], conn["connectionId"], scope["scopeId"]), []).append(bp)
        return index


def _metrics(value) -> list | None:
    if not isinstance(value, list):
        return None
    return [{"pluginName": m.get("pluginName", ""), "pluginOption": m.get("pluginOption"),
             "enable": bool(m.get("enable", False))} for m in value if isinstance(m, dict)]
