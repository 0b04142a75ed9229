"""Settings read from environment variables, each declared once.

A setting is one field of a frozen dataclass whose default is `setting(...)`: the
variable's name, its default, its parser (which converts the text, enforces the bounds
and says in a few words what it allows), one line of help and which daemon reads it.
`read_fields` loads every declared field from an environment mapping, collecting each
problem instead of raising; `--help` and the docs' tables (checked by tests/deploy)
show `Var.default_text` and the parser's `allowed`.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

METADATA_KEY = "env_var"
READERS = ("both", "automation", "monitor")


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()  # the default of a setting that has none


class Invalid(ValueError):
    """A parser's own words for what is wrong; each text follows the variable's name as is,
    e.g. `Invalid(" is empty: …")` or `Invalid(f"={shown!r} is not valid: …")`."""

    def __init__(self, *after: str):
        super().__init__(*after)
        self.after = after


@dataclass(frozen=True)
class Parser:
    """Text (stripped, never empty) to value; raises ValueError (or Invalid) when it is not one."""

    convert: Callable[[str], Any]
    allowed: str  # what it accepts, in a few words: error messages, --help, docs

    def __call__(self, text: str) -> Any:
        return self.convert(text)


def _number_text(n: float) -> str:
    return f"{n:g}"


@dataclass(frozen=True)
class Number:
    """An int or float within [low, high] (or (low, high] with `low_open`); nan and inf never are.
    With `zero`, 0 is allowed too and means that (e.g. "never") although it is below `low`."""

    kind: type
    low: float
    high: float
    unit: str = ""
    low_open: bool = False
    zero: str | None = None

    def __call__(self, text: str) -> Any:
        n = self.kind(text)
        if n == 0 and self.zero is not None:
            return n
        above_low = self.low < n if self.low_open else self.low <= n
        if not (above_low and n <= self.high):  # nan compares false: refused too
            raise ValueError(text)
        return n

    @property
    def allowed(self) -> str:
        low, high = _number_text(self.low), _number_text(self.high)
        span = f"more than {low}, at most {high}" if self.low_open else f"{low}–{high}"
        what = ("an integer " if self.kind is int else "") + span + (f" {self.unit}" if self.unit else "")
        return what if self.zero is None else f"0 ({self.zero}) or {what}"


def _as_is(text: str) -> str:
    return text


@dataclass(frozen=True)
class Var:
    """One setting's declaration (see `setting`)."""

    env: str
    default: Any
    parse: Parser | Number
    help: str
    used_by: str
    shown: str | None = None
    secret: bool = False
    show_value: Callable[[str], str] = _as_is

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def default_text(self) -> str:
        """The default as the docs' tables show it (Markdown)."""
        if self.shown is not None:
            return self.shown
        if self.required:
            return "*(required)*"
        if self.default is None:
            return "–"
        return f"`{format_value(self.default)}`"

    def read(self, environ: Mapping[str, str], problems: list[str]) -> Any:
        """The value from `environ`, or the default; a bad value adds its problem and gives the default."""
        text = (environ.get(self.env) or "").strip()
        if not text:  # unset or empty: the default (README: "An empty value means the default")
            if self.required:
                problems.append(f"{self.env} is required: {self.help}")
            return self._fallback
        try:
            return self.parse(text)
        except Invalid as exc:
            problems.extend(self.env + after for after in exc.after)
        except (ValueError, TypeError, KeyError, OverflowError, re.error):
            problems.append(f"{self.env}={self.show_value(text)!r} is not valid: expected {self.parse.allowed}")
        return self._fallback

    @property
    def _fallback(self) -> Any:
        """What a missing or bad value reads as, so later checks can go on: the default, or None."""
        return None if self.required else self.default


def format_value(value: Any) -> str:
    """A default as an operator would type it: 30 not 30.0, true not True, lists comma-separated."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _number_text(value)
    if isinstance(value, tuple):
        return ",".join(format_value(v) for v in value)
    return str(value)


def setting(env: str, default: Any, parse: Parser | Number, help: str, *, used_by: str,
            shown: str | None = None, secret: bool = False, repr: bool = True,
            show_value: Callable[[str], str] = _as_is) -> Any:
    """A dataclass field declaring the setting read from `env`.

    `default` is the value when `env` is unset or empty (REQUIRED: none); `shown` replaces it
    in the docs and --help when the value itself would not say it ("all eight"). `used_by` is
    "both", "automation" or "monitor". A `secret` is masked in the log and never echoed in a
    message; `show_value` is how a bad value appears in one (e.g. a URL without its password).
    """
    if used_by not in READERS:
        raise ValueError(f"{env}: used_by must be one of {READERS}")
    var = Var(env, default, parse, help, used_by, shown, secret, show_value)
    metadata = {METADATA_KEY: var}
    if var.required:
        return field(repr=repr and not secret, metadata=metadata)
    return field(default=default, repr=repr and not secret, metadata=metadata)


def declared(cls: type) -> Iterator[tuple[str, Var]]:
    """(field name, declaration) of every setting of the dataclass `cls`, in declaration order."""
    for f in fields(cls):
        yield f.name, f.metadata[METADATA_KEY]


def read_fields(cls: type, environ: Mapping[str, str], problems: list[str]) -> dict[str, Any]:
    """Every declared field's value from `environ`, each bad value's problem added to `problems`."""
    return {name: var.read(environ, problems) for name, var in declared(cls)}


def help_lines(cls: type, daemon: str, width: int = 100) -> list[str]:
    """--help's listing of the settings `daemon` reads: name, help, default and what is allowed."""
    out = []
    for _, var in declared(cls):
        if var.used_by not in ("both", daemon):
            continue
        text = f"{var.help} [{_help_default(var)}; {var.parse.allowed}]"
        out.extend(_wrap(f"  {var.env:<34} ", text, width))
    return out


def _help_default(var: Var) -> str:
    if var.required:
        return "required"
    shown = var.default_text.replace("`", "")
    if shown == "–":
        return "unset by default"
    if shown.startswith("– (") and shown.endswith(")"):  # "– (off)": what unset means
        return "unset: " + shown[3:-1]
    return "default " + shown


def _wrap(head: str, text: str, width: int) -> list[str]:
    lines, line = [], head
    for word in text.split():
        if len(line) + len(word) > width and len(line) > len(head):
            lines.append(line.rstrip())
            line = " " * len(head)
        line += word + " "
    lines.append(line.rstrip())
    return lines
