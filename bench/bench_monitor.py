#!/usr/bin/env python3
"""Benchmark the blueprint monitor against the fake DevLake (a benchmark, not a timed test).

The fake runs in a child process, so the resident memory reported is the
monitor's alone. Phases:
  1. at --latency (default 20 ms): the first poll, steady-state polls with --new
     new pipelines each (the previous poll's pipelines finish, new ones start),
     and one hourly reconciliation poll (project list + failed/partial re-scan);
  2. /metrics scrape latency over real HTTP once --series failure series are retained;
  3. RSS over --polls steady-state polls at 0 ms latency, simulated --step-minutes
     apart so the 7-day retention window fills and old series are pruned.
Targets (issue #3): steady state <= 10 calls per poll, /metrics < 50 ms with 10,000
failure series, memory flat in the number of polls.
"""
from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402
from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402

from bench.fake_process import FakeHandle  # noqa: E402
from config import load_settings  # noqa: E402
from modules.client import build_client  # noqa: E402
from modules.monitoring.http import MetricsServer  # noqa: E402
from modules.monitoring.monitor import Monitor  # noqa: E402
from utils.logging import configure_logging  # noqa: E402

T0 = datetime(2025, 8, 8, 7, 0, tzinfo=UTC)


# -- the fake, in a child process ----------------------------------------------------------------

def fake_process(conn, latency: float) -> None:
    """Serve a FakeDevLake and run commands sent over `conn` until told to stop."""
    from sandbox.fake_devlake import FakeDevLake
    clock = {"now": T0}
    fake = FakeDevLake(latency=latency, clock=lambda: clock["now"])
    conn.send(fake.start())
    world = {"blueprints": [], "running": [], "rng": random.Random(7)}
    while True:
        command, args = conn.recv()
        if command == "stop":
            fake.stop()
            conn.send(None)
            return
        clock["now"] = args.pop("now", clock["now"])
        conn.send(COMMANDS[command](fake, world, **args))


def seed(fake, world, projects: int, history: int) -> int:
    rng = world["rng"]
    world["blueprints"] = [fake.add_project(f"github/org{i // 100}/repo-{i}") for i in range(projects)]
    start = T0 - timedelta(days=30)
    for i in range(history):  # ids ascend with time, as in DevLake
        finished = start + timedelta(seconds=i * 30 * 86400 / history)
        roll = rng.random()
        status = "TASK_FAILED" if roll < 0.08 else "TASK_PARTIAL" if roll < 0.10 else \
            "TASK_CANCELLED" if roll < 0.11 else "TASK_COMPLETED"
        fake.add_pipeline(rng.choice(world["blueprints"]), status, finished_at=finished)
    return len(world["blueprints"])


def tick(fake, world, new: int, fail_ratio: float) -> int:
    """The previous tick's pipelines finish; `new` pipelines start running."""
    rng, now = world["rng"], fake.now()
    for pid in world["running"]:
        status = "TASK_FAILED" if rng.random() < fail_ratio else "TASK_COMPLETED"
        fake.set_pipeline_status(pid, status, finished_at=now - timedelta(seconds=rng.randint(1, 200)))
    world["running"] = [fake.add_pipeline(rng.choice(world["blueprints"]), "TASK_RUNNING",
                                          began_at=now - timedelta(seconds=rng.randint(1, 200)))
                        for _ in range(new)]
    return len(world["running"])


def set_latency(fake, world, latency: float) -> None:
    fake.latency = latency


COMMANDS = {"seed": seed, "tick": tick, "latency": set_latency}


# -- the monitor, in this process ----------------------------------------------------------------

class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def poll(monitor, fake, clock, args, minutes: float, fail_ratio: float) -> tuple[int, float]:
    clock.now += timedelta(minutes=minutes)
    fake("tick", now=clock.now, new=args.new, fail_ratio=fail_ratio)
    started = time.perf_counter()
    assert monitor.poll_once(), "poll failed"
    return int(monitor.metrics.calls._value.get()), time.perf_counter() - started


def phase_calls(monitor, fake, clock, args) -> None:
    started = time.perf_counter()
    monitor.poll_once()
    print(f"first poll (no state):     {int(monitor.metrics.calls._value.get()):4d} calls  "
          f"{time.perf_counter() - started:7.3f} s   ({len(monitor.state.projects) - 1} projects)")
    results = [poll(monitor, fake, clock, args, 5, 0.1) for _ in range(args.steady)]
    calls = [c for c, _ in results]
    times = [t for _, t in results]
    print(f"steady-state poll:         {min(calls)}-{max(calls)} calls (mean {statistics.mean(calls):.1f})  "
          f"{statistics.mean(times):7.3f} s mean, {max(times):.3f} s max   ({args.steady} polls, {args.new} new each)")
    # Issue 10: every finishing pipeline fails, so each poll reads the tasks of `new` new failures once.
    results = [poll(monitor, fake, clock, args, 5, 1.0) for _ in range(args.steady)]
    calls = [c for c, _ in results]
    print(f"steady state, {args.new} new failures per poll: {min(calls)}-{max(calls)} calls "
          f"(mean {statistics.mean(calls):.1f}; one task read per new failure)  "
          f"{statistics.mean(t for _, t in results):7.3f} s mean")
    clock.now += timedelta(minutes=60)
    c, t = poll(monitor, fake, clock, args, 0, 0.1)
    print(f"hourly reconciliation:     {c:4d} calls  {t:7.3f} s   (project list + failed/partial re-scan)")


def phase_scrape(monitor, fake, clock, args) -> None:
    fake("latency", latency=0.0)
    while len(monitor.state.events) < args.series:
        poll(monitor, fake, clock, args, 1, 1.0)  # every finishing pipeline fails
    server = MetricsServer(monitor, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{server.port}/metrics"
    poll(monitor, fake, clock, args, 1, 0.0)
    started = time.perf_counter()
    body = requests.get(url, timeout=30).content
    cold = time.perf_counter() - started
    warm = _timed(lambda: requests.get(url, timeout=30), 20)
    warm_gz = _timed(lambda: requests.get(url, headers={"Accept-Encoding": "gzip"}, timeout=30), 20)
    lines = body.count(b"\n")
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    render = _timed(lambda: generate_latest(monitor.registry), 5)
    projects = len(monitor.state.projects) - 1
    failure_series = len(monitor.state.events)
    print(f"/metrics series: {series} ({projects} projects, {failure_series} failure events; "
          f"{(series - failure_series) / max(projects, 1):.2f} per project besides the time_failed series); "
          f"render {render * 1000:.1f} ms (median of 5)")
    print(f"/metrics, {len(monitor.state.events)} failure series, {lines} lines, {len(body) / 1e6:.1f} MB:")
    print(f"  first scrape after a poll (renders): {cold * 1000:7.1f} ms  (the daemon pre-renders after each poll)")
    print(f"  cached scrape, median of 20:         {warm * 1000:7.1f} ms  plain, {warm_gz * 1000:.1f} ms gzip")
    server.stop()


def _timed(fn, n: int) -> float:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def phase_memory(monitor, fake, clock, args) -> None:
    fake("latency", latency=0.0)
    checkpoints = sorted({1, args.polls // 4, args.polls // 2, 3 * args.polls // 4, args.polls})
    print(f"memory over {args.polls} steady-state polls (latency 0 ms, polls {args.step_minutes} simulated "
          f"minutes apart, 10% failures, retention 7 days):")
    base = rss_mib()
    for i in range(1, args.polls + 1):
        poll(monitor, fake, clock, args, args.step_minutes, 0.1)
        if i in checkpoints:
            print(f"  after poll {i:5d}: RSS {rss_mib():7.1f} MiB (start {base:.1f})  "
                  f"retained failure series {len(monitor.state.events):6d}")
    print(f"  peak RSS (ru_maxrss): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small numbers for a CI smoke run")
    parser.add_argument("--latency", type=float, default=0.02)
    args = parser.parse_args(argv)
    big = dict(projects=5000, history=20000, new=50, steady=10, series=10000, polls=1000, step_minutes=15)
    small = dict(projects=200, history=1000, new=10, steady=3, series=300, polls=40, step_minutes=360)
    for key, value in (small if args.quick else big).items():
        setattr(args, key, value)
    if args.quick:
        args.latency = min(args.latency, 0.005)
    configure_logging("WARNING", "console")
    fake = FakeHandle(fake_process, args.latency)
    try:
        print(f"seeding the fake: {args.projects} projects, {args.history} historical pipelines ...", flush=True)
        fake("seed", projects=args.projects, history=args.history)
        clock = Clock()
        with tempfile.TemporaryDirectory() as state_dir:
            settings = load_settings({"DEVLAKE_URL": fake.url, "STATE_DIR": state_dir,
                                      "DEVLAKE_RETRY_BACKOFF_SECONDS": "0", "DEVLAKE_HTTP_RETRIES": "1"})
            monitor = Monitor(build_client(settings), settings, CollectorRegistry(), clock=clock)
            print(f"latency {args.latency * 1000:.0f} ms per call")
            phase_calls(monitor, fake, clock, args)
            phase_scrape(monitor, fake, clock, args)
            phase_memory(monitor, fake, clock, args)
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
