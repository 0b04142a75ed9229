"""What one poll asks DevLake, sized by pipeline activity, not by the number of projects.

A steady-state poll makes about five calls (`docs/devlake-api.md` §9.1, §10):

1. one list per in-flight status (TASK_CREATED, TASK_RUNNING, TASK_RERUN,
   TASK_RESUME). `pending=1` is not enough: a rerun keeps its old finishedAt,
   so a queued or running rerun is not "pending" (§0 #16);
2. `GET /pipelines` newest first (id DESC) until a page reaches the watermark;
3. `GET /pipelines/{id}` only for pipelines seen in flight before that are in
   neither answer (they finished, or were deleted).

Every REFRESH interval (and on the first poll) it also reads every project
(blueprint id -> project name, deleted projects, `lastPipeline`) and re-scans
recent TASK_FAILED/TASK_PARTIAL pipelines to self-heal a rerun that started and
failed between two polls. Nothing here changes state: a poll that fails half-way
leaves the monitor exactly as it was, and the next poll asks again.
"""
from __future__ import annotations

from typing import Any

from modules import answers
from modules.answers import ListGuard
from modules.api import DevLakeClient, DevLakeNotFound
from modules.lifecycle import is_retired
from modules.monitoring.first_run import first_run
from modules.monitoring.ledger import Batch, MalformedAnswer, Observation, parse_pipeline
from modules.monitoring.state import FAILURE_STATUSES, IN_FLIGHT_STATUSES, NO_PROJECT

NEW_PAGE_SIZE = 100   # new pipelines per poll are usually far fewer
LIST_PAGE_SIZE = 500  # no server maximum (§10); fewer round trips
MAX_SCAN_PAGES = 10_000  # and at most answers.MAX_LIST_ITEMS pipelines per walk (`_guard`)


def _guard() -> ListGuard:
    """The bounds of one walk through /pipelines: the shared item cap, repeats by id."""
    return ListGuard(answers.check_pipeline, "id")


class Fetcher:
    """Gathers one poll's observations. Keeps only a cache of blueprint id -> project name."""

    def __init__(self, client: DevLakeClient):
        self.client = client
        # blueprint id -> project name, NO_PROJECT (blueprint without project) or None (deleted)
        self.blueprints: dict[int, str | None] = {}

    def fetch(self, *, watermark: int | None, tracked: set[int], floor: float, refresh: bool) -> Batch:
        """One poll's reads, in an order where later observations are fresher."""
        batch = Batch()
        if refresh:
            batch.projects = self._refresh_projects(batch.observations, batch.retired, batch.first_runs)
            for status in FAILURE_STATUSES:
                self._scan(batch.observations, floor, "finished_at", status=status)
        in_flight: set[int] = set()
        for status in IN_FLIGHT_STATUSES:
            batch.pending[status] = 0  # the backlog (backlog.py) costs no extra call
            for raw in self.client.iter_pipelines(page_size=LIST_PAGE_SIZE, status=status):
                obs = parse_pipeline(raw)
                batch.observations.append(obs)
                in_flight.add(obs.pipeline_id)
                batch.pending[status] += 1
        if watermark is None:  # first start: read back through the lookback window
            seen = self._scan(batch.observations, floor, "created_at")
        else:
            seen = self._scan_new(batch.observations, watermark)
        for pid in sorted(tracked - in_flight - seen):
            try:
                batch.observations.append(parse_pipeline(self.client.get_pipeline(pid)))
            except DevLakeNotFound:
                batch.missing.add(pid)
        self._resolve_blueprints(batch.observations)
        return batch

    def read_pipeline(self, client: DevLakeClient, pipeline_id: int) -> tuple[Observation, str | None]:
        """One pipeline and its project, for the notification worker.

        The worker passes its own client (the poller's counts its calls per poll) but
        shares the blueprint cache, so both paths name a pipeline's project alike.
        """
        obs = parse_pipeline(client.get_pipeline(pipeline_id))
        self._resolve_blueprints([obs], client)
        return obs, self.project_of(obs)

    def project_of(self, obs: Observation) -> str | None:
        """The project a pipeline belongs to; None when its blueprint was deleted."""
        if obs.blueprint_id == 0:
            return NO_PROJECT  # ad-hoc run (POST /pipelines, §9.1)
        return self.blueprints.get(obs.blueprint_id)

    def _refresh_projects(self, out: list[Observation], retired: set[str],
                          first_runs: dict[str, float | None]) -> list[str]:
        """Every project name; fills `retired` with those whose blueprint the automation retired
        and `first_runs` with each blueprint's first cron run (first_run.py): the list embeds
        each project's blueprint with its labels, `docs/devlake-api.md` §7."""
        names: list[str] = []
        mapping: dict[int, str | None] = {}
        for project in self.client.iter_projects():
            name = project.get("name") if isinstance(project, dict) else None
            if not isinstance(name, str) or not name:
                raise MalformedAnswer(f"project without a name: {str(project)[:120]}")
            names.append(name)
            blueprint = project.get("blueprint")
            first_runs[name] = first_run(blueprint)
            bid = blueprint.get("id") if isinstance(blueprint, dict) else None
            if isinstance(bid, int) and bid:
                mapping[bid] = name
            if isinstance(blueprint, dict) and is_retired(blueprint):
                retired.add(name)
            last = project.get("lastPipeline")  # omitted when the project never ran (§7)
            if isinstance(last, dict) and last.get("id"):
                out.append(parse_pipeline({"blueprintId": bid or 0, **last}))
        self.blueprints = mapping  # also forgets blueprints of deleted projects
        return names

    def _scan_new(self, out: list[Observation], watermark: int) -> set[int]:
        """Pages newest first until one reaches an id at or below the watermark."""
        seen: set[int] = set()
        guard = _guard()
        for page in range(1, MAX_SCAN_PAGES + 1):
            items, listed = self._page(guard, page, NEW_PAGE_SIZE)
            out.extend(items)
            seen.update(o.pipeline_id for o in items)
            if listed < NEW_PAGE_SIZE or not items or min(o.pipeline_id for o in items) <= watermark:
                break
        return seen

    def _scan(self, out: list[Observation], floor: float, attr: str, **filters: Any) -> set[int]:
        """Pages newest first until a whole page is older than `floor` by `attr`.

        Ids are ordered, times only roughly (a rerun finishes late under an old
        id), so a single old pipeline does not stop the scan: a whole page must.
        """
        seen: set[int] = set()
        guard = _guard()
        for page in range(1, MAX_SCAN_PAGES + 1):
            items, listed = self._page(guard, page, LIST_PAGE_SIZE, **filters)
            out.extend(items)
            seen.update(o.pipeline_id for o in items)
            recent = [o for o in items if getattr(o, attr) and getattr(o, attr).timestamp() >= floor]
            if listed < LIST_PAGE_SIZE or not recent:
                break
        return seen

    def _page(self, guard: ListGuard, page: int, size: int, **filters: Any) -> tuple[list[Observation], int]:
        """The page's pipelines not seen on an earlier page of this walk, and how many it listed."""
        body = self.client.pipelines_page(page, size, guard, **filters)
        items = body.get("pipelines") or []
        return [parse_pipeline(raw) for raw in items], len(items) + body.get("repeated", 0)

    def _resolve_blueprints(self, observations: list[Observation], client: DevLakeClient | None = None) -> None:
        """Blueprints created since the last project refresh: one cached GET each.

        Two threads may write here; a write lost to a concurrent refresh only costs
        one more GET later.
        """
        unknown = {o.blueprint_id for o in observations if o.blueprint_id and o.blueprint_id not in self.blueprints}
        for bid in sorted(unknown):
            try:
                blueprint = (client or self.client).get_blueprint(bid)
            except DevLakeNotFound:
                self.blueprints[bid] = None
                continue
            name = blueprint.get("projectName")
            self.blueprints[bid] = name if isinstance(name, str) and name else NO_PROJECT
