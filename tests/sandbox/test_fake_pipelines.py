"""The fake DevLake: blueprints, pipelines, fault injection, concurrency and the sandbox data."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests

from sandbox.autorun import flaky_outcome
from sandbox.fake_devlake import FakeDevLake
from sandbox.sample import HAND_MADE_PROJECT, load_sample_data


@pytest.fixture
def jira(fake):
    """A jira connection with two tracked boards and a project blueprint per board."""
    cid = fake.add_connection("jira", "jira")
    for board in (1, 2):
        fake.add_scope("jira", cid, {"boardId": board, "name": f"Board {board}"})
    return cid


def connections(cid, *boards):
    return [{"pluginName": "jira", "connectionId": cid, "scopes": [{"scopeId": str(b)} for b in boards]}]


# --- blueprints (§8) ------------------------------------------------------------------------------

@pytest.mark.parametrize("sent, stored", [
    ("2024-01-06T00:00:00+07:00", "2024-01-05T17:00:00Z"),
    ("2024-01-06T00:00:00Z", "2024-01-06T00:00:00Z"),
    ("2024-01-06 00:00:00", "2024-01-06T00:00:00Z"),
    ("2024-01-06T00:00:00.123+07:00", "2024-01-05T17:00:00.123Z"),
])
def test_patch_time_after_formats_come_back_in_utc(fake, http, jira, sent, stored):
    bp = fake.add_project("p")
    resp = http.patch(f"/blueprints/{bp}", json={"timeAfter": sent})
    assert resp.status_code == 200 and resp.json()["timeAfter"] == stored


def test_patch_blueprint_partial_and_validated(fake, http, jira):
    bp = fake.add_project("p")
    url = f"/blueprints/{bp}"
    out = http.patch(url, json={"connections": connections(jira, 1), "labels": ["a", "b"]}).json()
    assert out["connections"] == connections(jira, 1) and out["labels"] == ["a", "b"]
    assert out["cronConfig"] == "0 0 * * *" and out["plan"]  # absent keys kept, plan regenerated
    out = http.patch(url, json={"labels": ["c"], "cronConfig": "manual"}).json()
    assert out["labels"] == ["c"] and out["isManual"] is True and out["connections"] == connections(jira, 1)
    assert http.patch(url, json={"timeAfter": "2024-01-06T00:00:00"}).status_code == 500  # no offset
    mode = http.patch(url, json={"mode": "ADVANCED"})
    assert (mode.status_code, mode.json()["message"]) == (500, "mode is not updatable")
    assert http.patch(url, json={"cronConfig": "61 * * * *", "isManual": False}).status_code == 400
    assert http.patch(url, json={"cronConfig": "@daily", "isManual": False}).status_code == 200
    assert http.patch(url, json={"connections": connections(jira, 99)}).status_code == 400
    empty = http.patch(url, json={"connections": connections(jira)})
    assert (empty.status_code, empty.json()["message"]) == (400, "connections[0].scopes is empty")
    assert http.get("/blueprints/999").json()["message"] == "blueprint not found"


def test_blueprint_list_filters_and_order(fake, http):
    a = fake.add_project("a", labels=["managed"])
    b = fake.add_project("b")
    http.patch(f"/blueprints/{b}", json={"enable": False})
    body = http.get("/blueprints").json()
    assert body["count"] == 2 and [bp["id"] for bp in body["blueprints"]] == [b, a]
    assert [bp["id"] for bp in http.get("/blueprints", params={"label": "managed"}).json()["blueprints"]] == [a]
    assert [bp["id"] for bp in http.get("/blueprints", params={"enable": "false"}).json()["blueprints"]] == [b]


def test_trigger_rules(fake, http, jira):
    bp = fake.add_project("p", scopes=[("jira", jira, "1")], labels=["x"],
                          time_after=datetime(2024, 1, 1, tzinfo=UTC))
    first = http.post(f"/blueprints/{bp}/trigger", json={"skipCollectors": False, "fullSync": False})
    assert first.status_code == 200
    pipeline = first.json()
    assert (pipeline["status"], pipeline["blueprintId"], pipeline["labels"]) == ("TASK_CREATED", bp, ["x"])
    assert pipeline["timeAfter"] == "2024-01-01T00:00:00Z" and pipeline["totalTasks"] == 2
    again = http.post(f"/blueprints/{bp}/trigger")
    assert (again.status_code, again.json()["message"]) == \
        (400, "there are pending pipelines of current blueprint already")
    fake.run_pending()
    http.patch(f"/blueprints/{bp}", json={"enable": False})
    assert http.post(f"/blueprints/{bp}/trigger").json()["message"] == "blueprint is not enabled"
    orphan = http.post("/blueprints", json={"name": "adhoc", "mode": "NORMAL", "enable": True,
                                            "cronConfig": "0 0 * * *"}).json()
    assert http.post(f"/blueprints/{orphan['id']}/trigger").json()["message"] == "no task to run"


# --- pipelines (§9) -------------------------------------------------------------------------------

def test_rerun_keeps_id_and_old_finished_at(fake, http, clock):
    bp = fake.add_project("p")
    finished = clock.now - timedelta(hours=2)
    failed = fake.add_pipeline(bp, "TASK_FAILED", finished_at=finished)
    tasks = http.post(f"/pipelines/{failed}/rerun").json()
    assert isinstance(tasks, list) and tasks[0]["status"] == "TASK_RERUN" and tasks[0]["pipelineId"] == failed
    after = http.get(f"/pipelines/{failed}").json()
    assert after["status"] == "TASK_RERUN" and after["finishedAt"] == "2025-11-22T01:30:00Z"
    assert http.get("/pipelines", params={"pending": 1}).json()["count"] == 0  # quirk #16
    assert http.post(f"/pipelines/{failed}/rerun").json()["message"] == "pipeline is waiting to run"
    assert http.post(f"/blueprints/{bp}/trigger").status_code == 400
    fake.run_pending()
    assert fake.pipelines[failed]["status"] == "TASK_COMPLETED"
    assert http.post(f"/pipelines/{failed}/rerun").json()["message"] == "no tasks to be re-ran"
    running = fake.add_pipeline(bp, "TASK_RUNNING")
    assert http.post(f"/pipelines/{running}/rerun").json()["message"] == "pipeline is running"
    assert http.get("/pipelines/999").status_code == 404


def test_pipeline_filters_and_paging(fake, http):
    a = fake.add_project("a", labels=["team"])
    b = fake.add_project("b")
    ids = [fake.add_pipeline(a, "TASK_COMPLETED"), fake.add_pipeline(a, "TASK_FAILED"),
           fake.add_pipeline(b, "TASK_FAILED"), fake.add_pipeline(b, "TASK_CREATED")]

    def listed(**params):
        body = http.get("/pipelines", params=params).json()
        return body["count"], [p["id"] for p in body["pipelines"]]

    assert listed() == (4, ids[::-1])
    assert listed(status="TASK_FAILED") == (2, [ids[2], ids[1]])
    assert listed(blueprint_id=a) == (2, [ids[1], ids[0]])
    assert listed(pending=1) == (1, [ids[3]])
    assert listed(label="team") == (2, [ids[1], ids[0]])
    assert listed(pageSize=1, page=2) == (4, [ids[2]])
    assert listed(pagesize=1)[1] == ids[::-1]  # only `pageSize` counts (quirk #6)
    assert http.get("/pipelines", params={"pending": "yes"}).status_code == 400
    body = http.get(f"/blueprints/{b}/pipelines").json()
    assert body["count"] == 2 and body["pipelines"][0]["id"] == ids[3]
    assert http.delete(f"/pipelines/{ids[3]}").status_code == 200
    assert fake.pipelines[ids[3]]["status"] == "TASK_CANCELLED"


def test_run_pending_outcome_and_set_status(fake, clock):
    bp = fake.add_project("flaky-thing")
    queued = fake.add_pipeline(bp, "TASK_CREATED")
    assert fake.run_pending(flaky_outcome) == [queued]
    done = fake.pipelines[queued]
    assert done["status"] == "TASK_FAILED" and done["finishedAt"] and done["message"]
    running = fake.add_pipeline(bp, "TASK_RUNNING")
    assert fake.run_pending() == []
    fake.set_pipeline_status(running, "TASK_COMPLETED", finished_at=clock.now)
    assert fake.pipelines[running]["finishedAt"] == "2025-11-22T03:30:00Z"


# --- fault injection ------------------------------------------------------------------------------

def test_fault_status_times_headers_and_log(fake, http):
    fake.inject("GET", r"^/projects$", status=503, times=2, headers={"Retry-After": "3"})
    first = http.get("/projects")
    assert first.status_code == 503 and first.headers["Retry-After"] == "3"
    assert http.get("/projects").status_code == 503
    assert http.get("/projects").status_code == 200
    assert [r.status for r in fake.requests] == [503, 503, 200]
    assert fake.count("GET", "/projects") == 3 and fake.mutating_count() == 0
    fake.inject("*", r"/ping", status=500, times=-1)
    assert all(http.get("/ping").status_code == 500 for _ in range(3))
    fake.clear_faults()
    assert http.get("/ping").status_code == 200
    fake.reset_log()
    assert fake.requests == []


def test_fault_after_write_is_an_ambiguous_write(fake, http):
    fake.inject("POST", r"^/projects$", status=500, after_write=True)
    assert http.post("/projects", json={"name": "p"}).status_code == 500
    assert "p" in fake.projects and fake.requests[-1].body == {"name": "p"}


def test_fault_delay_triggers_client_timeout(fake, http):
    fake.inject("GET", r"^/version$", status=None, delay=0.4)
    with pytest.raises(requests.Timeout):
        http.get("/version", timeout=0.1)
    assert http.get("/version").status_code == 200


def test_fault_malformed_body(fake, http):
    fake.inject("GET", r"/plugins$", status=200, body="{oops")
    resp = http.get("/plugins")
    assert resp.status_code == 200
    with pytest.raises(ValueError):
        resp.json()


# --- performance and lifecycle --------------------------------------------------------------------

def test_latency_overlaps_across_keep_alive_connections(clock):
    with FakeDevLake(latency=0.1, clock=clock) as fake:
        local = threading.local()

        def call(_):
            if not hasattr(local, "s"):
                local.s = requests.Session()
            return local.s.get(f"{fake.url}/ping").status_code

        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(call, range(16))) == {200}
        assert time.monotonic() - started < 0.8  # 16 × 0.1 s serially would be 1.6 s


def test_stop_closes_idle_keep_alive_connections(clock):
    fake = FakeDevLake(clock=clock)
    url = fake.start()
    session = requests.Session()
    assert session.get(f"{url}/ping").status_code == 200
    fake.stop()
    with pytest.raises(requests.ConnectionError):
        session.get(f"{url}/ping", timeout=1)


def test_sample_data(fake, http):
    load_sample_data(fake)
    plugins = {p["plugin"] for p in http.get("/plugins").json()}
    assert {"github", "gitlab", "jira", "jenkins", "bitbucket", "azuredevops_go", "circleci", "bamboo"} <= plugins
    project = http.get("/projects").json()["projects"][0]
    assert project["name"] == HAND_MADE_PROJECT and project["description"] == ""
    assert project["lastPipeline"]["status"] == "TASK_FAILED"
    assert len(project["blueprint"]["connections"]) == 1


# --- why a pipeline failed (§9.4), restarts (§9.3), connection checks (§9.6) ----------------------

def test_a_failed_task_reports_its_plugin_subtask_and_message(fake, http):
    cid = fake.add_connection("github", "gh")
    fake.add_scope("github", cid, {"githubId": 1, "name": "r", "fullName": "o/r"})
    bp = fake.add_project("p", scopes=[("github", cid, "1")])
    message = "Retry exceeded 3 times calling repos/o/r/pulls. Response: {\"message\":\"Bad credentials\"} (401)"
    pid = fake.add_pipeline(bp, "TASK_FAILED", finished_at=fake.now(),
                            failure={"plugin": "github", "failedSubTask": "collectApiPullRequests",
                                     "message": message})
    tasks = http.get(f"/pipelines/{pid}/tasks").json()["tasks"]
    (failed,) = [t for t in tasks if t["status"] == "TASK_FAILED"]
    assert (failed["plugin"], failed["failedSubTask"], failed["message"]) == (
        "github", "collectApiPullRequests", message)
    assert http.get(f"/pipelines/{pid}").json()["message"] == f"Error running pipeline {pid}."


def test_a_restart_without_resume_fails_running_pipelines_without_finished_at(fake, http, clock):
    bp = fake.add_project("p")
    running = fake.add_pipeline(bp, "TASK_RUNNING", began_at=fake.now())
    queued = fake.add_pipeline(bp, "TASK_CREATED")
    clock.now += timedelta(minutes=7)
    assert fake.restart() == [running]
    body = http.get(f"/pipelines/{running}").json()
    assert (body["status"], body["finishedAt"]) == ("TASK_FAILED", None)
    assert body["updatedAt"].startswith(fake.now().strftime("%Y-%m-%dT%H:%M"))
    assert http.get(f"/pipelines/{queued}").json()["status"] == "TASK_CREATED"
    assert {t["status"] for t in http.get(f"/pipelines/{running}/tasks").json()["tasks"]} == {"TASK_FAILED"}
    resumed = fake.add_pipeline(bp, "TASK_RUNNING", began_at=fake.now())
    assert fake.restart(resume_pipelines=True) == [resumed]
    assert http.get(f"/pipelines/{resumed}").json()["status"] == "TASK_RESUME"


def test_connection_test_answers_the_upstreams_verdict(fake, http):
    good = fake.add_connection("github", "good")
    bad = fake.add_connection("circleci", "bad")
    fake.fail_connection_test("circleci", bad, 401, "unexpected status code: 401")
    ok = http.post(f"/plugins/github/connections/{good}/test")
    assert ok.status_code == 200 and ok.json()["success"] is True
    failed = http.post(f"/plugins/circleci/connections/{bad}/test")
    assert failed.status_code == 401 and failed.json()["message"] == "unexpected status code: 401"
    assert http.post("/plugins/github/connections/99/test").status_code == 400  # find connection from db
    fake.fail_connection_test("circleci", bad, None)
    assert http.post(f"/plugins/circleci/connections/{bad}/test").status_code == 200


def test_github_token_test_answers_200_with_success_false(fake, http):
    cid = fake.add_connection("github", "gh", token="ghp_secret1,ghp_secret2")
    good = http.post(f"/plugins/github/connections/{cid}/test").json()
    assert good["success"] is True and [t["login"] for t in good["tokens"]] == ["octocat", "octocat"]
    fake.fail_connection_test("github", cid, 401, "StatusUnauthorized error when testing connection")
    answer = http.post(f"/plugins/github/connections/{cid}/test")
    assert answer.status_code == 200
    body = answer.json()
    assert body["success"] is False and body["message"] == "StatusUnauthorized error when testing connection"
    assert [t["success"] for t in body["tokens"]] == [False, False]
    assert "secret" not in answer.text  # tokens come back masked
    app = fake.add_connection("github", "app", authMethod="AppKey")
    fake.fail_connection_test("github", app, 400, "Bad credentials")
    assert http.post(f"/plugins/github/connections/{app}/test").status_code == 400  # App keys: an error status
