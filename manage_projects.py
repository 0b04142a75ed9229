#!/usr/bin/env python3
"""DevLake automation daemon: keeps every upstream repository tracked in DevLake.

Each run discovers plugins and connections, adds new remote scopes (with the
connection's scope config), creates one project and blueprint per scope, sets
every managed blueprint's timeAfter to the previous Saturday, triggers new
blueprints and reruns failed pipelines.

Configuration comes from environment variables; see README.md (Configuration).
Required: DEVLAKE_URL (http://host:8080, or the config-ui http://host:4000/api).
Common:   DEVLAKE_API_KEY (sent as a Bearer token under /rest), TIMEZONE
          (Asia/Ho_Chi_Minh), DAILY_RUN_TIME (18:00), PLUGINS (all eight),
          PROJECT_NAME_TEMPLATE ({plugin}/{name}), PROJECT_METRICS (dora),
          BLUEPRINT_CRON (keep DevLake's), TRIGGER_NEW_BLUEPRINTS (true),
          MAX_RERUNS (1), RETRY_FAILED_AFTER_MINUTES (30), RETRY_FAILED_TIMES (3),
          STATE_DIR (state), LOG_LEVEL (INFO), LOG_FORMAT (json).

Each run reads DevLake, plans the changes (--dry-run prints them) and applies
them; failed items are retried the same day, RETRY_FAILED_AFTER_MINUTES later.

Exit codes: 0 all items succeeded; 1 some items failed, the rest were done;
2 invalid configuration, or DevLake unreachable / credentials rejected
(a 401 without DEVLAKE_API_KEY: create an API key in DevLake's UI and set it).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

import structlog

from config import ConfigError, Settings, load_settings
from modules.client import ExitCode, build_client
from modules.doctor import run_doctor
from modules.runner import heartbeat_fresh, run_daemon, run_once
from utils.logging import configure_logging

log = structlog.get_logger("automation")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="manage_projects.py", description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="run one full cycle now and exit")
    mode.add_argument("--doctor", action="store_true",
                      help="check reachability, credentials, plugins and connections; exit 0 or 2")
    mode.add_argument("--healthcheck", action="store_true",
                      help="exit 0 if the running daemon's heartbeat in STATE_DIR is fresh (for Docker)")
    parser.add_argument("--dry-run", action="store_true",
                        help="with --once: make no change in DevLake, print the plan instead")
    args = parser.parse_args(argv)
    if args.dry_run and not args.once:
        parser.error("--dry-run goes with --once")
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
        return ExitCode.OK if heartbeat_fresh(settings.state_dir) else ExitCode.PARTIAL
    configure_logging(settings.log_level, settings.log_format, settings.timezone, [settings.api_key])
    log.info("automation_started", mode=_mode(args), config=settings.redacted())
    if args.doctor:
        code, checks = run_doctor(settings, build_client(settings))
        print("\n".join(c.render() for c in checks))
        return code
    now = lambda: datetime.now(settings.timezone)  # noqa: E731
    if args.once:
        code, report = run_once(settings, build_client(settings, dry_run=args.dry_run), now(),
                                dry_run=args.dry_run)
        if args.dry_run and code != ExitCode.UNUSABLE:
            print(f"Plan ({len(report.plan.changes)} changes; nothing was written):")
            print("\n".join("  " + line for line in report.plan.render()))
        return code
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run_daemon(settings, lambda: _daily_job(settings, now, stop), stop)
    return ExitCode.OK


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
