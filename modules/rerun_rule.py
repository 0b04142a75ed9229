"""Which failed pipeline the daily run reruns: a managed project's latest, within MAX_RERUNS (pure)."""
from __future__ import annotations

from modules import statuses


def rerun_candidate(project: dict, ledger_count: int, max_reruns: int) -> int | None:
    """The id of a managed project's latest pipeline to rerun: it ended TASK_FAILED and was
    rerun fewer than MAX_RERUNS times. None otherwise."""
    last = project.get("lastPipeline") or {}
    if last.get("status") != statuses.FAILED or not isinstance(last.get("id"), int):
        return None
    return last["id"] if ledger_count < max_reruns else None
