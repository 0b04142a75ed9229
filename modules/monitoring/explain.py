"""Reading each counted failure's tasks once, and turning them into reasons, labels and a log line.

The ledger saves every counted failure in `state.unexplained` together with the
count itself. After the batch (a poll, or a notification batch) the monitor
reads `GET /pipelines/{id}/tasks` for each (`docs/devlake-api.md` §9.4) outside the
scrape lock, then applies the answers under it: the reason counter, the
project's newest reason, one `pipeline_failed` log line, and the entry is gone.
A restart in between reads the tasks again and counts nothing twice, because
the counter and the removal are saved together.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from modules.api import DevLakeClient, DevLakeError, DevLakeUnavailable
from modules.monitoring.reasons import FailureDetail, explain, mask
from modules.monitoring.state import MonitorState, Unexplained

MAX_ATTEMPTS = 3  # task reads that fail this many times: the failure is counted as `other`
MAX_PER_ROUND = 200  # reads per poll, so catching up after an outage does not stall a poll

log = structlog.get_logger("monitor")


@dataclass(frozen=True)
class TaskReading:
    """What reading one failure's tasks gave: a detail, or the error that prevented it."""

    key: str
    detail: FailureDetail | None
    error: str | None = None


def pending(state: MonitorState, limit: int = MAX_PER_ROUND) -> list[tuple[str, Unexplained]]:
    """The oldest unexplained failures first, at most `limit`. Call under the monitor's lock."""
    return sorted(state.unexplained.items(), key=lambda kv: (kv[1].finished_epoch, kv[1].pipeline_id))[:limit]


def read(client: DevLakeClient, todo: list[tuple[str, Unexplained]]) -> list[TaskReading]:
    """Read the tasks of each failure; stops early when DevLake is unreachable (nothing is charged then)."""
    answers = []
    for key, item in todo:
        try:
            tasks = client.pipeline_tasks(item.pipeline_id)
        except DevLakeUnavailable:
            break  # DevLake went away: the next round asks again, attempts unchanged
        except DevLakeError as exc:  # 4xx/5xx or not the documented shape: charged, tried again later
            answers.append(TaskReading(key, None, mask(str(exc), 200)))
            continue
        answers.append(TaskReading(key, explain(tasks, interrupted=item.interrupted)))
    return answers


def apply_answers(state: MonitorState, answers: list[TaskReading]) -> list[tuple[Unexplained, FailureDetail]]:
    """Apply read answers (pure, under the monitor's lock); returns the failures explained now.

    A failure whose read failed MAX_ATTEMPTS times is explained as `other`
    (`interrupted` if it was), so it is still counted by reason and never read forever.
    """
    done: list[tuple[Unexplained, FailureDetail]] = []
    for answer in answers:
        item = state.unexplained.get(answer.key)
        if item is None:
            continue  # another thread explained it meanwhile
        detail = answer.detail
        if detail is None:
            item.attempts += 1
            state.dirty = True
            if item.attempts < MAX_ATTEMPTS:
                continue
            detail = FailureDetail("interrupted" if item.interrupted else "other",
                                   message=f"tasks not readable: {answer.error}")
        del state.unexplained[answer.key]
        key = (detail.plugin, detail.reason)
        state.reason_counts[key] = state.reason_counts.get(key, 0.0) + 1.0
        stats = state.projects.get(item.project)
        if stats is not None and (stats.last_explained is None or item.finished_epoch >= stats.last_explained):
            stats.last_reason, stats.last_plugin = detail.reason, detail.plugin
            stats.last_failed_subtask, stats.last_explained = detail.failed_subtask, item.finished_epoch
            stats.last_connection_id, stats.last_message = detail.connection_id, detail.message
        state.dirty = True
        done.append((item, detail))
    return done


def log_failures(explained: list[tuple[Unexplained, FailureDetail]]) -> None:
    """One JSON line per failure, for `docker logs` (the message is already masked and cut)."""
    for item, detail in explained:
        log.info("pipeline_failed", project=item.project, pipeline_id=item.pipeline_id, plugin=detail.plugin,
                    failed_subtask=detail.failed_subtask, reason=detail.reason, message=detail.message)


def reason_families(state: MonitorState) -> Iterator[Metric]:
    """devlake_pipeline_failures_by_reason_total and devlake_project_last_failure_info, from the state."""
    by_reason = CounterMetricFamily(
        "devlake_pipeline_failures_by_reason", "Failed pipelines by the failed task's plugin and reason "
        "(rate_limited, unauthorized, forbidden, not_found, timeout, network, interrupted, other)",
        labels=["plugin", "reason"])
    for (plugin, reason), value in sorted(state.reason_counts.items()):
        by_reason.add_metric([plugin, reason], value)
    yield by_reason
    info = GaugeMetricFamily(
        "devlake_project_last_failure_info", "1 while the project's newest finished pipeline failed: its newest "
        "explained failure's plugin, connection_id, reason and subtask",
        labels=["project_name", "plugin", "connection_id", "reason", "failed_subtask"])
    for name, stats in state.projects.items():
        # Only while failing: a recovered project drops out of "which projects fail and why", and
        # its alerts (which take these labels, prometheus/alerts.yml) resolve.
        if stats.last_reason is not None and stats.consecutive_failures > 0:
            info.add_metric([name, stats.last_plugin or "unknown", stats.last_connection_id or "unknown",
                             stats.last_reason, stats.last_failed_subtask or "unknown"], 1.0)
    yield info
    yield GaugeMetricFamily("devlake_monitor_unexplained_failures", "Counted failures whose tasks are not "
                            "read yet (their reason follows within a few polls)", value=len(state.unexplained))
