"""What the monitor remembers between polls and across restarts.

Everything that makes "counted exactly once" true lives here: the counted
failure events keyed by (pipeline id, finishedAt), the per-project counters,
the pipelines seen in flight, the high watermark of pipeline ids and the
floor below which nothing is ever counted again. It is saved to
STATE_DIR/monitor_state.json with an atomic write; a corrupt file is moved
aside and the monitor starts fresh.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TypeVar

import structlog

from modules import statuses
from utils.statefile import CorruptStateFile, atomic_write_json, move_aside, read_json

STATE_FILE = "monitor_state.json"
STATE_VERSION = 2
# Version 1 files (before failure reasons) load with the new fields at their defaults.
READABLE_VERSIONS = (1, 2)
# Ad-hoc pipelines (blueprintId 0) and blueprints without a project (README, Metrics).
NO_PROJECT = "(no project)"

IN_FLIGHT_STATUSES = statuses.IN_FLIGHT
FINAL_STATUSES = statuses.FINAL
ALL_STATUSES = statuses.ALL
FAILURE_STATUSES = statuses.FAILURES

log = structlog.get_logger("monitor")


@dataclass
class ProjectStats:
    """Low-cardinality counters and gauges of one project."""

    failures: float = 0.0
    runs: float = 0.0
    last_failure: float | None = None
    last_success: float | None = None
    last_status: str | None = None
    last_pipeline_id: int = 0
    consecutive_failures: int = 0
    last_finish: float | None = None  # newest counted finish, epoch seconds
    # The newest explained failure (modules/monitoring/reasons.py): why it failed.
    last_reason: str | None = None
    last_plugin: str | None = None
    last_failed_subtask: str | None = None
    last_explained: float | None = None  # finish of that failure: an older one explained later never wins
    last_connection_id: str | None = None  # the failed task's connection (reasons.py)
    last_message: str | None = None  # the failed task's message, masked and cut (reasons.MESSAGE_LIMIT)
    # When the blueprint's first cron run after its creation is due (schedule_rules.py); None:
    # not scheduled (manual, disabled, unreadable cron) or not a managed project.
    first_run: float | None = None


@dataclass
class FailureEvent:
    """One counted failure: the series devlake_blueprint_failure_total{project_name,time_failed}."""

    pipeline_id: int
    finished_at: str  # UTC ISO form of finishedAt: with the id, the event's identity
    finished_epoch: float
    project: str
    time_failed: str

    @property
    def key(self) -> str:
        return event_key(self.pipeline_id, self.finished_at)


@dataclass
class InFlight:
    """A pipeline last seen queued or running."""

    project: str
    since: float
    status: str
    # A rerun keeps its old finishedAt while it runs (§0 #16); a final status with
    # that same finishedAt is the old run, not a new one.
    prev_finish: str | None = None


@dataclass
class Unexplained:
    """A counted failure whose tasks were not read yet (modules/monitoring/explain.py).

    Saved with the count that created it, so a restart between counting and
    explaining neither loses its reason nor counts it twice.
    """

    pipeline_id: int
    project: str
    finished_epoch: float
    interrupted: bool = False
    attempts: int = 0


EVENT_FIELDS = [f.name for f in fields(FailureEvent)]
UNEXPLAINED_FIELDS = [f.name for f in fields(Unexplained)]
PROJECT_FIELDS = [f.name for f in fields(ProjectStats)]
IN_FLIGHT_FIELDS = [f.name for f in fields(InFlight)]


def event_key(pipeline_id: int, finished_at_utc: str) -> str:
    return f"{pipeline_id}@{finished_at_utc}"


@dataclass
class MonitorState:
    """The monitor's memory. Mutated only by modules.monitoring.ledger, under the monitor's lock."""

    watermark: int | None = None  # highest pipeline id ever seen; None before the first poll
    floor: float | None = None  # finishes before this instant are never counted (again)
    events: dict[str, FailureEvent] = field(default_factory=dict)
    projects: dict[str, ProjectStats] = field(default_factory=lambda: {NO_PROJECT: ProjectStats()})
    in_flight: dict[int, InFlight] = field(default_factory=dict)
    unexplained: dict[str, Unexplained] = field(default_factory=dict)  # by event key
    reason_counts: dict[tuple[str, str], float] = field(default_factory=dict)  # (plugin, reason) -> failures
    # Project-list sweeps a known project was missing from in a row (not saved: a
    # restart only delays a removal by one sweep).
    absent: dict[str, int] = field(default_factory=dict)
    # Projects whose blueprint the automation retired (modules/lifecycle.py), from the last project
    # list (not saved: the first poll after a restart reads the list).
    retired: set[str] = field(default_factory=set)
    dirty: bool = False

    def prune(self, cutoff: float) -> int:
        """Forget failure events that finished before `cutoff`, and never count them again."""
        old = [k for k, e in self.events.items() if e.finished_epoch < cutoff]
        for key in old:
            del self.events[key]
        if self.floor is None or cutoff > self.floor:
            self.floor = cutoff
            self.dirty = True
        self.dirty = self.dirty or bool(old)
        return len(old)

    def to_dict(self) -> dict:
        # Rows as lists under a field header: with 10,000 events and 5,000 projects
        # this is several times faster to write than a dict per row (bench_monitor.py).
        return {
            "version": STATE_VERSION,
            "watermark": self.watermark,
            "floor_epoch": self.floor,
            "event_fields": EVENT_FIELDS,
            "events": [[getattr(e, f) for f in EVENT_FIELDS] for e in self.events.values()],
            "project_fields": PROJECT_FIELDS,
            "projects": {name: [getattr(p, f) for f in PROJECT_FIELDS] for name, p in self.projects.items()},
            "in_flight_fields": IN_FLIGHT_FIELDS,
            "in_flight": {str(pid): [getattr(e, f) for f in IN_FLIGHT_FIELDS] for pid, e in self.in_flight.items()},
            "unexplained_fields": UNEXPLAINED_FIELDS,
            "unexplained": {k: [getattr(u, f) for f in UNEXPLAINED_FIELDS] for k, u in self.unexplained.items()},
            "reason_counts": [[plugin, reason, n] for (plugin, reason), n in sorted(self.reason_counts.items())],
        }

    @classmethod
    def from_dict(cls, data: object) -> MonitorState:
        """Rebuild from `to_dict()` output; raises ValueError/TypeError/KeyError on a bad shape.

        Rows are read by their saved field names: a field this version added gets
        its default, a field it dropped is ignored (a version 1 file loads as is).
        """
        if not isinstance(data, dict) or data.get("version") not in READABLE_VERSIONS:
            raise ValueError(f"unknown state version {data.get('version') if isinstance(data, dict) else data!r}")
        watermark, floor = data["watermark"], data["floor_epoch"]
        if watermark is not None and not isinstance(watermark, int):
            raise TypeError("watermark is not an integer")
        state = cls(watermark=watermark, floor=None if floor is None else float(floor))
        for row in data["events"]:
            event = _row(FailureEvent, data["event_fields"], row)
            state.events[event.key] = event
        state.projects.update({name: _row(ProjectStats, data["project_fields"], row)
                               for name, row in data["projects"].items()})
        state.in_flight = {int(pid): _row(InFlight, data["in_flight_fields"], row)
                           for pid, row in data["in_flight"].items()}
        header = data.get("unexplained_fields", UNEXPLAINED_FIELDS)
        state.unexplained = {k: _row(Unexplained, header, row) for k, row in data.get("unexplained", {}).items()}
        state.reason_counts = {(str(p), str(r)): float(n) for p, r, n in data.get("reason_counts", [])}
        from modules.monitoring.state_types import problem  # it imports this module's row types
        if (wrong := problem(state)) is not None:
            raise TypeError(wrong)
        return state

    def save(self, path: Path) -> None:
        """Atomically write the state (temp file, fsync, rename) and clear the dirty flag."""
        atomic_write_json(path, self.to_dict())
        self.dirty = False

    @classmethod
    def load(cls, path: Path) -> MonitorState:
        """The saved state, or a fresh one when the file is missing or unreadable (moved aside)."""
        try:
            data = read_json(path, None)
        except CorruptStateFile as exc:
            log.warning("state_file_corrupt", path=str(exc.path), moved_to=str(exc.moved_to),
                        reason=exc.reason, action="starting with fresh state")
            return cls()
        if data is None:
            log.info("state_file_missing", path=str(path), action="first start")
            return cls()
        try:
            state = cls.from_dict(data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            moved = move_aside(path)
            log.warning("state_file_corrupt", path=str(path), moved_to=str(moved),
                        reason=f"{type(exc).__name__}: {exc}", action="starting with fresh state")
            return cls()
        log.info("state_restored", path=str(path), watermark=state.watermark,
                 failure_events=len(state.events), projects=len(state.projects) - 1,
                 in_flight=len(state.in_flight))
        return state


_Row = TypeVar("_Row", FailureEvent, ProjectStats, InFlight, Unexplained)  # the saved row kinds


def _row(kind: type[_Row], header: object, row: object) -> _Row:
    """One saved row as `kind`, matched by field name; a row missing a required field raises TypeError."""
    if not isinstance(header, list) or not isinstance(row, list) or len(header) != len(row):
        raise ValueError(f"{kind.__name__} row does not match its field header")
    known = {f.name for f in fields(kind)}
    return kind(**{name: value for name, value in zip(header, row, strict=True) if name in known})


