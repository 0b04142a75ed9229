"""DevLake's pipeline and task statuses, and which of them mean what to both daemons.

The same constants apply to pipelines and tasks (`backend/core/models/task.go`,
`docs/devlake-api.md` §9.3). Every other module spells them through these names.
"""
from __future__ import annotations

CREATED = "TASK_CREATED"      # queued
RERUN = "TASK_RERUN"          # queued again after a rerun request
RESUME = "TASK_RESUME"        # interrupted by a DevLake restart, re-queued (RESUME_PIPELINES=true)
RUNNING = "TASK_RUNNING"
COMPLETED = "TASK_COMPLETED"
FAILED = "TASK_FAILED"        # also what a restart leaves behind with RESUME_PIPELINES=false
PARTIAL = "TASK_PARTIAL"      # skipOnFail=true: some tasks failed, some succeeded
CANCELLED = "TASK_CANCELLED"  # a user action, not a failure

# Still to run or running: `dequeuePipeline` takes CREATED, RERUN and RESUME
# (backend/server/services/pipeline.go); `?pending=1` would miss reruns (their old finishedAt
# is kept, §0 #16) and RESUME, so each is counted on its own. This is what fills DevLake's queue.
IN_FLIGHT = (CREATED, RERUN, RESUME, RUNNING)
QUEUED = (CREATED, RERUN)     # waiting, not yet started (RESUME is shown as interrupted)
FINAL = (COMPLETED, FAILED, PARTIAL, CANCELLED)
ALL = IN_FLIGHT + FINAL
FAILURES = (FAILED, PARTIAL)  # what the monitor counts as a failed collection
