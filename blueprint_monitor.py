"""Blueprint monitor: counts every failed DevLake pipeline exactly once and serves Prometheus metrics.

Endpoints:
  /          status page: projects not collecting first (failing, stuck, never collected, stale), why, since when
  /status.json  the same as JSON
  /metrics   Prometheus text exposition, from memory (a scrape never calls DevLake)
  /healthz   200 while the last successful poll is recent, else 503; JSON body with the reason
  /livez     200 while the poll loop makes progress, DevLake reachable or not (liveness probes)
  POST /notifications   DevLake's signed pipeline notifications (point DevLake's
             NOTIFICATION_ENDPOINT at http://<monitor>:9100/notifications); failures
             count within a second, the poll stays the safety net

With basic auth every path needs credentials except /healthz, /livez and /notifications.

Exit codes: 0 ok (or stopped by SIGTERM/SIGINT); 1 --once poll failed, or --healthcheck unhealthy;
2 configuration error, or --once with DEVLAKE_URL not reaching DevLake (refused, DNS, TLS, timeout, not
DevLake's API) or credentials rejected (401/403): one line on stderr says what to do.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

import structlog
from prometheus_client import CollectorRegistry

from config import ConfigError, Settings, load_settings, settings_help
from modules.client import build_client
from modules.exit_codes import ExitCode
from modules.monitoring.healthcheck import check_health
from modules.monitoring.http import MetricsServer
from modules.monitoring.monitor import Monitor, serve
from modules.monitoring.notifications import NotificationReceiver
from modules.reachability import quick_probe
from modules.version import version
from utils.logging import configure_logging

ENVIRONMENT = ("Environment (all problems are reported together; exit 2; docs/configuration.md):\n"
               + settings_help("monitor") + "\n\n")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="blueprint_monitor.py", description=__doc__.split("\n\n", 1)[0],
        epilog=ENVIRONMENT + __doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.add_argument("--once", action="store_true",
                        help="poll once (and check connections once), print the exposition to stdout, "
                             "exit 0 (1 if the poll failed, 2 if DEVLAKE_URL does not reach DevLake)")
    parser.add_argument("--healthcheck", action="store_true",
                        help="ask the running monitor's /healthz (HTTPS with WEB_CONFIG_FILE's TLS): exit 0 or 1")
    return parser.parse_args(argv)


def build_monitor(settings: Settings, registry: CollectorRegistry,
                  clock: Callable[[], datetime] | None = None) -> Monitor:
    """Client and monitor from settings; `clock` defaults to the real time."""
    return Monitor(build_client(settings), settings, registry,
                   clock=clock or (lambda: datetime.now(UTC)), connection_client=build_client(settings))


def build_receiver(settings: Settings, monitor: Monitor) -> NotificationReceiver | None:
    """The notification receiver (with its own client), or None without NOTIFICATION_SECRET."""
    if not settings.notification_secret:
        return None
    return NotificationReceiver(monitor, build_client(settings), settings.notification_secret)


def run_once(settings: Settings, monitor: Monitor) -> int:
    """--once: one poll and one connection check, the exposition on stdout. A wrong DEVLAKE_URL is
    said in one line after one request and at most one retry (modules/reachability.py), nothing polled."""
    problem = quick_probe(settings)
    if problem is not None:
        structlog.get_logger("monitor").error("devlake_unreachable", kind=problem.kind, hint=problem.message)
        print(problem.message, file=sys.stderr)
        return ExitCode.UNUSABLE
    ok = monitor.poll_once()
    # one check too, so --once shows every family; not when the poll could not even reach DevLake
    if settings.connection_check_interval_seconds > 0 and monitor.last_error != "unreachable":
        monitor.connections.check_once()
    sys.stdout.write(monitor.exposition().decode("utf-8"))
    sys.stdout.flush()
    if monitor.last_hint:  # credentials rejected: nothing will work until the operator acts
        print(f"credentials rejected (401/403): {monitor.last_hint}", file=sys.stderr)
        return ExitCode.UNUSABLE
    return ExitCode.OK if ok else ExitCode.PARTIAL


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point; returns the exit code (ExitCode)."""
    args = parse_args(argv)
    if args.healthcheck:
        return check_health(os.environ if environ is None else environ)
    try:
        settings = load_settings(os.environ if environ is None else environ)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return ExitCode.UNUSABLE
    configure_logging(settings.log_level, settings.log_format, settings.timezone,
                      secrets=settings.secrets)
    structlog.get_logger("monitor").info("monitor_started", version=version(), once=args.once,
                                         config=settings.redacted())
    monitor = build_monitor(settings, CollectorRegistry())
    if args.once:
        return run_once(settings, monitor)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # before serving, so an early SIGTERM is graceful too
        signal.signal(sig, lambda *_: stop.set())
    receiver = build_receiver(settings, monitor)
    try:
        server = MetricsServer(monitor, settings.metrics_addr, settings.metrics_port, receiver,
                               web=settings.web_config).start()
    except OSError as exc:  # e.g. port 9100 already taken by node_exporter
        print(f"cannot listen on {settings.metrics_addr}:{settings.metrics_port}: {exc}", file=sys.stderr)
        return ExitCode.UNUSABLE
    if receiver is not None:
        monitor.watch("notification", receiver.start().thread)
    try:
        return serve(monitor, server, stop, settings.poll_interval_seconds)
    finally:
        if receiver is not None:
            receiver.stop(timeout=1.0)  # anything left is found by the next start's poll


if __name__ == "__main__":
    sys.exit(main())
