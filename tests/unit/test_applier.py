"""The applier's retry and reconciliation rules, one kind of change at a time, with requests-mock.

requests-mock replaces the transport adapter, so urllib3's retries of GET/PUT/PATCH never run
here (they are tested against the fake in tests/e2e); what is tested is the applier's own rule:
an ambiguous POST is read back, adopted if there, re-sent if not, within bounded attempts.
"""
from __future__ import annotations

import threading

import pytest
import requests

from modules.applier import Applier
from modules.changes import (
    CreateProject,
    CreateScopeConfig,
    Outcome,
    Plan,
    PutScopes,
    RerunPipeline,
    TriggerBlueprint,
)
from modules.scopes import Connection, ScopeRef
from tests.clients import mock_client

BASE = "http://devlake.test"
CONN = Connection("jira", 2, "jira")
SCOPE = ScopeRef(CONN, "7", "Board", "Board")
CONFIGS = f"{BASE}/plugins/jira/connections/2/scope-configs"
MARK = "Managed by devlake-automation: jira connection 2 scope 7"


@pytest.fixture
def applier():
    client = mock_client(BASE)
    return Applier(client, workers=1, attempts=3, backoff_seconds=0, sleep=lambda s: None)


def project_change(scope_added_by=None):
    return CreateProject(SCOPE, "jira/Board", MARK, ("dora",), {"labels": ["x"]}, scope_added_by=scope_added_by)


def config_change():
    return CreateScopeConfig(CONN, {"name": "devlake-automation-jira-2", "entities": ["TICKET"]})


def sends(requests_mock, method, url):
    return [r for r in requests_mock.request_history if r.method == method and r.url.split("?")[0] == url]


@pytest.mark.parametrize("fault", [{"status_code": 500}, {"status_code": 502}, {"status_code": 504},
                                   {"exc": requests.ConnectionError("reset by peer")},
                                   {"exc": requests.ReadTimeout("read timed out")}])
def test_ambiguous_post_found_on_read_back_is_adopted(applier, requests_mock, fault):
    requests_mock.post(CONFIGS, **fault)
    requests_mock.get(CONFIGS, json=[{"id": 5, "name": "devlake-automation-jira-2"}])
    result = applier.apply_one(config_change())
    assert result.outcome is Outcome.ADOPTED and result.value["id"] == 5
    assert len(sends(requests_mock, "POST", CONFIGS)) == 1


def test_ambiguous_post_not_found_is_sent_again(applier, requests_mock):
    requests_mock.post(CONFIGS, [{"status_code": 503}, {"status_code": 201, "json": {"id": 6, "name": "n"}}])
    requests_mock.get(CONFIGS, json=[])
    result = applier.apply_one(config_change())
    assert result.outcome is Outcome.CREATED and result.value["id"] == 6
    assert len(sends(requests_mock, "POST", CONFIGS)) == 2 and len(sends(requests_mock, "GET", CONFIGS)) == 1


def test_attempts_are_bounded(applier, requests_mock):
    requests_mock.post(CONFIGS, status_code=500)
    requests_mock.get(CONFIGS, json=[])
    result = applier.apply_one(config_change())
    assert result.outcome is Outcome.FAILED and result.status == 500
    assert len(sends(requests_mock, "POST", CONFIGS)) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_client_errors_are_never_retried(applier, requests_mock, status):
    requests_mock.post(f"{BASE}/projects", status_code=status, json={"message": "Project name is too long."})
    requests_mock.get(f"{BASE}/projects", json={"count": 0, "projects": []})
    result = applier.apply_one(project_change())
    assert result.outcome is Outcome.FAILED and result.status == status
    assert len(sends(requests_mock, "POST", f"{BASE}/projects")) == 1


def test_project_created_then_its_blueprint_patched(applier, requests_mock):
    requests_mock.post(f"{BASE}/projects", status_code=201, json={"name": "jira/Board", "blueprint": {"id": 12}})
    requests_mock.patch(f"{BASE}/blueprints/12", json={"id": 12})
    result = applier.apply_one(project_change())
    assert result.outcome is Outcome.CREATED and result.value == 12
    body = sends(requests_mock, "POST", f"{BASE}/projects")[0].json()
    assert body["description"] == MARK and body["metrics"][0]["pluginName"] == "dora"
    assert sends(requests_mock, "PATCH", f"{BASE}/blueprints/12")[0].json() == {"labels": ["x"]}


def test_project_already_there_with_our_marker_is_adopted_by_name(applier, requests_mock):
    requests_mock.post(f"{BASE}/projects", status_code=400, json={"message": "A project with name [x] already exists"})
    requests_mock.get(f"{BASE}/projects", json={"count": 1, "projects": [
        {"name": "jira/Board", "description": MARK, "blueprint": {"id": 12}}]})
    requests_mock.patch(f"{BASE}/blueprints/12", json={"id": 12})
    result = applier.apply_one(project_change())
    assert result.outcome is Outcome.ADOPTED
    assert requests_mock.request_history[1].qs["keyword"] == ["jira/board"]  # read back by name


def test_project_of_that_name_that_is_not_ours_fails(applier, requests_mock):
    requests_mock.post(f"{BASE}/projects", status_code=500)
    requests_mock.get(f"{BASE}/projects", json={"count": 1, "projects": [
        {"name": "jira/Board", "description": "made by hand", "blueprint": {"id": 12}}]})
    result = applier.apply_one(project_change())
    assert result.outcome is Outcome.FAILED and "not ours" in result.error
    assert not sends(requests_mock, "PATCH", f"{BASE}/blueprints/12")


def test_trigger_reconciled_by_pending_pipeline_of_the_blueprint(applier, requests_mock):
    requests_mock.post(f"{BASE}/blueprints/12/trigger", status_code=502)
    requests_mock.get(f"{BASE}/pipelines", json={"count": 1, "pipelines": [{"id": 99, "blueprintId": 12}]})
    result = applier.apply_one(TriggerBlueprint("jira/Board", 12))
    assert result.outcome is Outcome.ADOPTED
    query = requests_mock.request_history[1].qs
    assert query["blueprint_id"] == ["12"] and query["pending"] == ["1"]


def test_trigger_of_a_running_blueprint_is_unchanged(applier, requests_mock):
    requests_mock.post(f"{BASE}/blueprints/12/trigger", status_code=400,
                       json={"message": "there are pending pipelines of current blueprint already"})
    assert applier.apply_one(TriggerBlueprint("jira/Board", 12)).outcome is Outcome.UNCHANGED


@pytest.mark.parametrize("status", ["TASK_CREATED", "TASK_RERUN", "TASK_RUNNING", "TASK_RESUME"])
def test_rerun_reconciled_by_reading_the_pipeline(applier, requests_mock, status):
    requests_mock.post(f"{BASE}/pipelines/40/rerun", exc=requests.ConnectionError("reset"))
    requests_mock.get(f"{BASE}/pipelines/40", json={"id": 40, "status": status})
    assert applier.apply_one(RerunPipeline("p", 40, 1)).outcome is Outcome.ADOPTED
    assert len(sends(requests_mock, "POST", f"{BASE}/pipelines/40/rerun")) == 1


def test_rerun_not_taken_is_sent_again(applier, requests_mock):
    requests_mock.post(f"{BASE}/pipelines/40/rerun", [{"exc": requests.ConnectionError("reset")},
                                                      {"json": {"id": 40, "status": "TASK_RERUN"}}])
    requests_mock.get(f"{BASE}/pipelines/40", json={"id": 40, "status": "TASK_FAILED"})
    assert applier.apply_one(RerunPipeline("p", 40, 1)).outcome is Outcome.CREATED
    assert len(sends(requests_mock, "POST", f"{BASE}/pipelines/40/rerun")) == 2


def test_phases_pass_ids_on_and_failures_skip_what_depends_on_them(applier, requests_mock):
    scopes = f"{BASE}/plugins/jira/connections/2/scopes"
    requests_mock.post(CONFIGS, status_code=201, json={"id": 8, "name": "devlake-automation-jira-2"})
    requests_mock.put(scopes, status_code=500)
    config = config_change()
    put = PutScopes(CONN, ({"boardId": 7},), ("7",), "create", config)
    project = project_change(scope_added_by=put)
    plan = Plan(changes=[TriggerBlueprint("jira/Board", project), project, put, config])
    results = {type(r.change).__name__: r.outcome for r in applier.apply(plan)}
    assert results == {"CreateScopeConfig": Outcome.CREATED, "PutScopes": Outcome.FAILED,
                       "CreateProject": Outcome.SKIPPED, "TriggerBlueprint": Outcome.SKIPPED}
    assert sends(requests_mock, "PUT", scopes)[0].json() == {"data": [{"boardId": 7, "scopeConfigId": 8}]}


def test_stop_skips_what_has_not_started(requests_mock):
    stop = threading.Event()
    stop.set()
    client = mock_client(BASE)
    result = Applier(client, stop=stop, sleep=lambda s: None).apply_one(config_change())
    assert result.outcome is Outcome.SKIPPED and requests_mock.call_count == 0
