"""The fake DevLake over real HTTP: shapes and quirks from `docs/devlake-api.md`."""
from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
import requests

from sandbox.fake_devlake import FakeDevLake

DUPLICATE = "The name of the current scope config is duplicated. Please modify it before saving."


def github_world(fake):
    cid = fake.add_connection("github", "gh", token="ghp_0123456789abcdef")
    fake.add_remote_group("github", cid, "acme", "acme")
    ids = [fake.add_remote_scope("github", cid, f"repo{i}", parent_id="acme") for i in range(3)]
    return cid, ids


def github_row(scope_id: str, **extra) -> dict:
    name = f"repo-{scope_id}"
    return {"githubId": int(scope_id), "name": name, "fullName": f"acme/{name}", **extra}


# --- discovery and connections (§2, §3) -----------------------------------------------------------

def test_plugins_list_and_helper_plugins_without_connection_api(fake, http):
    fake.add_connection("gitlab", "gl", token="glpat-secret-token")
    names = {p["plugin"]: p["metric"] for p in http.get("/plugins").json()}
    assert {"dora", "org", "gitextractor", "refdiff", "webhook", "gitlab"} <= set(names)
    assert names["dora"]["isProjectMetric"] is True
    miss = http.get("/plugins/dora/connections")
    assert (miss.status_code, miss.text, miss.headers["Content-Type"]) == (404, "404 page not found", "text/plain")
    assert http.get("/plugins/webhook/connections").json() == []
    conns = http.get("/plugins/gitlab/connections").json()
    assert isinstance(conns, list) and conns[0]["token"] == "gl**************en"
    assert fake.connections("gitlab")[0]["token"] == "glpat-secret-token"


def test_github_refresh_token_is_not_sanitized(fake, http):
    fake.add_connection("github", "gh", token="tok1aaaaaa,tok2bbbbbb", refreshToken="ghr_refresh", password="x")
    conn = http.get("/plugins/github/connections/1").json()
    assert conn["token"] == "to******aa,to******bb" and conn["refreshToken"] == "ghr_refresh"
    assert conn["password"] == ""


def test_unknown_route_and_wrong_method_are_plain_404(http):
    for method, path in [("GET", "/nope"), ("PUT", "/projects"), ("GET", "/projects/a/b")]:
        resp = http(method, path)
        assert (resp.status_code, resp.text) == (404, "404 page not found")


# --- remote scopes (§4) ---------------------------------------------------------------------------

def walk(http, plugin, cid, group=None):
    """Every entry under `group`, following page tokens and nested groups; also counts pages."""
    entries, pages, token = [], 0, ""
    while True:
        params = {k: v for k, v in (("groupId", group), ("pageToken", token)) if v}
        body = http.get(f"/plugins/{plugin}/connections/{cid}/remote-scopes", params=params).json()
        pages += 1
        for child in body["children"]:
            entries.append(child)
            if child["type"] == "group":
                sub, sub_pages = walk(http, plugin, cid, child["id"])
                entries += sub
                pages += sub_pages
        token = body["nextPageToken"]
        if not token:
            return entries, pages


def test_remote_scope_page_tokens_across_nested_gitlab_groups(fake, http):
    cid = fake.add_connection("gitlab", "gl")
    fake.add_remote_group("gitlab", cid, "1", "acme")
    fake.add_remote_group("gitlab", cid, "2", "backend", parent_id="1")
    fake.add_remote_group("gitlab", cid, "3", "payments", parent_id="2")
    ids = [fake.add_remote_scope("gitlab", cid, f"p{i}", parent_id=str(1 + i % 3)) for i in range(7)]
    entries, pages = walk(http, "gitlab", cid)
    scopes = [e for e in entries if e["type"] == "scope"]
    assert sorted(e["id"] for e in scopes) == sorted(ids) and pages > 4  # page size 2
    group = next(e for e in entries if e["id"] == "3")
    assert group == {"type": "group", "parentId": "2", "id": "3", "name": "payments",
                     "fullName": "acme/backend/payments", "data": None}
    leaf = next(e for e in scopes if e["parentId"] == "3")
    assert leaf["fullName"] == f"acme/backend/payments/{leaf['name']}"
    assert leaf["data"]["gitlabId"] == int(leaf["id"]) and leaf["data"]["connectionId"] == 0
    assert leaf["data"]["httpUrlToRepo"].endswith(".git")
    # the token is opaque base64 JSON, passed back with the same groupId
    first = http.get(f"/plugins/gitlab/connections/{cid}/remote-scopes", params={"groupId": "1"}).json()
    assert json.loads(base64.b64decode(first["nextPageToken"]))
    assert http.get(f"/plugins/gitlab/connections/{cid}/remote-scopes",
                    params={"groupId": "1", "pageToken": "%%%"}).status_code == 400


def test_github_user_group_repeats_org_repos(fake, http):
    cid, ids = github_world(fake)
    fake.add_remote_group("github", cid, "me", "me")
    fake.add_remote_scope("github", cid, "repo0", parent_id="me", scope_id=ids[0])
    entries, _ = walk(http, "github", cid)
    scope_ids = [e["id"] for e in entries if e["type"] == "scope"]
    assert scope_ids.count(ids[0]) == 2 and len(set(scope_ids)) == 3
    data = next(e["data"] for e in entries if e["id"] == ids[0])
    assert data["HTMLUrl"] == "https://github.com/acme/repo0" and "htmlUrl" not in data


def test_bitbucket_never_pages_and_top_level_only_plugins_ignore_group(fake, http):
    bb = fake.add_connection("bitbucket", "bb")
    fake.add_remote_group("bitbucket", bb, "ws", "Workspace")
    for i in range(5):
        fake.add_remote_scope("bitbucket", bb, f"r{i}", parent_id="ws")
    body = http.get(f"/plugins/bitbucket/connections/{bb}/remote-scopes", params={"groupId": "ws"}).json()
    assert len(body["children"]) == 5 and body["nextPageToken"] == ""
    assert body["children"][0]["id"] == "ws/r0" == body["children"][0]["data"]["bitbucketId"]
    jira = fake.add_connection("jira", "jira")
    boards = [fake.add_remote_scope("jira", jira, f"Board {i}") for i in range(3)]
    assert [b for b in boards] == ["1", "2", "3"]
    entries, _ = walk(http, "jira", jira)
    assert [e["id"] for e in entries] == boards
    again = http.get(f"/plugins/jira/connections/{jira}/remote-scopes", params={"groupId": "x"}).json()
    assert [e["id"] for e in again["children"]] == boards[:2]
    with pytest.raises(ValueError):
        fake.add_remote_group("jira", jira, "g", "g")


def test_azure_external_repo_entry_id_differs_from_scope_id(fake, http):
    cid = fake.add_connection("azuredevops_go", "ado", organization="org")
    fake.add_remote_group("azuredevops_go", cid, "org/proj", "proj")
    tfs = fake.add_remote_scope("azuredevops_go", cid, "core", parent_id="org/proj")
    ext = fake.add_remote_scope("azuredevops_go", cid, "lib", parent_id="org/proj",
                                full_name="octo/lib", external=True)
    children = http.get(f"/plugins/azuredevops_go/connections/{cid}/remote-scopes",
                        params={"groupId": "org/proj"}).json()["children"]
    by_name = {c["name"]: c for c in children}
    assert by_name["core"]["id"] == tfs == by_name["core"]["data"]["id"]
    assert by_name["core"]["data"]["type"] == "TfsGit"
    assert by_name["lib"]["id"] == "octo/lib" and by_name["lib"]["data"]["id"] == ext != "octo/lib"


# --- scopes and scope configs (§5, §6) ------------------------------------------------------------

def test_scope_list_is_wrapped_and_omits_zero_scope_config_id(fake, http):
    cid, ids = github_world(fake)
    config = fake.add_scope_config("github", cid, "cfg", entities=["CODE"])
    fake.add_scope("github", cid, github_row(ids[0]), scope_config_id=config)
    fake.add_scope("github", cid, github_row(ids[1]))
    body = http.get(f"/plugins/github/connections/{cid}/scopes", params={"pageSize": 1000}).json()
    assert body["count"] == 2
    first, second = body["scopes"]
    assert first["scope"]["scopeConfigId"] == config and first["scopeConfig"]["name"] == "cfg"
    assert "scopeConfigId" not in second["scope"] and "scopeConfig" not in second
    for key in ("connectionId", "createdAt", "updatedAt", "_raw_data_params", "_raw_data_table"):
        assert key in second["scope"]
    assert http.get(f"/plugins/github/connections/{cid}/scopes", params={"pageSize": 1001}).status_code == 400
    one = http.get(f"/plugins/github/connections/{cid}/scopes/{ids[0]}").json()
    assert one["scope"]["githubId"] == int(ids[0]) and one["scopeConfig"]["id"] == config


def test_put_scopes_is_an_overwriting_upsert_with_a_flat_answer(fake, http):
    cid, ids = github_world(fake)
    config = fake.add_scope_config("github", cid, "cfg")
    url = f"/plugins/github/connections/{cid}/scopes"
    rows = [github_row(ids[0], scopeConfigId=config, description="kept?")]
    saved = http.put(url, json={"data": rows}).json()
    assert isinstance(saved, list) and saved[0]["connectionId"] == cid and saved[0]["scopeConfigId"] == config
    http.put(url, json={"data": [github_row(ids[0])]})  # re-sent without scopeConfigId
    row = fake.scopes("github", cid)[0]
    assert "scopeConfigId" not in row and "description" not in row  # every column overwritten
    assert http.put(url, json={"rows": rows}).json()["message"] == "invalid data"
    assert http.put(url, json={"data": [{"name": "no id"}]}).status_code == 400
    assert http.put(url, data="{bad").status_code == 500  # raw bind error on /plugins/... (§1.3)


def test_github_put_counts_api_calls_for_items_without_urls(fake, http):
    cid, ids = github_world(fake)
    url = f"/plugins/github/connections/{cid}/scopes"
    full = {"htmlUrl": "https://github.com/acme/x", "cloneUrl": "https://github.com/acme/x.git"}
    http.put(url, json={"data": [github_row(ids[0], **full), github_row(ids[1], HTMLUrl="u", cloneUrl="c"),
                                 github_row(ids[2], htmlUrl="u")]})
    assert fake.github_api_calls == 2


def test_scope_patch_merges_and_wildcard_ids(fake, http):
    cid, ids = github_world(fake)
    fake.add_scope("github", cid, github_row(ids[0]))
    patched = http.patch(f"/plugins/github/connections/{cid}/scopes/{ids[0]}", json={"scopeConfigId": 7}).json()
    assert patched["scopeConfigId"] == 7 and patched["name"] == f"repo-{ids[0]}"
    jenkins = fake.add_connection("jenkins", "ci")
    fake.add_scope("jenkins", jenkins, {"fullName": "team/app/build", "name": "build"})
    assert http.get(f"/plugins/jenkins/connections/{jenkins}/scopes/team/app/build").status_code == 200
    assert http.get(f"/plugins/github/connections/{cid}/scopes/1/2").status_code == 404


def test_scope_configs_order_and_duplicate_names_across_connections(fake, http):
    first = fake.add_connection("github", "a")
    second = fake.add_connection("github", "b")
    url = f"/plugins/github/connections/{first}/scope-configs"
    created = http.post(url, json={"name": "one", "connectionId": 99, "entities": ["CODE"]})
    assert created.status_code == 201 and created.json()["connectionId"] == first
    assert created.json()["prType"] == "" and created.json()["refdiff"] is None
    http.post(url, json={"name": "two"})
    assert [c["name"] for c in http.get(url).json()] == ["two", "one"]
    dup = http.post(f"/plugins/github/connections/{second}/scope-configs", json={"name": "one"})
    assert (dup.status_code, dup.json()["message"]) == (500, DUPLICATE)
    patched = http.patch(f"{url}/{created.json()['id']}", json={"deploymentPattern": "deploy"})
    assert patched.status_code == 200 and patched.json()["name"] == "one"
    assert patched.json()["deploymentPattern"] == "deploy"


# --- projects (§7) --------------------------------------------------------------------------------

def test_project_post_creates_its_blueprint(fake, http):
    resp = http.post("/projects", json={"name": "p1", "metrics": [{"pluginName": "dora", "enable": True}]})
    assert resp.status_code == 201
    bp = resp.json()["blueprint"]
    assert (bp["name"], bp["projectName"], bp["mode"], bp["enable"], bp["cronConfig"], bp["isManual"]) == \
        ("p1-Blueprint", "p1", "NORMAL", True, "0 0 * * *", False)
    assert bp["connections"] == [] and bp["labels"] == []
    # six months before the clock (2025-11-22 10:30 +07:00), at local midnight, returned in UTC
    assert bp["timeAfter"] == "2025-05-21T17:00:00Z"
    assert fake.blueprints[bp["id"]]["projectName"] == "p1"
    assert http.get("/projects/p1").json()["metrics"][0]["pluginName"] == "dora"


def test_project_name_rules_and_duplicates(http):
    assert http.post("/projects", json={"name": "x" * 101}).status_code == 400
    assert http.post("/projects", json={"description": "no name"}).status_code == 400
    http.post("/projects", json={"name": "p"})
    dup = http.post("/projects", json={"name": "p"})
    assert (dup.status_code, dup.json()["message"]) == (400, "A project with name [p] already exists")
    assert dup.json()["success"] is False and dup.json()["data"] is None


def test_inline_blueprint_is_orphaned(fake, http):
    out = http.post("/projects", json={"name": "p", "blueprint": {"name": "mine", "mode": "NORMAL"}}).json()
    assert out["blueprint"] is None
    orphan = next(bp for bp in fake.blueprints.values() if bp["name"] == "mine")
    assert orphan["projectName"] == "" and orphan["enable"] is False


def test_percent_encoded_names_route_only_without_rest(fake, http):
    fake.api_key = "k"
    http.post("/projects", json={"name": "github/my-repo"})
    assert http.get("/projects/github%2Fmy-repo").json()["name"] == "github/my-repo"
    assert http.get("/projects/github%2Fmy-repo/check").json() == {"exist": True}
    assert http.get("/projects/nope/check").json() == {"exist": False}
    rest = http.get("/rest/projects/github%2Fmy-repo", headers={"Authorization": "Bearer k"})
    assert (rest.status_code, rest.text) == (404, "404 page not found")
    listed = http.get("/rest/projects", params={"keyword": "MY-REPO"}, headers={"Authorization": "Bearer k"})
    assert listed.json()["count"] == 1


def test_patch_project_answers_201_and_resets_description(http):
    http.post("/projects", json={"name": "p", "description": "hello"})
    resp = http.patch("/projects/p", json={"metrics": []})
    assert resp.status_code == 201 and resp.json()["description"] == ""
    assert http.delete("/projects/p").status_code == 200
    assert http.get("/projects/p").status_code == 404


def test_project_list_newest_first_with_last_pipeline(fake, http, clock):
    first = fake.add_project("old")
    clock.now += timedelta(minutes=1)
    fake.add_project("new")
    pid = fake.add_pipeline(first, "TASK_FAILED", finished_at=clock.now)
    body = http.get("/projects", params={"pageSize": 1, "page": 2}).json()
    assert body["count"] == 2 and [p["name"] for p in body["projects"]] == ["old"]
    assert body["projects"][0]["lastPipeline"]["id"] == pid
    newest = http.get("/projects").json()["projects"][0]
    assert newest["name"] == "new" and "lastPipeline" not in newest
    assert "lastPipeline" not in http.get("/projects/old").json()
    assert http.get("/projects", params={"page": "x"}).text == ""  # ApiOutputAbort: empty body


# --- auth (§1.2) ----------------------------------------------------------------------------------

def test_api_key_only_under_rest(clock):
    with FakeDevLake(api_key="secret", clock=clock) as fake:
        url = fake.url
        assert requests.get(f"{url}/projects").status_code == 200  # quirk #1
        missing = requests.get(f"{url}/rest/projects")
        assert (missing.status_code, missing.json()["message"]) == (401, "token is missing")
        wrong = requests.get(f"{url}/rest/projects", headers={"Authorization": "Bearer nope"})
        assert (wrong.status_code, wrong.json()["message"]) == (403, "api key is invalid")
        ok = requests.get(f"{url}/rest/projects", headers={"Authorization": "Bearer secret"})
        assert ok.status_code == 200 and ok.json() == {"projects": [], "count": 0}
        assert fake.requests[-1].raw_path == "/rest/projects" and fake.requests[-1].path == "/projects"
        fake.require_auth = True
        assert requests.get(f"{url}/projects").status_code == 401
        assert requests.get(f"{url}/ping").status_code == 200
        assert requests.get(f"{url}/projects", auth=("admin", "anything")).status_code == 200
        assert requests.get(f"{url}/proceed-db-migration").status_code == 401  # needs auth on main
        assert requests.get(f"{url}/projects", headers={"X-Forwarded-User": "a"}).status_code == 401
        fake.set_forwarded_user_secret("s3")
        assert requests.get(f"{url}/projects", headers={"X-Forwarded-User": "a",
                                                         "X-Forwarded-User-Secret": "s3"}).status_code == 200
        fake.emulate_rest_auth_gate_bug()
        gated = requests.get(f"{url}/rest/projects", headers={"Authorization": "Bearer secret"})
        assert (gated.status_code, gated.json()["message"]) == (401, "unauthorized")
        assert requests.get(f"{url}/rest/version", headers={"Authorization": "Bearer secret"}).status_code == 200


def test_framework_endpoints(http):
    ping = http.get("/ping")
    assert (ping.status_code, ping.content) == (200, b"")
    assert http.get("/version").json() == {"version": "v1.0.3-fake"}
    assert http.get("/ready").json()["message"] == "ready"


def test_the_sandbox_cli_adds_repositories_at_scale_and_refuses_a_negative_count(capsys):
    from sandbox.__main__ import parse_args
    assert parse_args([]).scale == 0
    assert parse_args(["--scale", "2000"]).scale == 2000
    with pytest.raises(SystemExit) as exited:
        parse_args(["--scale", "-1"])
    assert exited.value.code == 2 and "--scale must be 0 or more" in capsys.readouterr().err
