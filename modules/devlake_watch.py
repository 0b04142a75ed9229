"""The automation daemon's watch on DevLake between runs: is DEVLAKE_URL reachable right now?

Without it a daemon started with a wrong DEVLAKE_URL logs its next run at 18:00 and looks healthy
until that run fails. The daemon checks at start, after a run that found DevLake unusable, and
every CHECK_EVERY_SECONDS while the last check failed; the verdict lives in STATE_DIR so that
`manage_projects.py --healthcheck` (Docker's HEALTHCHECK, another process) reports it.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import structlog

from modules.reachability import Unreachable
from utils.statefile import atomic_write_json

UNREACHABLE_FILE = "automation_devlake_unreachable.json"
CHECK_EVERY_SECONDS = 300.0

log = structlog.get_logger("automation")


class DevLakeWatch:
    """Runs `check` when due and records a failing verdict in STATE_DIR (removed once it passes)."""

    def __init__(self, check: Callable[[], Unreachable | None], state_dir: Path, clock: Callable[[], datetime]):
        self.check, self.path, self.clock = check, Path(state_dir) / UNREACHABLE_FILE, clock
        self.next_check: datetime | None = None  # None: no check pending (the last one passed)

    def run_check(self) -> bool:
        """Check now; True when DevLake answered."""
        problem = self.check()
        now = self.clock()
        if problem is None:
            if self.next_check is not None or self.path.exists():
                log.info("devlake_reachable", devlake_was_unreachable=True)
            self.next_check = None
            self.path.unlink(missing_ok=True)
            return True
        self.next_check = now + timedelta(seconds=CHECK_EVERY_SECONDS)
        log.error("devlake_unreachable", kind=problem.kind, hint=problem.message,
                  next_check=self.next_check.isoformat())
        try:
            atomic_write_json(self.path, {"kind": problem.kind, "message": problem.message,
                                          "checked_at": now.isoformat()})
        except OSError as exc:
            log.warning("devlake_unreachable_not_recorded", path=str(self.path), error=str(exc))
        return False

    def check_if_due(self) -> bool:
        """Check if a check is due; True if one ran."""
        if self.next_check is None or self.clock() < self.next_check:
            return False
        self.run_check()
        return True

    def seconds_until_check(self) -> float | None:
        return None if self.next_check is None else max(0.0, (self.next_check - self.clock()).total_seconds())


def unreachable_reason(state_dir: Path) -> str | None:
    """The last check's failure ("<message> (checked at <time>)"), or None if it passed or never ran."""
    try:
        data = json.loads((Path(state_dir) / UNREACHABLE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return "DevLake unreachable at the last check (its record is unreadable)"
    if not isinstance(data, dict):
        return "DevLake unreachable at the last check"
    return f"{data.get('message') or 'DevLake unreachable'} (checked at {data.get('checked_at')})"
