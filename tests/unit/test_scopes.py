import pytest

from modules.scopes import Connection, attach_row, new_scope_row, scope_ref, walk_remote_scopes
from tests.clients import mock_client

BASE = "http://devlake.test"


@pytest.fixture
def client():
    return mock_client(BASE)


def _children(*entries, token=""):
    return {"json": {"children": list(entries), "nextPageToken": token}}


def test_walk_nested_groups_and_dedupe_by_scope_id(client, requests_mock):
    url = f"{BASE}/plugins/github/connections/1/remote-scopes"
    repo = {"type": "scope", "id": "11", "name": "r1", "fullName": "org/r1",
            "data": {"githubId": 11, "name": "r1", "fullName": "org/r1", "HTMLUrl": "https://gh/org/r1"}}
    pages = {
        (None, None): _children({"type": "group", "id": "me"}, {"type": "group", "id": "org"}),
        ("org", None): _children({"type": "group", "id": "org/sub"}, repo, token="p2"),
        ("org", "p2"): _children({"type": "scope", "id": "12", "data": {"githubId": 12, "name": "r2"}}),
        ("org/sub", None): _children({"type": "scope", "id": "13", "data": {"githubId": 13, "name": "deep"}}),
        ("me", None): _children(repo),  # the user's own group lists the org repo again (§0 #21)
    }
    requests_mock.get(url, json=lambda request, _ctx: pages[(
        request.qs.get("groupid", [None])[0], request.qs.get("pagetoken", [None])[0])]["json"])
    found = walk_remote_scopes(client, Connection("github", 1, "gh"), workers=3).scopes
    assert sorted(found) == ["11", "12", "13"]
    asked = sorted((r.qs.get("groupid", [""])[0], r.qs.get("pagetoken", [""])[0])
                   for r in requests_mock.request_history)
    assert asked == [("", ""), ("me", ""), ("org", ""), ("org", "p2"), ("org/sub", "")]  # each page once


def test_azure_external_repo_uses_data_id(client, requests_mock):
    requests_mock.get(f"{BASE}/plugins/azuredevops_go/connections/3/remote-scopes", [_children(
        {"type": "scope", "id": "entry-id", "name": "ext", "data": {"id": "data-id", "type": "GitHub", "name": "ext"}})])
    assert list(walk_remote_scopes(client, Connection("azuredevops_go", 3, "az")).scopes) == ["data-id"]


def test_github_rows_carry_html_and_clone_urls_and_the_scope_config():
    row = new_scope_row("github", {"githubId": 5, "connectionId": 0, "HTMLUrl": "https://gh/o/r"}, 9)
    assert row["htmlUrl"] == "https://gh/o/r" and row["cloneUrl"] == "https://gh/o/r.git"
    assert row["scopeConfigId"] == 9 and "connectionId" not in row
    assert "scopeConfigId" not in new_scope_row("jira", {"boardId": 1}, None)


def test_attach_keeps_every_column_as_listed():
    row = {"gitlabId": 5, "name": "r", "description": "kept", "createdAt": "2026-01-01T00:00:00Z"}
    assert attach_row("gitlab", row, 3) == dict(row, scopeConfigId=3)
    assert "scopeConfigId" not in row


def test_github_rows_resent_to_attach_carry_lowercase_urls():
    # DevLake lists HTMLUrl; PutScopes checks dict["htmlUrl"] (exact key) or calls GitHub per row (§0 #18)
    row = {"githubId": 5, "name": "r", "HTMLUrl": "https://gh/o/r", "cloneUrl": ""}
    sent = attach_row("github", row, 3)
    assert sent["htmlUrl"] == "https://gh/o/r" and sent["cloneUrl"] == "https://gh/o/r.git"
    assert sent["HTMLUrl"] == "https://gh/o/r" and sent["scopeConfigId"] == 3


def test_bitbucket_workspace_with_100_repositories_is_reported(client, requests_mock):
    url = f"{BASE}/plugins/bitbucket/connections/4/remote-scopes"
    repos = [{"type": "scope", "id": f"ws/r{i}", "data": {"bitbucketId": f"ws/r{i}", "name": f"r{i}"}}
             for i in range(100)]
    requests_mock.get(url, [_children({"type": "group", "id": "ws"}), _children(*repos)])
    found = walk_remote_scopes(client, Connection("bitbucket", 4, "bb"))
    assert len(found.scopes) == 100 and found.capped_groups == ["ws"]


def test_scope_ref_names():
    ref = scope_ref(Connection("gitlab", 2, "gl"), {"gitlabId": 7, "name": "api", "pathWithNamespace": "grp/sub/api"})
    assert (ref.scope_id, ref.name, ref.full_name, ref.key) == ("7", "api", "grp/sub/api", ("gitlab", 2, "7"))
