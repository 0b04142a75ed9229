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

Slots are sticky: a daemon-owned cron already inside the window keeps its minute while its
10-minute slice is not over-full, so a new repository writes only its own blueprint and a window
change moves only the crons outside the new window (`assign_slots`, `plan_schedule`).
"""
from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo

from config import MINUTES_PER_DAY, CollectionWindow
from utils.datetime import localize

DEVLAKE_DEFAULT_CRON = "0 0 * * *"  # backend/server/services/project.go
CRON_LABEL_PREFIX = "devlake-automation/cron:"
SLICE_MINUTES = 10   # evenness is promised per 10-minute slice of the window
KEEP_SLACK = 0.15    # a slice keeps its blueprints up to 15 % over its fair share (README)


# --- slots ------------------------------------------------------------------------------------

def _position(key: str) -> float:
    """A stable pseudo-random position in [0, 1) (sha256: the same on every machine and run)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2.0 ** 64


def _hash_order(key: str) -> tuple[float, str]:
    return _position(key), key


def _home_slice(key: str, window_minutes: int, slice_count: int) -> int:
    """The slice a key's hash points at: where it goes when that slice has room."""
    return min(int(_position(key) * window_minutes) // SLICE_MINUTES, slice_count - 1)


def _slices(window_minutes: int) -> list[tuple[int, int]]:
    """(start offset, width) of each 10-minute slice; the last one may be shorter."""
    return [(s, min(SLICE_MINUTES, window_minutes - s)) for s in range(0, window_minutes, SLICE_MINUTES)]


def _keep_current(ordered: list[str], current: Mapping[str, int], window_minutes: int,
                  slices: list[tuple[int, int]]) -> dict[str, int]:
    """The current offsets that stay: inside the window, and not beyond a slice's (or minute's)
    keep limit of fair share + KEEP_SLACK. The limit sits above the placement target (the fair
    share), so adding or removing a few keys never pushes a slice over it: nothing moves. It is
    reached after a window change that leaves kept slices crowded (an extended window), a large
    removal, or crons the daemon once forced (BLUEPRINT_CRON) landing in one minute; then the keys
    that do not hash to the slice, and the last in hash order, move first."""
    n, count = len(ordered), len(slices)
    minute_limit = math.ceil(n / window_minutes * (1 + KEEP_SLACK)) + 1
    rank = {key: i for i, key in enumerate(ordered)}

    def by_claim(members: list[str], index: int) -> list[str]:
        return sorted(members, key=lambda k: (_home_slice(k, window_minutes, count) != index, rank[k]))

    per_minute: dict[int, list[str]] = {}
    for key in ordered:
        offset = current.get(key)
        if offset is not None and 0 <= offset < window_minutes:
            per_minute.setdefault(offset, []).append(key)
    per_slice: list[list[str]] = [[] for _ in slices]
    for offset, members in per_minute.items():
        per_slice[offset // SLICE_MINUTES] += by_claim(members, offset // SLICE_MINUTES)[:minute_limit]
    kept: dict[str, int] = {}
    for index, ((_, width), members) in enumerate(zip(slices, per_slice, strict=True)):
        limit = math.ceil(n * width / window_minutes * (1 + KEEP_SLACK))
        kept.update((key, current[key]) for key in by_claim(members, index)[:limit])
    return kept


def assign_slots(keys: Iterable[str], window_minutes: int,
                 current: Mapping[str, int] | None = None) -> dict[str, int]:
    """Each key's minute offset (0 .. window_minutes-1) from the window's start.

    Sticky: a key keeps its `current` offset (the daemon's own cron, already inside the window)
    unless its slice or minute is over-full (`_keep_current`), so new keys never move old ones.
    The other keys, in hash order, go to their hash's 10-minute slice while it is below its fair
    share (ceil of n x width / window); the rest then to the slice furthest below it (ties: the
    nearest to their hash slice). Inside a slice, each takes its least-used minute (ties: nearest
    to where its hash points). So every slice ends at most at max(fair share, keep limit), every
    minute near its fair share, and the result depends on the keys and offsets only, not on
    their order. bench/bench_schedule.py measures churn and evenness.
    """
    ordered = sorted(set(keys), key=_hash_order)
    if not ordered:
        return {}
    slices = _slices(window_minutes)
    slots = _keep_current(ordered, current or {}, window_minutes, slices)
    n, count = len(ordered), len(slices)
    target = [math.ceil(n * width / window_minutes) for _, width in slices]
    filled = [0] * count
    for offset in slots.values():
        filled[offset // SLICE_MINUTES] += 1
    members: list[list[str]] = [[] for _ in slices]
    overflow = []
    for key in ordered:
        if key in slots:
            continue
        home = _home_slice(key, window_minutes, count)
        if filled[home] < target[home]:
            members[home].append(key)
            filled[home] += 1
        else:
            overflow.append(key)
    # sum(target) >= n, so the slice with the most room always has some left.
    for key in overflow:
        home = _home_slice(key, window_minutes, count)
        index = min(range(count), key=lambda i: (filled[i] - target[i], abs(i - home), i))
        members[index].append(key)
        filled[index] += 1
    used = Counter(slots.values())
    for (start, width), keys_in in zip(slices, members, strict=True):
        for key in keys_in:
            aim = start + int((_position(key) * window_minutes / SLICE_MINUTES) % 1 * width)
            offset = min(range(start, start + width), key=lambda m: (used[m], abs(m - aim), m))
            slots[key] = offset
            used[offset] += 1
    return slots


# --- time zones -------------------------------------------------------------------------------

def zone_shift_minutes(window: CollectionWindow, on: date, tz: tzinfo, devlake_tz: tzinfo) -> int:
    """Minutes to add to a local (`tz`) time of day to get DevLake's (`devlake_tz`) time of day.

    Taken at the window's start on `on` (the run's local date): one shift for the whole window
    keeps its spread intact. A fixed daily cron cannot follow daylight saving time: after a DST
    change the crons sit an hour off in local time, and the first run moves those that fell out
    of the window (plan_schedule keeps the rest; README).
    """
    start = localize(datetime(on.year, on.month, on.day, window.start // 60, window.start % 60), tz)
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


def slot_crons(keys: Iterable[str], window: CollectionWindow, on: date,
               tz: tzinfo, devlake_tz: tzinfo) -> dict[str, str]:
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


def window_offset(cron: str, window: CollectionWindow, shift: int) -> int | None:
    """Where a daily cron in DevLake's zone falls in the (local) window: its offset from the
    window's start, or None outside it (or not a plain daily cron). Converting back with the
    same shift slot_crons uses is what lets a cron written under another offset stay put."""
    minute = cron_minute_of_day(cron)
    if minute is None:
        return None
    offset = (minute - shift - window.start) % MINUTES_PER_DAY
    return offset if offset < window.minutes else None


def _slot_keys(owned: list[dict]) -> dict[int, str]:
    """Each blueprint's slot key; a key two blueprints share (two projects on one scope) gets the
    later id appended, so each still has its own slot and current cron."""
    keys: dict[int, str] = {}
    seen: set[str] = set()
    for bp in owned:  # id order
        key = blueprint_key(bp)
        keys[bp["id"]] = key if key not in seen else f"{key}#{bp['id']}"
        seen.add(keys[bp["id"]])
    return keys


def plan_schedule(blueprints: Iterable[dict], *, window: CollectionWindow, on: date, tz: tzinfo, devlake_tz: tzinfo,
                  forced_cron: str | None = None) -> SchedulePlan:
    """Which managed blueprints need a cron PATCH. Pass only managed blueprints, as read.

    With `forced_cron` (BLUEPRINT_CRON) every daemon-owned blueprint gets it. Otherwise slots are
    sticky: a blueprint whose cron is the one its label records and lies inside `window` keeps
    it (unless its slice is over-full, `assign_slots`); DevLake's default cron, crons outside the
    window and new blueprints get a slot. So a run with nothing new plans nothing, added
    blueprints move no others, and a window change moves exactly the owned crons outside it.
    Hand-set crons are kept and do not count toward a slice: they are not the daemon's to
    balance, and counting them would move daemon slots whenever someone edits a cron.
    Changes come in blueprint id order.
    """
    plan = SchedulePlan()
    owned = []
    for bp in sorted(blueprints, key=lambda b: b["id"]):
        if owned_by_daemon(bp, forced_cron):
            owned.append(bp)
        else:
            plan.kept.append(CronKept(bp["id"], str(bp.get("projectName") or ""), effective_cron(bp),
                                      recorded_cron(bp.get("labels"))))
    if forced_cron:
        targets = {bp["id"]: forced_cron for bp in owned}
    else:
        targets = _spread_targets(owned, window, on, tz, devlake_tz)
    for bp in owned:
        target = targets[bp["id"]]
        labels = [label for label in bp.get("labels") or [] if not label.startswith(CRON_LABEL_PREFIX)]
        labels.append(cron_label(target))
        if effective_cron(bp) == target and recorded_cron(bp.get("labels")) == target:
            plan.unchanged += 1
            continue
        plan.changes.append(CronChange(bp["id"], str(bp.get("projectName") or ""), effective_cron(bp),
                                       target, tuple(labels)))
    return plan


def _spread_targets(owned: list[dict], window: CollectionWindow, on: date,
                    tz: tzinfo, devlake_tz: tzinfo) -> dict[int, str]:
    """Each owned blueprint's cron by id: its current one where it stays, else its new slot."""
    shift = zone_shift_minutes(window, on, tz, devlake_tz)
    keys = _slot_keys(owned)
    current: dict[str, int] = {}
    for bp in owned:
        cron = effective_cron(bp)
        # only a cron the daemon recorded is sticky; DevLake's default (no label) gets a slot
        offset = window_offset(cron, window, shift) if recorded_cron(bp.get("labels")) == cron else None
        if offset is not None:
            current[keys[bp["id"]]] = offset
    offsets = assign_slots(keys.values(), window.minutes, current)
    targets = {}
    for bp in owned:
        key = keys[bp["id"]]
        stays = current.get(key) == offsets[key]
        # a kept cron is written back verbatim, so an equivalent spelling ("05 15 * * *") is no change
        targets[bp["id"]] = effective_cron(bp) if stays else daily_cron(window.start + offsets[key] + shift)
    return targets
