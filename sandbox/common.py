"""Shared helpers for the fake DevLake: errors, JSON, time and cron handling.

Section numbers (§) refer to `docs/devlake-api.md`.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone

ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time as encoding/json prints it
PENDING_STATUSES = ("TASK_CREATED", "TASK_RERUN", "TASK_RUNNING")  # §9.3 "Pending"
QUEUED_STATUSES = ("TASK_CREATED", "TASK_RERUN")
# What dequeuePipeline takes (backend/server/services/pipeline.go): queued, rerun or resumed.
WAITING_STATUSES = ("TASK_CREATED", "TASK_RERUN", "TASK_RESUME")
# Everything in DevLake's queue, waiting or running: what the daemon's budget counts (§9.5).
IN_QUEUE_STATUSES = ("TASK_CREATED", "TASK_RERUN", "TASK_RUNNING", "TASK_RESUME")
FINISHED_STATUSES = ("TASK_PARTIAL", "TASK_CANCELLED", "TASK_FAILED", "TASK_COMPLETED")
SUCCESS_BODY = {"code": 0, "success": True, "message": "success", "causes": None, "data": None}


class ApiError(Exception):
    """An error answer. `plain` gives gin's text 404; `empty` gives a body-less answer (§1.3)."""

    def __init__(self, status: int, message: str = "", *, data=None, plain: bool = False,
                 empty: bool = False, causes: list[str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.data = data
        self.plain = plain
        self.empty = empty
        self.causes = causes


def not_routed() -> ApiError:
    """gin's default answer for an unknown route or a wrong method (§1.3)."""
    return ApiError(404, "404 page not found", plain=True)


def error_body(message: str, data=None, causes=None) -> dict:
    return {"code": 0, "success": False, "message": message, "causes": causes, "data": data}


def fmt_time(dt: datetime | None) -> str | None:
    """RFC 3339 in UTC with `Z`, fraction trimmed like Go's RFC3339Nano."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    dt = dt.astimezone(UTC)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        text += f".{dt.microsecond:06d}".rstrip("0")
    return text + "Z"


def _json_default(obj):
    if isinstance(obj, datetime):
        return fmt_time(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(obj) -> bytes:
    """Compact JSON like Go's encoding/json; datetimes become RFC 3339 UTC strings."""
    return json.dumps(obj, separators=(",", ":"), default=_json_default, ensure_ascii=False).encode()


def to_utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def go_add_months(dt: datetime, months: int) -> datetime:
    """Go's time.AddDate(0, months, 0): day overflow rolls into the next month."""
    total = dt.year * 12 + (dt.month - 1) + months
    year, month = divmod(total, 12)
    first = dt.replace(year=year, month=month + 1, day=1)
    return first + timedelta(days=dt.day - 1)


def six_months_ago_midnight(now: datetime) -> datetime:
    """The default blueprint timeAfter: local midnight six months ago (§7, backend/server/services/project.go)."""
    local = go_add_months(now, -6)
    return to_utc(local.replace(hour=0, minute=0, second=0, microsecond=0))


# --- time parsing -----------------------------------------------------------------------------

_D = r"(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})"
_T = r"(?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})"
_RFC3339 = re.compile(rf"^{_D}T{_T}(?P<frac>\.\d{{1,9}})?(?P<off>Z|[+-]\d{{2}}:\d{{2}})$")


def _build(match: re.Match) -> datetime:
    parts = match.groupdict()
    frac, offset = parts.get("frac"), parts.get("off")
    micro = int((frac or ".0")[1:7].ljust(6, "0"))
    tz = UTC
    if offset and offset != "Z":
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:4])))
    return datetime(int(parts["y"]), int(parts["mo"]), int(parts["d"]), int(parts.get("h") or 0),
                    int(parts.get("mi") or 0), int(parts.get("s") or 0), micro, tzinfo=tz)


def parse_rfc3339(text) -> datetime:
    """Strict RFC 3339, as JSON-bound bodies require (§1.5). Raises ValueError."""
    match = _RFC3339.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f'parsing time "{text}" as RFC 3339 failed')
    return _build(match)


# (matcher, layout) pairs in the order of DateTimeFormats in
# backend/core/models/common/iso8601time.go: the first matcher that hits picks the layout, and
# failing that layout is an error (§1.5). Go accepts a fraction after the seconds even when the
# layout has none, except where the layout fixes its digit count
# (hence a 9-digit fraction with a numeric offset fails).
_MAP_FORMATS = [(re.compile(m), re.compile(f)) for m, f in [
    (r"[+-]\d{4}$", rf"^{_D}T{_T}(?P<frac>\.\d+)?(?P<off>[+-]\d{{4}})$"),
    (r"\d{6}[+-]\d{2}:\d{2}$", rf"^{_D}T{_T}(?P<frac>\.\d{{6}})(?P<off>[+-]\d{{2}}:\d{{2}})$"),
    (r"\d{3}[+-]\d{2}:\d{2}$", rf"^{_D}T{_T}(?P<frac>\.\d{{3}})(?P<off>[+-]\d{{2}}:\d{{2}})$"),
    (r"[+-]\d{2}:\d{2}$", rf"^{_D}T{_T}(?P<frac>\.\d+)?(?P<off>[+-]\d{{2}}:\d{{2}})$"),
    (r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$", rf"^{_D} {_T}(?P<frac>\.\d+)?$"),
    (r"[+-]\d{2}-\d{2}$", rf"^{_D}$"),
    (r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}$", rf"^{_D} (?P<h>\d{{2}}):(?P<mi>\d{{2}})$"),
]]


def parse_map_time(text: str) -> datetime:
    """common.ConvertStringToTime, used for PATCH bodies (§1.5, quirk #22). Raises ValueError."""
    for matcher, layout in _MAP_FORMATS:
        if matcher.search(text):
            match = layout.match(text)
            if not match:
                raise ValueError(f'parsing time "{text}": extra text or wrong layout')
            return _build(match)
    return parse_rfc3339(text)


# --- cron (robfig/cron ParseStandard) ---------------------------------------------------------

_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
_MONTHS = {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
_DOWS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
_BOUNDS = [(0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, _MONTHS), (0, 6, _DOWS)]


def _cron_value(text: str, names: dict) -> int:
    if text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise ValueError(f"failed to parse int from {text}")
    return int(text)


def _check_cron_field(field: str, low: int, high: int, names: dict) -> None:
    for item in field.split(","):
        rng, _, step = item.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            raise ValueError(f"step of range should be a positive number: {item}")
        if rng in ("*", "?"):
            continue
        start_text, _, end_text = rng.partition("-")
        start = _cron_value(start_text, names)
        end = _cron_value(end_text, names) if end_text else start
        if start < low or end > high or start > end:
            raise ValueError(f"value out of range ({low}-{high}): {item}")


def validate_cron(expr) -> None:
    """Raise ValueError unless `expr` parses with cron.ParseStandard (§8.1)."""
    if not isinstance(expr, str) or not expr.strip():
        raise ValueError("empty spec string")
    spec = expr.strip()
    if spec.startswith(("TZ=", "CRON_TZ=")):
        spec = spec.split(None, 1)[1] if " " in spec else ""
    if spec.startswith("@every "):
        if not _DURATION.match(spec[7:].strip()):
            raise ValueError(f"failed to parse duration {spec}")
        return
    if spec.startswith("@"):
        if spec not in _DESCRIPTORS:
            raise ValueError(f"unrecognized descriptor: {spec}")
        return
    fields = spec.split()
    if len(fields) != 5:
        raise ValueError(f"expected exactly 5 fields, found {len(fields)}: [{spec}]")
    for field, (low, high, names) in zip(fields, _BOUNDS, strict=True):
        _check_cron_field(field, low, high, names)


_DESCRIPTOR_SPECS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
                     "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
                     "@hourly": "0 * * * *"}


def _field_values(field: str, low: int, high: int, names: dict) -> set[int]:
    values: set[int] = set()
    for item in field.split(","):
        rng, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if rng in ("*", "?"):
            start, end = low, high
        else:
            start_text, _, end_text = rng.partition("-")
            start = _cron_value(start_text, names)
            end = _cron_value(end_text, names) if end_text else (high if step_text else start)
        values.update(range(start, end + 1, step))
    return values


def _star(field: str) -> bool:
    """robfig/cron's starBit (parser.go getRange): some item is `*` or `?` with no step above 1."""
    for item in field.split(","):
        rng, _, step_text = item.partition("/")
        if rng in ("*", "?") and (not step_text or int(step_text) <= 1):
            return True
    return False


def cron_matches(expr: str, at: datetime) -> bool:
    """Does robfig/cron fire `expr` in the minute `at` (read in UTC, as DevLake's scheduler does,
    backend/server/services/init.go)? Day of month and day of week: if either is `*`, both must
    match; if both are restricted, either may (the cron library's spec.go `dayMatches`, where a
    field is `*` when it carries the starBit: `*/1` and `1,*` do, `*/2` does not). `@every` and
    `TZ=` specs are not simulated (False)."""
    spec = _DESCRIPTOR_SPECS.get(expr.strip(), expr.strip())
    fields = spec.split()
    if len(fields) != 5 or spec.startswith(("@", "TZ=", "CRON_TZ=")):
        return False
    at = to_utc(at)
    minute, hour, dom, month, dow = (_field_values(f, low, high, names)
                                     for f, (low, high, names) in zip(fields, _BOUNDS, strict=True))
    if at.minute not in minute or at.hour not in hour or at.month not in month:
        return False
    dom_ok, dow_ok = at.day in dom, (at.isoweekday() % 7) in dow
    if _star(fields[2]) or _star(fields[4]):
        return dom_ok and dow_ok
    return dom_ok or dow_ok


# --- misc -------------------------------------------------------------------------------------

def sanitize_string(value: str) -> str:
    """utils.SanitizeString: keep 2 (or 1) characters at each end, mask the middle."""
    if not value:
        return value
    length = len(value)
    if length <= 2:
        return "*" * length
    keep = 1 if length <= 5 else 2
    return value[:keep] + "*" * (length - 2 * keep) + value[length - keep:]


def query_int(query: dict, key: str, default: int, *, empty_body: bool = False) -> int:
    """A `form:"..."` integer query parameter; non-integers are a 400 bind error."""
    raw = query.get(key)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, f'strconv.ParseInt: parsing "{raw}": invalid syntax', empty=empty_body) from None


def paginate(page: int, page_size: int, default_size: int = 50) -> tuple[int, int]:
    """services.Pagination: page < 1 → 1, pageSize < 1 → default. Returns (offset, limit)."""
    page = page if page >= 1 else 1
    size = page_size if page_size >= 1 else default_size
    return (page - 1) * size, size


def weak_bool(value, key: str) -> bool:
    """mapstructure WeaklyTypedInput for bool fields."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", ""):
        return value.lower() in ("true", "1")
    raise ApiError(500, f"'{key}' expected type 'bool', got unconvertible type '{type(value).__name__}'")


def weak_int(value, key: str) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise ApiError(500, f"'{key}' expected type 'int', got unconvertible type '{type(value).__name__}'")

