#!/usr/bin/env python3
"""Benchmark the collection schedule (modules/cron_slots.py): pure, no DevLake, a second or two.

For --repos managed blueprints (default 5,000, one per repository) still on DevLake's default cron:

* the first plan: how many cron PATCHes, and the distribution of start minutes over
  COLLECTION_WINDOW (max per minute and per 10 minutes against the fair share), also in
  DevLake's zone (UTC), where the crons live;
* a second plan on the result: must be empty (a run with nothing new writes nothing);
* churn: how many existing blueprints a plan moves when 1, 10 and 100 repositories are added
  (slots are sticky: 0), and when 10 % are removed;
* evenness after repeated additions: start at 80 % of --repos and add 2 % ten times (4,000 +
  10 x 100 by default), applying each plan;
* a window change: the PATCHes it plans (one per moved blueprint, nothing else; only the crons
  outside the new window move), with one hand-set cron that must stay;
* planning time.

Exits 1 if a target is missed: max per 10-minute slice over 1.2 x the fair share (+1), after the
first plan or any round of additions; a non-empty second plan; any existing blueprint moved by
adding repositories or removing 10 %; a window change planning anything but one PATCH per moved daemon-owned
blueprint, or leaving a cron outside the new window.
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
from modules.cron_slots import (  # noqa: E402
    DEVLAKE_DEFAULT_CRON,
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


def churn(settled: list[dict], added: int, plan) -> tuple[int, int]:
    """(existing blueprints moved, cron PATCHes) when `added` repositories join `settled`."""
    start = max(bp["id"] for bp in settled) + 1
    result = plan([*settled, *blueprints(added, start)])
    moved = sum(1 for change in result.changes if change.blueprint_id < start)
    return moved, len(result.changes)


def max_slice_ratio(bps: list[dict], window: CollectionWindow, shift: int) -> tuple[int, float, int]:
    """(max per 10-minute slice, fair share, crons outside the window)."""
    _, per_slice, outside = distribution(bps, window, shift)
    return max(per_slice.values()), len(bps) * 10 / window.minutes, outside


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

    def plan(bps_now: list[dict]):
        return plan_schedule(bps_now, window=window, on=DAY, tz=tz, devlake_tz=utc)

    for added in (1, 10, 100):
        moved, writes = churn(bps, added, plan)
        print(f"adding {added} repositories: {moved} existing blueprints move ({100 * moved / n:.2f} %), "
              f"{writes} cron PATCHes")
        if moved:
            failures.append(f"adding {added} repositories moved existing blueprints")
    removed = plan(bps[n // 10:])
    print(f"removing {n // 10} repositories: {len(removed.changes)} blueprints move")
    if removed.changes:
        failures.append("removing 10 % of repositories moved blueprints")

    grown, step = blueprints(n - n // 5), max(1, n // 50)
    apply(grown, plan(grown))
    worst, moved_total = 0.0, 0
    for _ in range(10):
        start = len(grown) + 1
        grown += blueprints(step, start)
        result = plan(grown)
        moved_total += sum(1 for change in result.changes if change.blueprint_id < start)
        apply(grown, result)
        top, fair, outside = max_slice_ratio(grown, window, shift)
        worst = max(worst, top / fair)
        if outside or top > math.ceil(1.2 * fair) + 1:
            failures.append(f"after additions up to {len(grown)}, a 10-minute slice holds {top} (fair {fair:.2f})")
    print(f"{n - n // 5} + 10 x {step} repositories: {moved_total} existing blueprints moved, max per 10 minutes "
          f"{top} (fair {fair:.2f}, ratio {top / fair:.2f}; worst ratio over the rounds {worst:.2f})")

    bps[0]["cronConfig"] = "45 1 * * *"  # a cron set by hand in config-ui
    moved_plan = plan_schedule(bps, window=new_window, on=DAY, tz=tz, devlake_tz=utc)
    before = {bp["id"]: bp["cronConfig"] for bp in bps}
    apply(bps, moved_plan)
    moved = sum(1 for bp in bps if bp["cronConfig"] != before[bp["id"]])
    print(f"window change to {new_window}: {len(moved_plan.changes)} PATCHes for {moved} moved blueprints, "
          f"{moved_plan.unchanged} stay (same minute), {len(moved_plan.kept)} hand-set kept")
    if len(moved_plan.changes) != moved or moved + moved_plan.unchanged != n - 1 or len(moved_plan.kept) != 1:
        failures.append("the window change plans something else than one PATCH per moved blueprint")
    new_shift = zone_shift_minutes(new_window, DAY, tz, utc)
    top, fair, outside = max_slice_ratio(bps[1:], new_window, new_shift)
    print(f"after the window change: max {top} per 10 minutes (fair {fair:.2f}, ratio {top / fair:.2f}), "
          f"{outside} outside the new window")
    if outside or top > math.ceil(1.2 * fair) + 1:
        failures.append("after the window change the crons are not inside the new window, spread")
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
