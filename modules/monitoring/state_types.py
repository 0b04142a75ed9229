"""The types a loaded monitor state must have (issue 21): a state file that parses but holds a
wrong-typed value (`"failures": "abc"`, a NaN floor) is as unusable as a torn one.

Each row's fields are checked against their dataclass annotations in `modules/monitoring/state.py`,
so a field added there is checked without a change here (an annotation this module does not know
is not checked). `problem(state)` names the first bad value, or returns None.
"""
from __future__ import annotations

import math
from dataclasses import fields

from modules.monitoring.state import FailureEvent, InFlight, MonitorState, ProjectStats, Unexplained


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_CHECKS = {
    "float": _number,
    "int": _integer,
    "str": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
}


def _fits(annotation: str, value: object) -> bool | None:
    """Whether `value` fits `annotation` ("float", "str | None", ...); None: not an annotation we check."""
    parts = [p.strip() for p in annotation.split("|")]
    if "None" in parts and value is None:
        return True
    known = [_CHECKS[p] for p in parts if p in _CHECKS]
    if len(known) != len([p for p in parts if p != "None"]):
        return None
    return any(check(value) for check in known)


def _row_problem(kind: type, row: object, where: str) -> str | None:
    for f in fields(kind):
        value = getattr(row, f.name)
        if _fits(str(f.type), value) is False:
            return f"{where}: {f.name} is {value!r:.60}, not {f.type}"
    return None


def problem(state: MonitorState) -> str | None:
    """The first value of `state` that does not have its documented type, or None."""
    if state.watermark is not None and (not _integer(state.watermark) or state.watermark < 0):
        return f"watermark is {state.watermark!r:.60}, not a non-negative integer"
    if state.floor is not None and not _number(state.floor):
        return f"floor_epoch is {state.floor!r:.60}, not a finite number"
    rows: list[tuple[type, object, str]] = []
    rows += [(FailureEvent, e, f"event {k!r:.60}") for k, e in state.events.items()]
    rows += [(ProjectStats, p, f"project {k!r:.60}") for k, p in state.projects.items()]
    rows += [(InFlight, i, f"in-flight pipeline {k!r:.60}") for k, i in state.in_flight.items()]
    rows += [(Unexplained, u, f"unexplained {k!r:.60}") for k, u in state.unexplained.items()]
    for kind, row, where in rows:
        found = _row_problem(kind, row, where)
        if found:
            return found
    for name in state.projects:
        if not isinstance(name, str):
            return f"project name {name!r:.60} is not a string"
    for key, count in state.reason_counts.items():
        if not _number(count):
            return f"reason count {key!r:.60} is {count!r:.60}, not a finite number"
    return None
