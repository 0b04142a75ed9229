#!/usr/bin/env python3
"""Benchmark the status page (GET /, /status.json) at 5,000 projects (a benchmark, not a timed test).

The page renders from the monitor's in-memory state, so the state is built
directly (no DevLake needed): --projects projects with a realistic mix of
failing (with long error messages), stuck, never collected, stale and healthy
ones. Measured: the snapshot under the monitor's lock, the HTML and JSON
renders, the page's size (plain and gzipped), and GET / over real HTTP.
Targets (issue #12, "well under a second"): snapshot + HTML render median under
--target-ms (500), gzipped page under 300 KB. Exit 1 if a target is missed.
"""
from __future__ import annotations

import argparse
import gzip
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from config import load_settings  # noqa: E402
from modules.client import build_client  # noqa: E402
from modules.monitoring.http import MetricsServer  # noqa: E402
from modules.monitoring.monitor import Monitor  # noqa: E402
from modules.monitoring.state import InFlight, MonitorState, ProjectStats  # noqa: E402
from modules.monitoring.status_model import snapshot  # noqa: E402
from modules.monitoring.status_page import render_html, render_json  # noqa: E402
from utils.logging import configure_logging  # noqa: E402

T0 = datetime(2025, 8, 8, 7, 0, tzinfo=UTC)
GZIP_TARGET_BYTES = 300_000
REASON = ("Error 403 (GET https://api.github.com/repos/{name}/pulls?page=7): API rate limit exceeded for "
          "installation ID 4242. Wrapped: subtask collectApiPullRequests ended unexpectedly")


def build_state(projects: int, now: float, seed: int = 12) -> MonitorState:
    """5% failing, 1% stuck, 2% never collected, 10% stale, the rest healthy."""
    rng, state = random.Random(seed), MonitorState()
    for i in range(projects):
        name, roll = f"github/org{i // 100}/repo-{i}", rng.random()
        stats = ProjectStats(runs=rng.randint(1, 200), last_status="TASK_COMPLETED",
                             last_success=now - rng.uniform(60, 40 * 3600))
        if roll < 0.05:
            stats.last_status, stats.consecutive_failures = "TASK_FAILED", rng.randint(1, 9)
            stats.last_failure = now - rng.uniform(60, 86400)
            stats.last_reason, stats.last_plugin = REASON.format(name=name), "github"
            stats.last_failed_subtask = "collectApiPullRequests"
        elif roll < 0.06:
            state.in_flight[i + 1] = InFlight(name, now - rng.uniform(7, 30) * 3600, "TASK_RUNNING")
        elif roll < 0.08:
            stats.last_success, stats.last_status = None, None
        elif roll < 0.18:
            stats.last_success = now - rng.uniform(49, 400) * 3600
        state.projects[name] = stats
    return state


def timed(fn, n: int) -> tuple[float, object]:
    samples, result = [], None
    for _ in range(n):
        started = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, for a CI smoke run")
    parser.add_argument("--projects", type=int, default=5000)
    parser.add_argument("--target-ms", type=float, default=500.0)
    args = parser.parse_args(argv)
    reps = 3 if args.quick else 20
    configure_logging("WARNING", "console")
    with tempfile.TemporaryDirectory() as state_dir:
        settings = load_settings({"DEVLAKE_URL": "http://127.0.0.1:9", "STATE_DIR": state_dir,
                                  "DEVLAKE_UI_URL": "http://devlake-ui:4000"})
        monitor = Monitor(build_client(settings), settings, CollectorRegistry(), clock=lambda: T0)
        monitor.state = build_state(args.projects, T0.timestamp())
        monitor.last_success = T0.timestamp() - 60
        snap, model = timed(lambda: snapshot(monitor), reps)
        html_s, html = timed(lambda: render_html(model), reps)
        json_s, body = timed(lambda: render_json(model), reps)
        page, data = html.encode(), body.encode()
        gz_s, packed = timed(lambda: gzip.compress(page, compresslevel=1), reps)
        server = MetricsServer(monitor, "127.0.0.1", 0).start()
        try:
            url = f"http://127.0.0.1:{server.port}/"
            http_s, _ = timed(lambda: requests.get(url, timeout=30).content, reps)
            http_gz_s, _ = timed(lambda: requests.get(url, headers={"Accept-Encoding": "gzip"}, timeout=30), reps)
        finally:
            server.stop()
    counts = ", ".join(f"{n} {s}" for s, n in model.counts.items())
    render_ms = (snap + html_s) * 1000
    print(f"status page at {args.projects} projects ({counts}); medians of {reps}:")
    print(f"  snapshot under the lock: {snap * 1000:7.1f} ms")
    print(f"  HTML render:             {html_s * 1000:7.1f} ms   {len(page) / 1e6:.2f} MB, "
          f"{len(packed) / 1e3:.0f} KB gzipped ({gz_s * 1000:.1f} ms)")
    print(f"  JSON render:             {json_s * 1000:7.1f} ms   {len(data) / 1e6:.2f} MB")
    print(f"  GET / over HTTP:         {http_s * 1000:7.1f} ms plain, {http_gz_s * 1000:.1f} ms gzip")
    failed = []
    if render_ms > args.target_ms:
        failed.append(f"snapshot + render {render_ms:.0f} ms > {args.target_ms:.0f} ms")
    if len(packed) > GZIP_TARGET_BYTES:
        failed.append(f"gzipped page {len(packed)} B > {GZIP_TARGET_BYTES} B")
    print("target missed: " + "; ".join(failed) if failed else
          f"targets met: render {render_ms:.0f} ms < {args.target_ms:.0f} ms, gzipped page < "
          f"{GZIP_TARGET_BYTES // 1000} KB")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
