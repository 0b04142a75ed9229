"""Running the automation: one cycle with its exit code, and the daily schedule around it."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from datetime import time as dtime
from pathlib import Path

import schedule
import structlog

from config import Settings
from modules import last_run
from modules.api import DevLakeClient, DevLakeError
from modules.changes import Outcome
from modules.devlake_watch import DevLakeWatch, unreachable_reason
from modules.exit_codes import ExitCode
from modules.operator_hints import unusable_hint
from modules.orchestrator import RunReport, run_cycle
from modules.projects import time_after_target
from modules.reachability import Unreachable, diagnose, quick_probe
from utils.urls import without_password

LAST_RUN_FILE = last_run.FILE
HEARTBEAT_FILE = "automation_heartbeat"
HEARTBEAT_MAX_AGE_SECONDS = 180

log = structlog.get_logger("automation")


def run_once(settings: Settings, client: DevLakeClient, now: datetime, *, dry_run: bool = False,
             stop: threading.Event | None = None, sleep: Callable[[float], None] = time.sleep,
             monotonic: Callable[[], float] = time.monotonic, quick: bool = False) -> tuple[int, RunReport]:
    """One full cycle; returns (exit code, report). 2 when DevLake is unusable before any work.

    `quick` (--once): first ask DevLake once, with at most one retry, so a wrong DEVLAKE_URL is told
    in seconds; the daily run rides out a short outage on its full retries instead.
    """
    started = monotonic()
    log.info("run_started", devlake_url=without_password(settings.devlake_url), dry_run=dry_run,
             time_after_target=time_after_target(settings, now))
    problem = quick_probe(settings) if quick else None
    try:
        if problem is not None:
            raise _Unreachable(problem.message)
        installed = client.list_plugins()  # reachability and credentials, before any work
    except DevLakeError as exc:
        problem = problem or diagnose(exc, settings)
        said = problem.message if problem is not None else unusable_hint(exc, settings)
        # a diagnosed error is said in words; urllib3's repr of it only at DEBUG
        log.debug("devlake_unusable_detail", error=str(exc))
        log.error("devlake_unusable", hint=said, status=exc.status,
                  **({"kind": problem.kind} if problem is not None else {"error": str(exc)}))
        report = RunReport(dry_run=dry_run)
        report.plan.problems.append(said)
        _finish(settings, client, report, ExitCode.UNUSABLE, monotonic() - started, now)
        return ExitCode.UNUSABLE, report
    report = run_cycle(client, settings, now, installed, dry_run=dry_run, stop=stop, sleep=sleep,
                       monotonic=monotonic)
    code = ExitCode.PARTIAL if report.failed else ExitCode.OK
    _finish(settings, client, report, code, monotonic() - started, now)
    return code, report


class _Unreachable(DevLakeError):
    """The quick probe's verdict, taking the pre-flight's error path."""


def _finish(settings: Settings, client: DevLakeClient, report: RunReport, code: int, duration: float,
            started: datetime) -> None:
    log.info("run_completed", exit_code=int(code), duration_seconds=round(duration, 3),
             api_calls=client.calls, mutating_calls=client.mutating_calls,
             stopped_early=report.stopped, dry_run=report.dry_run, **report.as_log_fields())
    for failure in report.failures()[:50]:
        log.warning("run_failure", detail=failure)
    if report.dry_run:
        return
    write_last_run(settings.state_dir, code, report, duration, started)


def write_last_run(state_dir: Path, code: int, report: RunReport, duration: float, started: datetime) -> None:
    """Leave the outcome where the monitor exposes it as metrics (devlake_automation_*).

    The run finished `duration` seconds (measured on the monotonic clock) after `started`.
    """
    path = Path(state_dir) / LAST_RUN_FILE
    items = {o.value: report.count(o) for o in (Outcome.CREATED, Outcome.UPDATED, Outcome.ADOPTED)}
    items.update(unchanged=report.unchanged, failed=report.failed, deferred=report.deferred,
                 **report.lifecycle_counts())
    finished = started + timedelta(seconds=duration)
    try:
        last_run.write(path, last_run.record(int(code), items, started, finished, _read_previous(path)))
    except OSError as exc:
        log.error("last_run_not_written", path=str(path), error=str(exc))


def _read_previous(path: Path) -> last_run.LastRun | None:
    try:
        return last_run.read(path)
    except (OSError, last_run.LastRunUnreadable):
        return None  # only its last success is carried over; a new record replaces it


def touch_heartbeat(state_dir: Path) -> None:
    path = Path(state_dir) / HEARTBEAT_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError as exc:
        log.warning("heartbeat_not_written", path=str(path), error=str(exc))


def health_problem(state_dir: Path, now_epoch: float | None = None) -> str | None:
    """Why `--healthcheck` answers unhealthy, or None: a stale heartbeat, or DevLake unreachable at the
    daemon's last check (modules/devlake_watch.py), so `docker compose ps` shows it at once."""
    if not heartbeat_fresh(state_dir, now_epoch):
        return (f"no heartbeat for {HEARTBEAT_MAX_AGE_SECONDS} s ({Path(state_dir) / HEARTBEAT_FILE}): "
                "the daemon is not running, or stuck")
    return unreachable_reason(state_dir)


def heartbeat_fresh(state_dir: Path, now_epoch: float | None = None) -> bool:
    try:
        age = (now_epoch or time.time()) - (Path(state_dir) / HEARTBEAT_FILE).stat().st_mtime
    except OSError:
        return False
    return age <= HEARTBEAT_MAX_AGE_SECONDS


class RetryingJob:
    """The daily job, and the same-day retries of a run that ended with failed items.

    A failed item costs a day if it waits for tomorrow: after a run with exit
    code 1 (or 2: DevLake unusable) the whole cycle runs again RETRY_FAILED_AFTER_MINUTES later (it is
    idempotent, so only what is still missing is written), at most
    RETRY_FAILED_TIMES times, and never past the next daily run.
    """

    def __init__(self, job: Callable[[], int], settings: Settings, clock: Callable[[], datetime]):
        self.job, self.settings, self.clock = job, settings, clock
        self.retries_done = 0
        self.retry_at: datetime | None = None
        self.last_code: int | None = None

    def daily(self) -> None:
        self.retries_done = 0
        self._run()

    def retry_if_due(self) -> bool:
        if self.retry_at is None or self.clock() < self.retry_at:
            return False
        self.retry_at = None
        self.retries_done += 1
        log.info("failed_items_retry_started", retry=self.retries_done, of=self.settings.retry_failed_times)
        self._run()
        return True

    def seconds_until_retry(self) -> float | None:
        return None if self.retry_at is None else max(0.0, (self.retry_at - self.clock()).total_seconds())

    def _run(self) -> None:
        code = self.last_code = self.job()
        finished = self.clock()
        # Not the scheduler's next_run: while its job runs, the schedule library still holds
        # the run in progress there (it reschedules after the job returns).
        self.retry_at = next_retry_at(code, self.retries_done, finished, self.settings,
                                      next_daily_run(finished, self.settings))
        if self.retry_at is not None:
            log.info("failed_items_retry_scheduled", next_retry=self.retry_at.isoformat(),
                     retry=self.retries_done + 1, of=self.settings.retry_failed_times)


def next_retry_at(code: int, retries_done: int, finished_at: datetime, settings: Settings,
                  next_daily: datetime | None) -> datetime | None:
    """When to try a run's failed items again, or None (all done, retries spent, or tomorrow is sooner)."""
    # DevLake unreachable at run time (2) loses the day as surely as failed items (1).
    if code == ExitCode.OK or retries_done >= settings.retry_failed_times:
        return None
    at = finished_at + timedelta(minutes=settings.retry_failed_after_minutes)
    if next_daily is not None and at >= next_daily:
        return None
    return at


def next_daily_run(after: datetime, settings: Settings) -> datetime:
    """The first DAILY_RUN_TIME in TIMEZONE strictly after `after`."""
    tz = settings.timezone
    at = dtime.fromisoformat(settings.daily_run_time)
    day = after.astimezone(tz).date()
    today = tz.localize(datetime.combine(day, at))
    return today if today > after else tz.localize(datetime.combine(day + timedelta(days=1), at))


def run_daemon(settings: Settings, job: Callable[[], int], stop: threading.Event,
               scheduler: schedule.Scheduler | None = None,
               clock: Callable[[], datetime] | None = None,
               wait: Callable[[float], object] | None = None,
               check: Callable[[], Unreachable | None] | None = None) -> None:
    """Run `job` daily at DAILY_RUN_TIME in TIMEZONE until `stop` is set; retry failed items the same day.

    Waits on the event (`wait`, injectable with `clock` and `scheduler` for tests), not sleep(),
    so SIGTERM ends the wait at once. A
    background thread touches the heartbeat file every 30 s, also while a long
    run is in progress, for the Docker HEALTHCHECK (`--healthcheck`). `check` (the quick probe) is asked
    at start, after a run that found DevLake unusable, and every 5 minutes while it fails (DevLakeWatch).
    """
    scheduler = scheduler or schedule.Scheduler()
    now = clock or (lambda: datetime.now(settings.timezone))
    runs = RetryingJob(job, settings, now)
    wait = wait or stop.wait
    scheduler.every().day.at(settings.daily_run_time, str(settings.timezone)).do(runs.daily)
    touch_heartbeat(settings.state_dir)
    beat = threading.Thread(target=_heartbeat_loop, args=(settings.state_dir, stop), daemon=True,
                            name="heartbeat")
    beat.start()
    watch = DevLakeWatch(check, settings.state_dir, now) if check is not None else None
    reachable = watch.run_check() if watch is not None else None
    log.info("daemon_started", daily_run_time=settings.daily_run_time, timezone=str(settings.timezone),
             next_run=_next_run(scheduler, settings), devlake_reachable=reachable)
    while not stop.is_set():
        if runs.retry_if_due():
            _check_after_run(watch, runs)
            continue
        if watch is not None and watch.check_if_due():
            continue
        if scheduler.idle_seconds is not None and scheduler.idle_seconds <= 0:
            scheduler.run_pending()
            _check_after_run(watch, runs)
            log.info("next_run_scheduled", next_run=_next_run(scheduler, settings))
            continue
        until_retry = runs.seconds_until_retry()
        until_check = watch.seconds_until_check() if watch is not None else None
        waits = [60.0, max(0.0, scheduler.idle_seconds or 60.0)]
        waits += [s for s in (until_retry, until_check) if s is not None]
        wait(min(waits))
    log.info("daemon_stopped")


def _check_after_run(watch: DevLakeWatch | None, runs: RetryingJob) -> None:
    """A run that found DevLake unusable starts the checks; one after a failed check ends them if it passed."""
    if watch is not None and (runs.last_code == ExitCode.UNUSABLE or watch.next_check is not None):
        watch.run_check()


def _heartbeat_loop(state_dir: Path, stop: threading.Event, every: float = 30.0) -> None:
    while not stop.wait(timeout=every):
        touch_heartbeat(state_dir)


def _next_run_time(scheduler: schedule.Scheduler, settings: Settings) -> datetime | None:
    nxt = scheduler.next_run  # naive local time of this machine
    return None if nxt is None else nxt.astimezone().astimezone(settings.timezone)


def _next_run(scheduler: schedule.Scheduler, settings: Settings) -> str | None:
    nxt = _next_run_time(scheduler, settings)
    return None if nxt is None else nxt.isoformat()
