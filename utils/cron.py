"""Which cron expressions DevLake accepts as a blueprint's cronConfig.

DevLake checks cronConfig with robfig/cron v3's `cron.ParseStandard`
(backend/server/services/blueprint.go, validateBlueprintAndMakePlan), and a value it
refuses is a 400 on every PATCH. `check_cron` accepts what that parser accepts: five
fields (minute 0-59, hour 0-23, day of month 1-31, month 1-12 or jan-dec, day of week
0-6 or sun-sat), each a comma-separated list of `*`, `?`, `N`, `N-M`, with an optional
`/step` (`N/step` meaning N to the field's maximum), names in any case; or a descriptor
(`@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`,
`@every <Go duration>`). The parser's `CRON_TZ=` prefix is refused here: our crons are
written in DEVLAKE_TIMEZONE (docs/configuration.md). The monitor's first_run.py expands the
fields of a blueprint's cron with the same reading (`cron_fields`), so both agree on what is valid.
"""
from __future__ import annotations

import re
from typing import NamedTuple

MONTHS = {name: i for i, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
DAYS = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
Field = tuple[str, int, int, dict[str, int] | None]  # name, minimum, maximum, names (robfig spec.go bounds)
FIELDS: tuple[Field, ...] = (("minute", 0, 59, None), ("hour", 0, 23, None), ("day of month", 1, 31, None),
                           ("month", 1, 12, MONTHS), ("day of week", 0, 6, DAYS))
# robfig/cron's descriptors and the five fields each stands for (parser.go parseDescriptor);
# `@every` has no fixed minute and is handled apart.
DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
               "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
EVERY = "@every "
# Go's time.ParseDuration: units, in the order that lets "ms" win over "m".
DURATION_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9,
                  "m": 60 * 10**9, "h": 3600 * 10**9}
_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?(ns|us|µs|μs|ms|s|m|h)?")
_GO_INT = re.compile(r"[+-]?[0-9]+")  # strconv.Atoi: ASCII digits, an optional sign
MAX_INT64 = 2**63 - 1


class CronError(ValueError):
    """Why robfig/cron's standard parser would refuse the expression."""


class FieldValues(NamedTuple):
    """One cron field as robfig/cron reads it: its values, and its starBit (an item `*` or `?`
    without a step above 1, parser.go getRange), which decides how the two day fields combine
    (spec.go dayMatches)."""
    values: frozenset[int]
    star: bool


def check_cron(spec: str) -> None:
    """Raise CronError unless DevLake's cron parser accepts `spec` (see the module's docstring)."""
    if spec.startswith(("TZ=", "CRON_TZ=")):
        raise CronError("a time zone prefix is not supported (crons are in DEVLAKE_TIMEZONE)")
    if spec.startswith("@"):
        _check_descriptor(spec)
        return
    cron_fields(spec)


def cron_fields(spec: str) -> list[FieldValues]:
    """The values of the five fields of `spec` (no prefix, no descriptor), as ParseStandard reads
    them: the one reading both BLUEPRINT_CRON's check and the monitor's next start use."""
    parts = spec.split()
    if len(parts) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(parts)}")
    return [field_values(text, field) for text, field in zip(parts, FIELDS, strict=True)]


def field_values(text: str, field: Field) -> FieldValues:
    """The values one cron field stands for (`field` one of FIELDS), as robfig/cron v3's parser.go
    getField reads it; CronError naming the field when that parser refuses it."""
    name, low, high, names = field
    values: set[int] = set()
    star = False
    try:
        for expr in (e for e in text.split(",") if e):  # Go's FieldsFunc skips empty items
            span, span_star = _range(expr, low, high, names)
            values.update(span)
            star = star or span_star
    except CronError as exc:
        raise CronError(f"{name} field {text!r}: {exc}") from None
    return FieldValues(frozenset(values), star)


def _range(expr: str, low: int, high: int, names: dict[str, int] | None) -> tuple[range, bool]:
    # robfig/cron v3 parser.go getRange, step by step
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    if low_and_high[0] in ("*", "?"):
        start, end = low, high
    else:
        start = _int_or_name(low_and_high[0], names)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _int_or_name(low_and_high[1], names)
        else:
            raise CronError(f"too many hyphens in {expr!r}")
    step = 1
    if len(range_and_step) == 2:
        step = _unsigned(range_and_step[1])
        if len(low_and_high) == 1:  # "N/step" means "N-max/step"
            end = high
    elif len(range_and_step) > 2:
        raise CronError(f"too many slashes in {expr!r}")
    if start < low:
        raise CronError(f"{start} is below the minimum {low}")
    if end > high:
        raise CronError(f"{end} is above the maximum {high}")
    if start > end:
        raise CronError(f"the range {start}-{end} runs backwards")
    if step == 0:
        raise CronError(f"the step in {expr!r} must be positive")
    return range(start, end + 1, step), low_and_high[0] in ("*", "?") and step == 1


def _int_or_name(text: str, names: dict[str, int] | None) -> int:
    if names and text.lower() in names:
        return names[text.lower()]
    return _unsigned(text)


def _unsigned(text: str) -> int:
    if not _GO_INT.fullmatch(text) or abs(int(text)) > MAX_INT64:
        raise CronError(f"{text!r} is not a number")
    if int(text) < 0:
        raise CronError(f"{text!r} is negative")
    return int(text)


def _check_descriptor(spec: str) -> None:
    if spec in DESCRIPTORS:
        return
    if spec.startswith(EVERY):
        go_duration_ns(spec[len(EVERY):])
        return
    raise CronError(f"unknown descriptor {spec!r}")


def go_duration_ns(text: str) -> int:
    """Nanoseconds of a Go duration (`1h30m`, `90s`, `1.5h`), as time.ParseDuration reads it."""
    s = text
    negative = s[:1] == "-"
    if s[:1] in ("-", "+"):
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise CronError(f"{text!r} is not a duration")
    total, pos = 0, 0
    while pos < len(s):
        match = _DURATION_PART.match(s, pos)
        whole, fraction, unit = match.groups() if match else ("", None, None)
        if not match or not (whole or fraction) or unit is None:
            raise CronError(f"{text!r} is not a duration such as 1h30m")
        scale = DURATION_UNITS[unit]
        total += int(whole or 0) * scale + int(fraction or 0) * scale // 10 ** len(fraction or "")
        if total > MAX_INT64 + negative:
            raise CronError(f"{text!r} is too long a duration")
        pos = match.end()
    return -total if negative else total
