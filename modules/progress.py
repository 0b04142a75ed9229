"""Progress of one apply phase: `apply_progress` at most every PROGRESS_EVERY_SECONDS, and at its end.

A first run at thousands of repositories takes minutes; a count of done / total and an estimate
of the time left tell the operator it moves, without a line per change at INFO.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

PROGRESS_EVERY_SECONDS = 10.0

log = structlog.get_logger("automation")


class PhaseProgress:
    """Counts the changes of one phase as workers finish them (thread-safe)."""

    def __init__(self, phase: str, total: int, monotonic: Callable[[], float],
                 every: float = PROGRESS_EVERY_SECONDS):
        self.phase, self.total, self.monotonic, self.every = phase, total, monotonic, every
        self.done = self.failed = 0
        self.started = self._last = monotonic()
        self._lock = threading.Lock()

    def step(self, failed: bool) -> None:
        with self._lock:
            self.done += 1
            self.failed += failed
            now = self.monotonic()
            if now - self._last < self.every or self.done == self.total:
                return  # the end has its own line (finish)
            self._last = now
            fields = self._fields(now)
        log.info("apply_progress", **fields)

    def finish(self) -> None:
        with self._lock:
            fields = self._fields(self.monotonic())
        log.info("apply_progress", **fields)

    def _fields(self, now: float) -> dict:
        elapsed = now - self.started
        left = self.total - self.done
        remaining = round(elapsed / self.done * left, 1) if self.done else None
        return {"phase": self.phase, "done": self.done, "total": self.total, "failed": self.failed,
                "elapsed_seconds": round(elapsed, 1), "remaining_seconds": remaining}
