"""A test clock: an injectable `now` that moves only when a test says so."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

T0 = datetime(2025, 8, 8, 7, 0, 0, tzinfo=UTC)  # 14:00 in Asia/Ho_Chi_Minh


class Clock:
    def __init__(self, start: datetime = T0):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> datetime:
        self.now += timedelta(**delta)
        return self.now
