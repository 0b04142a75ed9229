"""Collection schedules of managed blueprints: one daily minute each, spread over a window.

Pure functions (no HTTP, no clock): the planner passes the blueprints it read, the settings and
the run's local date, and gets back the cron PATCHes to make and the hand-set crons it keeps.

Ownership is read from DevLake alone, so a lost state directory changes nothing: the daemon
writes each cron together with a blueprint label recording it (`devlake-automation/cron:30_2_*_*_*`,
spaces as `_`), in the same PATCH (labels are a plain string list, replaced whole, §8.1/§8.2 of
`docs/devlake-api.md`). A managed blueprint's cron belongs to the daemon when

- it equals the cron its label records (the daemon set both, nobody changed the cron since), or
- it has no such label and still has DevLake's default `0 0 * * *`
  (`backend/server/services/project.go` creates every project's blueprint with it), or
- it has no such label and equals `BLUEPRINT_CRON` (blueprints of daemon versions before labels).

Anything else (including a blueprint switched to manual by hand) was set by hand and is kept.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from config import MINUTES_PER_DAY, CollectionWindow

DEVLAKE_DEFAULT_CRON = "0 0 * * *"  # backend/server/services/project.go
CRON_LABEL_PREFIX = "devlake-automation/cron:"
SLICE_MINUTES = 10   # evenness is promised per 10-minute slice of the window
SLICE_SLACK = 0.10   # a slice holds 10 % over its fair share (of the capacity basis below)
BASIS_STEP = 1.05    # capacities follow the count in 5 % steps, so they rarely change


# --- slots ------------------------------------------------------------------------------------

def _position(key: str) -> float:
    """A stable pseudo-random position in [0, 1) (sha256: the same on every machine and run)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2.0 ** 64


def capacity_basis(n: int) -> int:
    """The smallest ceil(1.05**k) >= n: capacities computed from n itself would change with
    almost every added blueprint, and each change re-settles every overflow chain."""
    if n <= 1:
        return 1
    return max(n, math.ceil(BASIS_STEP ** math.ceil(math.log(n) / math.log(BASIS_STEP) - 1e-9)))


def assign_slots(keys: Iterable[str], window_minutes: int) -> dict[str, int]:
    """Each key's minute offset (0 .. window_minutes-1) from the window's start.

    Consistent hashing with bounded loads, per 10-minute slice: a key prefers the slice its
    hash falls in; a full slice passes it on to the next one. A slice's capacity is its fair
    share of `capacity_basis(n)` plus 10 %, so at most ~16 % over the fair share of n. Inside a
    slice, keys are spaced evenly in hash order. So the spread is even at any size, and adding a
    key moves only a few others (its slice's neighbours, plus one per full slice it overflows
    into) except when the basis steps up (every ~5 % of growth); bench/bench_schedule.py
    measures both.
    """
    ordered = sorted(set(keys), key=lambda k: (_position(k), k))
    if not ordered:
        return {}
    slices = [(s, min(SLICE_MINUTES, window_minutes - s)) for s in range(0, window_minutes, SLICE_MINUTES)]
    n = len(ordered)
    basis = capacity_basis(n)
    caps = [math.ceil(basis * width / window_minutes * (1 + SLICE_SLACK)) for _, width in slices]
    members: list[list[str]] = [[] for _ in slices]
    for key in ordered:  # hash order = preferred-slice order, so overflow is linear probing
        index = min(int(_position(key) * window_minutes) // SLICE_MINUTES, len(slices) - 1)
        while len(members[index]) >= caps[index]:  # sum(caps) >= 1.1 n: always terminates
            index = (index + 1) % len(slices)
        members[index].append(key)
    slots = {}
    for (start, width), keys_in in zip(slices, members, strict=True):
        for rank, key in enumerate(keys_in):
            slots[key] = start + int(width * (rank + 0.5) / len(keys_in))
    return slots


# --- time zones -------------------------------------------------------------------------------

def _localize(naive: datetime, tz) -> datetime:
    if hasattr(tz, "localize"):  # pytz zones need localize() for the right offset
        return tz.localize(naive, is_dst=False)
    return naive.replace(tzinfo=tz)


def zone_shift_minutes(window: CollectionWindow, on: date, tz, devlake_tz) -> int:
    """Minutes to add to a local (`tz`) time of day to get DevLake's (`devlake_tz`) time of day.

    Taken at the window's start on `on` (the run's local date): one shift for the whole window
    keeps its spread intact. A fixed daily cron cannot follow daylight saving time, so in a DST
    zone the crons move by an hour on the first run after each change (README).
    """
    start = _localize(datetime(on.year, on.month, on.day, window.start // 60, window.start % 60), tz)
    local_offset = start.utcoffset()
    devlake_offset = start.astimezone(devlake_tz).utcoffset()
    assert local_offset is not None and devlake_offset is not None
    return int((devlake_offset - local_offset).total_seconds() // 60)


def daily_cron(minute_of_day: int) -> str:
    minute_of_day %= MINUTES_PER_DAY
    return f"{minute_of_day % 60} {minute_of_day // 60} * * *"


def cron_minute_of_day(cron: str) -> int | None:
    """The minute of the day of a plain daily cron `M H * * *`, else None."""
    parts = cron.split()
    if len(parts) != 5 or parts[2:] != ["*", "*", "*"] or not (parts[0].isdigit() and parts[1].isdigit()):
        return None
    minute, hour = int(parts[0]), int(parts[1])
    return hour * 60 + minute if minute < 60 and hour < 24 else None


def slot_crons(keys: Iterable[str], window: CollectionWindow, on: date, tz, devlake_tz) -> dict[str, str]:
    """Each key's daily cron in DevLake's time zone, inside `window` (local), spread evenly."""
    shift = zone_shift_minutes(window, on, tz, devlake_tz)
    return {key: daily_cron(window.start + offset + shift)
            for key, offset in assign_slots(keys, window.minutes).items()}


# --- ownership and the plan -------------------------------------------------------------------

def cron_label(cron: str) -> str:
    return CRON_LABEL_PREFIX + "_".join(cron.split())


def recorded_cron(labels: Iterable[str] | None) -> str | None:
    """The cron the daemon recorded in the blueprint's labels, if any (cron fields have no `_`)."""
    for label in labels or ():
        if label.startswith(CRON_LABEL_PREFIX):
            return label[len(CRON_LABEL_PREFIX):].replace("_", " ")
    return None


def effective_cron(blueprint: dict) -> str:
    """What DevLake schedules: `manual` when isManual, else cronConfig (§8.1)."""
    return "manual" if blueprint.get("isManual") else str(blueprint.get("cronConfig") or "")


def owned_by_daemon(blueprint: dict, forced_cron: str | None = None) -> bool:
    """The ownership rule of this module's docstring."""
    current, recorded = effective_cron(blueprint), recorded_cron(blueprint.get("labels"))
    if recorded is not None:
        return current == recorded
    return current == DEVLAKE_DEFAULT_CRON or (forced_cron is not None and current == forced_cron)


def blueprint_key(blueprint: dict) -> str:
    """What a blueprint's slot is keyed by: its first scope (stable across DevLake ids and project
    renames), else its project name, else its id."""
    for conn in blueprint.get("connections") or []:
        for scope in conn.get("scopes") or []:
            return f"{conn.get('pluginName')}/{conn.get('connectionId')}/{scope.get('scopeId')}"
    return str(blueprint.get("projectName") or f"blueprint/{blueprint.get('id')}")


@dataclass(frozen=True)
class CronChange:
    """One PATCH: set the cron and record it in the labels (other labels kept, §8.2)."""

    blueprint_id: int
    project: str
    current: str
    target: str
    labels: tuple[str, ...]

    def body(self) -> dict:
        return {"cronConfig": self.target, "isManual": self.target == "manual", "labels": list(self.labels)}


@dataclass(frozen=True)
class CronKept:
    """A managed blueprint whose cron was set by hand: left alone, logged once per run."""

    blueprint_id: int
    project: str
    cron: str
    recorded: str | None


@dataclass
class SchedulePlan:
    changes: list[CronChange] = field(default_factory=list)
    kept: list[CronKept] = field(default_factory=list)
    unchanged: int = 0


def plan_schedule(blueprints: Iterable[dict], *, window: CollectionWindow, on: date, tz, devlake_tz,
                  forced_cron: str | None = None) -> SchedulePlan:
    """Which managed blueprints need a cron PATCH. Pass only managed blueprints.

    With `forced_cron` (BLUEPRINT_CRON) every daemon-owned blueprint gets it; otherwise each
    gets its slot in `window`. A blueprint whose cron and label already match is unchanged, so
    a run with nothing new plans nothing. Changes come in blueprint id order.
    """
    plan = SchedulePlan()
    owned = []
    for bp in sorted(blueprints, key=lambda b: b["id"]):
        if owned_by_daemon(bp, forced_cron):
            owned.append(bp)
        else:
            plan.kept.append(CronKept(bp["id"], str(bp.get("projectName") or ""), effective_cron(bp),
                                      recorded_cron(bp.get("labels"))))
    targets = ({blueprint_key(bp): forced_cron for bp in owned} if forced_cron
               else slot_crons((blueprint_key(bp) for bp in owned), window, on, tz, devlake_tz))
    for bp in owned:
        target = targets[blueprint_key(bp)]
        labels = [label for label in bp.get("labels") or [] if not label.startswith(CRON_LABEL_PREFIX)]
        labels.append(cron_label(target))
        if effective_cron(bp) == target and recorded_cron(bp.get("labels")) == target:
            plan.unchanged += 1
            continue
        plan.changes.append(CronChange(bp["id"], str(bp.get("projectName") or ""), effective_cron(bp),
                                       target, tuple(labels)))
    return plan
