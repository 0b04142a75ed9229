"""Planning: from what was read and the settings, the changes a run should make. Writes nothing.

`plan(observed, settings, now, rerun_counts)` is a pure function: the unit
tests build `Observed` by hand and assert the returned changes directly.
"""
from __future__ import annotations

from datetime import datetime

from config import Settings
from modules.changes import (
    Change,
    CreateProject,
    CreateScopeConfig,
    PatchBlueprint,
    Plan,
    PutScopes,
    RerunPipeline,
    TriggerBlueprint,
)
from modules.collection import rerun_candidate
from modules.connection import desired_scope_config, find_by_name
from modules.observe import ConnectionView, Observed
from modules.projects import (
    ProjectIndex,
    assign_names,
    marker,
    new_blueprint_fields,
    time_after_target,
)
from modules.scopes import ScopeRef, attach_row, batches, new_scope_row, scope_id_of, scope_ref
from utils.blueprints import time_after_change
from utils.datetime import parse_devlake_time


def plan(observed: Observed, settings: Settings, now: datetime,
         rerun_counts: dict[int, int] | None = None) -> Plan:
    """Every change the run should make, in no particular order (the applier orders by phase)."""
    result = Plan(problems=list(observed.failures))
    scopes: list[tuple[ScopeRef, bool]] = []  # (scope, new in this run)
    for view in observed.connections:
        scopes.extend(_plan_connection(view, settings, result))
    if observed.projects is None or observed.blueprints is None:
        return result  # without the project index nothing below can be decided safely
    index = ProjectIndex.build(observed.projects, observed.blueprints)
    _plan_projects(index, scopes, settings, now, result)
    _plan_time_after(index, settings, now, result)
    _plan_reruns(index, settings, rerun_counts or {}, result)
    return result


def _plan_connection(view: ConnectionView, settings: Settings, result: Plan) -> list[tuple[ScopeRef, bool]]:
    """Scope config, new scopes and scopes without a config for one connection; returns its scopes."""
    conn = view.connection
    if view.existing is None:
        return []  # cannot tell new from existing: leave the connection for the next run
    config_id, pending = _plan_scope_config(view, settings, result)
    remote = view.remote.scopes if view.remote is not None else {}
    new_rows = [new_scope_row(conn.plugin, data, config_id)
                for sid, data in sorted(remote.items()) if sid not in view.existing]
    unconfigured = [] if not (config_id or pending) else [
        attach_row(conn.plugin, row, config_id)
        for _sid, row in sorted(view.existing.items()) if not row.get("scopeConfigId")]
    _add_puts(result, view, new_rows, "create", config_id, pending)
    _add_puts(result, view, unconfigured, "attach_scope_config", config_id, pending)
    if not new_rows and not unconfigured:
        result.unchanged += 1
    refs = [(scope_ref(conn, row), False) for row in view.existing.values() if scope_id_of(conn.plugin, row)]
    refs += [(scope_ref(conn, row), True) for row in new_rows if scope_id_of(conn.plugin, row)]
    return refs


def _plan_scope_config(view: ConnectionView, settings: Settings, result: Plan) -> tuple[int | None, bool]:
    """(id of the connection's managed scope config, or None; whether its creation is planned).

    An existing config is never rewritten: changing its content makes DevLake
    re-collect every scope that uses it, and an operator may have tuned it by
    hand. A difference is only logged.
    """
    if view.scope_configs is None:
        return None, False
    desired = desired_scope_config(view.connection, settings)
    existing = find_by_name(view.scope_configs, desired["name"])
    if existing is None:
        result.changes.append(CreateScopeConfig(view.connection, desired))
        return None, True
    drift = sorted(k for k, v in desired.items() if existing.get(k) != v and k != "name")
    if drift:
        result.warnings.append(("scope_config_differs_kept", {
            "connection": view.connection.label, "scope_config": desired["name"], "fields": drift}))
    result.unchanged += 1
    return int(existing["id"]), False


def _add_puts(result: Plan, view: ConnectionView, rows: list[dict], action: str,
              config_id: int | None, pending: bool) -> None:
    plugin = view.connection.plugin
    for batch in batches(rows):
        ids = tuple(scope_id_of(plugin, r) or "?" for r in batch)
        result.changes.append(PutScopes(view.connection, tuple(batch), ids, action, config_id, pending))


def _plan_projects(index: ProjectIndex, scopes: list[tuple[ScopeRef, bool]], settings: Settings,
                   now: datetime, result: Plan) -> None:
    """A project for every scope no blueprint connects yet, and its first collection."""
    new_scopes = {scope for scope, new in scopes if new}
    untracked = [scope for scope, _new in scopes if scope.key not in index.tracked]
    result.unchanged += len(scopes) - len(untracked)
    names, unnamed = assign_names(settings.project_name_template, index, untracked)
    for scope in unnamed:
        result.problems.append(f"{scope.connection.label} scope {scope.scope_id}: no free project name")
    for scope, name in names.items():
        fields = new_blueprint_fields(scope, settings, now)
        ours = index.projects.get(name)
        blueprint_id = ((ours or {}).get("blueprint") or {}).get("id")
        changes: list[Change]
        if ours is not None and isinstance(blueprint_id, int):
            # ours from an interrupted run (marker in its description): complete it
            changes = [PatchBlueprint(blueprint_id, name, fields, _before(index, blueprint_id, fields))]
        else:
            changes = [CreateProject(scope, name, marker(scope), settings.project_metrics, fields,
                                     new_scope=scope in new_scopes)]
            blueprint_id = None
        if settings.trigger_new_blueprints:
            changes.append(TriggerBlueprint(name, blueprint_id))
        result.changes.extend(changes)


def _before(index: ProjectIndex, blueprint_id: int, fields: dict) -> dict:
    observed = index.blueprints.get(blueprint_id) or {}
    return {k: observed.get(k) for k in fields}


def _plan_time_after(index: ProjectIndex, settings: Settings, now: datetime, result: Plan) -> None:
    """Every managed blueprint's timeAfter moved forward to the previous Saturday (§1.5, §0 #22).

    Compares instants, never strings; a later value (set by hand) is kept and reported.
    """
    target = time_after_target(settings, now)
    target_instant = parse_devlake_time(target)
    assert target_instant is not None
    for bp in index.managed_blueprints():
        name = str(bp.get("projectName") or bp.get("name"))
        try:
            current = parse_devlake_time(bp.get("timeAfter"))
        except ValueError:
            current = None  # not a timestamp: set it
        decision = time_after_change(current, target_instant)
        if decision == "keep_later":
            result.warnings.append(("time_after_later_kept", {
                "project": name, "current": bp.get("timeAfter"), "target": target}))
        if decision != "set":
            result.unchanged += 1
            continue
        result.changes.append(PatchBlueprint(bp["id"], name, {"timeAfter": target},
                                             {"timeAfter": bp.get("timeAfter")}))


def _plan_reruns(index: ProjectIndex, settings: Settings, counts: dict[int, int], result: Plan) -> None:
    managed = {bp.get("projectName"): bp for bp in index.managed_blueprints()}
    for name, project in sorted(index.projects.items()):
        if name not in managed:
            continue
        last_id = (project.get("lastPipeline") or {}).get("id")
        done = counts.get(last_id, 0) if isinstance(last_id, int) else 0
        pipeline_id = rerun_candidate(project, done, settings.max_reruns)
        if pipeline_id is not None:
            result.changes.append(RerunPipeline(name, pipeline_id, managed[name].get("id")))
        elif done and (project.get("lastPipeline") or {}).get("status") == "TASK_FAILED":
            result.warnings.append(("rerun_limit_reached", {"project": name, "pipeline_id": last_id,
                                                            "reruns": done}))
