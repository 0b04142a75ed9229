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
          MAX_RERUNS (1), STATE_DIR (state), LOG_LEVEL (INFO), LOG_FORMAT (json).

Exit codes: 0 all items succeeded; 1 some items failed, the rest were done;
2 invalid configuration, or DevLake unreachable / credentials rejected.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from datetime import datetime

import structlog

from config import ConfigError, load_settings
from modules.doctor import run_doctor
from modules.runner import EXIT_UNUSABLE, build_client, heartbeat_fresh, run_daemon, run_once
from utils.logging import configure_logging


def parse_args(argv):
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


def main(argv=None, environ=None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(os.environ if environ is None else environ)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    if args.healthcheck:
        return 0 if heartbeat_fresh(settings.state_dir) else 1
    configure_logging(settings.log_level, settings.log_format, settings.timezone, [settings.api_key])
    if args.doctor:
        code, checks = run_doctor(settings, build_client(settings))
        print("\n".join(c.render() for c in checks))
        return code
    now = lambda: datetime.now(settings.timezone)  # noqa: E731
    if args.once:
        client = build_client(settings, dry_run=args.dry_run)
        code, ctx = run_once(settings, client, now(), dry_run=args.dry_run)
        if args.dry_run and code != EXIT_UNUSABLE:
            print(f"Plan ({len(ctx.plan)} changes; nothing was written):")
            print("\n".join("  " + c.render() for c in sorted(ctx.plan, key=lambda c: (c.kind, c.target))))
        return code
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run_daemon(settings, lambda: _daily_job(settings, now, stop), stop)
    return 0


def _daily_job(settings, now, stop) -> None:
    try:
        run_once(settings, build_client(settings), now(), stop=stop)
    except Exception:  # the daemon outlives any one run; the failure is in the log and last-run file
        structlog.get_logger("automation").exception("run_crashed")


if __name__ == "__main__":
    sys.exit(main())
