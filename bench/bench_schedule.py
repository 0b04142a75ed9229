#!/usr/bin/env python3
"""Benchmark the collection schedule (modules/schedule.py): pure, no DevLake, a second or two.

For --repos managed blueprints (default 5,000, one per repository) still on DevLake's default cron:

* the first plan: how many cron PATCHes, and the distribution of start minutes over
  COLLECTION_WINDOW (max per minute and per 10 minutes against the fair share), also in
  DevLake's zone (UTC), where the crons live;
* a second plan on the result: must be empty (a run with nothing new writes nothing);
* churn: how many existing blueprints move when 1, 10 and 100 repositories are added;
* a window change: the PATCHes it plans (one per moved blueprint, nothing else), with one
  hand-set cron that must stay;
* planning time.

Exits 1 if a target is missed: max per 10-minute slice over 1.2 x the fair share (+1), a
non-empty second plan, a window change planning anything but one PATCH per moved
daemon-owned blueprint, or (at 5,000) more than 1 % of blueprints moved by adding one.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pytz  # noqa: E402

from config import CollectionWindow  # noqa: E402
from modules.schedule import (  # noqa: E402
    DEVLAKE_DEFAULT_CRON,
    assign_slots,
    cron_minute_of_day,
    plan_schedule,
    zone_shift_minutes,
)

MANAGED = "managed-by/devlake-automation"
DAY = date(2026, 11, 23)


def blueprints(n: int, start_id: int = 1) -> list[dict]:
    return [{"id": i, "projectName": f"github/repo-{i}", "cronConfig": DEVLAKE_DEFAULT_CRON, "isManual": False,
             "labels": [MANAGED],
             "connections": [{"pluginName": "github", "connectionId": 1, "scopes": [{"scopeId": str(100000 + i)}]}]}
            for i in range(start_id, start_id + n)]


def apply(bps: list[dict], plan) -> None:
    by_id = {bp["id"]: bp for bp in bps}
    for change in plan.changes:
        by_id[change.blueprint_id].update(change.body())


def distribution(bps: list[dict], window: CollectionWindow, shift: int) -> tuple[Counter, Counter, int]:
    """Per window minute, per 10-minute slice of the window, and how many fall outside it."""
    offsets, outside = [], 0
    for bp in bps:
        minute = cron_minute_of_day(bp["cronConfig"])
        offset = None if minute is None else (minute - shift - window.start) % 1440
        if offset is None or offset >= window.minutes:
            outside += 1
            continue
        offsets.append(offset)
    return Counter(offsets), Counter(o // 10 for o in offsets), outside


def churn(n: int, added: int, minutes: int) -> int:
    keys = [f"github/1/{100000 + i}" for i in range(1, n + 1)]
    before = assign_slots(keys, minutes)
    after = assign_slots(keys + [f"github/1/new-{j}" for j in range(added)], minutes)
    return sum(1 for k in keys if before[k] != after[k])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repos", type=int, default=5000)
    parser.add_argument("--window", default="22:00-06:00", help="COLLECTION_WINDOW (default 22:00-06:00)")
    parser.add_argument("--new-window", default="20:00-02:00", help="the window to change to")
    parser.add_argument("--timezone", default="Asia/Ho_Chi_Minh")
    parser.add_argument("--quick", action="store_true", help="500 repositories, for a CI smoke run")
    args = parser.parse_args(argv)
    n = 500 if args.quick else args.repos
    tz, utc = pytz.timezone(args.timezone), pytz.utc
    window, new_window = CollectionWindow.parse(args.window), CollectionWindow.parse(args.new_window)
    failures: list[str] = []

    bps = blueprints(n)
    t0 = time.perf_counter()
    first = plan_schedule(bps, window=window, on=DAY, tz=tz, devlake_tz=utc)
    plan_seconds = time.perf_counter() - t0
    apply(bps, first)
    shift = zone_shift_minutes(window, DAY, tz, utc)
    per_minute, per_slice, outside = distribution(bps, window, shift)
    fair_minute, fair_slice = n / window.minutes, n * 10 / window.minutes
    utc_hours = Counter(cron_minute_of_day(bp["cronConfig"]) // 60 for bp in bps)  # type: ignore[operator]
    print(f"{n} managed blueprints, window {window} {args.timezone} ({window.minutes} min), DevLake zone UTC")
    print(f"first plan: {len(first.changes)} cron PATCHes, {plan_seconds * 1000:.0f} ms")
    print(f"start minutes: max {max(per_minute.values())} per minute (fair {fair_minute:.2f}), "
          f"max {max(per_slice.values())} per 10 minutes (fair {fair_slice:.2f}, "
          f"ratio {max(per_slice.values()) / fair_slice:.2f}), min {min(per_slice.values())} per 10 minutes, "
          f"{len(per_minute)} distinct minutes, {outside} outside the window")
    print("UTC hours used: " + ", ".join(f"{h:02d}h:{c}" for h, c in sorted(utc_hours.items())))
    if outside:
        failures.append(f"{outside} crons outside the window")
    if max(per_slice.values()) > math.ceil(1.2 * fair_slice) + 1:
        failures.append("a 10-minute slice holds more than 1.2 x its fair share")

    second = plan_schedule(bps, window=window, on=DAY, tz=tz, devlake_tz=utc)
    print(f"second plan: {len(second.changes)} PATCHes, {second.unchanged} unchanged")
    if second.changes:
        failures.append("the second plan is not empty")

    for added in (1, 10, 100):
        moved = churn(n, added, window.minutes)
        print(f"adding {added} repositories moves {moved} existing blueprints ({100 * moved / n:.2f} %)")
        if added == 1 and n >= 5000 and moved > n // 100:
            failures.append("adding one repository moved more than 1 % of blueprints")

    bps[0]["cronConfig"] = "45 1 * * *"  # a cron set by hand in config-ui
    moved_plan = plan_schedule(bps, window=new_window, on=DAY, tz=tz, devlake_tz=utc)
    before = {bp["id"]: bp["cronConfig"] for bp in bps}
    apply(bps, moved_plan)
    moved = sum(1 for bp in bps if bp["cronConfig"] != before[bp["id"]])
    print(f"window change to {new_window}: {len(moved_plan.changes)} PATCHes for {moved} moved blueprints, "
          f"{moved_plan.unchanged} stay (same minute), {len(moved_plan.kept)} hand-set kept")
    if len(moved_plan.changes) != moved or moved + moved_plan.unchanged != n - 1 or len(moved_plan.kept) != 1:
        failures.append("the window change plans something else than one PATCH per moved blueprint")
    if bps[0]["cronConfig"] != "45 1 * * *":
        failures.append("the hand-set cron was changed")
    after = plan_schedule(bps, window=new_window, on=DAY, tz=tz, devlake_tz=utc)
    if after.changes:
        failures.append("the plan after the window change is not empty")

    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
