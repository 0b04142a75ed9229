"""DevLake's answers that mean "busy", not "failed": a pipeline already queued or running, and the
pipeline table locked for a moment. The applier counts the first as done and retries the second."""
from __future__ import annotations

from modules.api import DevLakeError

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
