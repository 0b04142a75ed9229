"""Driving collection: trigger new blueprints, rerun failed pipelines a bounded number of times."""
from __future__ import annotations

from pathlib import Path

from modules.api import DevLakeError
from modules.context import PlannedChange, RunContext
from utils.statefile import CorruptStateFile, atomic_write_json, read_json

RERUN_STATE_FILE = "automation_reruns.json"
# DevLake's answers when a pipeline is already queued or running (§0 #15, §9.1):
# the work we asked for is already under way, which is not an error.
ALREADY_RUNNING = ("pending pipelines", "pipeline is running", "waiting to run")


def already_running(exc: DevLakeError) -> bool:
    return exc.status == 400 and any(s in (exc.message or "") for s in ALREADY_RUNNING)


def trigger(ctx: RunContext, blueprint_id: int, project: str) -> None:
    """First collection of a blueprint created in this run."""
    change = PlannedChange("pipeline", "trigger", project, f"blueprint {blueprint_id}")
    try:
        pipeline = ctx.api.trigger_blueprint(blueprint_id)
        ctx.log.info("collection_triggered", project=project, pipeline_id=pipeline.get("id"))
    except DevLakeError as exc:
        if not already_running(exc):
            raise
        ctx.log.info("collection_already_running", project=project, blueprint_id=blueprint_id)
    ctx.record("created", "pipeline_triggered", change)


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


def rerun_if_failed(ctx: RunContext, ledger: RerunLedger, project: dict) -> None:
    """Rerun a managed project's latest pipeline when it ended TASK_FAILED, at most MAX_RERUNS times."""
    last = project.get("lastPipeline") or {}
    if last.get("status") != "TASK_FAILED" or not isinstance(last.get("id"), int):
        return
    name = project.get("name")
    if ledger.count(last["id"]) >= ctx.settings.max_reruns:
        ctx.log.info("rerun_limit_reached", project=name, pipeline_id=last["id"],
                     reruns=ledger.count(last["id"]))
        return
    change = PlannedChange("pipeline", "rerun", str(name), f"pipeline {last['id']}")
    if not ctx.dry_run:
        try:
            ctx.api.rerun_pipeline(last["id"])
            ctx.log.info("pipeline_rerun", project=name, pipeline_id=last["id"])
        except DevLakeError as exc:
            if not already_running(exc):
                raise
        ledger.add(last["id"])
    ctx.record("updated", "pipeline_rerun", change)
