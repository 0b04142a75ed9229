"""`--dry-run` for people and for scripts: totals per kind first, a few lines per kind, or everything.

Pure functions of a `Plan` (modules/changes.py) and the settings: no HTTP, no clock. Crons are
shown in TIMEZONE with DevLake's own value (in DEVLAKE_TIMEZONE, where DevLake evaluates them,
`docs/devlake-api.md` §8.1) beside them, so "22:30" reads as the operator's evening.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import asdict, fields, is_dataclass
from datetime import date, datetime, time
from typing import Any

from config import Settings
from modules.changes import Change, CreateProject, PatchBlueprint, Plan, PutScopes, RerunPipeline, TriggerBlueprint
from modules.cron_slots import cron_minute_of_day

LINES_PER_KIND = 20
# How each kind is called in the summary, in the order a run applies them; other kinds follow.
KIND_TITLES = {"scope_config": "scope configs", "scope": "scope batches", "project": "projects",
               "blueprint": "blueprint patches", "trigger": "first collections", "rerun": "reruns"}
COUNT_WORDS = {"rows_create": "new", "rows_attach_scope_config": "given the scope config", "start": "start now",
               "deferred": "deferred: queue budget"}
FOLLOWS_CRON = ("labels", "isManual")  # written with every cron (modules/cron_slots.py): the cron says it all


def totals(plan: Plan, deferred_changes: Collection[Change] = ()) -> dict[str, dict[str, int]]:
    """Per kind: `changes` and what they are made of (rows, fields patched, started / deferred:
    `deferred_changes`, what the queue budget would defer, modules/queue.py `split_by_budget`)."""
    deferred = {id(c) for c in deferred_changes}
    out: dict[str, Counter] = {}
    for change in sorted(plan.changes, key=lambda c: c.phase):
        counts = out.setdefault(change.kind, Counter())
        counts["changes"] += 1
        if isinstance(change, PutScopes):
            counts["rows"] += len(change.rows)
            counts[f"rows_{change.action}"] += len(change.rows)
        elif isinstance(change, PatchBlueprint):
            counts.update(f"field_{name}" for name in change.fields if name not in FOLLOWS_CRON)
        elif isinstance(change, (TriggerBlueprint, RerunPipeline)):
            counts["deferred" if id(change) in deferred else "start"] += 1
    return {kind: dict(counts) for kind, counts in out.items()}


def flat_totals(plan: Plan, deferred_changes: Collection[Change] = ()) -> dict[str, int]:
    """`totals` as one level, `<kind>_<count>`: a dry run's `actions` in its run_completed line."""
    return {f"{kind}_{name}": n for kind, counts in totals(plan, deferred_changes).items()
            for name, n in counts.items()}


def render(plan: Plan, settings: Settings, on: date, *, deferred_changes: Collection[Change] = (),
           full: bool = False, limit: int = LINES_PER_KIND) -> list[str]:
    """The plan as text: the totals, then per kind at most `limit` lines ("… and N more") unless `full`."""
    lines = [f"Plan: {len(plan.changes):,} changes, {plan.unchanged:,} unchanged, {len(plan.problems):,} "
             f"problems; nothing was written. Crons in {settings.timezone} ({settings.devlake_timezone} "
             "as DevLake stores them)."]
    by_kind = totals(plan, deferred_changes)
    for kind in [*KIND_TITLES, *(k for k in by_kind if k not in KIND_TITLES)]:  # the known ones also at 0
        lines.append(f"  {_title(kind):<18} {_summary(by_kind.get(kind, {'changes': 0}))}")
    deferred = {id(c) for c in deferred_changes}
    for kind in by_kind:  # what starts now before what waits, then by name
        changes = sorted((c for c in plan.changes if c.kind == kind), key=lambda c: (id(c) in deferred, c.target))
        shown = changes if full else changes[:limit]
        lines.append(f"{_title(kind)} ({len(changes):,}):")
        lines.extend(f"  {c.target}  ({detail(c, settings, on)})"
                     + ("  [deferred: queue budget]" if id(c) in deferred else "") for c in shown)
        if len(changes) > len(shown):
            lines.append(f"  … and {len(changes) - len(shown):,} more (--full lists them, --json for scripts)")
    if plan.problems:
        shown_problems = plan.problems if full else plan.problems[:limit]
        lines.append(f"problems ({len(plan.problems):,}):")
        lines.extend(f"  {p}" for p in shown_problems)
        if len(plan.problems) > len(shown_problems):
            lines.append(f"  … and {len(plan.problems) - len(shown_problems):,} more (--full lists them)")
    return lines


def as_json(plan: Plan, settings: Settings, on: date, *, deferred_changes: Collection[Change] = ()) -> dict:
    """The whole plan, every change with its data, for scripts (`--dry-run --json`)."""
    deferred = {id(c) for c in deferred_changes}
    return {"dry_run": True, "timezone": str(settings.timezone), "devlake_timezone": str(settings.devlake_timezone),
            "totals": totals(plan, deferred_changes), "unchanged": plan.unchanged, "problems": list(plan.problems),
            "changes": [{"kind": c.kind, "phase": int(c.phase), "target": c.target, "detail": detail(c, settings, on),
                         "deferred": id(c) in deferred, "data": _data(c)}
                        for c in sorted(plan.changes, key=lambda c: (c.phase, c.kind, c.target))]}


def detail(change: Change, settings: Settings, on: date) -> str:
    """What a change does, crons in TIMEZONE; otherwise the change's own words."""
    if isinstance(change, CreateProject) and "cronConfig" in change.blueprint:
        scope = change.scope
        return (f"create, {scope.connection.label} scope {scope.scope_id}, "
                f"cron {show_cron(change.blueprint['cronConfig'], settings, on)}")
    if isinstance(change, PatchBlueprint):
        parts = []
        for name, value in sorted(change.fields.items()):
            if name in FOLLOWS_CRON or name == "connections":
                continue
            before = change.before.get(name)
            if name == "cronConfig":
                parts.append(f"cron: {show_cron(before, settings, on)} -> {show_cron(value, settings, on)}")
            else:
                parts.append(f"{name}: {before!r} -> {value!r}")
        if "connections" in change.fields:
            parts.append("connections: the project's scopes")
        return ", ".join(parts) or "set fields"
    return change.describe()


def show_cron(cron: object, settings: Settings, on: date) -> str:
    """'22:30 Asia/Ho_Chi_Minh (30 15 * * * UTC)' for a daily cron; other values as they are."""
    if not isinstance(cron, str):
        return repr(cron)
    minute = cron_minute_of_day(cron)
    if minute is None:
        return repr(cron)
    devlake = settings.devlake_timezone.localize(datetime.combine(on, time(minute // 60, minute % 60)))
    local = devlake.astimezone(settings.timezone)
    return f"{local:%H:%M} {settings.timezone} ({cron} {settings.devlake_timezone})"


def _title(kind: str) -> str:
    return KIND_TITLES.get(kind, kind.replace("_", " "))


def _summary(counts: dict[str, int]) -> str:
    parts = [f"{n:,} {COUNT_WORDS.get(name, name.removeprefix('field_'))}" for name, n in counts.items()
             if name != "changes"]
    return f"{counts['changes']:,}" + (f" ({', '.join(parts)})" if parts else "")


def _data(change: Change) -> dict:
    """A change's fields; a reference to another change of the plan (changes.py) as its kind and target."""
    return {f.name: ({"planned": value.kind, "target": value.target} if isinstance(value, Change)
                     else _jsonable(value))
            for f in fields(change) for value in [getattr(change, f.name)]}


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
