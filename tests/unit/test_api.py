import pytest
import requests

from modules.api import (
    DevLakeAuthError,
    DevLakeClient,
    DevLakeError,
    DevLakeNotFound,
    DevLakeUnavailable,
    DryRunViolation,
    enc,
)
from utils.http import make_session

BASE = "http://devlake.test"


@pytest.fixture
def client():
    return DevLakeClient(make_session(api_key="k", retries=0, backoff_seconds=0), BASE, timeout=5)


def test_pagination_follows_page_and_count(client, requests_mock, monkeypatch):
    pages = {1: [{"name": "a"}, {"name": "b"}], 2: [{"name": "c"}]}
    requests_mock.get(f"{BASE}/projects", [
        {"json": {"count": 3, "projects": pages[1]}},
        {"json": {"count": 3, "projects": pages[2]}},
    ])
    from modules import api as api_mod
    monkeypatch.setattr(api_mod, "PROJECTS_PAGE_SIZE", 2)
    names = [p["name"] for p in client.iter_projects()]
    assert names == ["a", "b", "c"]
    queries = [r.qs for r in requests_mock.request_history]
    assert queries == [{"page": ["1"], "pagesize": ["2"]}, {"page": ["2"], "pagesize": ["2"]}]
    assert requests_mock.request_history[0].headers["Authorization"] == "Bearer k"


def test_projects_are_read_in_pages_of_100_one_at_a_time(client, requests_mock):
    # GET /projects costs DevLake several queries per project on the page (services/project.go)
    def page(first: int, size: int) -> dict:
        return {"json": {"count": 250, "projects": [{"name": f"p{i}"} for i in range(first, first + size)]}}
    requests_mock.get(f"{BASE}/projects", [page(0, 100), page(100, 100), page(200, 50)])
    projects = client.iter_projects()
    next(projects)
    assert requests_mock.call_count == 1  # lazily: the next page only when this one is used up
    assert len(list(projects)) == 249
    assert [r.qs["pagesize"] for r in requests_mock.request_history] == [["100"]] * 3


def test_pagination_stops_at_count_on_a_full_last_page(client, requests_mock):
    requests_mock.get(f"{BASE}/plugins/github/connections/1/scopes",
                      json={"count": 1, "scopes": [{"scope": {"githubId": 1}}]})
    assert list(client.iter_scopes("github", 1)) == [{"githubId": 1}]
    assert requests_mock.call_count == 1
    assert requests_mock.last_request.qs["pagesize"] == ["1000"]


def test_scope_items_must_be_wrapped(client, requests_mock):
    requests_mock.get(f"{BASE}/plugins/github/connections/1/scopes", json={"count": 1, "scopes": [{"githubId": 1}]})
    with pytest.raises(DevLakeError, match="scope list item"):
        list(client.iter_scopes("github", 1))


def test_remote_scopes_follow_tokens_with_the_same_group(client, requests_mock):
    url = f"{BASE}/plugins/gitlab/connections/2/remote-scopes"
    requests_mock.get(url, [
        {"json": {"children": [{"type": "scope", "id": "1"}], "nextPageToken": "t1"}},
        {"json": {"children": [{"type": "scope", "id": "2"}], "nextPageToken": ""}},
    ])
    ids = [c["id"] for c in client.iter_remote_children("gitlab", 2, "g/1")]
    assert ids == ["1", "2"]
    assert requests_mock.request_history[0].qs == {"groupid": ["g/1"]}
    assert requests_mock.request_history[1].qs == {"groupid": ["g/1"], "pagetoken": ["t1"]}


def test_remote_scopes_repeating_token_is_an_error_not_a_loop(client, requests_mock):
    requests_mock.get(f"{BASE}/plugins/github/connections/1/remote-scopes",
                      json={"children": [], "nextPageToken": "same"})
    with pytest.raises(DevLakeError, match="twice"):
        list(client.iter_remote_children("github", 1))


@pytest.mark.parametrize("status, body, cls, message", [
    (401, '{"success":false,"message":"token is missing"}', DevLakeAuthError, "token is missing"),
    (403, '{"success":false,"message":"api key is invalid"}', DevLakeAuthError, "api key is invalid"),
    (404, "404 page not found", DevLakeNotFound, "404 page not found"),
    (400, '{"message":"A project with name [x] already exists"}', DevLakeError, "already exists"),
    (500, "", DevLakeError, "Internal Server Error"),
    (503, "", DevLakeUnavailable, "Service Unavailable"),
])
def test_errors_are_typed_with_devlakes_message(client, requests_mock, status, body, cls, message):
    requests_mock.get(f"{BASE}/plugins", status_code=status, text=body, reason=None)
    with pytest.raises(cls) as info:
        client.list_plugins()
    assert message in info.value.message
    assert info.value.status == status and info.value.path == "/plugins"


def test_malformed_json_is_an_error(client, requests_mock):
    requests_mock.get(f"{BASE}/plugins", text="{not json")
    with pytest.raises(DevLakeError, match="malformed JSON"):
        client.list_plugins()


def test_unexpected_shape_is_an_error(client, requests_mock):
    requests_mock.get(f"{BASE}/plugins/github/connections", json={"connections": []})
    with pytest.raises(DevLakeError, match="array"):
        client.list_connections("github")


def test_connection_errors_become_unavailable(client, requests_mock):
    requests_mock.get(f"{BASE}/plugins", exc=requests.ConnectTimeout("slow"))
    with pytest.raises(DevLakeUnavailable):
        client.list_plugins()


def test_dry_run_refuses_writes_before_sending(requests_mock):
    c = DevLakeClient(make_session(api_key=None, retries=0, backoff_seconds=0), BASE, dry_run=True)
    with pytest.raises(DryRunViolation):
        c.create_project({"name": "x"})
    assert requests_mock.call_count == 0


def test_writes_send_json_and_encode_path_segments(client, requests_mock):
    requests_mock.put(f"{BASE}/plugins/github/connections/1/scopes", json=[{"githubId": 1}])
    requests_mock.patch(f"{BASE}/blueprints/7", json={"id": 7})
    client.put_scopes("github", 1, [{"githubId": 1}])
    client.patch_blueprint(7, {"timeAfter": "2026-11-21T00:00:00+07:00"})
    assert requests_mock.request_history[0].json() == {"data": [{"githubId": 1}]}
    assert requests_mock.request_history[1].json() == {"timeAfter": "2026-11-21T00:00:00+07:00"}
    assert client.calls == 2 and client.mutating_calls == 2
    assert enc("github/my repo") == "github%2Fmy%20repo"
