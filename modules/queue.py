"""DevLake's pipeline queue as the daemon sees it: how full it is, and which triggers fit.

DevLake runs pipelines from one queue with PIPELINE_MAX_PARALLEL at a time (`docs/devlake-api.md` §9.5),
so the daemon starts its own collections (first collections, reruns) only while the queue holds
fewer than MAX_PENDING_PIPELINES; the rest start at their cron minute or on a later run.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from modules import statuses
from modules.api import DevLakeClient, DevLakeError
from modules.changes import CollectionChange, RerunPipeline

# Everything DevLake still has to run or is running (modules/statuses.py says why each is counted).
QUEUE_STATUSES = statuses.IN_FLIGHT


def read_pending(api: DevLakeClient) -> dict[str, int]:
    """Pipelines per pending status, from `count` of `GET /pipelines?status=X&pageSize=1` (§9.1).

    Four small GETs whatever the queue's size. Raises DevLakeError on an answer without an
    integer `count`: a budget must not be computed from a guess.
    """
    counts = {}
    for status in QUEUE_STATUSES:
        body = api.get("/pipelines", status=status, page=1, pageSize=1)
        count = body.get("count") if isinstance(body, dict) else None
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise DevLakeError("answer has no integer 'count'", method="GET", path="/pipelines")
        counts[status] = count
    return counts


def pending_for_budget(api: DevLakeClient, max_pending: int) -> int:
    """DevLake's pending pipelines, all statuses; MAX_PENDING_PIPELINES=0 starts nothing whatever
    the queue holds, so then it is not read."""
    return sum(read_pending(api).values()) if max_pending > 0 else 0


def budget_for_triggers(pending_count: int, max_pending: int) -> int:
    """How many pipelines the daemon may start now: what keeps pending below `max_pending`.

    0 when the queue is already at or over the budget; `max_pending` 0 means none ever.
    """
    return max(0, max_pending - max(0, pending_count))


@dataclass(frozen=True)
class TriggerRequest:
    """A collection the daemon wants to start: a blueprint's first ("first"), or a rerun of a
    failed pipeline ("rerun")."""

    kind: Literal["first", "rerun"]
    blueprint_id: int
    project: str = ""
    pipeline_id: int | None = None  # the failed pipeline, for reruns
    new: bool = False  # a blueprint created by this run: its id is not known when planning

    def sort_key(self) -> tuple:
        # Blueprints that never collected come first (they have no data at all), oldest
        # blueprint first; then reruns, oldest failed pipeline first. Ids grow with time.
        # Blueprints created by this run follow the older ones by project name, not by the
        # ids DevLake gave them concurrently, so --dry-run defers exactly what the run will.
        if self.kind == "first":
            return (0, 1, 0, self.project) if self.new else (0, 0, self.blueprint_id, "")
        return (1, 0, self.pipeline_id or 0, str(self.blueprint_id))


def select_triggers(requests: Iterable[TriggerRequest], budget: int
                    ) -> tuple[list[TriggerRequest], list[TriggerRequest]]:
    """(start now, deferred): the first `budget` requests in priority order, and the rest."""
    ordered = sorted(requests, key=TriggerRequest.sort_key)
    budget = max(0, budget)
    return ordered[:budget], ordered[budget:]


def never_collected(project: dict) -> bool:
    """A project from `GET /projects` whose blueprint has no pipeline at all (§7: the list
    carries `lastPipeline`, omitted when there is none): its first collection is still due."""
    return isinstance(project.get("blueprint"), dict) and not project.get("lastPipeline")


@dataclass(frozen=True)
class BudgetSplit:
    """The triggers and reruns that start now, those left for their cron minute or a later run
    (DEFERRED, not failed), and the budget that decided it."""

    start: tuple[CollectionChange, ...]
    deferred: tuple[CollectionChange, ...]
    budget: int


def split_by_budget(changes: Iterable[CollectionChange], pending: int, max_pending: int) -> BudgetSplit:
    """Pure: which of a plan's triggers and reruns start now, with `pending` pipelines in DevLake's
    queue and MAX_PENDING_PIPELINES `max_pending`. The real run and --dry-run both decide here, so
    the dry run defers exactly what the run will (a new blueprint's id plays no part, see
    `TriggerRequest.sort_key`)."""
    by_request: dict[TriggerRequest, list[CollectionChange]] = {}
    for change in changes:
        by_request.setdefault(trigger_request(change), []).append(change)
    budget = budget_for_triggers(pending, max_pending)
    start, deferred = select_triggers(by_request, budget)
    return BudgetSplit(tuple(c for r in start for c in by_request[r]),
                       tuple(c for r in deferred for c in by_request[r]), budget)


def trigger_request(change: CollectionChange) -> TriggerRequest:
    if isinstance(change, RerunPipeline):
        return TriggerRequest("rerun", change.blueprint_id or 0, change.project, change.pipeline_id)
    if isinstance(change.blueprint, int):
        return TriggerRequest("first", change.blueprint, change.project)
    return TriggerRequest("first", 0, change.project, new=True)
