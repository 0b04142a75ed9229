"""The collection phase under MAX_PENDING_PIPELINES, with requests-mock: DevLake's queue is read
once, only what the budget allows is sent, the rest is DEFERRED (never FAILED)."""
from __future__ import annotations

import re

import pytest

from modules.applier import Applier
from modules.changes import CreateProject, Outcome, Plan, RerunPipeline, TriggerBlueprint
from modules.orchestrator import RunReport
from modules.queue import QUEUE_STATUSES
from modules.scopes import Connection, ScopeRef
from tests.clients import mock_client

BASE = "http://devlake.test"
SCOPE = ScopeRef(Connection("jira", 2, "jira"), "7", "Board", "Board")


def budgeted(max_pending):
    client = mock_client(BASE)
    return Applier(client, workers=4, attempts=3, backoff_seconds=0, sleep=lambda s: None, max_pending=max_pending)


def mock_queue(requests_mock, **counts):
    """GET /pipelines?status=X&pageSize=1 answers `count` for X (requests-mock lower-cases the query)."""
    def answer(request, context):
        return {"count": counts.get(request.qs["status"][0].upper(), 0), "pipelines": []}
    requests_mock.get(f"{BASE}/pipelines", json=answer)


def mock_triggers(requests_mock):
    requests_mock.post(re.compile(rf"{BASE}/blueprints/\d+/trigger"), json={"id": 500, "status": "TASK_CREATED"})
    requests_mock.post(re.compile(rf"{BASE}/pipelines/\d+/rerun"), json=[])


def sent(requests_mock, method, suffix):
    return sorted(r.path for r in requests_mock.request_history if r.method == method and r.path.endswith(suffix))


def queue_reads(requests_mock):
    return sorted(r.qs["status"][0].upper() for r in requests_mock.request_history
                  if r.method == "GET" and r.path == "/pipelines")


def collection_plan():
    return Plan(changes=[TriggerBlueprint("c", 30), TriggerBlueprint("a", 10), RerunPipeline("r2", 41, 3),
                         TriggerBlueprint("b", 20), RerunPipeline("r1", 40, 4)])


def test_only_the_budget_is_started_oldest_first_and_the_rest_deferred(requests_mock):
    mock_queue(requests_mock, TASK_CREATED=1, TASK_RUNNING=1, TASK_RESUME=1)   # 3 of 5: room for 2
    mock_triggers(requests_mock)
    results = budgeted(5).apply(collection_plan())
    assert queue_reads(requests_mock) == sorted(QUEUE_STATUSES)                 # read once, four counts
    assert sent(requests_mock, "POST", "/trigger") == ["/blueprints/10/trigger", "/blueprints/20/trigger"]
    assert sent(requests_mock, "POST", "/rerun") == []
    outcomes = {r.change.target: r.outcome for r in results}
    assert outcomes == {"a": Outcome.CREATED, "b": Outcome.CREATED, "c": Outcome.DEFERRED,
                        "r1": Outcome.DEFERRED, "r2": Outcome.DEFERRED}
    report = RunReport(plan=collection_plan(), results=results)
    assert report.failed == 0 and report.deferred == 3 and report.as_log_fields()["deferred"] == 3


def test_reruns_come_after_first_collections_oldest_failure_first(requests_mock):
    mock_queue(requests_mock)
    mock_triggers(requests_mock)
    budgeted(4).apply(collection_plan())
    assert len(sent(requests_mock, "POST", "/trigger")) == 3
    assert sent(requests_mock, "POST", "/rerun") == ["/pipelines/40/rerun"]


def test_a_full_queue_starts_nothing_and_fails_nothing(requests_mock):
    mock_queue(requests_mock, TASK_RUNNING=1, TASK_CREATED=9, TASK_RERUN=2)     # over the budget of 10
    mock_triggers(requests_mock)
    results = budgeted(10).apply(collection_plan())
    assert {r.outcome for r in results} == {Outcome.DEFERRED}
    assert [r for r in requests_mock.request_history if r.method == "POST"] == []


def test_trigger_of_a_project_created_in_the_same_run_uses_its_new_blueprint(requests_mock):
    mock_queue(requests_mock)
    mock_triggers(requests_mock)
    requests_mock.post(f"{BASE}/projects", status_code=201, json={"name": "jira/Board", "blueprint": {"id": 12}})
    requests_mock.patch(f"{BASE}/blueprints/12", json={"id": 12})
    create = CreateProject(SCOPE, "jira/Board", "m", ("dora",), {"cronConfig": "3 15 * * *"})
    never = CreateProject(SCOPE, "never/created", "m", ("dora",), {})  # not in the plan: never applied
    results = budgeted(10).apply(Plan(changes=[TriggerBlueprint("jira/Board", create), create,
                                               TriggerBlueprint("never/created", never)]))
    outcomes = {(r.change.kind, r.change.target): r.outcome for r in results}
    assert outcomes[("trigger", "jira/Board")] is Outcome.CREATED
    assert outcomes[("trigger", "never/created")] is Outcome.SKIPPED
    assert sent(requests_mock, "POST", "/trigger") == ["/blueprints/12/trigger"]


@pytest.mark.parametrize("answer", [{"status_code": 500}, {"json": {"pipelines": []}}])
def test_an_unreadable_queue_starts_nothing(requests_mock, answer):
    requests_mock.get(f"{BASE}/pipelines", **answer)
    mock_triggers(requests_mock)
    results = budgeted(10).apply(collection_plan())
    assert {r.outcome for r in results} == {Outcome.FAILED}                     # a budget is never guessed
    assert all("queue length unreadable" in (r.error or "") for r in results)
    assert [r for r in requests_mock.request_history if r.method == "POST"] == []


def test_max_pending_zero_defers_everything_without_reading_the_queue(requests_mock):
    mock_triggers(requests_mock)
    results = budgeted(0).apply(collection_plan())
    assert {r.outcome for r in results} == {Outcome.DEFERRED} and requests_mock.call_count == 0


def test_no_budget_reads_no_queue(requests_mock):
    mock_triggers(requests_mock)
    results = budgeted(None).apply(collection_plan())
    assert {r.outcome for r in results} == {Outcome.CREATED}
    assert [r for r in requests_mock.request_history if r.method == "GET"] == []
