"""Turning what one poll saw into counted events: pure logic, no HTTP, no clock.

The exactly-once rules (README, "How failures are counted"):

* A finish is identified by (pipeline id, finishedAt). A rerun keeps the id and
  gets a new finishedAt, so a rerun that fails again is a new failure.
* A finish is *trusted* as new when its pipeline was never seen before (id above
  the watermark) or was seen in flight on an earlier poll. Everything else
  (the periodic re-scan, a project's lastPipeline) only self-heals: a failure
  counts if its key is not among the counted events, any other finish counts if
  it is newer than the project's newest counted finish.
* Nothing that finished before the floor is counted by the self-healing paths;
  the floor starts at "now - MONITOR_LOOKBACK_HOURS" on the first start and then
  follows the retention cutoff, below which counted events are forgotten.
* A pipeline notification (`apply_push`) counts only failures, and only like a
  self-healing sighting: by key. It never moves the watermark or the in-flight
  set, so the poller still walks every id it has not seen, and when it sees the
  same failure (trusted or not) the key is already among the counted events.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo

from modules import statuses
from modules.monitoring.state import (
    FAILURE_STATUSES,
    FINAL_STATUSES,
    IN_FLIGHT_STATUSES,
    NO_PROJECT,
    FailureEvent,
    InFlight,
    MonitorState,
    ProjectStats,
    Unexplained,
    event_key,
)
from utils.datetime import parse_devlake_time

TIME_FAILED_FORMAT = "%Y-%m-%d %H:%M:%S"


class MalformedAnswer(Exception):
    """DevLake answered 2xx with a pipeline or project that is not the documented shape."""


@dataclass(frozen=True)
class Observation:
    """One pipeline as one answer showed it."""

    pipeline_id: int
    blueprint_id: int
    status: str
    finished_at: datetime | None = None
    began_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    interrupted: bool = False  # failed by a DevLake restart: finished_at is its updatedAt

    @property
    def finish_key(self) -> str | None:
        if self.finished_at is None:
            return None
        return event_key(self.pipeline_id, _utc_iso(self.finished_at))


def parse_pipeline(raw: object) -> Observation:
    """A pipeline object (`docs/devlake-api.md` §9.2) as an Observation, or MalformedAnswer."""
    if not isinstance(raw, dict):
        raise MalformedAnswer(f"pipeline is not an object: {str(raw)[:80]}")
    pid, bid, status = raw.get("id"), raw.get("blueprintId") or 0, raw.get("status")
    if not _is_int(pid) or not _is_int(bid) or not isinstance(status, str):
        raise MalformedAnswer(f"pipeline has no integer id/blueprintId or string status: {str(raw)[:120]}")
    try:
        times = {k: parse_devlake_time(raw.get(k)) for k in ("finishedAt", "beganAt", "createdAt", "updatedAt")}
    except ValueError as exc:
        raise MalformedAnswer(f"pipeline {pid} has a bad timestamp: {exc}") from exc
    assert isinstance(pid, int) and isinstance(bid, int)  # checked above; tells the type checker
    finished, interrupted = times["finishedAt"], False
    if status == statuses.FAILED and finished is None and times["updatedAt"] is not None:
        # A DevLake start with RESUME_PIPELINES=false fails the pipelines that were
        # running and sets only `status` (backend/server/services/pipeline.go
        # markInterruptedPipelineAs; `docs/devlake-api.md` §9.3): updatedAt is when it failed.
        finished, interrupted = times["updatedAt"], True
    return Observation(pid, bid, status, finished, times["beganAt"],
                       times["createdAt"], times["updatedAt"], interrupted)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _utc_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


@dataclass
class Batch:
    """Everything one poll fetched, in fetch order (later observations are fresher)."""

    observations: list[Observation] = field(default_factory=list)
    projects: list[str] | None = None  # every project name, when the list was refreshed
    retired: set[str] = field(default_factory=set)  # of those, the ones the automation retired
    first_runs: dict[str, float | None] = field(default_factory=dict)  # with `projects`: first_run.py
    missing: set[int] = field(default_factory=set)  # in-flight ids that now answer 404
    pending: dict[str, int] = field(default_factory=dict)  # DevLake's in-flight pipelines by status


@dataclass
class Summary:
    """What applying a batch changed, for the poll_completed log line."""

    failures: list[FailureEvent] = field(default_factory=list)
    runs: int = 0
    projects_added: list[str] = field(default_factory=list)
    projects_removed: list[str] = field(default_factory=list)
    pruned: int = 0
    durations: list[tuple[str, float]] = field(default_factory=list)  # (final status, finishedAt - beganAt)


@dataclass
class _Candidate:
    obs: Observation
    project: str
    trusted: bool


def apply_batch(state: MonitorState, batch: Batch, *, project_of: Callable[[Observation], str | None],
                now: float, lookback_seconds: float, retention_seconds: float, tz: tzinfo) -> Summary:
    """Apply one poll's observations to `state` and return what changed."""
    summary = Summary()
    if state.floor is None:  # first start: only the lookback window is news
        state.floor = now - lookback_seconds
    if batch.projects is not None:
        _sync_projects(state, batch.projects, summary)
        state.retired = batch.retired & set(batch.projects)
        _note_first_runs(state, batch.first_runs)
    watermark, tracked = state.watermark, dict(state.in_flight)
    candidates: dict[str, _Candidate] = {}
    for obs in batch.observations:
        obs = _interrupted_rerun(obs, tracked)
        project = project_of(obs)
        if project is None:  # blueprint deleted together with its project
            continue
        stats = _ensure_project(state, project, summary)
        _note_status(state, stats, obs)
        if obs.status in FINAL_STATUSES:
            state.dirty |= state.in_flight.pop(obs.pipeline_id, None) is not None
            if obs.finished_at is not None:  # a queued pipeline cancelled before it ran has none
                _note_finish(candidates, obs, project, _trusted(obs, watermark, tracked))
        elif obs.status in IN_FLIGHT_STATUSES:
            _track(state, obs, project, now)
    for pid in batch.missing:
        state.dirty |= state.in_flight.pop(pid, None) is not None
    _raise_watermark(state, batch.observations)
    for cand in sorted(candidates.values(), key=lambda c: (c.obs.finished_at, c.obs.pipeline_id)):
        _count(state, cand, tz, summary)
    summary.pruned = state.prune(max(state.floor, now - retention_seconds))
    return summary


def apply_push(state: MonitorState, obs: Observation, project: str, *, tz: tzinfo) -> Summary | None:
    """Apply one pipeline the notification worker fetched (GET /pipelines/{id}).

    The observation comes from the same API as the poller's, so its key is the
    poller's key. Only a failure is counted here (runs, failures, consecutive
    failures, its series): the counted events are what makes both paths
    idempotent, and they hold failures only. Other finishes are left to the
    poller, which counts them within a poll interval. None (nothing applied)
    before the first poll, which reads the lookback window back by itself.
    """
    if state.watermark is None:
        return None
    summary = Summary()
    stats = _ensure_project(state, project, summary)
    _note_status(state, stats, obs)
    if obs.status in FAILURE_STATUSES and obs.finished_at is not None:
        # Untrusted: counted unless its key is known or it finished before the floor.
        _count(state, _Candidate(obs, project, trusted=False), tz, summary)
    return summary


ABSENT_SWEEPS = 2


def _sync_projects(state: MonitorState, names: Iterable[str], summary: Summary) -> None:
    """Known projects follow DevLake's list: new ones start at 0, deleted ones disappear.

    DevLake pages /projects by created_at DESC with no tie-break
    (backend/server/services/project.go), so while projects are created or
    deleted one sweep can miss a project that exists. Removing it would reset its
    counters and break increase(): a project goes only after ABSENT_SWEEPS sweeps
    in a row without it.
    """
    listed = set(names) | {NO_PROJECT}
    for name in set(state.absent) & listed:
        del state.absent[name]
    for missing in sorted(set(state.projects) - listed):
        state.absent[missing] = state.absent.get(missing, 0) + 1
        if state.absent[missing] >= ABSENT_SWEEPS:
            del state.projects[missing], state.absent[missing]
            summary.projects_removed.append(missing)
    wanted = set(state.projects) | listed
    for pid in [p for p, f in state.in_flight.items() if f.project not in wanted]:
        del state.in_flight[pid]
    for name in sorted(wanted - set(state.projects)):
        state.projects[name] = ProjectStats()
        summary.projects_added.append(name)
    state.dirty |= bool(summary.projects_removed or summary.projects_added)


def _note_first_runs(state: MonitorState, first_runs: dict[str, float | None]) -> None:
    for name, due in first_runs.items():
        stats = state.projects.get(name)
        if stats is not None and stats.first_run != due:
            stats.first_run = due
            state.dirty = True


def _ensure_project(state: MonitorState, project: str, summary: Summary) -> ProjectStats:
    stats = state.projects.get(project)
    if stats is None:  # created in DevLake since the last project-list refresh
        stats = state.projects[project] = ProjectStats()
        summary.projects_added.append(project)
        state.dirty = True
    return stats


def _note_status(state: MonitorState, stats: ProjectStats, obs: Observation) -> None:
    """Last status follows the project's newest pipeline; last-failure/success times only move forward."""
    if obs.pipeline_id >= stats.last_pipeline_id and (
            stats.last_status != obs.status or stats.last_pipeline_id != obs.pipeline_id):
        stats.last_status, stats.last_pipeline_id = obs.status, obs.pipeline_id
        state.dirty = True
    if obs.finished_at is None or obs.status not in FINAL_STATUSES:
        return
    fin = obs.finished_at.timestamp()
    attr = ("last_failure" if obs.status in FAILURE_STATUSES else
            "last_success" if obs.status == statuses.COMPLETED else None)
    if attr and (getattr(stats, attr) is None or fin > getattr(stats, attr)):
        setattr(stats, attr, fin)
        state.dirty = True


def _interrupted_rerun(obs: Observation, tracked: dict[int, InFlight]) -> Observation:
    """A rerun we saw queued or running that is TASK_FAILED with its *old* finishedAt.

    A finished rerun always gets a new finishedAt; only a DevLake restart
    (markInterruptedPipelineAs, `docs/devlake-api.md` §9.2) leaves the old one. Its
    failure time is then its updatedAt, as for a first run that was interrupted.
    """
    entry = tracked.get(obs.pipeline_id)
    if (obs.status != statuses.FAILED or entry is None or entry.prev_finish is None
            or entry.prev_finish != obs.finish_key or obs.updated_at is None or obs.finished_at is None
            or obs.updated_at <= obs.finished_at):
        return obs
    return replace(obs, finished_at=obs.updated_at, interrupted=True)


def _trusted(obs: Observation, watermark: int | None, tracked: dict[int, InFlight]) -> bool:
    if watermark is None:
        return False  # first start: everything already happened; the floor decides
    if obs.pipeline_id > watermark:
        return True
    entry = tracked.get(obs.pipeline_id)
    return entry is not None and entry.prev_finish != obs.finish_key


def _note_finish(candidates: dict, obs: Observation, project: str, trusted: bool) -> None:
    key = obs.finish_key
    previous = candidates.get(key)
    candidates[key] = _Candidate(obs, project, trusted or (previous is not None and previous.trusted))


def _track(state: MonitorState, obs: Observation, project: str, now: float) -> None:
    entry = state.in_flight.get(obs.pipeline_id)
    since: float
    if obs.finished_at is None:
        start = obs.began_at or obs.created_at
        since = start.timestamp() if start else (entry.since if entry else now)
    elif entry is not None:
        since = entry.since  # a rerun keeps its old beganAt: keep when we first saw it re-queued
    else:
        since = obs.updated_at.timestamp() if obs.updated_at else now
    prev = entry.prev_finish if entry else obs.finish_key
    new = InFlight(project=project, since=since, status=obs.status, prev_finish=prev)
    if new != entry:
        state.in_flight[obs.pipeline_id] = new
        state.dirty = True


def _raise_watermark(state: MonitorState, observations: list[Observation]) -> None:
    top = max((o.pipeline_id for o in observations), default=None)
    if top is not None and (state.watermark is None or top > state.watermark):
        state.watermark = top
        state.dirty = True
    elif state.watermark is None:
        state.watermark = 0  # DevLake has no pipelines yet: every later one is news
        state.dirty = True


def _count(state: MonitorState, cand: _Candidate, tz: tzinfo, summary: Summary) -> None:
    obs, stats = cand.obs, state.projects[cand.project]
    # candidates are finished pipelines only (_note_finish), so both are set
    assert obs.finished_at is not None and obs.finish_key is not None
    fin, key, floor = obs.finished_at.timestamp(), obs.finish_key, state.floor or 0.0
    failed = obs.status in FAILURE_STATUSES
    if key in state.events:
        return
    if not cand.trusted:
        if fin < floor:
            return
        if not failed and stats.last_finish is not None and fin <= stats.last_finish:
            return
    newest = stats.last_finish is None or fin >= stats.last_finish
    stats.runs += 1
    if obs.began_at is not None and not obs.interrupted:
        summary.durations.append((obs.status, max(0.0, fin - obs.began_at.timestamp())))
    if failed:
        stats.failures += 1
        event = FailureEvent(obs.pipeline_id, _utc_iso(obs.finished_at), fin, cand.project,
                             obs.finished_at.astimezone(tz).strftime(TIME_FAILED_FORMAT))
        if fin >= floor:  # older ones would be pruned at once; the floor guards them
            state.events[key] = event
        # Saved with the count: its tasks are read once, after this batch (explain.py).
        state.unexplained[key] = Unexplained(obs.pipeline_id, cand.project, fin, obs.interrupted)
        summary.failures.append(event)
    if newest:
        stats.last_finish = fin
        if failed:
            stats.consecutive_failures += 1
        elif obs.status == statuses.COMPLETED:
            stats.consecutive_failures = 0
    elif failed or obs.status == statuses.COMPLETED:
        # Seen after a newer finish (a success the poller finds after a notified
        # failure, or finishes out of id order): recount instead of guessing.
        stats.consecutive_failures = _failures_since(state, cand.project, stats.last_success)
    summary.runs += 1
    state.dirty = True


def _failures_since(state: MonitorState, project: str, since: float | None) -> int:
    """Retained failures of `project` after `since` (a streak older than the retention is cut)."""
    return sum(1 for e in state.events.values()
               if e.project == project and (since is None or e.finished_epoch > since))
