"""The one place that writes to DevLake: applies a plan phase by phase, with bounded concurrency.

Retry rules, per kind of request:
- GET, PUT (scope upserts) and PATCH (absolute values) are idempotent: the
  session retries them on 429/500/502/503/504, timeouts and connection errors
  (utils/http.py), so a failure that reaches this module is final.
- A POST that fails ambiguously (timeout, connection reset, any 5xx) may have
  been applied. It is reconciled by reading back (scope config by name, project
  by name and marker, pipeline by blueprint): found means adopted, not found
  means sent again, within the same bounded attempts. Never a duplicate.
- 400/401/403/404 are never retried.
An item that still fails is logged with its context and counted; the others go on.

Triggers and reruns (the last phase) are bounded by MAX_PENDING_PIPELINES: DevLake's queue is
read once (modules/queue.py) and only what keeps it under the budget is started; the rest is
DEFERRED, which is not a failure (it starts at its cron minute, or a later run triggers it).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog

from modules.api import DevLakeClient, DevLakeError, DevLakeUnavailable
from modules.busy_answers import already_running, table_locked
from modules.changes import (
    Change,
    CreateProject,
    CreateScopeConfig,
    Outcome,
    PatchBlueprint,
    Phase,
    Plan,
    PutScopes,
    RerunPipeline,
    Result,
    TriggerBlueprint,
)
from modules.connection import find_by_name
from modules.progress import PhaseProgress
from modules.projects import project_metrics
from modules.queue import QUEUE_STATUSES, pending_for_budget, split_by_budget

log = structlog.get_logger("automation")


class Rejected(DevLakeError):
    """A read-back found the object, but not ours (e.g. a project of that name made by hand)."""


def ambiguous(exc: DevLakeError) -> bool:
    """The request may have been applied: no answer, or a 5xx (DevLake answers 500 for database
    lock timeouts and deadlocks after some writes; nginx answers 502/503/504)."""
    return isinstance(exc, DevLakeUnavailable) or (exc.status or 0) >= 500


class Applier:
    """Executes changes; returns one Result per change. Honours `stop` between changes."""

    def __init__(self, api: DevLakeClient, *, workers: int = 8, attempts: int = 3,
                 backoff_seconds: float = 1.0, stop: threading.Event | None = None,
                 sleep: Callable[[float], None] = time.sleep, max_pending: int | None = None,
                 monotonic: Callable[[], float] = time.monotonic):
        self.api = api
        self.monotonic = monotonic  # for apply_progress
        self.max_pending = max_pending  # None: no budget (the queue is not read)
        self.workers = max(1, workers)
        self.attempts = max(1, attempts)
        self.backoff_seconds = backoff_seconds
        self.stop = stop or threading.Event()
        self.sleep = sleep
        self._done: dict[Change, Result] = {}  # results of the phases applied so far, for `resolve`

    def apply(self, plan: Plan) -> list[Result]:
        results: list[Result] = []
        for phase in Phase:
            batch = [c for c in plan.changes if c.phase == phase]
            if not batch:
                continue
            if phase is Phase.COLLECTION and self.max_pending is not None:
                done = self._run_collection(batch)
            else:
                done = self._run_phase(batch, phase)
            self._done.update((r.change, r) for r in done)
            results.extend(done)
        return results

    def resolve(self, ref: int | Change | None) -> int | None:
        """The id a change's reference stands for: the one known when planning, or the one the named
        change (of an earlier phase) created or adopted. None: there is none, or it was not created."""
        if ref is None or isinstance(ref, int):
            return ref
        result = self._result_of(ref)
        if result is None or result.outcome not in (Outcome.CREATED, Outcome.ADOPTED):
            return None
        value = result.value  # CreateScopeConfig: the scope config; CreateProject: its blueprint's id
        if isinstance(ref, CreateScopeConfig) and isinstance(value, dict):
            value = int(value["id"])
        return value if isinstance(value, int) else None

    def _failed(self, ref: Change | None) -> bool:
        """Whether the named change of an earlier phase was applied and did not succeed."""
        result = self._result_of(ref)
        return result is not None and result.outcome in (Outcome.FAILED, Outcome.SKIPPED)

    def _result_of(self, ref: Change | None) -> Result | None:
        """The one lookup of references: what became of a change of an earlier phase of this run."""
        return None if ref is None else self._done.get(ref)

    def _run_collection(self, changes: list[Change]) -> list[Result]:
        """Start what the queue budget allows, in `select_triggers` order; defer the rest."""
        assert self.max_pending is not None
        if self.stop.is_set():
            return [Result(c, Outcome.SKIPPED, error="run stopped") for c in changes]
        results, wanted = [], []
        for change in changes:
            assert isinstance(change, (TriggerBlueprint, RerunPipeline))
            if isinstance(change, TriggerBlueprint) and self.resolve(change.blueprint) is None:
                results.append(Result(change, Outcome.SKIPPED, error="its project was not created"))
            else:
                wanted.append(change)
        try:
            split = split_by_budget(wanted, pending_for_budget(self.api, self.max_pending), self.max_pending)
        except DevLakeError as exc:  # a budget is never computed from a guess
            log.error("queue_unreadable", error=str(exc), status=exc.status, triggers=len(wanted))
            return results + [Result(c, Outcome.FAILED, error=f"queue length unreadable: {exc}",
                                     status=exc.status) for c in wanted]
        if split.deferred:
            log.info("triggers_deferred", deferred=len(split.deferred), started=len(split.start),
                     budget=split.budget, max_pending=self.max_pending)
        results.extend(self._run_phase(list(split.start), Phase.COLLECTION) if split.start else [])
        return results + [Result(c, Outcome.DEFERRED, error="queue budget") for c in split.deferred]

    def _run_phase(self, changes: list[Change], phase: Phase) -> list[Result]:
        progress = PhaseProgress(phase.name.lower(), len(changes), self.monotonic)

        def apply_counted(change: Change) -> Result:
            result = self.apply_one(change)
            progress.step(result.outcome is Outcome.FAILED)
            return result

        if len(changes) == 1 or self.workers == 1:
            results = [apply_counted(c) for c in changes]
        else:
            with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="apply") as pool:
                results = list(pool.map(apply_counted, changes))
        progress.finish()
        return results

    def apply_one(self, change: Change) -> Result:
        """Apply one change; every failure becomes a FAILED result, logged with its context."""
        if self.stop.is_set():
            return Result(change, Outcome.SKIPPED, error="run stopped")
        try:
            result = self._dispatch(change)
        except DevLakeError as exc:
            log.error("item_failed", kind=change.kind, item=change.target, error=str(exc), status=exc.status)
            result = Result(change, Outcome.FAILED, error=str(exc), status=exc.status)
        except Exception as exc:  # loop boundary: a bug in one change must not stop the others
            log.exception("item_crashed", kind=change.kind, item=change.target)
            result = Result(change, Outcome.FAILED, error=f"unexpected error: {type(exc).__name__}")
        if result.outcome is not Outcome.FAILED:
            # the one INFO line per change; the details (project_created, ...) are at DEBUG
            extra = {"blueprint_id": result.value} if isinstance(change, CreateProject) else {}
            log.info("change_applied", kind=change.kind, item=change.target, outcome=result.outcome.value, **extra)
        return result

    def _dispatch(self, change: Change) -> Result:
        if isinstance(change, CreateScopeConfig):
            return self._create_scope_config(change)
        if isinstance(change, PutScopes):
            return self._put_scopes(change)
        if isinstance(change, CreateProject):
            return self._create_project(change)
        if isinstance(change, PatchBlueprint):
            self.api.patch_blueprint(change.blueprint_id, change.fields)
            return Result(change, Outcome.UPDATED)
        if isinstance(change, TriggerBlueprint):
            return self._trigger(change)
        return self._rerun(change)

    # -- POST with read-back reconciliation -----------------------------------------------------

    def post_reconciled(self, send: Callable[[], Any], read_back: Callable[[], Any],
                        accept: Callable[[DevLakeError], bool] = ambiguous) -> tuple[Outcome, Any]:
        """Send a POST; after a failure `accept`s as possibly applied, read back: found → ADOPTED,
        missing → send again, at most `attempts` sends. Other failures are raised at once."""
        for attempt in range(1, self.attempts + 1):
            try:
                return Outcome.CREATED, send()
            except DevLakeError as exc:
                if not accept(exc):
                    raise
                found = read_back()
                if found is not None:
                    log.info("write_reconciled", path=exc.path, error=str(exc))
                    return Outcome.ADOPTED, found
                if attempt == self.attempts or not ambiguous(exc):
                    raise
                log.warning("write_resent", path=exc.path, error=str(exc), attempt=attempt + 1)
                self.sleep(self.backoff_seconds * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def _create_scope_config(self, change: CreateScopeConfig) -> Result:
        conn, name = change.connection, change.body["name"]
        outcome, created = self.post_reconciled(
            lambda: self.api.create_scope_config(conn.plugin, conn.id, change.body),
            lambda: find_by_name(self.api.list_scope_configs(conn.plugin, conn.id), name))
        return Result(change, outcome, value=created)

    def _put_scopes(self, change: PutScopes) -> Result:
        conn = change.connection
        config_id = self.resolve(change.scope_config)
        if config_id is None and change.scope_config is not None and change.action == "attach_scope_config":
            return Result(change, Outcome.SKIPPED, error="the connection's scope config was not created")
        rows = [dict(r, scopeConfigId=config_id) if config_id else r for r in change.rows]
        saved = self.api.put_scopes(conn.plugin, conn.id, rows)
        outcome = Outcome.CREATED if change.action == "create" else Outcome.UPDATED
        return Result(change, outcome, value=len(saved))

    def _create_project(self, change: CreateProject) -> Result:
        if self._failed(change.scope_added_by):
            return Result(change, Outcome.SKIPPED, error="its scope could not be added")
        body = {"name": change.name, "description": change.description,
                "metrics": project_metrics(change.metrics)}
        outcome, project = self.post_reconciled(
            lambda: self.api.create_project(body), lambda: self._find_project(change),
            # 400 "already exists": someone (or our own lost answer) made it; read back too
            accept=lambda exc: ambiguous(exc) or exc.status == 400)
        blueprint_id = (project.get("blueprint") or {}).get("id")
        if not isinstance(blueprint_id, int):
            raise DevLakeError(f"project {change.name!r} has no blueprint", method="POST", path="/projects")
        self.api.patch_blueprint(blueprint_id, change.blueprint)
        log.debug("project_created", project=change.name, blueprint_id=blueprint_id,
                 connection=change.scope.connection.label, scope_id=change.scope.scope_id)
        return Result(change, outcome, value=blueprint_id)

    def _find_project(self, change: CreateProject) -> dict | None:
        found = next((p for p in self.api.iter_projects(keyword=change.name) if p.get("name") == change.name), None)
        if found is not None and (found.get("description") or "") != change.description:
            raise Rejected(f"a project named {change.name!r} exists and is not ours", status=400,
                           method="POST", path="/projects")
        return found

    # -- collection ---------------------------------------------------------------------------------

    def _trigger(self, change: TriggerBlueprint) -> Result:
        blueprint_id = self.resolve(change.blueprint)
        if blueprint_id is None:
            return Result(change, Outcome.SKIPPED, error="its project was not created")

        def pending() -> dict | None:
            page = self.api.pipelines_page(1, 1, blueprint_id=blueprint_id, pending=1)
            return next(iter(page.get("pipelines") or []), None)

        try:
            outcome, pipeline = self.post_reconciled(lambda: self.api.trigger_blueprint(blueprint_id), pending)
        except DevLakeError as exc:
            if not already_running(exc):
                raise
            return Result(change, Outcome.UNCHANGED, error="already running")
        log.debug("collection_triggered", project=change.project, pipeline_id=(pipeline or {}).get("id"))
        return Result(change, outcome, value=pipeline)

    def _rerun(self, change: RerunPipeline) -> Result:
        def rerunning() -> dict | None:
            pipeline = self.api.get_pipeline(change.pipeline_id)
            return pipeline if pipeline.get("status") in QUEUE_STATUSES else None

        for attempt in range(1, self.attempts + 1):
            try:
                outcome, _ = self.post_reconciled(lambda: self.api.rerun_pipeline(change.pipeline_id), rerunning)
            except DevLakeError as exc:
                if already_running(exc):
                    return Result(change, Outcome.UNCHANGED, error="already running")
                if not table_locked(exc):
                    raise
                if attempt == self.attempts:  # still locked: the next run reruns it, nothing is lost
                    log.info("rerun_deferred", project=change.project, pipeline_id=change.pipeline_id,
                             error=exc.message)
                    return Result(change, Outcome.DEFERRED, error="pipeline table locked")
                self.sleep(self.backoff_seconds * 2 ** (attempt - 1))
                continue
            log.debug("pipeline_rerun", project=change.project, pipeline_id=change.pipeline_id)
            return Result(change, outcome)
        raise AssertionError("unreachable")

