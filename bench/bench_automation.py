#!/usr/bin/env python3
"""Benchmark the daily run against the fake DevLake with injected latency.

The fake runs in a child process (bench/fake_process.py). Prints wall time, API calls
(total and mutating) and peak memory for:
  1. a first run that creates everything (scopes, scope configs, projects, blueprints with their
     slot cron in COLLECTION_WINDOW, and first collections up to MAX_PENDING_PIPELINES),
  2. a second run with nothing new (target: zero mutating calls; reads are the paged lists plus
     the four queue counts, since the deferred blueprints still have never collected),
  3. a run after a COLLECTION_WINDOW change (target: one PATCH per moved blueprint, nothing else),
  4. a run after 100 repositories were added (target: no existing blueprint's cron moves, slots are
     sticky, so about two writes per new repository),
and the spread of the crons the first run wrote (max per minute and per 10 minutes, in UTC).
Targets (issue #2): 5,000 repositories over 4 plugins at 20 ms per call: <= 3 calls
per new repository plus batched scope PUTs, under 90 s; steady state: 0 mutating calls.
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pytz  # noqa: E402

from bench.fake_process import FakeHandle  # noqa: E402
from config import CollectionWindow, load_settings  # noqa: E402
from modules.changes import Outcome  # noqa: E402
from modules.client import build_client  # noqa: E402
from modules.cron_slots import cron_minute_of_day  # noqa: E402
from modules.runner import run_once  # noqa: E402
from sandbox.fake_devlake import FakeDevLake  # noqa: E402
from sandbox.sample import SCALE_SPLIT, add_scale  # noqa: E402
from utils.logging import configure_logging  # noqa: E402

NEW_WINDOW = "20:00-08:00"  # the window change of run 3 (from the default 22:00-06:00)
ADDED = 100                 # run 4: this many new repositories on top


def fake_process(conn, latency: float) -> None:
    """The fake DevLake in a child process: the daemon's parsing and the fake's serialising
    do not share one interpreter lock, as they would not against a real DevLake."""
    with FakeDevLake(latency=latency) as fake:
        conn.send(fake.url)
        while True:
            command, args = conn.recv()
            if command == "stop":
                conn.send(None)
                return
            if command == "populate":
                add_scale(fake, args["total"])
                conn.send(None)
            elif command == "reset_log":
                fake.reset_log()
                conn.send(None)
            elif command == "add":  # more repositories upstream in the github connection's first group
                cid = fake.connections("github")[0]["id"]
                for i in range(args["count"]):
                    fake.add_remote_scope("github", cid, f"added-{i}", parent_id="group0")
                conn.send(None)
            elif command == "crons":
                conn.send([bp["cronConfig"] for bp in fake.blueprints.values()])
            elif command == "counts":
                routes = Counter(f"{r.method} {_route(r.path)}" for r in fake.requests)
                conn.send((fake.count(), fake.mutating_count(), dict(routes.most_common(8))))


def measure(fake: FakeHandle, settings, label: str) -> dict:
    fake("reset_log")
    client = build_client(settings)
    now = datetime(2026, 11, 23, 18, 0, tzinfo=pytz.UTC).astimezone(settings.timezone)
    started = time.perf_counter()
    code, report = run_once(settings, client, now)
    wall = time.perf_counter() - started
    calls, mutating, by_route = fake("counts")
    return {"run": label, "exit": code, "wall_s": round(wall, 2), "calls": calls, "mutating": mutating,
            "created": report.count(Outcome.CREATED), "deferred": report.deferred, "failed": report.failed,
            "by_route": by_route}


def _route(path: str) -> str:
    parts = path.split("?")[0].strip("/").split("/")
    return "/" + "/".join("{id}" if p.isdigit() or "%" in p else p for p in parts[:5])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repos", type=int, default=5000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="200 repos, 5 ms: a CI smoke run")
    args = parser.parse_args()
    if args.quick:
        args.repos, args.latency_ms = 200, 5.0
    configure_logging("WARNING", "json")
    fake = FakeHandle(fake_process, args.latency_ms / 1000.0)
    try:
        fake("populate", total=args.repos)
        settings = load_settings({
            "DEVLAKE_URL": fake.url, "STATE_DIR": tempfile.mkdtemp(prefix="bench-state-"),
            "PLUGINS": ",".join(SCALE_SPLIT), "DEVLAKE_MAX_CONCURRENCY": str(args.concurrency),
            "DEVLAKE_RETRY_BACKOFF_SECONDS": "0"})
        print(f"repositories={args.repos} latency_ms={args.latency_ms} concurrency={args.concurrency}")
        first = measure(fake, settings, "first (creates everything)")
        crons = fake("crons")
        second = measure(fake, settings, "second (nothing new)")
        moved_settings = replace(settings, collection_window=CollectionWindow.parse(NEW_WINDOW))
        third = measure(fake, moved_settings, f"window -> {NEW_WINDOW}")
        settled = fake("crons")
        moved = sum(a != b for a, b in zip(crons, settled, strict=True))
        fake("add", count=ADDED)
        fourth = measure(fake, moved_settings, f"{ADDED} new repositories")
        shifted = sum(a != b for a, b in zip(settled, fake("crons"), strict=False))  # existing ones only
    finally:
        fake.stop()
    for row in (first, second, third, fourth):
        print(f"{row['run']:<28} exit={row['exit']} wall={row['wall_s']}s calls={row['calls']} "
              f"mutating={row['mutating']} created={row['created']} deferred={row['deferred']} "
              f"failed={row['failed']}")
        print(f"{'':<28} by route: {row['by_route']}")
    per_repo = (first["mutating"]) / max(1, args.repos)
    print(f"mutating calls per new repository (incl. batched scope PUTs): {per_repo:.3f}")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")
    per_minute = Counter(cron_minute_of_day(c) for c in crons)
    per_slice = Counter(m // 10 for m in per_minute.elements() if m is not None)
    window = settings.collection_window
    print(f"start minutes (UTC) of {len(crons)} blueprints in {window} {settings.timezone} "
          f"({window.minutes} min): max {max(per_minute.values())} per minute "
          f"(fair {len(crons) / window.minutes:.1f}), max {max(per_slice.values())} per 10 minutes "
          f"(fair {len(crons) * 10 / window.minutes:.1f}), {len(per_minute)} distinct minutes")
    patches = third["by_route"].get("PATCH /blueprints/{id}", 0)
    print(f"window change: {moved} blueprints moved, {third['mutating']} writes ({patches} PATCH)")
    print(f"{ADDED} new repositories: {fourth['mutating']} writes, {fourth['mutating'] / ADDED:.2f} per new "
          f"repository, {shifted} existing blueprints' crons moved (slots are sticky, modules/cron_slots.py)")
    ok = (first["exit"] == 0 and second["exit"] == 0 and second["mutating"] == 0 and per_repo <= 3.1
          and third["exit"] == 0 and third["mutating"] == patches == moved and fourth["exit"] == 0 and shifted == 0)
    print("targets:", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
