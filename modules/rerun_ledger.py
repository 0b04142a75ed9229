"""Collection rules: DevLake's "already running" answers, and bounded reruns of failed pipelines."""
from __future__ import annotations

from pathlib import Path

from modules import statuses
from modules.api import DevLakeError
from utils.statefile import CorruptStateFile, atomic_write_json, read_json

RERUN_STATE_FILE = "automation_reruns.json"
# DevLake's answers when a pipeline is already queued or running (§0 #15, §9.1):
# the work we asked for is already under way, which is not an error.
ALREADY_RUNNING = ("pending pipelines", "pipeline is running", "waiting to run")


# RerunPipeline's answer when it could not take the pipeline table lock within 2 seconds
# (`backend/server/services/pipeline.go`, §9.1): transient, not a verdict on the pipeline.
TABLE_LOCKED = "failed to lock pipeline table"


def already_running(exc: DevLakeError) -> bool:
    return exc.status == 400 and any(s in (exc.message or "") for s in ALREADY_RUNNING)


def table_locked(exc: DevLakeError) -> bool:
    return exc.status == 400 and TABLE_LOCKED in (exc.message or "")


class RerunLedger:
    """How often this daemon reran each pipeline, persisted so MAX_RERUNS holds across runs.

    A rerun keeps the pipeline id (§9.1), so the count is per id.
    """

    def __init__(self, state_dir: Path, log):
        self.path = Path(state_dir) / RERUN_STATE_FILE
        try:
            self.counts: dict[str, int] = dict(read_json(self.path, {}))
        except (CorruptStateFile, TypeError, ValueError) as exc:
            log.warning("rerun_state_unreadable", error=str(exc))
            self.counts = {}

    def count(self, pipeline_id: int) -> int:
        return int(self.counts.get(str(pipeline_id), 0))

    def add(self, pipeline_id: int) -> None:
        self.counts[str(pipeline_id)] = self.count(pipeline_id) + 1

    def keep_only(self, pipeline_ids: set[int]) -> None:
        """Forget pipelines that are no longer any project's latest, so the file stays small."""
        self.counts = {k: v for k, v in self.counts.items() if int(k) in pipeline_ids}

    def save(self) -> None:
        atomic_write_json(self.path, self.counts)


def rerun_candidate(project: dict, ledger_count: int, max_reruns: int) -> int | None:
    """The id of a managed project's latest pipeline to rerun: it ended TASK_FAILED and was
    rerun fewer than MAX_RERUNS times. None otherwise."""
    last = project.get("lastPipeline") or {}
    if last.get("status") != statuses.FAILED or not isinstance(last.get("id"), int):
        return None
    return last["id"] if ledger_count < max_reruns else None
