"""The automation's last-run file, STATE_DIR/automation_last_run.json: its one shape, for both daemons.

manage_projects.py writes it at the end of every real run (not a dry run); blueprint_monitor.py
reads it at each poll and exposes it as the devlake_automation_* metrics (docs/metrics.md).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from utils.statefile import atomic_write_json

FILE = "automation_last_run.json"
# Schema 2 counts each outcome under its own name. Schema 1 (files without "schema", before 1.0.0)
# had no "updated" and "adopted", and its "created" counted all three: read, they show as created.
SCHEMA = 2
# Items of a run by outcome; a scope batch counts each of its scopes.
ITEMS = ("created",     # objects DevLake made for this run
         "updated",     # existing objects changed: a scope config attached, a blueprint patched
         "adopted",     # POSTs whose answer was lost, found by reading back and taken as ours
         "unchanged",   # found as they should be, or nothing to do after all
         "failed",      # still failing after their bounded attempts (and items that could not be planned)
         "deferred",    # triggers held back by MAX_PENDING_PIPELINES: not failures
         # blueprints whose scope left upstream (modules/lifecycle.py)
         "marked",      # labelled missing-since
         "retired",     # disabled and labelled retired
         "restored",    # listed again: labels removed, re-enabled
         "refused")     # missing scopes left unmarked by the mass-absence guard
OUTCOMES = ("success", "partial", "failed")  # exit codes 0, 1, 2


class LastRunUnreadable(ValueError):
    """The file exists but is not a last-run record."""


@dataclass(frozen=True)
class LastRun:
    """One finished run. Times are ISO 8601 in TIMEZONE; `*_epoch` are Unix seconds."""

    started_at: str
    finished_at: str  # when the run finished, not when it started
    finished_at_epoch: float
    duration_seconds: float
    outcome: str
    exit_code: int
    items: Mapping[str, int]
    last_success_epoch: float | None  # the newest run with outcome success, this one or an earlier one

    @property
    def changed(self) -> int:
        """Writes DevLake took: created + updated + adopted."""
        return sum(self.items.get(k, 0) for k in ("created", "updated", "adopted"))

    def to_json(self) -> dict:
        data = asdict(self)
        data.update(data.pop("items"), schema=SCHEMA, changed=self.changed)
        return data


def record(exit_code: int, items: Mapping[str, int], started: datetime, finished: datetime,
           previous: LastRun | None) -> LastRun:
    """The record of a run that started and finished at these (aware) times; pure."""
    outcome = OUTCOMES[exit_code] if 0 <= exit_code < len(OUTCOMES) else "failed"
    epoch = finished.timestamp()
    last_success = epoch if outcome == "success" else (previous.last_success_epoch if previous else None)
    return LastRun(started_at=started.isoformat(), finished_at=finished.isoformat(), finished_at_epoch=epoch,
                   duration_seconds=round((finished - started).total_seconds(), 3), outcome=outcome,
                   exit_code=int(exit_code), items={k: int(items.get(k, 0)) for k in ITEMS},
                   last_success_epoch=last_success)


def write(path: Path, run: LastRun) -> None:
    """Atomically; raises OSError."""
    atomic_write_json(path, run.to_json())


def read(path: Path) -> LastRun | None:
    """The record, or None if there is none yet; raises LastRunUnreadable (and OSError) otherwise."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise LastRunUnreadable(f"not JSON: {exc}") from exc
    return from_json(data)


def from_json(data: object) -> LastRun:
    if not isinstance(data, dict):
        raise LastRunUnreadable("not a JSON object")
    finished = _number(data, "finished_at_epoch")
    if finished is None:
        raise LastRunUnreadable("finished_at_epoch is not a number")
    if not isinstance(data.get("outcome"), str):
        raise LastRunUnreadable("outcome is not a string")
    items = {k: _number(data, k) or 0 for k in ITEMS}
    if data.get("last_success_epoch") is not None and _number(data, "last_success_epoch") is None:
        raise LastRunUnreadable("last_success_epoch is not a number or null")
    return LastRun(started_at=str(data.get("started_at") or ""), finished_at=str(data.get("finished_at") or ""),
                   finished_at_epoch=finished, duration_seconds=_number(data, "duration_seconds") or 0.0,
                   outcome=data["outcome"], exit_code=int(_number(data, "exit_code") or 0),
                   items={k: int(v) for k, v in items.items()}, last_success_epoch=_number(data, "last_success_epoch"))


def _number(data: dict, key: str) -> float | None:
    value = data.get(key, 0 if key in ITEMS else None)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if key in ITEMS:
            raise LastRunUnreadable(f"{key} is not a number")
        return None
    return float(value)
