"""When a new blueprint's first scheduled pipeline is due: the rule behind the "scheduled" state.

DevLake runs a blueprint from its `cronConfig` with robfig/cron v3 (`cron.ParseStandard`) in UTC,
whatever the server's TZ (`backend/server/services/init.go`; `docs/devlake-api.md` §8.1, §9.5).
A project whose blueprint is enabled, not manual and managed by the automation, and that has
never collected, is only waiting while that first cron minute after the blueprint's `createdAt`
(plus STUCK_AFTER_MINUTES) has not passed (status_model.py). Pure functions, no clock.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

import pytz

from modules.projects import MANAGED_LABEL
from utils.cron import DAYS, DESCRIPTORS, MONTHS
from utils.datetime import parse_devlake_time

SEARCH_DAYS = 4 * 366 + 1  # "0 0 29 2 *" fires once in four years; never means "not scheduled"
BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))  # minute hour dom month dow (7 = Sunday too)


def _value(text: str, names: dict[str, int]) -> int:
    return names[text.lower()] if text.lower() in names else int(text)


def _field(text: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    """One cron field's values (robfig parser.go getRange): `*`, `?`, n, a-b, with /step; lists."""
    values: set[int] = set()
    for item in text.split(","):
        span, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if span in ("*", "?"):
            start, end = low, high
        else:
            first, _, last = span.partition("-")
            start = _value(first, names)
            end = _value(last, names) if last else (high if step_text else start)
        if not low <= start <= end <= high or step < 1:
            raise ValueError(f"cron field {text!r} out of range")
        values.update(range(start, end + 1, step))
    return values


def next_run(cron: str, after: datetime) -> datetime | None:
    """The first minute strictly after `after` at which `cron` fires (aware, UTC); None when
    `cron` is not a schedule this module reads (`manual`, `@every`, a typo)."""
    spec, zone = cron.strip(), cast(pytz.BaseTzInfo, pytz.utc)
    if spec.startswith(("CRON_TZ=", "TZ=")):  # robfig accepts a zone prefix (parser.go Parse)
        prefix, _, spec = spec.partition(" ")
        try:
            zone = pytz.timezone(prefix.split("=", 1)[1])
        except pytz.UnknownTimeZoneError:
            return None
    fields = DESCRIPTORS.get(spec.strip(), spec).split()
    if len(fields) != 5:
        return None
    try:
        minutes, hours, doms, months, dows = (
            _field(f, low, high, MONTHS if i == 3 else DAYS if i == 4 else {})
            for i, (f, (low, high)) in enumerate(zip(fields, BOUNDS, strict=True)))
    except (ValueError, KeyError):
        return None
    dows = {d % 7 for d in dows}
    # dayMatches in robfig spec.go: a `*` in either day field means both must match.
    either = not (fields[2].startswith(("*", "?")) or fields[4].startswith(("*", "?")))
    local = after.astimezone(zone).replace(second=0, microsecond=0, tzinfo=None) + timedelta(minutes=1)
    for offset in range(SEARCH_DAYS):
        day = (local + timedelta(days=offset)).date()
        dom_ok, dow_ok = day.day in doms, day.isoweekday() % 7 in dows
        if day.month not in months or not ((dom_ok or dow_ok) if either else (dom_ok and dow_ok)):
            continue
        floor = (local.hour, local.minute) if offset == 0 else (0, 0)
        for hour in sorted(h for h in hours if h >= floor[0]):
            for minute in sorted(m for m in minutes if (hour, m) >= floor):
                naive = datetime(day.year, day.month, day.day, hour, minute)
                return (zone.localize(naive) if zone is not pytz.utc else naive.replace(tzinfo=UTC)).astimezone(UTC)
    return None


def first_run(blueprint: object) -> float | None:
    """Epoch seconds of a managed blueprint's first cron run after its creation; None when it is
    not one DevLake will start by itself (disabled, manual, unmanaged, unreadable)."""
    if not isinstance(blueprint, dict) or not blueprint.get("enable") or blueprint.get("isManual"):
        return None
    if MANAGED_LABEL not in (blueprint.get("labels") or []):
        return None
    try:
        created = parse_devlake_time(blueprint.get("createdAt"))
    except (TypeError, ValueError):
        return None
    cron = blueprint.get("cronConfig")
    if created is None or not isinstance(cron, str):
        return None
    moment = next_run(cron, created)
    return None if moment is None else moment.timestamp()
