"""modules/queue.py: reading DevLake's queue and spending the trigger budget."""
from __future__ import annotations

import pytest

from modules.api import DevLakeError
from modules.changes import CreateProject, RerunPipeline, TriggerBlueprint
from modules.queue import (
    QUEUE_STATUSES,
    TriggerRequest,
    budget_for_triggers,
    never_collected,
    pending_for_budget,
    read_pending,
    select_triggers,
    split_by_budget,
)
from modules.scopes import Connection, ScopeRef
from tests.clients import mock_client

BASE = "http://devlake.test"


@pytest.fixture
def client():
    return mock_client(BASE)


def test_read_pending_counts_each_status_with_one_tiny_page(client, requests_mock):
    counts = {"TASK_CREATED": 7, "TASK_RERUN": 2, "TASK_RUNNING": 1, "TASK_RESUME": 3}
    for status, count in counts.items():
        requests_mock.get(f"{BASE}/pipelines?status={status}", json={"count": count, "pipelines": [{"id": 1}]})
    assert read_pending(client) == counts
    assert sum(read_pending(client).values()) == 13
    urls = [r.url for r in requests_mock.request_history[:4]]
    assert [u.split("status=")[1].split("&")[0] for u in urls] == list(QUEUE_STATUSES)
    assert all("pageSize=1" in u and "pending" not in u for u in urls)   # §0 #6: pageSize, camelCase
    assert client.mutating_calls == 0


@pytest.mark.parametrize("body", [{"pipelines": []}, {"count": "3"}, {"count": -1}, [], {"count": True}])
def test_read_pending_refuses_an_answer_without_a_count(client, requests_mock, body):
    requests_mock.get(f"{BASE}/pipelines", json=body)
    with pytest.raises(DevLakeError, match="count"):
        read_pending(client)


@pytest.mark.parametrize("pending, budget, expected", [
    (0, 10, 10), (3, 10, 7), (10, 10, 0), (25, 10, 0), (0, 0, 0), (5, 0, 0), (-1, 4, 4),
])
def test_budget_for_triggers(pending, budget, expected):
    assert budget_for_triggers(pending, budget) == expected


def test_first_collections_before_reruns_oldest_first_and_deterministic():
    requests = [
        TriggerRequest("rerun", blueprint_id=3, pipeline_id=90),
        TriggerRequest("first", blueprint_id=40),
        TriggerRequest("rerun", blueprint_id=1, pipeline_id=12),
        TriggerRequest("first", blueprint_id=8),
        TriggerRequest("first", blueprint_id=22),
    ]
    start, deferred = select_triggers(requests, 3)
    assert [(r.kind, r.blueprint_id) for r in start] == [("first", 8), ("first", 22), ("first", 40)]
    assert [(r.kind, r.pipeline_id) for r in deferred] == [("rerun", 12), ("rerun", 90)]
    assert select_triggers(list(reversed(requests)), 3) == (start, deferred)


def test_select_with_no_budget_or_more_budget_than_requests():
    requests = [TriggerRequest("first", blueprint_id=i) for i in (3, 1, 2)]
    assert select_triggers(requests, 0) == ([], sorted(requests, key=TriggerRequest.sort_key))
    start, deferred = select_triggers(requests, 10)
    assert [r.blueprint_id for r in start] == [1, 2, 3] and deferred == []
    assert select_triggers(requests, -2)[0] == []


def test_never_collected_reads_last_pipeline():
    assert never_collected({"name": "p", "blueprint": {"id": 1}})
    assert not never_collected({"name": "p", "blueprint": {"id": 1}, "lastPipeline": {"id": 5}})
    assert not never_collected({"name": "p", "blueprint": None})


def test_new_blueprints_start_in_project_order_whatever_ids_devlake_gave_them():
    # --dry-run knows no ids for this run's blueprints (0); the real run gets them concurrently
    planned = [TriggerRequest("first", 0, name, new=True) for name in ("b", "c", "a")]
    applied = [TriggerRequest("first", bid, name, new=True) for bid, name in ((7, "b"), (5, "c"), (9, "a"))]
    older = TriggerRequest("first", 3, "z")
    for requests in (planned, applied):
        start, deferred = select_triggers([*requests, older], 2)
        assert [r.project for r in start] == ["z", "a"] and [r.project for r in deferred] == ["b", "c"]


def _new(name: str) -> TriggerBlueprint:
    scope = ScopeRef(Connection("jira", 1, "j"), name, name, name)
    return TriggerBlueprint(name, CreateProject(scope, name, "m", (), {}))


def test_split_by_budget_decides_from_the_plan_alone():
    """Existing blueprints oldest first, then the new ones by project name, then reruns; the same
    blueprint triggered twice takes one slot."""
    old, again, rerun = TriggerBlueprint("old", 5), TriggerBlueprint("old", 5), RerunPipeline("r", 40, 2)
    changes = [rerun, _new("b"), TriggerBlueprint("older", 3), _new("a"), old, again]
    split = split_by_budget(changes, pending=6, max_pending=10)     # room for 4 of 5 requests
    assert split.budget == 4
    assert [c.project for c in split.start] == ["older", "old", "old", "a", "b"]
    assert split.deferred == (rerun,)
    assert split_by_budget(changes, pending=0, max_pending=0).start == ()


def test_a_budget_of_nothing_never_reads_the_queue(client, requests_mock):
    assert pending_for_budget(client, 0) == 0 and requests_mock.request_history == []
