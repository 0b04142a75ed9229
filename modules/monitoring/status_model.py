"""The status page's model: which projects are not collecting, since when, and why. No HTML here.

`snapshot(source)` reads the monitor's in-memory state under its lock (never
DevLake; `StatusSource` says what it reads) and returns a `StatusModel`, an
immutable snapshot; `classify` and `order_key` are the pure rules the page and
/status.json share:

* failing: the newest finished pipeline failed (TASK_FAILED or TASK_PARTIAL),
  also while a rerun of it is queued or running;
* stuck: a pipeline has been queued or running longer than STUCK_AFTER_MINUTES;
* scheduled: a managed project that never finished a pipeline, whose blueprint is
  enabled and whose first cron run (first_run.py) is running, queued, or not due yet:
  its first cron minute plus STUCK_AFTER_MINUTES has not passed. Not trouble;
* never: no successful collection seen (the monitor sees history from its first
  start, MONITOR_LOOKBACK_HOURS back, plus each project's latest pipeline);
* stale: the last success is older than STALE_AFTER_HOURS;
* healthy: the rest;
* retired: before all of these, a project whose blueprint the automation retired (disabled and
  labelled `devlake-automation/retired`, modules/lifecycle.py): its repository left upstream, so
  its failures are no one's to fix. Listed last.

The first rule that matches wins, in that order; the page lists them in STATES'
order (scheduled after the trouble, before the healthy).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Protocol
from urllib.parse import quote

from config import Settings
from modules import statuses
from modules.monitoring.connections import ConnectionHealth
from modules.monitoring.state import FAILURE_STATUSES, NO_PROJECT, MonitorState, ProjectStats
from utils.urls import without_password

STATES = ("failing", "stuck", "never", "stale", "scheduled", "healthy", "retired")
TROUBLE = STATES[:4]
_DIGITS = re.compile(r"(\d+)")
_RANK = {state: rank for rank, state in enumerate(STATES)}


@dataclass(frozen=True)
class Thresholds:
    stuck_after: float  # seconds in flight before a pipeline counts as stuck
    stale_after: float  # seconds since the last success before a project counts as stale


@dataclass(frozen=True)
class Row:
    """One project as the page shows it. Times are epoch seconds."""

    project: str
    state: str
    since: float | None  # when the trouble began, as far as the monitor knows; None: unknown or healthy
    last_status: str | None
    last_success: float | None
    last_failure: float | None
    reason: str | None
    failed_subtask: str | None
    plugin: str | None
    consecutive_failures: int
    in_flight_since: float | None
    link: str | None
    message: str | None = None  # the newest failure's message, masked and cut (reasons.py)
    next_run: float | None = None  # scheduled and not started yet: its first cron run


@dataclass(frozen=True)
class ConnectionRow:
    plugin: str
    connection_id: object
    name: str
    up: bool | None  # None: not checked yet
    checked_at: float | None
    error: str | None
    since: float | None


@dataclass(frozen=True)
class StatusModel:
    now: float
    devlake_url: str
    ui_url: str | None
    up: bool | None  # None before the first poll ended
    last_poll_success: float | None
    last_error: str | None
    pending: dict[str, int] | None  # None: not known before the first successful poll
    connections: list[ConnectionRow] | None  # None: CONNECTION_CHECK_INTERVAL_SECONDS=0
    thresholds: Thresholds
    refresh_seconds: float
    tz: tzinfo
    rows: list[Row]

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for row in self.rows:
            counts[row.state] += 1
        return counts


def classify(stats: ProjectStats, in_flight_since: float | None, now: float,
             thresholds: Thresholds) -> tuple[str, float | None]:
    """(state, since) of one project; see the module docstring for the rules."""
    failed_last = stats.last_status in FAILURE_STATUSES or (
        stats.last_status != statuses.COMPLETED and stats.consecutive_failures > 0)
    if failed_last:
        return "failing", stats.last_success
    if in_flight_since is not None and now - in_flight_since > thresholds.stuck_after:
        return "stuck", in_flight_since
    if stats.last_success is None:
        return ("scheduled" if scheduled(stats, in_flight_since, now, thresholds) else "never"), None
    if now - stats.last_success > thresholds.stale_after:
        return "stale", stats.last_success
    return "healthy", None


def scheduled(stats: ProjectStats, in_flight_since: float | None, now: float, thresholds: Thresholds) -> bool:
    """Never finished a pipeline and still within its first cron run (plus STUCK_AFTER_MINUTES),
    or that run is underway: waiting, not broken. Only for projects with a first_run."""
    if stats.first_run is None or stats.runs > 0 or stats.last_success is not None:
        return False
    return in_flight_since is not None or now <= stats.first_run + thresholds.stuck_after


def natural_key(name: str) -> tuple:
    """Numbers as numbers: service-9 < service-11 < service-109. re.split alternates text and
    digits, so every position compares str with str or int with int."""
    parts = _DIGITS.split(name.casefold())
    return tuple(int(part) if i % 2 else part for i, part in enumerate(parts))


def order_key(row: Row) -> tuple:
    """Trouble first, in STATES order; within a state the longest-running trouble first, then by name
    in natural order.

    A failing project that never succeeded (since None) sorts before one that did.
    """
    return (_RANK[row.state], row.since is not None, row.since or 0.0, -row.consecutive_failures,
            natural_key(row.project), row.project)


def project_link(ui_url: str | None, name: str) -> str | None:
    """config-ui's project page: route `projects/:pname` (config-ui/src/app/router.tsx).

    The whole name is one path segment, so "/" is encoded as %2F like encodeURIComponent does.
    """
    if not ui_url or name == NO_PROJECT:
        return None
    return f"{ui_url}/projects/{quote(name, safe='')}"


def build_rows(state: MonitorState, now: float, thresholds: Thresholds, ui_url: str | None) -> list[Row]:
    """Rows of every project, ordered. Call under the monitor's lock: it reads `state` directly."""
    in_flight: dict[str, float] = {}
    for entry in state.in_flight.values():
        if entry.since < in_flight.get(entry.project, float("inf")):
            in_flight[entry.project] = entry.since
    rows = []
    for name, stats in state.projects.items():
        since_flight = in_flight.get(name)
        status, since = ("retired", None) if name in state.retired else classify(
            stats, since_flight, now, thresholds)
        if name == NO_PROJECT and status not in ("failing", "stuck"):
            continue  # ad-hoc pipelines are no project: shown only when they are in trouble
        next_run = stats.first_run if status == "scheduled" and since_flight is None else None
        rows.append(Row(name, status, since, stats.last_status, stats.last_success, stats.last_failure,
                        stats.last_reason, stats.last_failed_subtask, stats.last_plugin,
                        stats.consecutive_failures, since_flight, project_link(ui_url, name),
                        message=stats.last_message if stats.last_reason else None, next_run=next_run))
    rows.sort(key=order_key)
    return rows


class ConnectionSnapshots(Protocol):
    def snapshot(self) -> list[ConnectionHealth]: ...


class StatusSource(Protocol):
    """What the status model reads of the monitor (the monitor in monitor.py has all of it); read-only here."""

    @property
    def settings(self) -> Settings: ...
    @property
    def clock(self) -> Callable[[], datetime]: ...
    @property
    def lock(self) -> AbstractContextManager[object]: ...  # held while `state` is read
    @property
    def state(self) -> MonitorState: ...
    @property
    def last_success(self) -> float | None: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def pending(self) -> dict[str, int]: ...
    @property
    def connections(self) -> ConnectionSnapshots: ...


def snapshot(source: StatusSource) -> StatusModel:
    """The model of the monitor now: project rows under its lock, header facts beside them."""
    settings = source.settings
    now = source.clock().timestamp()
    thresholds = Thresholds(settings.stuck_after_minutes * 60, settings.stale_after_hours * 3600)
    with source.lock:
        rows = build_rows(source.state, now, thresholds, settings.devlake_ui_url)
        last_success, last_error = source.last_success, source.last_error
    connections = None if settings.connection_check_interval_seconds <= 0 else [
        ConnectionRow(c.plugin, c.connection_id, c.name, c.up, c.checked_at, c.error, c.since)
        for c in source.connections.snapshot()]
    pending = None if last_success is None else source.pending
    up = None if last_success is None and last_error is None else last_error is None
    return StatusModel(
        now=now, devlake_url=without_password(settings.devlake_url), ui_url=settings.devlake_ui_url, up=up,
        last_poll_success=last_success, last_error=last_error,
        pending=None if pending is None else dict(pending), connections=connections,
        thresholds=thresholds, refresh_seconds=settings.status_refresh_seconds, tz=settings.timezone,
        rows=rows)
