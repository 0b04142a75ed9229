"""Blueprint time rules: what `timeAfter` should be, and when to change it."""
from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

from utils.datetime import localize

SATURDAY = 5  # datetime.weekday()


def previous_saturday(now: datetime, tz: tzinfo) -> datetime:
    """00:00:00 in `tz` of the most recent Saturday strictly before `now`'s local date.

    On a Saturday this is the Saturday seven days earlier, so a run on any day
    of one Sunday-to-Saturday week gives the same answer.
    """
    local = now.astimezone(tz)
    days_back = (local.weekday() - SATURDAY) % 7 or 7
    day = (local - timedelta(days=days_back)).date()
    midnight = datetime(day.year, day.month, day.day)
    return localize(midnight, tz)


def time_after_change(current: datetime | None, target: datetime) -> str:
    """Decide what to do with a blueprint's timeAfter: 'unchanged', 'set' or 'keep_later'.

    Compares instants, never strings. Moving timeAfter earlier makes DevLake
    re-collect every scope from scratch, so a value already later than the
    target (set by hand, or by a run with a clock ahead) is kept.
    """
    if current is None:
        return "set"
    if current == target:
        return "unchanged"
    if current > target:
        return "keep_later"
    return "set"
