"""Time helpers. Nothing here reads the clock: callers pass an aware `now`."""
from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo

_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_devlake_time(value: str | None) -> datetime | None:
    """Parse a DevLake timestamp (RFC 3339, any offset, up to 9 fraction digits) to an aware datetime.

    DevLake answers in whatever offset its server or database uses, so the
    same instant may come back as +07:00 or Z (`docs/devlake-api.md` §0 #22).
    Raises ValueError for text that is not a timestamp.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    text = _FRACTION.sub(r"\1", value.strip())
    parsed = datetime.fromisoformat(text.replace(" ", "T", 1))
    if parsed.tzinfo is None:
        # DevLake reads an offset-less "YYYY-MM-DD HH:MM:SS" as UTC (§1.5).
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def format_devlake_time(moment: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS±HH:MM`: the one form every DevLake endpoint accepts (§1.5)."""
    if moment.tzinfo is None:
        raise ValueError("format_devlake_time needs an aware datetime")
    return moment.replace(microsecond=0).isoformat()


def localize(naive: datetime, tz: tzinfo) -> datetime:
    """`naive` as a wall-clock time in `tz`. pytz zones need `localize()` for the right offset
    (`replace(tzinfo=...)` would give them the zone's first, LMT, offset); a time that does not
    exist or exists twice in a DST change takes the standard-time offset."""
    localize_method = getattr(tz, "localize", None)
    if localize_method is not None:
        return localize_method(naive, is_dst=False)
    return naive.replace(tzinfo=tz)
