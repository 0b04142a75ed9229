"""What one automation run carries around: the client, settings, clock, tally and plan."""
from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from config import Settings
from modules.api import DevLakeClient


@dataclass
class RunSummary:
    """Counts of what a run did; the entry point logs it as one line and picks the exit code."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    actions: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def as_log_fields(self) -> dict:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                "failed": self.failed, "actions": dict(sorted(self.actions.items()))}


@dataclass(frozen=True)
class PlannedChange:
    """A write the run made, or (with --dry-run) would make."""

    kind: str      # scope, scope_config, project, blueprint, pipeline
    action: str    # create, attach_scope_config, set_time_after, trigger, rerun, ...
    target: str
    detail: str = ""

    def render(self) -> str:
        return f"{self.action:<20} {self.kind:<12} {self.target}" + (f"  ({self.detail})" if self.detail else "")


@dataclass
class RunContext:
    api: DevLakeClient
    settings: Settings
    now: datetime
    dry_run: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    summary: RunSummary = field(default_factory=RunSummary)
    plan: list[PlannedChange] = field(default_factory=list)
    installed_plugins: list[str] | None = None  # from the pre-flight GET /plugins, to not ask twice
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def log(self):
        return structlog.get_logger("automation")

    def record(self, outcome: str, action: str | None = None, change: PlannedChange | None = None,
               failure: str | None = None, count: int = 1) -> None:
        """Count `count` items' outcome (created/updated/unchanged/failed), thread-safely."""
        with self._lock:
            setattr(self.summary, outcome, getattr(self.summary, outcome) + count)
            if action:
                self.summary.actions[action] += 1
            if change:
                self.plan.append(change)
            if failure:
                self.summary.failures.append(failure)
