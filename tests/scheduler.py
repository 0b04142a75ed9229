"""A stand-in for the `schedule` library that run_daemon uses, on an injected clock."""
from __future__ import annotations

from datetime import timedelta


class DailyScheduler:
    """What run_daemon uses of schedule.Scheduler, on an injected clock. Like the library, it
    reschedules a job only after the job has returned."""

    def __init__(self, clock, first_run):
        self.clock, self.next_run, self.job = clock, first_run, None

    def every(self):
        return self

    @property
    def day(self):
        return self

    def at(self, _time, _tz=None):
        return self

    def do(self, job):
        self.job = job
        return self

    @property
    def idle_seconds(self):
        return (self.next_run - self.clock()).total_seconds()

    def run_pending(self):
        if self.clock() >= self.next_run:
            self.job()
            self.next_run += timedelta(days=1)
