"""The monitor's metric families, on a registry it is given (never the global REGISTRY).

Per-project values and the user's per-failure series are restored from the
state file after a restart, and a prometheus_client Counter cannot be set to a
value; so they come from `StateCollector`, which yields families from the
monitor's in-memory state on each collection. The exporter's own health
(`devlake_up`, poll duration, errors) uses ordinary prometheus_client metrics.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from modules import last_run
from modules.last_run import LastRun
from modules.monitoring.explain import reason_families
from modules.monitoring.state import NO_PROJECT, MonitorState
from modules.version import version

ERROR_REASONS = ("unreachable", "auth", "http_error", "malformed", "internal")
AUTOMATION_FILE = last_run.FILE
POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Push answers in well under a second; a poll within POLL_INTERVAL_SECONDS (300 s by
# default); the hourly re-scan and catching up after an outage take longer.
DETECTION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
NOTIFICATION_OUTCOMES = ("accepted", "bad_signature", "malformed", "replay", "too_large", "dropped")
NOTIFICATION_RESULTS = ("counted", "already_counted", "ignored", "fetch_failed", "deferred")
DETECTION_PATHS = ("push", "poll")

log = structlog.get_logger("monitor")


class SelfMetrics:
    """Exporter health: is DevLake reachable, and how are the polls going."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.up = Gauge("devlake_up", "1 if the last poll fetched everything it needed from DevLake, else 0",
                        registry=registry)
        self.last_success = Gauge("devlake_monitor_last_poll_success_timestamp_seconds",
                                  "When the last successful poll finished (Unix time)", registry=registry)
        self.duration = Histogram("devlake_monitor_poll_duration_seconds", "Wall time of one poll",
                                  buckets=POLL_BUCKETS, registry=registry)
        self.polls = Counter("devlake_monitor_polls", "Polls attempted", registry=registry)
        self.errors = Counter("devlake_monitor_poll_errors", "Failed polls by reason: unreachable, "
                              "auth, http_error, malformed, internal", ["reason"], registry=registry)
        self.overrun = Gauge("devlake_monitor_poll_overrun", "1 while a poll has been running for longer than "
                             "POLL_INTERVAL_SECONDS (devlake_up still shows the last completed poll), else 0",
                             registry=registry)
        self.calls = Gauge("devlake_monitor_last_poll_api_calls", "DevLake API calls made by the last poll",
                           registry=registry)
        self.state_write_errors = Counter("devlake_monitor_state_write_errors",
                                          "Failed writes of monitor_state.json", registry=registry)
        # Which release is running, on every dashboard and alert: the node_exporter_build_info idiom.
        Gauge("devlake_automation_build_info", "1, labelled with the version of devlake-automation",
              ["version"], registry=registry).labels(version=version()).set(1)
        for reason in ERROR_REASONS:  # so increase() sees the first error of each kind
            self.errors.labels(reason=reason)
        self._notification_metrics(registry)

    def _notification_metrics(self, registry: CollectorRegistry) -> None:
        # Registered even with notifications off: zeros say "nothing arrived", and the
        # detection latency of the poll path is measured either way.
        self.notifications = Counter("devlake_monitor_notifications", "DevLake notifications received by "
                                     "outcome: accepted, bad_signature, malformed, replay, too_large, dropped",
                                     ["outcome"], registry=registry)
        self.notifications_processed = Counter(
            "devlake_monitor_notifications_processed", "Accepted notifications after processing: counted "
            "(a new failure), already_counted, ignored (not a failure), fetch_failed and deferred (before "
            "the first poll): left to the poller",
            ["result"], registry=registry)
        self.detection_latency = Histogram(
            "devlake_monitor_failure_detection_latency_seconds", "From a failed pipeline's finishedAt "
            "to the monitor counting it, by path: push (notification) or poll", ["path"],
            buckets=DETECTION_BUCKETS, registry=registry)
        for outcome in NOTIFICATION_OUTCOMES:
            self.notifications.labels(outcome=outcome)
        for result in NOTIFICATION_RESULTS:
            self.notifications_processed.labels(result=result)
        for path in DETECTION_PATHS:
            self.detection_latency.labels(path=path)


class StateSource(Protocol):
    """What StateCollector reads of the monitor (the monitor in monitor.py has all of it); read-only here."""

    @property
    def lock(self) -> AbstractContextManager[object]: ...  # the lock a poll applies and saves under
    @property
    def state(self) -> MonitorState: ...
    @property
    def automation(self) -> LastRun | None: ...


class StateCollector:
    """Yields the state-backed families of `source`."""

    def __init__(self, source: StateSource, *, due_after: float = 0.0) -> None:
        self.source = source
        self.due_after = due_after  # STUCK_AFTER_MINUTES in seconds: grace after a first cron minute

    def collect(self) -> Iterator[Metric]:
        # Holding the monitor's lock means a scrape never sees a count that is
        # not yet on disk: the poll applies and saves under the same lock.
        with self.source.lock:
            yield from _failure_family(self.source.state)
            yield from _project_families(self.source.state, self.due_after)
            yield from reason_families(self.source.state)
            yield from _automation_families(self.source.automation)

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: families depend on the state


def _failure_family(state: MonitorState) -> Iterator[Metric]:
    family = CounterMetricFamily("devlake_blueprint_failure", "Count of failed blueprint executions",
                                 labels=["project_name", "time_failed"])
    series: dict[tuple[str, str], float] = {}
    for event in state.events.values():
        if event.project in state.projects:  # events of deleted projects stay only for dedup
            labels = (event.project, event.time_failed)
            series[labels] = series.get(labels, 0.0) + 1.0  # two failures in one second: one series, 2
    for labels, value in series.items():
        family.add_metric(labels, value)
    yield family
    yield GaugeMetricFamily("devlake_monitor_failure_series",
                            "Retained devlake_blueprint_failure_total series (cardinality)", value=len(series))


def _project_families(state: MonitorState, due_after: float) -> Iterator[Metric]:
    labels = ["project_name"]
    fam: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
        "failures": CounterMetricFamily("devlake_project_failures", "Failed pipelines (TASK_FAILED or "
                                        "TASK_PARTIAL) per project; starts at 0", labels=labels),
        "runs": CounterMetricFamily("devlake_project_runs", "Finished pipelines (any final status) per project; "
                                    "starts at 0", labels=labels),
        "last_failure": GaugeMetricFamily("devlake_project_last_failure_timestamp_seconds",
                                          "finishedAt of the project's newest failed pipeline", labels=labels),
        "last_success": GaugeMetricFamily("devlake_project_last_success_timestamp_seconds",
                                          "finishedAt of the project's newest TASK_COMPLETED pipeline", labels=labels),
        "consecutive": GaugeMetricFamily("devlake_project_consecutive_failures",
                                         "Failures since the project's last TASK_COMPLETED pipeline", labels=labels),
        "since": GaugeMetricFamily("devlake_project_pipeline_in_flight_since_timestamp_seconds",
                                   "When the project's queued or running pipeline started (beganAt, else createdAt)",
                                   labels=labels),
        # Only until the first finished pipeline: a new project has none of the failure and
        # success series yet, so this stays within the 8-series-per-project budget.
        "due": GaugeMetricFamily("devlake_project_first_collection_due_timestamp_seconds",
                                 "A never-collected managed project: its blueprint's first cron run plus "
                                 "STUCK_AFTER_MINUTES (before it the project is scheduled, not broken)",
                                 labels=labels),
    }
    # One series per project (info style): a one-hot over the 8 statuses made this
    # metric alone 8 series per project, 40,000 at 5,000 projects (README, Metrics: the series budget).
    status = GaugeMetricFamily("devlake_project_last_pipeline_status",
                               "1, labelled with the status of the project's newest pipeline",
                               labels=["project_name", "status"])
    # 1 only for retired projects, so per-project alert rules can leave them out with
    # `unless on(project_name) devlake_project_retired == 1` (prometheus/alerts.yml)
    retired = GaugeMetricFamily("devlake_project_retired", "1 for a project whose blueprint the automation "
                                "retired: its repository left upstream", labels=["project_name"])
    for name in sorted(state.retired & set(state.projects)):
        retired.add_metric([name], 1.0)
    since = _in_flight_since(state)
    for name, stats in state.projects.items():
        fam["failures"].add_metric([name], stats.failures)
        fam["runs"].add_metric([name], stats.runs)
        fam["consecutive"].add_metric([name], stats.consecutive_failures)
        for key, value in (("last_failure", stats.last_failure), ("last_success", stats.last_success),
                           ("since", since.get(name))):
            if value is not None:
                fam[key].add_metric([name], value)
        if stats.first_run is not None and stats.runs == 0 and stats.last_success is None:
            fam["due"].add_metric([name], stats.first_run + due_after)
        if stats.last_status is not None:
            status.add_metric([name, stats.last_status], 1.0)
    yield from fam.values()
    yield status
    yield retired
    yield GaugeMetricFamily("devlake_projects", "Projects known in DevLake",
                            value=len(set(state.projects) - {NO_PROJECT}))


def _in_flight_since(state: MonitorState) -> dict[str, float]:
    oldest: dict[str, float] = {}
    for entry in state.in_flight.values():
        if entry.project in state.projects and entry.since < oldest.get(entry.project, math.inf):
            oldest[entry.project] = entry.since
    return oldest


def _automation_families(run: LastRun | None) -> Iterator[Metric]:
    if run is None:
        return
    yield GaugeMetricFamily("devlake_automation_last_run_timestamp_seconds",
                            "When the automation daemon's last run finished", value=run.finished_at_epoch)
    if run.last_success_epoch is not None:
        yield GaugeMetricFamily("devlake_automation_last_success_timestamp_seconds",
                                "When the automation daemon's last fully successful run finished",
                                value=run.last_success_epoch)
    yield GaugeMetricFamily("devlake_automation_last_run_success", "1 if the automation daemon's last run "
                            "succeeded, else 0", value=1.0 if run.outcome == "success" else 0.0)
    items = GaugeMetricFamily("devlake_automation_last_run_items", "Items of the automation daemon's last run "
                              "by outcome", labels=["outcome"])
    for outcome in last_run.ITEMS:
        items.add_metric([outcome], run.items.get(outcome, 0))
    yield items


def read_automation(path: Path) -> LastRun | None:
    """STATE_DIR/automation_last_run.json, written by manage_projects.py; None if missing or unusable.

    The file belongs to the automation daemon, so an unreadable one is reported
    and left where it is (unlike the monitor's own state file).
    """
    try:
        return last_run.read(path)
    except (OSError, last_run.LastRunUnreadable) as exc:
        log.warning("automation_state_unreadable", path=str(path), reason=f"{type(exc).__name__}: {exc}")
        return None
