"""The session's retry rules over real HTTP (urllib3 retries do not run under requests-mock).

GET, PUT and PATCH are retried on 429/500/502/503/504, timeouts and connection errors, with
exponential backoff and at most DEVLAKE_HTTP_RETRIES retries; Retry-After is honoured; 400, 401,
403 and 404 are never retried. A POST is re-sent only after a 429 or a 503 with Retry-After
(refused before processing); after any other failure the applier reconciles it by reading back.
"""
from __future__ import annotations

import pytest

from config import load_settings
from modules.api import DevLakeError
from modules.client import build_client
from sandbox.fake_devlake import FakeDevLake


@pytest.fixture
def lake():
    with FakeDevLake() as server:
        server.cid = server.add_connection("jira", "jira")
        server.add_remote_scope("jira", server.cid, "Board 1")
        yield server


def client_for(lake, sleeps, **env):
    settings = load_settings({"DEVLAKE_URL": lake.url, "DEVLAKE_HTTP_RETRIES": "3",
                              "DEVLAKE_RETRY_BACKOFF_SECONDS": "1", "DEVLAKE_TIMEOUT_SECONDS": "5", **env})
    return build_client(settings, sleep=sleeps.append)


def sent(lake, method, path):
    return [r for r in lake.requests if r.method == method and r.path == path]


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_reads_are_retried_with_exponential_backoff_and_bounded(lake, status):
    lake.inject("GET", r"^/projects$", status=status, times=-1)
    sleeps: list[float] = []
    with pytest.raises(DevLakeError) as info:
        list(client_for(lake, sleeps).iter_projects())
    assert info.value.status == status
    assert len(sent(lake, "GET", "/projects")) == 4           # 1 + DEVLAKE_HTTP_RETRIES
    assert sleeps == sorted(sleeps) and sleeps[-1] == 2 * sleeps[-2] > 0  # doubling


def test_idempotent_writes_are_retried_until_they_pass(lake):
    lake.inject("PUT", r"/scopes$", status=502, times=2)
    lake.inject("PATCH", r"^/blueprints/\d+$", status=429, headers={"Retry-After": "7"}, times=1)
    sleeps: list[float] = []
    client = client_for(lake, sleeps)
    client.put_scopes("jira", lake.cid, [{"boardId": 1, "name": "Board 1"}])
    project = client.create_project({"name": "p", "metrics": []})
    client.patch_blueprint(project["blueprint"]["id"], {"timeAfter": "2026-11-21T00:00:00+07:00"})
    assert len(sent(lake, "PUT", f"/plugins/jira/connections/{lake.cid}/scopes")) == 3
    assert len([r for r in lake.requests if r.method == "PATCH"]) == 2
    assert 7 in sleeps                                          # Retry-After honoured


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_client_errors_are_never_retried(lake, status):
    lake.inject("*", r"^/blueprints", status=status, times=-1)
    sleeps: list[float] = []
    client = client_for(lake, sleeps)
    for call in (lambda: list(client.iter_blueprints()), lambda: client.patch_blueprint(1, {"enable": True})):
        with pytest.raises(DevLakeError):
            call()
    assert len([r for r in lake.requests if r.path.startswith("/blueprints")]) == 2 and sleeps == []


def test_an_ambiguous_post_failure_is_not_re_sent_by_the_session(lake):
    lake.inject("POST", r"^/projects$", status=503, times=-1)  # no Retry-After: may have been processed
    with pytest.raises(DevLakeError):
        client_for(lake, []).create_project({"name": "p", "metrics": []})
    assert len(sent(lake, "POST", "/projects")) == 1


@pytest.mark.parametrize("status, headers", [(429, {}), (429, {"Retry-After": "4"}), (503, {"Retry-After": "4"})])
def test_a_refused_post_is_re_sent_after_retry_after(lake, status, headers):
    lake.inject("POST", r"^/projects$", status=status, headers=headers, times=2)
    sleeps: list[float] = []
    project = client_for(lake, sleeps).create_project({"name": "p", "metrics": []})
    assert project["name"] == "p" and len(lake.projects) == 1
    assert len(sent(lake, "POST", "/projects")) == 3
    if headers:
        assert sleeps == [4, 4]


def test_a_refused_post_gives_up_within_the_attempt_budget(lake):
    lake.inject("POST", r"^/blueprints/\d+/trigger$", status=429, times=-1)
    with pytest.raises(DevLakeError) as info:
        client_for(lake, []).trigger_blueprint(1)
    assert info.value.status == 429
    assert len([r for r in lake.requests if r.method == "POST"]) == 4  # 1 + DEVLAKE_HTTP_RETRIES


def test_connection_resets_and_timeouts_are_retried(lake):
    lake.inject_random(1.0, seed=1, kinds=("reset",))
    with pytest.raises(DevLakeError):
        client_for(lake, []).list_plugins()
    assert len(sent(lake, "GET", "/plugins")) == lake.random_faults_injected["reset"] == 4
    lake.clear_faults()
    # The first answer comes after 0.6 s, past the 0.3 s read timeout: only a retry can succeed.
    lake.inject("GET", r"^/plugins$", status=None, delay=0.6, times=1)
    assert "jira" in client_for(lake, [], DEVLAKE_TIMEOUT_SECONDS="0.3").list_plugins()
