#!/usr/bin/env python3
"""DevLake automation daemon: keeps every upstream repository tracked in DevLake.

Each run discovers plugins and connections, adds new remote scopes (with the
connection's scope config), creates one project and blueprint per scope, sets
every managed blueprint's timeAfter to the previous Saturday, triggers new
blueprints and reruns failed pipelines.

Environment (all problems are reported together; exit 2; README.md, Configuration):
  DEVLAKE_URL                  required: http://devlake:8080 or the config-ui http://devlake-ui:4000/api
  DEVLAKE_API_KEY              optional; sent as a Bearer token under /rest
  TIMEZONE, DAILY_RUN_TIME     the daily run's time and zone; also timeAfter's (Asia/Ho_Chi_Minh, 18:00)
  PLUGINS                      plugins to manage (all eight: github,gitlab,bitbucket,...)
  PROJECT_NAME_TEMPLATE        a new project's name ({plugin}/{name})
  PROJECT_METRICS              metrics enabled on new projects, or none (dora)
  SCOPE_CONFIG_ENTITIES        entities of the managed scope configs (config-ui's per plugin)
  DEPLOYMENT_PATTERN, PRODUCTION_PATTERN  their regexes, where the plugin has them
  COLLECTION_WINDOW            HH:MM-HH:MM in TIMEZONE: each blueprint's daily start minute (22:00-06:00)
  DEVLAKE_TIMEZONE             the zone DevLake evaluates crons in (UTC)
  BLUEPRINT_CRON               one cron for every managed blueprint instead of the window (unset)
  TRIGGER_NEW_BLUEPRINTS       start first collections (true)
  MAX_PENDING_PIPELINES        start collections only while DevLake's queue is below this (10)
  MAX_RERUNS                   reruns of a failed pipeline (1)
  RETIRE_MISSING_AFTER_DAYS    disable a blueprint whose repository left upstream this long ago (7, 0, off)
  RETRY_FAILED_AFTER_MINUTES   retry a run's failed items this much later, same day (30)
  RETRY_FAILED_TIMES           at most this often per day (3)
  DEVLAKE_TIMEOUT_SECONDS, DEVLAKE_MAX_CONCURRENCY, DEVLAKE_HTTP_RETRIES,
  DEVLAKE_RETRY_BACKOFF_SECONDS  requests: timeout (30), at once (8), retries (5), backoff (1)
  STATE_DIR                    last-run file, rerun counts, heartbeat (state)
  LOG_LEVEL, LOG_FORMAT        INFO; json or console
The monitor's variables (blueprint_monitor.py --help) are checked too when set.

Each run reads DevLake, plans the changes (--dry-run prints them) and applies
them; failed items are retried the same day, RETRY_FAILED_AFTER_MINUTES later.

Exit codes: 0 all items succeeded; 1 some items failed, the rest were done;
2 invalid configuration, or DevLake unreachable / credentials rejected
(a 401 without DEVLAKE_API_KEY: create an API key in DevLake's UI and set it).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

import structlog

from config import ConfigError, Settings, load_settings
from modules import plan_view
from modules.client import build_client
from modules.doctor import run_doctor
from modules.exit_codes import ExitCode
from modules.orchestrator import RunReport
from modules.plan_view import LINES_PER_KIND
from modules.reachability import quick_probe
from modules.runner import health_problem, run_daemon, run_once
from modules.version import version
from utils.logging import configure_logging

log = structlog.get_logger("automation")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="manage_projects.py", description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="run one full cycle now and exit")
    mode.add_argument("--doctor", action="store_true",
                      help="check reachability, credentials, plugins and connections; exit 0 or 2")
    mode.add_argument("--healthcheck", action="store_true",
                      help="exit 0 if the running daemon's heartbeat in STATE_DIR is fresh and its last check "
                           "reached DevLake, else 1 with the reason on stderr (for Docker)")
    parser.add_argument("--dry-run", action="store_true",
                        help="with --once: make no change in DevLake, print the plan instead: totals per kind, "
                             f"then at most {LINES_PER_KIND} lines per kind")
    view = parser.add_mutually_exclusive_group()
    view.add_argument("--full", action="store_true", help="with --dry-run: print every change")
    view.add_argument("--json", action="store_true", help="with --dry-run: print the whole plan as JSON")
    args = parser.parse_args(argv)
    if args.dry_run and not args.once:
        parser.error("--dry-run goes with --once")
    if (args.full or args.json) and not args.dry_run:
        parser.error("--full and --json go with --once --dry-run")
    return args


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point; returns the exit code (ExitCode)."""
    args = parse_args(argv)
    try:
        settings = load_settings(os.environ if environ is None else environ)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return ExitCode.UNUSABLE
    if args.healthcheck:
        problem = health_problem(settings.state_dir)
        if problem is not None:
            print(f"unhealthy: {problem}", file=sys.stderr)
        return ExitCode.OK if problem is None else ExitCode.PARTIAL
    configure_logging(settings.log_level, settings.log_format, settings.timezone, settings.secrets)
    log.info("automation_started", version=version(), mode=_mode(args), config=settings.redacted())
    if args.doctor:
        code, checks = run_doctor(settings, build_client(settings))
        print("\n".join(c.render() for c in checks))
        return code
    now = lambda: datetime.now(settings.timezone)  # noqa: E731
    if args.once:
        started = now()
        code, report = run_once(settings, build_client(settings, dry_run=args.dry_run), started,
                                dry_run=args.dry_run, quick=True)
        if code == ExitCode.UNUSABLE:  # the one line to act on, outside the JSON log
            print("\n".join(report.plan.problems), file=sys.stderr)
        elif args.dry_run:
            _print_plan(report, settings, started, args)
            if not args.json:
                print("lifecycle: " + ", ".join(f"{k} {v}" for k, v in report.lifecycle_counts().items()))
        return code
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run_daemon(settings, lambda: _daily_job(settings, now, stop), stop, check=lambda: quick_probe(settings))
    return ExitCode.OK


def _print_plan(report: RunReport, settings: Settings, started: datetime, args: argparse.Namespace) -> None:
    on, deferred = started.astimezone(settings.timezone).date(), report.would_defer
    if args.json:
        print(json.dumps(plan_view.as_json(report.plan, settings, on, deferred_changes=deferred), ensure_ascii=False))
    else:
        print("\n".join(plan_view.render(report.plan, settings, on, deferred_changes=deferred, full=args.full)))


def _mode(args: argparse.Namespace) -> str:
    return "doctor" if args.doctor else "dry-run" if args.dry_run else "once" if args.once else "daemon"


def _daily_job(settings: Settings, now: Callable[[], datetime], stop: threading.Event) -> int:
    try:
        code, _ = run_once(settings, build_client(settings), now(), stop=stop)
        return code
    except Exception:  # the daemon outlives any one run; the failure is in the log and last-run file
        log.exception("run_crashed")
        return ExitCode.PARTIAL


if __name__ == "__main__":
    sys.exit(main())
