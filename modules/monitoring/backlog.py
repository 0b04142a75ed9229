"""Does DevLake keep up? Pending pipelines, the oldest one's age, finished pipelines' durations.

All of it comes from what a poll already reads (fetch.py lists every in-flight
status each poll; the ledger reports each finish it counts): no extra call.
DevLake runs pipelines from one queue, PIPELINE_MAX_PARALLEL at a time, and
every blueprint made by POST /projects fires at the same minute (`docs/devlake-api.md`
§9.5), so at thousands of projects the queue itself is what goes stale.
"""
from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from modules.monitoring.state import FINAL_STATUSES, IN_FLIGHT_STATUSES, InFlight

# A collection takes minutes to many hours (a first full sync of a large repo).
DURATION_BUCKETS = (60, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 57600, 86400)


class Backlog:
    """Pending counts and the oldest pending age (as of the last successful poll), and the duration histogram."""

    def __init__(self, registry: CollectorRegistry):
        self.pending: dict[str, int] = dict.fromkeys(IN_FLIGHT_STATUSES, 0)
        self.oldest_pending_age: float | None = None
        self.durations = Histogram(
            "devlake_pipeline_duration_seconds", "finishedAt - beganAt of finished pipelines the monitor "
            "counted, by final status", ["status"], buckets=DURATION_BUCKETS, registry=registry)
        for status in FINAL_STATUSES:
            self.durations.labels(status=status)
        registry.register(_BacklogCollector(self))

    def update(self, pending: dict[str, int] | None, in_flight: dict[int, InFlight], now: float) -> None:
        """After a poll: DevLake's counts per in-flight status, and the oldest tracked in-flight start."""
        if pending is not None:
            self.pending = {status: pending.get(status, 0) for status in IN_FLIGHT_STATUSES}
        oldest = min((entry.since for entry in in_flight.values()), default=None)
        self.oldest_pending_age = None if oldest is None else max(0.0, now - oldest)

    def record_durations(self, durations: list[tuple[str, float]]) -> None:
        for status, seconds in durations:
            self.durations.labels(status=status).observe(seconds)


class _BacklogCollector:
    def __init__(self, backlog: Backlog) -> None:
        self.backlog = backlog

    def collect(self) -> Iterator[Metric]:
        pending = GaugeMetricFamily("devlake_pipelines_pending", "Pipelines DevLake has queued or running, by "
                                    "status (TASK_CREATED, TASK_RERUN, TASK_RUNNING, TASK_RESUME)",
                                    labels=["status"])
        for status, count in self.backlog.pending.items():
            pending.add_metric([status], count)
        yield pending
        age = self.backlog.oldest_pending_age
        yield GaugeMetricFamily("devlake_pipelines_oldest_pending_age_seconds", "Age of the oldest queued or "
                                "running pipeline at the last poll (0 when none)", value=age or 0.0)

    def describe(self) -> list[Metric]:
        return []
