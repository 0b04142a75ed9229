"""The order of a run: read → plan → (print the plan | apply it) → one report.

This is the only module that knows the order. Reading and planning write
nothing; the applier is the only code that writes to DevLake.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from config import Settings
from modules.api import DevLakeClient, DevLakeError
from modules.applier import Applier
from modules.changes import Change, CollectionChange, Outcome, PatchBlueprint, Plan, RerunPipeline, Result
from modules.observe import Observed, observe
from modules.plan_view import flat_totals
from modules.planner import plan as make_plan
from modules.queue import pending_for_budget, split_by_budget
from modules.rerun_ledger import RerunLedger

log = structlog.get_logger("automation")


@dataclass
class RunReport:
    """What a run planned and what became of it; the summary line and the last-run file come from here."""

    plan: Plan = field(default_factory=Plan)
    results: list[Result] = field(default_factory=list)
    dry_run: bool = False
    stopped: bool = False
    would_defer: tuple[Change, ...] = ()  # dry run: the triggers the queue budget would defer now

    def count(self, outcome: Outcome) -> int:
        return sum(r.items for r in self.results if r.outcome is outcome)

    @property
    def failed(self) -> int:
        return self.count(Outcome.FAILED) + len(self.plan.problems)

    @property
    def unchanged(self) -> int:
        return self.count(Outcome.UNCHANGED) + self.plan.unchanged

    def failures(self) -> list[str]:
        applied = [f"{r.change.kind} {r.change.target}: {r.error}" for r in self.results
                   if r.outcome is Outcome.FAILED]
        return self.plan.problems + applied

    @property
    def deferred(self) -> int:
        """Triggers left to their cron minute or a later run (in a dry run: that would be)."""
        return len(self.would_defer) if self.dry_run else self.count(Outcome.DEFERRED)

    def lifecycle_counts(self) -> dict[str, int]:
        """Blueprints marked missing, retired and restored (in a dry run: that would be), and
        missing scopes left unmarked by the mass-absence guard (modules/lifecycle.py)."""
        if self.dry_run:
            done = [c for c in self.plan.changes if isinstance(c, PatchBlueprint)]
        else:
            done = [r.change for r in self.results if isinstance(r.change, PatchBlueprint)
                    and r.outcome is Outcome.UPDATED]
        actions = Counter(c.lifecycle_action for c in done if isinstance(c, PatchBlueprint) and c.lifecycle)
        return {"marked": actions["mark"], "retired": actions["retire"], "restored": actions["restore"],
                "refused": self.plan.refused}

    def as_log_fields(self) -> dict:
        counts = {o.value: self.count(o) for o in Outcome}
        counts.update(unchanged=self.unchanged, failed=self.failed, deferred=self.deferred)
        counts.update(self.lifecycle_counts())
        if self.dry_run:  # nothing was applied: what would be, as the printed plan's totals
            return {**counts, "planned": len(self.plan.changes), "actions": flat_totals(self.plan, self.would_defer)}
        actions = Counter(f"{r.change.kind}_{r.outcome.value}" for r in self.results)
        return {**counts, "planned": len(self.plan.changes), "actions": dict(sorted(actions.items()))}


def run_cycle(api: DevLakeClient, settings: Settings, now: datetime, installed_plugins: list[str], *,
              dry_run: bool = False, stop: threading.Event | None = None,
              sleep: Callable[[float], None] = time.sleep,
              monotonic: Callable[[], float] = time.monotonic) -> RunReport:
    """One full automation cycle after the pre-flight check; never raises for a single item."""
    stop = stop or threading.Event()
    ledger = RerunLedger(settings.state_dir, log)
    observed = observe(api, settings, installed_plugins)
    counts = {int(k): v for k, v in ledger.counts.items() if k.isdigit()}
    the_plan = make_plan(observed, settings, now, counts)
    for event, fields in the_plan.warnings:
        log.warning(event, **fields)
    log.info("run_planned", changes=len(the_plan.changes), unchanged=the_plan.unchanged,
             problems=len(the_plan.problems))
    if dry_run:
        return RunReport(plan=the_plan, dry_run=True,
                         would_defer=_would_defer(api, the_plan, settings.max_pending_pipelines))
    report = RunReport(plan=the_plan)
    applier = Applier(api, workers=settings.max_concurrency, attempts=settings.http_retries + 1,
                      backoff_seconds=settings.retry_backoff_seconds, stop=stop, sleep=sleep,
                      max_pending=settings.max_pending_pipelines, monotonic=monotonic)
    report.results = applier.apply(the_plan)
    report.stopped = stop.is_set()
    _record_reruns(ledger, observed, report.results)
    return report


def _would_defer(api: DevLakeClient, the_plan: Plan, max_pending: int) -> tuple[Change, ...]:
    """The triggers a run would defer now, decided as the applier decides (modules/queue.py)."""
    wanted = [c for c in the_plan.changes if isinstance(c, CollectionChange)]
    if not wanted:
        return ()
    try:
        split = split_by_budget(wanted, pending_for_budget(api, max_pending), max_pending)
    except DevLakeError as exc:
        log.error("queue_unreadable", error=str(exc), status=exc.status, triggers=len(wanted))
        return ()
    log.info("queue_budget", budget=split.budget, max_pending=max_pending, would_defer=len(split.deferred))
    return split.deferred


def _record_reruns(ledger: RerunLedger, observed: Observed, results: list[Result]) -> None:
    """Count each rerun DevLake took (or was already doing), so MAX_RERUNS holds across runs."""
    for result in results:
        if isinstance(result.change, RerunPipeline) and result.outcome in (
                Outcome.CREATED, Outcome.ADOPTED, Outcome.UNCHANGED):
            ledger.add(result.change.pipeline_id)
    if observed.projects is not None:  # forget pipelines no longer any project's latest
        latest = {(p.get("lastPipeline") or {}).get("id") for p in observed.projects}
        ledger.keep_only({pid for pid in latest if isinstance(pid, int)})
    try:
        ledger.save()
    except OSError as exc:
        log.error("rerun_state_not_written", path=str(ledger.path), error=str(exc))
