"""Running the automation: one cycle with its exit code, and the daily schedule around it."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import schedule
import structlog

from config import Settings
from modules.api import DevLakeAuthError, DevLakeClient, DevLakeError
from modules.context import RunContext
from modules.orchestrator import run_cycle
from utils.blueprints import previous_saturday
from utils.datetime import format_devlake_time
from utils.http import make_session
from utils.statefile import atomic_write_json

LAST_RUN_FILE = "automation_last_run.json"
HEARTBEAT_FILE = "automation_heartbeat"
HEARTBEAT_MAX_AGE_SECONDS = 180
EXIT_OK, EXIT_PARTIAL, EXIT_UNUSABLE = 0, 1, 2

log = structlog.get_logger("automation")


def build_client(settings: Settings, dry_run: bool = False) -> DevLakeClient:
    session = make_session(api_key=settings.api_key, retries=settings.http_retries,
                           backoff_seconds=settings.retry_backoff_seconds,
                           pool_size=max(10, settings.max_concurrency))
    return DevLakeClient(session, settings.api_base_url, timeout=settings.timeout_seconds, dry_run=dry_run)


def run_once(settings: Settings, client: DevLakeClient, now: datetime, *, dry_run: bool = False,
             stop: threading.Event | None = None,
             monotonic: Callable[[], float] = time.monotonic) -> tuple[int, RunContext]:
    """One full cycle; returns (exit code, context). 2 when DevLake is unusable before any work."""
    started = monotonic()
    ctx = RunContext(client, settings, now, dry_run=dry_run, stop=stop or threading.Event())
    log.info("run_started", devlake_url=settings.devlake_url, dry_run=dry_run,
             time_after_target=_target(settings, now))
    try:
        ctx.installed_plugins = client.list_plugins()  # reachability and credentials, before any work
    except DevLakeError as exc:
        hint = " (check DEVLAKE_API_KEY)" if isinstance(exc, DevLakeAuthError) else ""
        log.error("devlake_unusable", error=str(exc) + hint, status=exc.status)
        _finish(settings, ctx, EXIT_UNUSABLE, monotonic() - started, now)
        return EXIT_UNUSABLE, ctx
    run_cycle(ctx)
    code = EXIT_PARTIAL if ctx.summary.failed else EXIT_OK
    _finish(settings, ctx, code, monotonic() - started, now)
    return code, ctx


def _target(settings: Settings, now: datetime) -> str:
    return format_devlake_time(previous_saturday(now, settings.timezone))


def _finish(settings: Settings, ctx: RunContext, code: int, duration: float, now: datetime) -> None:
    summary = ctx.summary
    log.info("run_completed", exit_code=code, duration_seconds=round(duration, 3),
             api_calls=ctx.api.calls, mutating_calls=ctx.api.mutating_calls,
             stopped_early=ctx.stop.is_set(), **summary.as_log_fields())
    for failure in summary.failures[:50]:
        log.warning("run_failure", detail=failure)
    if ctx.dry_run:
        return
    write_last_run(settings.state_dir, code, summary, duration, now)


def write_last_run(state_dir: Path, code: int, summary, duration: float, now: datetime) -> None:
    """Leave the outcome where the monitor exposes it as metrics (devlake_automation_*)."""
    path = Path(state_dir) / LAST_RUN_FILE
    previous = _read_previous(path)
    epoch = now.timestamp()
    outcome = {EXIT_OK: "success", EXIT_PARTIAL: "partial"}.get(code, "failed")
    try:
        atomic_write_json(path, {
            "finished_at": now.isoformat(), "finished_at_epoch": epoch, "outcome": outcome,
            "exit_code": code, "created": summary.created + summary.updated,
            "unchanged": summary.unchanged, "failed": summary.failed,
            "duration_seconds": round(duration, 3),
            "last_success_epoch": epoch if code == EXIT_OK else previous.get("last_success_epoch"),
        })
    except OSError as exc:
        log.error("last_run_not_written", path=str(path), error=str(exc))


def _read_previous(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def touch_heartbeat(state_dir: Path) -> None:
    path = Path(state_dir) / HEARTBEAT_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError as exc:
        log.warning("heartbeat_not_written", path=str(path), error=str(exc))


def heartbeat_fresh(state_dir: Path, now_epoch: float | None = None) -> bool:
    try:
        age = (now_epoch or time.time()) - (Path(state_dir) / HEARTBEAT_FILE).stat().st_mtime
    except OSError:
        return False
    return age <= HEARTBEAT_MAX_AGE_SECONDS


def run_daemon(settings: Settings, job: Callable[[], None], stop: threading.Event,
               scheduler: schedule.Scheduler | None = None) -> None:
    """Run `job` daily at DAILY_RUN_TIME in TIMEZONE until `stop` is set.

    Waits on the event, not sleep(), so SIGTERM ends the wait at once. A
    background thread touches the heartbeat file every 30 s, also while a long
    run is in progress, for the Docker HEALTHCHECK (`--healthcheck`).
    """
    scheduler = scheduler or schedule.Scheduler()
    scheduler.every().day.at(settings.daily_run_time, str(settings.timezone)).do(job)
    touch_heartbeat(settings.state_dir)
    beat = threading.Thread(target=_heartbeat_loop, args=(settings.state_dir, stop), daemon=True,
                            name="heartbeat")
    beat.start()
    log.info("daemon_started", daily_run_time=settings.daily_run_time, timezone=str(settings.timezone),
             next_run=_next_run(scheduler, settings))
    while not stop.is_set():
        if scheduler.idle_seconds is not None and scheduler.idle_seconds <= 0:
            scheduler.run_pending()
            log.info("next_run_scheduled", next_run=_next_run(scheduler, settings))
            continue
        stop.wait(timeout=min(60.0, max(0.0, scheduler.idle_seconds or 60.0)))
    log.info("daemon_stopped")


def _heartbeat_loop(state_dir: Path, stop: threading.Event, every: float = 30.0) -> None:
    while not stop.wait(timeout=every):
        touch_heartbeat(state_dir)


def _next_run(scheduler: schedule.Scheduler, settings: Settings) -> str | None:
    nxt = scheduler.next_run  # naive local time of this machine
    if nxt is None:
        return None
    return nxt.astimezone().astimezone(settings.timezone).isoformat()
