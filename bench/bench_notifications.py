#!/usr/bin/env python3
"""Benchmark DevLake notifications into the monitor (a benchmark, not a timed test).

The fake DevLake runs in a child process and sends its real signed notifications
(created, started, finished: three per pipeline) from --senders threads, each with
a keep-alive connection, to the monitor's POST /notifications on loopback, while a
thread in this process scrapes /metrics every --scrape-interval seconds (1 s, 30
times as often as Prometheus here; every scrape renders anew, since every
notification changes a counter). A burst of --pipelines pipelines (--fail-ratio of them failing)
goes through. Reported:

* notifications/s the receiver answered (burst start to the last answer);
* time until the worker counted every failure (each one read back with
  GET /pipelines/{id} from the fake);
* /metrics latency during the burst;
* the check: every notified failure counted exactly once (push, then a poll that
  must add nothing), every notification answered 200, none dropped.

Exits 1 if the check fails. The monitor logs at INFO to /dev/null, as a daemon
would log (to its stderr) without a terminal slowing it down.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from bench.fake_process import FakeHandle  # noqa: E402
from blueprint_monitor import build_monitor, build_receiver  # noqa: E402
from config import load_settings  # noqa: E402
from modules.monitoring.http import MetricsServer  # noqa: E402
from utils.logging import configure_logging  # noqa: E402

SECRET = "bench-notification-secret"


# -- the fake, in a child process ----------------------------------------------------------------

def fake_process(conn, latency: float) -> None:
    from sandbox.fake_devlake import FakeDevLake
    fake = FakeDevLake(latency=latency)
    conn.send(fake.start())
    blueprints: list[int] = []
    while True:
        command, args = conn.recv()
        if command == "projects":
            blueprints = [fake.add_project(f"github/org/repo-{i}") for i in range(args["count"])]
            conn.send(len(blueprints))
        elif command == "notify":
            fake.configure_notifications(args["endpoint"], SECRET, workers=args["senders"])
            conn.send(None)
        elif command == "burst":
            conn.send(burst(fake, blueprints, **args))
        elif command == "stop":
            fake.stop()
            conn.send(None)
            return


def burst(fake, blueprints: list[int], pipelines: int, fail_ratio: float) -> dict:
    """Run `pipelines` pipelines to the end; wait until every notification was answered."""
    rng = random.Random(7)
    failed = 0
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(pipelines):
        pid = fake.add_pipeline(rng.choice(blueprints), "TASK_CREATED")
        fake.set_pipeline_status(pid, "TASK_RUNNING")
        fails = rng.random() < fail_ratio
        failed += fails
        fake.set_pipeline_status(pid, "TASK_FAILED" if fails else "TASK_COMPLETED")
    assert fake.notifier.flush(timeout=600), "notifications still queued after 10 minutes"
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    codes = Counter(n.response_code for n in fake.notifier.sent)
    return {"failed": failed, "sent": len(fake.notifier.sent), "elapsed": elapsed, "codes": dict(codes), "cpu": cpu}


# -- the monitor, in this process ----------------------------------------------------------------

class Scraper(threading.Thread):
    """GET /metrics every `interval` seconds over one keep-alive connection (gzip, as Prometheus asks)."""

    def __init__(self, url: str, interval: float):
        super().__init__(daemon=True)
        self.url, self.interval, self.stop, self.latencies = url, interval, threading.Event(), []

    def run(self):
        session = requests.Session()
        while True:
            started = time.perf_counter()
            session.get(self.url, headers={"Accept-Encoding": "gzip"}, timeout=30).raise_for_status()
            self.latencies.append(time.perf_counter() - started)
            if self.stop.wait(max(0.0, self.interval - (time.perf_counter() - started))):
                return


def samples(url: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(requests.get(url, timeout=30).text):
        for s in family.samples:
            out[(s.name, *sorted(s.labels.items()))] = s.value
    return out


def total(scrape: dict, name: str, **labels) -> float:
    want = set(labels.items())
    return sum(v for k, v in scrape.items() if k[0] == name and want <= set(k[1:]))


def run(args, fake) -> bool:
    with tempfile.TemporaryDirectory() as state_dir:
        settings = load_settings({"DEVLAKE_URL": fake.url, "STATE_DIR": state_dir, "NOTIFICATION_SECRET": SECRET,
                                  "DEVLAKE_HTTP_RETRIES": "1", "DEVLAKE_RETRY_BACKOFF_SECONDS": "0"})
        monitor = build_monitor(settings, CollectorRegistry())
        receiver = build_receiver(settings, monitor).start()
        server = MetricsServer(monitor, "127.0.0.1", 0, receiver).start()
        metrics = f"http://127.0.0.1:{server.port}/metrics"
        try:
            assert monitor.poll_once(), "first poll failed"
            fake("notify", endpoint=f"http://127.0.0.1:{server.port}/notifications", senders=args.senders)
            scraper = Scraper(metrics, args.scrape_interval)
            scraper.start()
            started, cpu = time.perf_counter(), time.process_time()
            sent = fake("burst", pipelines=args.pipelines, fail_ratio=args.fail_ratio)
            assert receiver.wait_idle(600), "worker still busy after 10 minutes"
            counted_after = time.perf_counter() - started
            sent["monitor_cpu"] = time.process_time() - cpu
            scraper.stop.set()
            scraper.join(30)
            return report(args, monitor, metrics, sent, counted_after, scraper.latencies)
        finally:
            server.stop()
            receiver.stop()


def report(args, monitor, metrics: str, sent: dict, counted_after: float, scrapes: list[float]) -> bool:
    pushed = samples(metrics)
    assert monitor.poll_once(), "poll after the burst failed"
    polled = samples(metrics)
    failures = total(pushed, "devlake_project_failures_total")
    outcomes = {o: total(pushed, "devlake_monitor_notifications_total", outcome=o)
                for o in ("accepted", "bad_signature", "malformed", "replay", "too_large", "dropped")}
    counted = total(pushed, "devlake_monitor_notifications_processed_total", result="counted")
    p = sorted(scrapes)
    print(f"burst: {args.pipelines} pipelines ({sent['failed']} failed), {sent['sent']} notifications "
          f"from {args.senders} sender threads, keep-alive")
    print(f"  receiver: {sent['sent'] / sent['elapsed']:8.0f} notifications/s answered "
          f"({sent['elapsed']:.2f} s; answers {sent['codes']})")
    print(f"  CPU during the burst: monitor {sent['monitor_cpu'] / sent['elapsed']:.0%} of a core, "
          f"fake DevLake with its senders {sent['cpu'] / sent['elapsed']:.0%} (one process each, one GIL each)")
    print(f"  worker:   every failure counted {counted_after:.2f} s after the burst started "
          f"({counted:.0f} counted by push)")
    print(f"  /metrics during the burst (every {args.scrape_interval} s): {len(p)} scrapes, "
          f"median {statistics.median(p) * 1000:.1f} ms, "
          f"p99 {p[min(len(p) - 1, int(len(p) * 0.99))] * 1000:.1f} ms, max {p[-1] * 1000:.1f} ms")
    checks = {
        "every notification answered 200": sent["codes"] == {200: sent["sent"]},
        "every notification accepted, none refused or dropped":
            outcomes["accepted"] == sent["sent"] and sum(outcomes.values()) == sent["sent"],
        "every notified failure counted by push": counted == sent["failed"] == failures,
        "the poll after it adds nothing (no double count)":
            total(polled, "devlake_project_failures_total") == failures
            and total(polled, "devlake_blueprint_failure_total") == failures,
        "runs = pipelines after the poll": total(polled, "devlake_project_runs_total") == args.pipelines,
    }
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    return all(checks.values())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small numbers for a CI smoke run")
    parser.add_argument("--pipelines", type=int, default=5000)
    parser.add_argument("--projects", type=int, default=500)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--fail-ratio", type=float, default=0.2)
    parser.add_argument("--latency", type=float, default=0.0, help="the fake's latency per API call (s)")
    parser.add_argument("--scrape-interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    if args.quick:
        args.pipelines, args.projects, args.senders, args.scrape_interval = 300, 50, 4, 0.1
    configure_logging("INFO", "json", stream=open(os.devnull, "w"))  # noqa: SIM115 (for the whole run)
    fake = FakeHandle(fake_process, args.latency)
    try:
        fake("projects", count=args.projects)
        ok = run(args, fake)
    finally:
        fake.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
