"""The blueprint monitor: `poll_once()` reads DevLake and updates in-memory state; scrapes only read it.

Wiring: Fetcher (HTTP reads) -> apply_batch (exactly-once rules) -> MonitorState
(saved atomically under the same lock that scrapes take) -> StateCollector and
SelfMetrics on the registry passed in.
"""
from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Protocol

import structlog
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.exposition import generate_latest

from config import Settings
from modules.api import DevLakeAuthError, DevLakeClient, DevLakeError, DevLakeUnavailable
from modules.last_run import LastRun
from modules.monitoring import explain
from modules.monitoring.backlog import Backlog
from modules.monitoring.connections import ConnectionChecker
from modules.monitoring.fetch import Fetcher
from modules.monitoring.ledger import MalformedAnswer, Observation, Summary, apply_batch, apply_push
from modules.monitoring.metrics import AUTOMATION_FILE, SelfMetrics, StateCollector, read_automation
from modules.monitoring.state import STATE_FILE, FailureEvent, MonitorState
from modules.monitoring.status_model import StatusModel, snapshot
from modules.operator_hints import unusable_hint
from modules.reachability import diagnose

REFRESH_SECONDS = 3600.0  # project list + failure re-scan: hourly
HEALTH_STALE_MIN_SECONDS = 120.0
# /livez: a poll bounded by DEVLAKE_TIMEOUT_SECONDS and retries ends within minutes even when
# DevLake is down or hangs; no poll starting or ending for an interval plus an hour means the
# poll loop itself is stuck, and only then does restarting the monitor help.
LIVENESS_BUDGET_SECONDS = 3600.0
# threading.Event.wait overflows past ~2**31 s on some platforms: never wait longer than a day at once.
MAX_WAIT_SECONDS = 86400.0

log = structlog.get_logger("monitor")


class Monitor:
    """Polls DevLake, keeps the counted events, and serves the exposition from memory.

    Its consumers see it through the small interfaces they declare: `StateSource`
    (metrics.py, the collector), `StatusSource` (status_model.py), `Served` (http.py, which
    gets a `StatusModel` snapshot for the status page) and `PushTarget` (notifications.py).
    Every change to state or to a metric the exposition shows happens inside `_mutating()`,
    which invalidates the cached exposition as it ends: no caller has to remember to.
    """

    def __init__(self, client: DevLakeClient, settings: Settings, registry: CollectorRegistry, *,
                 clock: Callable[[], datetime], refresh_seconds: float = REFRESH_SECONDS,
                 connection_client: DevLakeClient | None = None) -> None:
        self.client, self.settings, self.registry, self.clock = client, settings, registry, clock
        self.refresh_seconds = refresh_seconds
        self.state_path = Path(settings.state_dir) / STATE_FILE
        self.automation_path = Path(settings.state_dir) / AUTOMATION_FILE
        self.lock = threading.RLock()
        self.state = MonitorState.load(self.state_path)
        self.automation: LastRun | None = None
        self.fetcher = Fetcher(client)
        self.metrics = SelfMetrics(registry)
        registry.register(StateCollector(self, due_after=settings.stuck_after_minutes * 60))
        self.backlog = Backlog(registry)
        # Its own client (the daemon passes one) so its calls never count as the poll's.
        self.connections = ConnectionChecker(
            connection_client or client, settings.plugins, settings.connection_check_interval_seconds,
            clock=lambda: self.clock().timestamp(), on_change=self._bump, registry=registry,
            on_crash=self.count_internal_error)
        # One setting drives the stale-data alert (prometheus/alerts.yml DevLakeProjectNoRecentSuccess).
        Gauge("devlake_monitor_stale_after_seconds", "STALE_AFTER_HOURS in seconds: a project whose last "
              "success is older is stale", registry=registry).set(settings.stale_after_hours * 3600)
        if settings.devlake_ui_url:  # the dashboard's "Failing now" links a project to config-ui only then
            # config.py refuses a password in it: it is a link for every viewer anyway.
            Gauge("devlake_monitor_config_ui_info", "1, labelled with DEVLAKE_UI_URL", ["url"],
                  registry=registry).labels(url=settings.devlake_ui_url).set(1)
        self._explain_lock = threading.Lock()  # one thread reads tasks at a time: never the same pipeline twice
        self.last_success: float | None = None
        self.last_progress = clock().timestamp()  # a poll last started or ended (or the monitor started)
        self.last_error: str | None = None
        self.last_hint: str | None = None  # what the operator should do about an auth failure
        self._last_refresh: float | None = None
        self._generation = 0
        self._cache: tuple[int, bytes, bytes | None] = (-1, b"", None)
        self._generation_lock = threading.Lock()  # not self.lock: bumping never waits for a scrape
        self.poll_started: float | None = None  # while a poll runs: when it started
        self._overrun_shown = False
        # The daemon's long-lived threads by job (serve, blueprint_monitor.py): /livez fails if one ends.
        self.workers: dict[str, threading.Thread] = {}

    def poll_once(self) -> bool:
        """One poll: fetch, apply, save. Returns False (and counts the reason) if DevLake failed us."""
        started, now = time.perf_counter(), self.clock().timestamp()
        self.last_progress = self.poll_started = now
        try:
            with self._mutating():
                return self._poll_and_record(started, now)
        finally:
            self.poll_started = None
            self._show_overrun()

    def _poll_and_record(self, started: float, now: float) -> bool:
        calls_before = self.client.calls
        # retry waits (Retry-After, backoff) end before the next poll is due
        self.client.limit_retry_waits(self.settings.poll_interval_seconds)
        self.metrics.polls.inc()
        self.automation = read_automation(self.automation_path)
        first_poll = self.state.watermark is None
        try:
            summary = self._poll(now)
            self.explain(self.client)
        except Exception as exc:  # loop boundary: every failure is logged, counted, survived
            self._failed(exc, now, time.perf_counter() - started, self.client.calls - calls_before)
            return False
        duration, calls = time.perf_counter() - started, self.client.calls - calls_before
        self.metrics.up.set(1)
        self.metrics.last_success.set(now)
        self.metrics.duration.observe(duration)
        self.metrics.calls.set(calls)
        self.last_success, self.last_error, self.last_hint = now, None, None
        # The first poll's failures are history read back (MONITOR_LOOKBACK_HOURS), not detections.
        self._counted(summary.failures, "poll", self.clock().timestamp(), observe_latency=not first_poll)
        self._log_completed(summary, duration, calls)
        self.last_progress = self.clock().timestamp()
        return True

    def count_pushed(self, sightings: list[tuple[Observation, str | None]]) -> list[FailureEvent] | None:
        """Apply pipelines the notification worker fetched; returns the failures newly counted.

        Applied and saved under the lock scrapes take, like a poll, so a scrape never
        sees a count that is not on disk. A pipeline whose project is gone is skipped.
        None before the first poll: that poll counts them.
        """
        counted: list[FailureEvent] = []
        with self._mutating():
            with self.lock:
                if self.state.watermark is None:
                    return None
                durations: list[tuple[str, float]] = []
                for obs, project in sightings:
                    if project is not None:
                        pushed = apply_push(self.state, obs, project, tz=self.settings.timezone)
                        counted += pushed.failures if pushed else []
                        durations += pushed.durations if pushed else []
                self.save()
            self.backlog.record_durations(durations)
            self._counted(counted, "push", self.clock().timestamp())
        return counted

    def read_pipeline(self, client: DevLakeClient, pipeline_id: int) -> tuple[Observation, str | None]:
        """One pipeline read with `client` as the poller reads it, and its project (fetch.py)."""
        return self.fetcher.read_pipeline(client, pipeline_id)

    def count_notification(self, outcome: str) -> None:
        """One notification received, by outcome (metrics.NOTIFICATION_OUTCOMES)."""
        with self._mutating():
            self.metrics.notifications.labels(outcome=outcome).inc()

    def count_processed(self, result: str) -> None:
        """One accepted notification processed, by result (metrics.NOTIFICATION_RESULTS)."""
        with self._mutating():
            self.metrics.notifications_processed.labels(result=result).inc()

    def count_internal_error(self) -> None:
        """A bug outside a poll (the poll loop, the connection thread): an internal poll error."""
        with self._mutating():
            self.metrics.errors.labels(reason="internal").inc()

    @property
    def pending(self) -> dict[str, int]:
        """DevLake's queued and running pipelines by status, as of the last successful poll."""
        return self.backlog.pending

    @property
    def oldest_pending_age(self) -> float | None:
        return self.backlog.oldest_pending_age

    def explain(self, client: DevLakeClient) -> int:
        """Read the tasks of counted failures not explained yet (explain.py); returns how many were.

        Reads happen outside the scrape lock; the answers are applied and saved under it.
        """
        with self._explain_lock:
            with self.lock:
                todo = explain.pending(self.state)
            if not todo:
                return 0
            answers = explain.read(client, todo)
            with self._mutating(), self.lock:
                done = explain.apply_answers(self.state, answers)
                self.save()
        explain.log_failures(done)
        return len(done)

    @contextmanager
    def _mutating(self) -> Iterator[None]:
        """Wraps every change to state or to a metric; leaving it invalidates the cached exposition.

        The poller, the notification worker, the connection thread and the HTTP threads
        (notification counters) all change things, so the bump is locked. Bumping after the
        change (also when it raised halfway) and reading the generation before rendering means
        a cached body is never older than its tag. Nesting is harmless: one more render.
        """
        try:
            yield
        finally:
            self._bump()

    def _bump(self) -> None:
        with self._generation_lock:
            self._generation += 1

    def _counted(self, events: list[FailureEvent], path: str, now: float, observe_latency: bool = True) -> None:
        for event in events:
            if observe_latency:  # clocks may disagree a little: never a negative latency
                self.metrics.detection_latency.labels(path=path).observe(max(0.0, now - event.finished_epoch))
            log.info("failure_counted", project=event.project, pipeline_id=event.pipeline_id, path=path,
                     finished_at=event.finished_at, time_failed=event.time_failed)

    def _poll(self, now: float) -> Summary:
        refresh = self._last_refresh is None or now - self._last_refresh >= self.refresh_seconds
        with self.lock:
            watermark, tracked, floor = self.state.watermark, set(self.state.in_flight), self.state.floor
        if floor is None:
            floor = now - self.settings.monitor_lookback_hours * 3600
        batch = self.fetcher.fetch(watermark=watermark, tracked=tracked, floor=floor, refresh=refresh)
        with self.lock:
            summary = apply_batch(self.state, batch, project_of=self.fetcher.project_of, now=now,
                                  lookback_seconds=self.settings.monitor_lookback_hours * 3600,
                                  retention_seconds=self.settings.failure_series_retention_days * 86400,
                                  tz=self.settings.timezone)
            self.save()
            self.backlog.update(batch.pending, self.state.in_flight, now)
        self.backlog.record_durations(summary.durations)
        if refresh:
            self._last_refresh = now
        return summary

    def save(self) -> None:
        """Write the state file if anything changed; a failed write is logged and retried next poll."""
        with self.lock:
            if not self.state.dirty:
                return
            try:
                self.state.save(self.state_path)
            except OSError as exc:
                with self._mutating():
                    self.metrics.state_write_errors.inc()
                log.error("state_write_failed", path=str(self.state_path), error=str(exc))

    def _failed(self, exc: Exception, now: float, duration: float, calls: int) -> None:
        reason = error_reason(exc)
        self.metrics.up.set(0)
        self.metrics.errors.labels(reason=reason).inc()
        self.metrics.duration.observe(duration)
        self.metrics.calls.set(calls)
        self.last_error = reason
        self.last_hint = unusable_hint(exc, self.settings) if isinstance(exc, DevLakeAuthError) else None
        self.last_progress = self.clock().timestamp()
        if reason == "internal":
            log.exception("poll_failed", reason=reason, error=str(exc), calls=calls)
        else:
            # a wrong or unreachable DEVLAKE_URL is said in words (modules/reachability.py), not as a repr
            problem = diagnose(exc, self.settings) if isinstance(exc, DevLakeError) else None
            said = self.last_hint or (problem.message if problem is not None else None)
            log.error("poll_failed", reason=reason, error=problem.kind if problem is not None else str(exc),
                      status=getattr(exc, "status", None), calls=calls, duration_seconds=round(duration, 3),
                      **({"hint": said} if said else {}))

    def _log_completed(self, summary: Summary, duration: float, calls: int) -> None:
        for name in summary.projects_removed:
            log.info("project_removed", project=name)
        log.info("poll_completed", duration_seconds=round(duration, 3), calls=calls,
                 new_failures=len(summary.failures), new_runs=summary.runs,
                 projects_added=len(summary.projects_added), projects_removed=len(summary.projects_removed),
                 failure_series_pruned=summary.pruned, failure_events=len(self.state.events),
                 in_flight=len(self.state.in_flight), watermark=self.state.watermark)

    def exposition(self, compressed: bool = False) -> bytes:
        """The Prometheus text exposition (gzipped if asked), rendered at most once per poll and cached.

        Metrics change only when a poll ends or a notification arrives (`_mutating()`), so
        scrapes in between reuse the bytes.
        """
        self._show_overrun()
        generation = self._generation
        cached_generation, body, gz = self._cache
        if cached_generation != generation:
            body, gz = generate_latest(self.registry), None
        if compressed and gz is None:
            gz = gzip.compress(body, compresslevel=1)
        self._cache = (generation, body, gz)
        return gz if compressed and gz is not None else body

    def status(self) -> StatusModel:
        """The status page's model now (status_model.py), read under the lock scrapes take."""
        return snapshot(self)

    def _show_overrun(self) -> None:
        """devlake_monitor_poll_overrun follows the running poll; a change invalidates the cached exposition."""
        started = self.poll_started
        overrun = started is not None and self.clock().timestamp() - started > self.settings.poll_interval_seconds
        if overrun != self._overrun_shown:
            with self._mutating():
                self._overrun_shown = overrun
                self.metrics.overrun.set(1 if overrun else 0)

    def watch(self, job: str, thread: threading.Thread | None) -> None:
        """/livez fails once `thread` (started, long-lived) ends; None: that job does not run."""
        if thread is not None:
            self.workers[job] = thread

    def liveness(self) -> tuple[int, dict]:
        """(HTTP status, body) for /livez: 200 while the poll loop makes progress, DevLake up or not.

        Kubernetes restarts a pod whose liveness fails; restarting the monitor does not
        bring DevLake back, so unlike /healthz this never looks at poll results.
        """
        for job, thread in self.workers.items():
            if not thread.is_alive():
                return 503, {"status": "dead", "reason": f"the {job} thread has ended"}
        age = self.clock().timestamp() - self.last_progress
        if age > self.settings.poll_interval_seconds + LIVENESS_BUDGET_SECONDS:
            return 503, {"status": "wedged", "reason": f"no poll started or ended for {age:.0f}s"}
        return 200, {"status": "alive", "last_progress_age_seconds": round(age, 1)}

    def health(self) -> tuple[int, dict]:
        """(HTTP status, body) for /healthz: 200 while the last successful poll is recent."""
        now = self.clock().timestamp()
        stale_after = max(2 * self.settings.poll_interval_seconds + 60, HEALTH_STALE_MIN_SECONDS)
        if self.last_success is None:
            return 503, {"status": "unhealthy", "reason": "no successful poll yet", "last_error": self.last_error}
        age = now - self.last_success
        if age > stale_after:
            return 503, {"status": "unhealthy", "reason": f"last successful poll {age:.0f}s ago",
                         "last_error": self.last_error}
        return 200, {"status": "ok", "last_success_age_seconds": round(age, 1), "last_error": self.last_error}


def error_reason(exc: Exception) -> str:
    """The `reason` label of devlake_monitor_poll_errors_total for an exception."""
    if isinstance(exc, DevLakeUnavailable):
        return "unreachable"  # no answer, or 502/503/504 after retries
    if isinstance(exc, DevLakeAuthError):
        return "auth"
    if isinstance(exc, MalformedAnswer) or (
            isinstance(exc, DevLakeError) and (exc.status is None or 200 <= exc.status < 300)):
        return "malformed"  # a 2xx answer that is not JSON or not the documented shape
    if isinstance(exc, DevLakeError):
        return "http_error"
    return "internal"


def run_forever(monitor: Monitor, stop: threading.Event, interval: float,
                monotonic: Callable[[], float] = time.monotonic) -> None:
    """Poll every `interval` seconds (start to start) until `stop` is set.

    Thread boundary: poll_once survives DevLake's failures itself; anything that still escapes
    (a bug, a rendering error) is logged, counted as an internal poll error, and the loop goes on."""
    while not stop.is_set():
        started = monotonic()
        try:
            monitor.poll_once()
            monitor.exposition()  # render now so scrapes never wait for it
        except Exception:  # noqa: BLE001 - logged and counted; a dead poller would serve stale data
            log.exception("poll_loop_error")
            monitor.count_internal_error()
        stop.wait(max(0.0, min(interval - (monotonic() - started), MAX_WAIT_SECONDS)))


class Stoppable(Protocol):
    """The HTTP server as `serve` sees it (http.MetricsServer)."""

    def stop(self) -> None: ...


def serve(monitor: Monitor, server: Stoppable, stop: threading.Event, interval: float,
          grace_seconds: float = 8.0) -> int:
    """Daemon mode: poll in a worker thread; on `stop`, let the poll finish, save, shut the server down."""
    worker = threading.Thread(target=run_forever, args=(monitor, stop, interval), name="poller", daemon=True)
    worker.start()
    monitor.watch("poll", worker)
    monitor.watch("connection-check", monitor.connections.start(stop).thread)
    while not stop.wait(1.0):
        pass
    log.info("monitor_stopping")
    # A poll applies its results atomically at the end, so abandoning one that is
    # stuck on a slow DevLake after the grace time loses nothing: the next start asks again.
    worker.join(grace_seconds)
    monitor.save()
    server.stop()
    log.info("monitor_stopped", poll_finished=not worker.is_alive())
    return 0
