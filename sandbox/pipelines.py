"""Pipelines and tasks (§9 of `docs/devlake-api.md`). Callers hold the fake's lock."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from itertools import islice

from .common import (
    FINISHED_STATUSES,
    IN_QUEUE_STATUSES,
    PENDING_STATUSES,
    QUEUED_STATUSES,
    WAITING_STATUSES,
    ApiError,
    dumps,
    to_utc,
)

FAILURE_MESSAGE = "subtask collectApiPullRequests ended unexpectedly"
FAILURE_ERROR_NAME = ("Error running pipeline 1.\n\tcaused by: Error running task 1.\n\tcaused by: "
                      "subtask collectApiPullRequests ended unexpectedly (500)")
NON_SOURCE_PLUGINS = ("org", "dora", "refdiff", "gitextractor")


PIPELINE_TABLE_LOCKED = "failed to lock pipeline table, is there any pending pipeline or deletion?"


class PipelineStore:
    def __init__(self, state):
        self._state = state
        self.pipelines: dict[int, dict] = {}
        self.tasks: dict[int, list[dict]] = {}  # every attempt, oldest first
        self.by_blueprint: dict[int, list[int]] = {}
        self.queued_at: dict[int, float] = {}  # monotonic time a pipeline (re)entered the queue
        self.running_since: dict[int, float] = {}  # monotonic time queue_step started it
        # PIPELINE_MAX_PARALLEL (§9.5): how many pipelines queue_step runs at once; 0 = no limit.
        self.max_parallel = 0
        self.in_queue: set[int] = set()  # ids in IN_QUEUE_STATUSES, kept by track()
        self.max_in_queue = 0  # the most ever in the queue at once, since reset_max_in_queue()
        self.table_locked = 0  # reruns still to answer the lock timeout (-1: until unlocked)
        self._seq = 0
        self._task_seq = 0

    # --- creation ---------------------------------------------------------------------------

    def create(self, *, name: str, blueprint_id: int, plan: list, labels: Iterable[str] = (),
               time_after: datetime | None = None, skip_on_fail: bool = False, priority: int = 0,
               skip_collectors: bool = False, full_sync: bool = False, status: str = "TASK_CREATED",
               created_at: datetime | None = None, check_pending: bool = True) -> dict:
        """CreateDbPipeline (backend/server/services/pipeline_helper.go): pending check, then one task per plan cell."""
        if check_pending and blueprint_id and self.has_pending(blueprint_id):
            raise ApiError(400, "there are pending pipelines of current blueprint already")
        cells = [(r, c, t) for r, stage in enumerate(plan or [], 1) for c, t in enumerate(stage or [], 1)]
        if not cells:
            raise ApiError(400, "no task to run")
        self._seq += 1
        now = to_utc(created_at) if created_at else self._state.now()
        pipeline = {
            "id": self._seq, "createdAt": now, "updatedAt": now, "name": name, "blueprintId": blueprint_id,
            "plan": plan, "totalTasks": len(cells), "finishedTasks": 0, "beganAt": None, "finishedAt": None,
            "status": status, "message": "", "errorName": "", "spentSeconds": 0, "stage": 0,
            "labels": list(labels), "priority": priority, "skipOnFail": skip_on_fail, "timeAfter": time_after,
            "skipCollectors": skip_collectors, "fullSync": full_sync,
        }
        self.pipelines[pipeline["id"]] = pipeline
        self.by_blueprint.setdefault(blueprint_id, []).append(pipeline["id"])
        self.tasks[pipeline["id"]] = [self._new_task(pipeline, r, c, t, status) for r, c, t in cells]
        if status in QUEUED_STATUSES:
            self.queued_at[pipeline["id"]] = time.monotonic()
        self.track(pipeline)
        self._state.pipeline_changed(pipeline)  # CreateDbPipeline notifies (backend/server/services/pipeline_helper.go)
        return pipeline

    def _new_task(self, pipeline: dict, row: int, col: int, spec: dict, status: str) -> dict:
        self._task_seq += 1
        now = self._state.now()
        return {"id": self._task_seq, "createdAt": now, "updatedAt": now, "plugin": spec.get("plugin", ""),
                "subtasks": spec.get("subtasks"), "options": spec.get("options"), "status": status,
                "message": "", "errorName": "", "failedSubTask": "", "progress": 0, "progressDetail": None,
                "pipelineId": pipeline["id"], "pipelineRow": row, "pipelineCol": col,
                "beganAt": None, "finishedAt": None, "spentSeconds": 0}

    # --- queries -----------------------------------------------------------------------------

    def get(self, pipeline_id, *, missing_status: int = 404) -> dict:
        try:
            return self.pipelines[int(pipeline_id)]
        except (KeyError, ValueError, TypeError):
            raise ApiError(missing_status, "pipeline not found") from None

    def has_pending(self, blueprint_id: int) -> bool:
        return any(self.pipelines[p]["status"] in PENDING_STATUSES
                   for p in self.by_blueprint.get(blueprint_id, ()))

    def any_running(self) -> bool:
        return any(p["status"] == "TASK_RUNNING" for p in self.pipelines.values())

    def latest(self, blueprint_id: int) -> dict | None:
        ids = self.by_blueprint.get(blueprint_id)
        return self.pipelines[ids[-1]] if ids else None

    def query(self, *, status: str = "", pending: int = 0, blueprint_id: int = 0, label: str = "",
              offset: int = 0, limit: int = 50) -> tuple[int, list[dict]]:
        """GET /pipelines filters (§9.1): newest first; pending means unfinished and not rerun."""
        ids = self.by_blueprint.get(blueprint_id, []) if blueprint_id else self.pipelines
        candidates = (self.pipelines[i] for i in reversed(ids))
        if not (status or pending > 0 or label):
            return len(ids), list(islice(candidates, offset, offset + limit))
        hits = [p for p in candidates if (not status or p["status"] == status)
                and (pending <= 0 or (p["finishedAt"] is None and p["status"] in PENDING_STATUSES))
                and (not label or label in p["labels"])]
        return len(hits), hits[offset:offset + limit]

    def latest_tasks(self, pipeline_id: int) -> list[dict]:
        """The newest attempt of each plan cell, id DESC (GetTasksWithLastStatus)."""
        newest: dict[tuple[int, int], dict] = {}
        for task in self.tasks.get(pipeline_id, []):
            newest[(task["pipelineRow"], task["pipelineCol"])] = task
        return sorted(newest.values(), key=lambda t: t["id"], reverse=True)

    # --- transitions -------------------------------------------------------------------------

    def rerun(self, pipeline_id) -> list[dict]:
        """RerunPipeline: same id → TASK_RERUN, old finishedAt kept (quirk #16)."""
        pipeline = self.get(pipeline_id)
        if self.table_locked:
            # RerunPipeline takes the pipeline table lock with a 2-second timeout and answers
            # this when it cannot (`backend/server/services/pipeline.go`, `docs/devlake-api.md` §9.1)
            self.table_locked -= self.table_locked > 0
            raise ApiError(400, PIPELINE_TABLE_LOCKED)
        if pipeline["status"] == "TASK_RUNNING":
            raise ApiError(400, "pipeline is running")
        if pipeline["status"] in QUEUED_STATUSES:
            raise ApiError(400, "pipeline is waiting to run")
        failed = [t for t in self.latest_tasks(pipeline["id"]) if t["status"] != "TASK_COMPLETED"]
        if not failed:
            raise ApiError(400, "no tasks to be re-ran")
        new_tasks = []
        for task in sorted(failed, key=lambda t: t["id"]):
            task["status"] = "TASK_FAILED"
            spec = {"plugin": task["plugin"], "subtasks": task["subtasks"], "options": task["options"]}
            new_tasks.append(self._new_task(pipeline, task["pipelineRow"], task["pipelineCol"], spec, "TASK_RERUN"))
        self.tasks[pipeline["id"]].extend(new_tasks)
        pipeline["status"] = "TASK_RERUN"
        pipeline["updatedAt"] = self._state.now()
        self.queued_at[pipeline["id"]] = time.monotonic()
        self.track(pipeline)
        return new_tasks

    def cancel(self, pipeline_id) -> None:
        """CancelPipeline: a queued one becomes TASK_CANCELLED at once (finishedAt untouched)."""
        pipeline = self.get(pipeline_id, missing_status=400)
        if pipeline["status"] in QUEUED_STATUSES:
            pipeline["status"] = "TASK_CANCELLED"
            for task in self.tasks.get(pipeline["id"], []):
                task["status"] = "TASK_CANCELLED"
        elif pipeline["status"] == "TASK_RUNNING":
            self.set_status(pipeline["id"], "TASK_CANCELLED")
        self.queued_at.pop(pipeline["id"], None)
        self.track(pipeline)

    def set_status(self, pipeline_id: int, status: str, finished_at: datetime | None = None,
                   began_at: datetime | None = None, failure: dict | None = None) -> dict:
        """Move a pipeline (and its latest tasks) to `status`, as the runner would.

        `failure` ({"message", "failedSubTask", "plugin"}, each optional) is what the
        failing task reports (backend/core/runner/run_task.go); `plugin` picks which task fails.
        """
        pipeline = self.get(pipeline_id)
        now = self._state.now()
        pipeline["status"], pipeline["updatedAt"] = status, now
        tasks = self.latest_tasks(pipeline["id"])
        if status == "TASK_RUNNING" or status in FINISHED_STATUSES:
            pipeline["beganAt"] = to_utc(began_at) if began_at else (pipeline["beganAt"] or now)
            self.queued_at.pop(pipeline["id"], None)
        if status in FINISHED_STATUSES:
            end = to_utc(finished_at) if finished_at else now
            pipeline["finishedAt"] = end
            pipeline["spentSeconds"] = max(0, int((end - pipeline["beganAt"]).total_seconds()))
            self._finish_tasks(pipeline, tasks, status, end, failure or {})
        elif status == "TASK_RUNNING":
            for task in tasks:
                if task["status"] in QUEUED_STATUSES:
                    task["status"], task["beganAt"] = "TASK_RUNNING", pipeline["beganAt"]
        self.track(pipeline)
        if status == "TASK_RUNNING" or status in FINISHED_STATUSES:
            self._state.pipeline_changed(pipeline)  # the runner notifies on start and on end
        return pipeline

    # --- the queue (§9.5) ----------------------------------------------------------------------

    def track(self, pipeline: dict) -> None:
        """Call after every status change: keeps `in_queue` and its high-water mark."""
        if pipeline["status"] in IN_QUEUE_STATUSES:
            self.in_queue.add(pipeline["id"])
            self.max_in_queue = max(self.max_in_queue, len(self.in_queue))
        else:
            self.in_queue.discard(pipeline["id"])
            self.running_since.pop(pipeline["id"], None)

    def reset_max_in_queue(self) -> None:
        self.max_in_queue = len(self.in_queue)

    def queue_step(self, outcome: Outcome | None = None, *,
                   min_run_seconds: float | None = None) -> tuple[list[int], list[int]]:
        """One turn of RunPipelineInQueue (backend/server/services/pipeline.go): running pipelines
        finish (only those running at least `min_run_seconds`, if given), then free slots of
        `max_parallel` take waiting pipelines, highest priority first, then lowest id
        (`dequeuePipeline`). Returns (finished ids, started ids)."""
        cutoff = time.monotonic() - min_run_seconds if min_run_seconds is not None else None
        finished = []
        for pid in sorted(p for p in self.in_queue if self.pipelines[p]["status"] == "TASK_RUNNING"):
            if cutoff is not None and self.running_since.get(pid, 0.0) > cutoff:
                continue
            status, failure = _decide(outcome, self.pipelines[pid])
            self.set_status(pid, status, failure=failure)
            finished.append(pid)
        running = sum(1 for p in self.in_queue if self.pipelines[p]["status"] == "TASK_RUNNING")
        free = len(self.in_queue) if self.max_parallel <= 0 else self.max_parallel - running
        waiting = sorted((p for p in self.in_queue if self.pipelines[p]["status"] in WAITING_STATUSES),
                         key=lambda p: (-self.pipelines[p]["priority"], p))
        started = waiting[:max(0, free)]
        for pid in started:
            self.pipelines[pid]["beganAt"] = None  # dequeuePipeline starts it now
            self.set_status(pid, "TASK_RUNNING")
            self.running_since[pid] = time.monotonic()
        return finished, started

    def _finish_tasks(self, pipeline: dict, tasks: list[dict], status: str, end: datetime, failure: dict) -> None:
        failing = status in ("TASK_FAILED", "TASK_PARTIAL")
        # The pipeline's own message is generic; the task carries the error (`docs/devlake-api.md` §9.4).
        pipeline["message"] = f"Error running pipeline {pipeline['id']}." if failing and failure else (
            FAILURE_MESSAGE if failing else "")
        pipeline["errorName"] = FAILURE_ERROR_NAME if failing else ""
        open_tasks = [t for t in reversed(tasks) if t["status"] != "TASK_COMPLETED"]
        # Unless told which, the first data source's task fails (its collectors call the upstream
        # API); the project mapper and the metric plugins only read DevLake's own tables.
        sources = [t for t in open_tasks if t["plugin"] not in NON_SOURCE_PLUGINS]
        first_open = next((t for t in open_tasks if t["plugin"] == failure.get("plugin")),
                          (sources or open_tasks or [None])[0])
        message = failure.get("message", FAILURE_MESSAGE)
        subtask = failure.get("failedSubTask", "collectApiPullRequests")
        for task in tasks:
            if task["status"] == "TASK_COMPLETED":
                continue
            if status == "TASK_COMPLETED" or (failing and task is not first_open):
                task["status"], task["progress"] = "TASK_COMPLETED", 1
            elif failing:
                task.update(status="TASK_FAILED", message=message,
                            errorName=f"Error running task {task['id']}.\n\tcaused by: {message}",
                            failedSubTask=subtask)
            else:
                task["status"] = status
            task["beganAt"] = task["beganAt"] or pipeline["beganAt"]
            task["finishedAt"] = end
        pipeline["finishedTasks"] = sum(1 for t in tasks if t["status"] == "TASK_COMPLETED")

    def mark_interrupted(self, status: str) -> list[int]:
        """A server start with running pipelines (backend/server/services/pipeline.go
        `markInterruptedPipelineAs`): TASK_RUNNING pipelines and tasks get `status`
        (TASK_FAILED when RESUME_PIPELINES=false, else TASK_RESUME); finishedAt stays
        as it was (NULL, or a rerun's old value) and no notification is sent."""
        now, marked = self._state.now(), []
        for pipeline in self.pipelines.values():
            if pipeline["status"] != "TASK_RUNNING":
                continue
            pipeline["status"], pipeline["updatedAt"] = status, now
            for task in self.tasks.get(pipeline["id"], []):
                if task["status"] == "TASK_RUNNING":
                    task["status"], task["updatedAt"] = status, now
            marked.append(pipeline["id"])
        return marked

    def run_pending(self, outcome: Outcome | None = None, *,
                    older_than: float | None = None) -> list[int]:
        """Finish every TASK_CREATED/TASK_RERUN pipeline (optionally only those queued longer than
        `older_than` seconds). `outcome(pipeline)` picks the final status."""
        cutoff = time.monotonic() - older_than if older_than is not None else None
        done = []
        for pid in list(self.queued_at):
            pipeline = self.pipelines[pid]
            if pipeline["status"] not in QUEUED_STATUSES:
                self.queued_at.pop(pid, None)
                continue
            if cutoff is not None and self.queued_at[pid] > cutoff:
                continue
            status, failure = _decide(outcome, pipeline)
            pipeline["beganAt"] = None  # the runner starts it now
            self.set_status(pid, status, failure=failure)
            done.append(pid)
        return done


# What a test or the demo decides for a finished pipeline: a status, or (status, failure) with
# what the failing task reports ({"message", "failedSubTask", "plugin"}; see set_status).
Outcome = Callable[[dict], "str | tuple[str, dict]"]


def _decide(outcome: Outcome | None, pipeline: dict) -> tuple[str, dict | None]:
    decided = outcome(json.loads(dumps(pipeline))) if outcome else "TASK_COMPLETED"
    status, failure = decided if isinstance(decided, tuple) else (decided, None)
    return status or "TASK_COMPLETED", failure
