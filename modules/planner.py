"""Planning: from what was read and the settings, the changes a run should make. Writes nothing.

`plan(observed, settings, now, rerun_counts)` is a pure function: the unit
tests build `Observed` by hand and assert the returned changes directly.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from config import Settings
from modules import statuses
from modules.changes import (
    CreateProject,
    CreateScopeConfig,
    PatchBlueprint,
    Plan,
    PutScopes,
    RerunPipeline,
    TriggerBlueprint,
)
from modules.connection import desired_scope_config, find_by_name
from modules.cron_slots import DEVLAKE_DEFAULT_CRON, CronChange, CronKept, plan_schedule
from modules.lifecycle import Lifecycle, plan_lifecycle
from modules.observe import ConnectionView, Observed
from modules.projects import (
    ProjectIndex,
    assign_names,
    marker,
    new_blueprint_fields,
    time_after_target,
)
from modules.queue import never_collected
from modules.rerun_rule import rerun_candidate
from modules.scopes import ScopeRef, attach_row, batches, new_scope_row, scope_id_of, scope_ref
from utils.blueprints import time_after_change
from utils.datetime import parse_devlake_time


def plan(observed: Observed, settings: Settings, now: datetime,
         rerun_counts: dict[int, int] | None = None) -> Plan:
    """Every change the run should make, in no particular order (the applier orders by phase)."""
    result = Plan(problems=list(observed.failures))
    if observed.projects is None or observed.blueprints is None:
        # Without the project index no write is safe: a scope may already be in a hand-made
        # project, and a new scope would be given a project on the next run anyway.
        return result
    scopes: list[tuple[ScopeRef, PutScopes | None]] = []  # (scope, the PUT of this run that adds it)
    for view in observed.connections:
        scopes.extend(_plan_connection(view, settings, result))
    index = ProjectIndex.build(observed.projects, observed.blueprints)
    lifecycle = _plan_lifecycle(index, observed, settings, now, result)
    drafts = _plan_new_blueprints(index, scopes, settings, now, result)
    crons = _plan_crons(index, drafts, lifecycle.retired, settings, now, result)
    _add_new_projects(drafts, crons, settings, result)
    _plan_managed_blueprints(index, crons, lifecycle, settings, now, result)
    _plan_first_collections(index, lifecycle.retired, settings, result)
    _plan_reruns(index, lifecycle.retired, settings, rerun_counts or {}, result)
    return result


def _plan_lifecycle(index: ProjectIndex, observed: Observed, settings: Settings, now: datetime,
                    result: Plan) -> Lifecycle:
    """Marks, retirements and restorations of managed blueprints (modules/lifecycle.py)."""
    lifecycle = plan_lifecycle(index.managed_blueprints(), observed.connections,
                               settings.retire_missing_after_days, now.astimezone(settings.timezone).date())
    for refusal in lifecycle.refusals:
        result.warnings.append(("missing_scopes_refused", {
            "connection": refusal.connection, "missing": refusal.missing, "managed": refusal.managed,
            "hint": "too many scopes vanished at once, so none is marked or retired: check that the "
                    "connection's token still has access to its organisations and groups"}))
    result.refused = lifecycle.refused
    return lifecycle


def _plan_connection(view: ConnectionView, settings: Settings,
                     result: Plan) -> list[tuple[ScopeRef, PutScopes | None]]:
    """Scope config, new scopes and scopes without a config for one connection; returns its scopes,
    each with the PUT that adds it in this run (None: DevLake has it already)."""
    conn = view.connection
    if view.existing is None:
        return []  # cannot tell new from existing: leave the connection for the next run
    config = _plan_scope_config(view, settings, result)
    config_id = config if isinstance(config, int) else None
    remote = view.remote.scopes if view.remote is not None else {}
    new_rows = [new_scope_row(conn.plugin, data, config_id)
                for sid, data in sorted(remote.items()) if sid not in view.existing]
    unconfigured = [] if not config else [
        attach_row(conn.plugin, row, config_id)
        for _sid, row in sorted(view.existing.items()) if not row.get("scopeConfigId")]
    added_by = _add_puts(result, view, new_rows, "create", config)
    _add_puts(result, view, unconfigured, "attach_scope_config", config)
    if not new_rows and not unconfigured:
        result.unchanged += 1
    refs: list[tuple[ScopeRef, PutScopes | None]] = [
        (scope_ref(conn, row), None) for row in view.existing.values() if scope_id_of(conn.plugin, row)]
    refs += [(scope_ref(conn, row), added_by[sid]) for row in new_rows
             if (sid := scope_id_of(conn.plugin, row))]
    return refs


def _plan_scope_config(view: ConnectionView, settings: Settings,
                       result: Plan) -> int | CreateScopeConfig | None:
    """The id of the connection's managed scope config, or the change that creates it, or None
    (its scope configs could not be read).

    An existing config is never rewritten: changing its content makes DevLake
    re-collect every scope that uses it, and an operator may have tuned it by
    hand. A difference is only logged.
    """
    if view.scope_configs is None:
        return None
    desired = desired_scope_config(view.connection, settings)
    existing = find_by_name(view.scope_configs, desired["name"])
    if existing is None:
        create = CreateScopeConfig(view.connection, desired)
        result.changes.append(create)
        return create
    drift = sorted(k for k, v in desired.items() if existing.get(k) != v and k != "name")
    if drift:
        result.warnings.append(("scope_config_differs_kept", {
            "connection": view.connection.label, "scope_config": desired["name"], "fields": drift}))
    result.unchanged += 1
    return int(existing["id"])


def _add_puts(result: Plan, view: ConnectionView, rows: list[dict], action: str,
              config: int | CreateScopeConfig | None) -> dict[str, PutScopes]:
    """The PUT batches of `rows`; returns the batch of each scope id."""
    plugin = view.connection.plugin
    of_scope: dict[str, PutScopes] = {}
    for batch in batches(rows):
        ids = tuple(scope_id_of(plugin, r) or "?" for r in batch)
        put = PutScopes(view.connection, tuple(batch), ids, action, config)
        result.changes.append(put)
        of_scope.update(dict.fromkeys(ids, put))
    return of_scope


@dataclass(frozen=True)
class _Draft:
    """A managed blueprint this run creates (blueprint_id None) or completes (an interrupted run's)."""

    scope: ScopeRef
    name: str
    fields: dict
    blueprint_id: int | None
    scope_added_by: PutScopes | None  # the PUT of this run that adds the scope, if any
    observed: dict  # the interrupted run's blueprint as read, else {}

    def as_blueprint(self, placeholder_id: int) -> dict:
        """What the blueprint will look like for the schedule: DevLake's default cron for a new one
        (backend/server/services/project.go), so slots are planned over existing and new keys."""
        return {"id": self.blueprint_id if self.blueprint_id is not None else placeholder_id,
                "projectName": self.name, "connections": self.fields["connections"],
                "labels": self.fields["labels"],
                "cronConfig": self.observed.get("cronConfig", DEVLAKE_DEFAULT_CRON),
                "isManual": self.observed.get("isManual", False)}


def _plan_new_blueprints(index: ProjectIndex, scopes: list[tuple[ScopeRef, PutScopes | None]],
                         settings: Settings, now: datetime, result: Plan) -> list[_Draft]:
    """A project for every scope no blueprint connects yet (names chosen here, before any write)."""
    added_by = {scope: put for scope, put in scopes if put is not None}
    untracked = [scope for scope, _new in scopes if scope.key not in index.tracked]
    result.unchanged += len(scopes) - len(untracked)
    names, unnamed = assign_names(settings.project_name_template, index, untracked)
    for scope in unnamed:
        result.problems.append(f"{scope.connection.label} scope {scope.scope_id}: no free project name")
    drafts = []
    for scope, name in names.items():
        ours = index.projects.get(name)
        blueprint_id = ((ours or {}).get("blueprint") or {}).get("id")
        if ours is None or not isinstance(blueprint_id, int):
            blueprint_id = None  # ours from an interrupted run (marker in its description): complete it
        drafts.append(_Draft(scope, name, new_blueprint_fields(scope, settings, now), blueprint_id,
                             added_by.get(scope), index.blueprints.get(blueprint_id or 0) or {}))
    return drafts


def _plan_crons(index: ProjectIndex, drafts: list[_Draft], retired: set[int], settings: Settings,
                now: datetime, result: Plan) -> dict[int, CronChange]:
    """Cron changes by blueprint id (negative: the drafts' placeholders), over existing and new
    managed blueprints at once so that both get consistent slots (modules/cron_slots.py).
    Retired blueprints take no slot and keep their cron."""
    placeholders = [d.as_blueprint(-i) for i, d in enumerate(drafts, start=1)]
    active = [bp for bp in index.managed_blueprints() if bp["id"] not in retired]
    schedule = plan_schedule(active + placeholders, window=settings.collection_window,
                             on=now.astimezone(settings.timezone).date(), tz=settings.timezone,
                             devlake_tz=settings.devlake_timezone, forced_cron=settings.blueprint_cron)
    if schedule.kept:
        result.warnings.append(("cron_hand_set_kept", _kept_fields(schedule.kept)))
    return {change.blueprint_id: change for change in schedule.changes}


def _kept_fields(kept: list[CronKept], examples: int = 10) -> dict:
    # One line per run, not one per blueprint: thousands of hand-set crons would drown the log.
    return {"count": len(kept), "examples": [
        {"project": k.project, "blueprint_id": k.blueprint_id, "cron": k.cron, "recorded": k.recorded}
        for k in kept[:examples]]}


def _add_new_projects(drafts: list[_Draft], crons: dict[int, CronChange], settings: Settings,
                      result: Plan) -> None:
    """Create (or complete) each draft with its slot cron in the same PATCH as its connections,
    then its first collection."""
    for i, draft in enumerate(drafts, start=1):
        cron = crons.get(draft.blueprint_id if draft.blueprint_id is not None else -i)
        fields = {**draft.fields, **(cron.body() if cron else {})}
        change: PatchBlueprint | CreateProject
        if draft.blueprint_id is not None:
            before = {k: draft.observed.get(k) for k in fields}
            if cron:
                before["cronConfig"] = cron.current
            change = PatchBlueprint(draft.blueprint_id, draft.name, fields, before)
        else:
            change = CreateProject(draft.scope, draft.name, marker(draft.scope), settings.project_metrics,
                                   fields, scope_added_by=draft.scope_added_by)
        result.changes.append(change)
        if settings.trigger_new_blueprints:
            result.changes.append(TriggerBlueprint(draft.name, change if isinstance(change, CreateProject)
                                                   else change.blueprint_id))


def _plan_managed_blueprints(index: ProjectIndex, crons: dict[int, CronChange], lifecycle: Lifecycle,
                             settings: Settings, now: datetime, result: Plan) -> None:
    """One PATCH per managed blueprint whose timeAfter, cron or lifecycle must change, with all.

    A retired blueprint is left as it is (no timeAfter or cron); its retirement PATCH changes
    only its labels and `enable`.
    """
    target = time_after_target(settings, now)
    for bp in sorted(index.managed_blueprints(), key=lambda b: b["id"]):
        name = str(bp.get("projectName") or bp.get("name"))
        fields, before = ({}, {}) if bp["id"] in lifecycle.retired else _time_after_fields(bp, name, target, result)
        cron = crons.get(bp["id"])
        if cron is not None:
            fields.update(cron.body())
            before.update(cronConfig=cron.current, isManual=bp.get("isManual"), labels=bp.get("labels"))
        life = lifecycle.changes.get(bp["id"])
        if life is not None:  # one PATCH for both: labels are replaced whole, two would race
            fields["labels"] = life.relabel(fields.get("labels", bp.get("labels") or []))
            before["labels"] = bp.get("labels")
            if life.enable is not None:
                fields["enable"], before["enable"] = life.enable, bp.get("enable")
        if fields:
            result.changes.append(PatchBlueprint(bp["id"], name, fields, before,
                                                 life.describe() if life is not None else ""))
        else:
            result.unchanged += 1


def _time_after_fields(bp: dict, name: str, target: str, result: Plan) -> tuple[dict, dict]:
    """timeAfter moved forward to the previous Saturday (§1.5, §0 #22), else nothing.

    Compares instants, never strings; a later value (set by hand) is kept and reported.
    """
    target_instant = parse_devlake_time(target)
    assert target_instant is not None
    try:
        current = parse_devlake_time(bp.get("timeAfter"))
    except ValueError:
        current = None  # not a timestamp: set it
    decision = time_after_change(current, target_instant)
    if decision == "keep_later":
        result.warnings.append(("time_after_later_kept", {
            "project": name, "current": bp.get("timeAfter"), "target": target}))
    if decision != "set":
        return {}, {}
    return {"timeAfter": target}, {"timeAfter": bp.get("timeAfter")}


def _plan_first_collections(index: ProjectIndex, retired: set[int], settings: Settings, result: Plan) -> None:
    """Managed blueprints that never collected (e.g. deferred by the queue budget in an earlier run).

    A blueprint disabled or switched to manual by hand is left alone: DevLake refuses to
    trigger a disabled one (§8.2), and manual means someone wants to start it themselves.
    """
    if not settings.trigger_new_blueprints:
        return
    for bp in sorted(index.managed_blueprints(), key=lambda b: b["id"]):
        project = index.projects.get(str(bp.get("projectName")))
        if project is None or not never_collected(project):
            continue
        if bp.get("enable") is False or bp.get("isManual") or bp["id"] in retired:
            continue
        result.changes.append(TriggerBlueprint(str(bp.get("projectName")), bp["id"]))


def _plan_reruns(index: ProjectIndex, retired: set[int], settings: Settings, counts: dict[int, int],
                 result: Plan) -> None:
    managed = {bp.get("projectName"): bp for bp in index.managed_blueprints() if bp["id"] not in retired}
    for name, project in sorted(index.projects.items()):
        if name not in managed:
            continue
        last_id = (project.get("lastPipeline") or {}).get("id")
        done = counts.get(last_id, 0) if isinstance(last_id, int) else 0
        pipeline_id = rerun_candidate(project, done, settings.max_reruns)
        if pipeline_id is not None:
            result.changes.append(RerunPipeline(name, pipeline_id, managed[name].get("id")))
        elif done and (project.get("lastPipeline") or {}).get("status") == statuses.FAILED:
            result.warnings.append(("rerun_limit_reached", {"project": name, "pipeline_id": last_id,
                                                            "reruns": done}))
