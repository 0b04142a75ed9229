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
from utils.cron import DESCRIPTORS, CronError, cron_fields
from utils.datetime import parse_devlake_time

SEARCH_DAYS = 4 * 366 + 1  # "0 0 29 2 *" fires once in four years; never means "not scheduled"


def next_run(cron: str, after: datetime) -> datetime | None:
    """The first minute strictly after `after` at which `cron` fires (aware, UTC); None when
    `cron` is not a schedule this module reads (`manual`, `@every`) or one DevLake's parser refuses
    (a typo, day of week 7: utils/cron.py)."""
    spec, zone = cron.strip(), cast(pytz.BaseTzInfo, pytz.utc)
    if spec.startswith(("CRON_TZ=", "TZ=")):  # robfig accepts a zone prefix (parser.go Parse)
        prefix, _, spec = spec.partition(" ")
        try:
            zone = pytz.timezone(prefix.split("=", 1)[1])
        except pytz.UnknownTimeZoneError:
            return None
    spec = DESCRIPTORS.get(spec.strip(), spec)
    try:
        fields = cron_fields(spec)
    except CronError:
        return None
    minutes, hours, doms, months, dows = (f.values for f in fields)
    # dayMatches in robfig spec.go: a `*` in either day field (not `*/2`) means both must match.
    either = not (fields[2].star or fields[4].star)
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
