"""`python -m sandbox`: serve the fake DevLake with realistic sample data until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .autorun import AutoRunner
from .fake_devlake import FakeDevLake
from .sample import add_scale, load_sample_data


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind, 0 = any (default 8080)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--api-key", default=None, help="require `Authorization: Bearer KEY` on /rest/...")
    parser.add_argument("--auto-run-seconds", type=float, default=2.0,
                        help="finish queued pipelines after this many seconds; 0 disables (default 2)")
    parser.add_argument("--max-parallel", type=int, default=0,
                        help="like DevLake's PIPELINE_MAX_PARALLEL: pipelines running at once, 0 = no limit "
                             "(default 0: every queued pipeline finishes after --auto-run-seconds)")
    parser.add_argument("--scale", type=int, default=0, metavar="N",
                        help="N more repositories (40%% GitHub, 30%% GitLab, 20%% Jira, 10%% Jenkins) in one "
                             "more connection per plugin, to try the daemons at the size of a real "
                             "installation (default 0)")
    args = parser.parse_args(argv)
    if args.scale < 0:
        parser.error("--scale must be 0 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fake = FakeDevLake(latency=args.latency, api_key=args.api_key)
    load_sample_data(fake)
    add_scale(fake, args.scale)
    fake.max_parallel = args.max_parallel
    try:
        url = fake.start(args.host, args.port)
    except OSError as exc:
        print(f"cannot bind {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    runner = AutoRunner(fake, args.auto_run_seconds).start() if args.auto_run_seconds > 0 else None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    auth = " (API key required on /rest/...)" if args.api_key else ""
    scale = f" and {args.scale} more repositories" if args.scale else ""
    print(f"fake DevLake serving sample data{scale} at {url}{auth}", flush=True)
    while not stop.wait(1.0):
        pass
    if runner:
        runner.stop()
    fake.stop()
    print("fake DevLake stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
