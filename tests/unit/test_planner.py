"""The planner without HTTP: hand-made observations in, plain changes out."""
from __future__ import annotations

from datetime import datetime

import pytz

from config import load_settings
from modules.changes import (
    CreateProject,
    CreateScopeConfig,
    PatchBlueprint,
    PutScopes,
    RerunPipeline,
    TriggerBlueprint,
)
from modules.cron_slots import DEVLAKE_DEFAULT_CRON, plan_schedule, recorded_cron
from modules.observe import ConnectionView, Observed
from modules.planner import plan
from modules.projects import MANAGED_LABEL, MAX_PROJECT_NAME_BYTES, marker
from modules.scopes import Connection, RemoteScopes, ScopeRef

VN = pytz.timezone("Asia/Ho_Chi_Minh")
NOW = VN.localize(datetime(2026, 11, 25, 18, 0))  # Wednesday; previous Saturday 2026-11-21
TARGET = "2026-11-21T00:00:00+07:00"
GH = Connection("github", 1, "gh")
CONFIG = {"id": 3, "name": "devlake-automation-github-1", "entities": ["CODE", "TICKET", "CODEREVIEW", "CROSS", "CICD"],
          "deploymentPattern": "(deploy|push-image)", "productionPattern": "prod"}


def settings(**env):
    return load_settings({"DEVLAKE_URL": "http://devlake.test", **env})


def repo(i, name=None, full=None):
    name = name or f"repo{i}"
    return {"githubId": i, "name": name, "fullName": full or f"org/{name}", "HTMLUrl": f"https://gh/org/{name}"}


def observed(remote=None, existing=None, configs=(CONFIG,), projects=(), blueprints=()):
    """None: DevLake has the blueprints' scopes (configured) / upstream lists what DevLake has."""
    if existing is None:
        existing = [dict(repo(int(s["scopeId"])), scopeConfigId=3) for bp in blueprints
                    for c in bp.get("connections") or [] for s in c["scopes"] if s["scopeId"].isdigit()]
    if remote is None:
        remote = existing
    view = ConnectionView(GH, {str(r["githubId"]): r for r in existing}, list(configs),
                          RemoteScopes({str(r["githubId"]): r for r in remote}))
    return Observed([view], list(projects), list(blueprints))


def managed_bp(bp_id, project, scope_id, time_after=TARGET, cron=DEVLAKE_DEFAULT_CRON):
    return {"id": bp_id, "projectName": project, "labels": [MANAGED_LABEL], "timeAfter": time_after,
            "cronConfig": cron, "isManual": False, "enable": True,
            "connections": [{"pluginName": "github", "connectionId": 1, "scopes": [{"scopeId": str(scope_id)}]}]}


def settled(bps, the_settings=None):
    """The blueprints as an earlier run left them: each on its slot cron, recorded in its label."""
    s = the_settings or settings()
    changes = plan_schedule(bps, window=s.collection_window, on=NOW.date(), tz=s.timezone,
                            devlake_tz=s.devlake_timezone, forced_cron=s.blueprint_cron).changes
    by_id = {c.blueprint_id: c.body() for c in changes}
    return [dict(bp, **by_id.get(bp["id"], {})) for bp in bps]


def of(kind, the_plan):
    return [c for c in the_plan.changes if isinstance(c, kind)]


def test_fresh_connection_plans_config_scopes_projects_and_triggers():
    p = plan(observed(remote=[repo(1), repo(2)], configs=()), settings(), NOW)
    assert [c.body["name"] for c in of(CreateScopeConfig, p)] == ["devlake-automation-github-1"]
    (put,) = of(PutScopes, p)
    assert put.action == "create" and put.scope_ids == ("1", "2") and put.scope_config is of(CreateScopeConfig, p)[0]
    assert all(r["htmlUrl"] and r["cloneUrl"] for r in put.rows)
    projects = of(CreateProject, p)
    assert [c.name for c in projects] == ["github/repo1", "github/repo2"]
    assert projects[0].blueprint["timeAfter"] == TARGET and projects[0].scope_added_by is put
    assert projects[0].blueprint["connections"] == [
        {"pluginName": "github", "connectionId": 1, "scopes": [{"scopeId": "1"}]}]
    assert [(t.project, t.blueprint) for t in of(TriggerBlueprint, p)] == [
        ("github/repo1", projects[0]), ("github/repo2", projects[1])]


def test_nothing_new_plans_nothing():
    p = plan(observed(remote=[repo(1)], existing=[dict(repo(1), scopeConfigId=3)],
                      projects=[{"name": "github/repo1"}], blueprints=settled([managed_bp(7, "github/repo1", 1)])),
             settings(), NOW)
    assert p.changes == [] and p.problems == [] and p.warnings == [] and p.unchanged >= 3


def test_incremental_only_the_new_scope():
    p = plan(observed(remote=[repo(1), repo(2)], existing=[dict(repo(1), scopeConfigId=3)],
                      projects=[{"name": "github/repo1"}], blueprints=[managed_bp(7, "github/repo1", 1)]),
             settings(), NOW)
    (put,) = of(PutScopes, p)
    assert put.scope_ids == ("2",) and put.rows[0]["scopeConfigId"] == 3 and put.scope_config == 3
    assert [c.name for c in of(CreateProject, p)] == ["github/repo2"]


def test_scopes_without_config_get_it_and_hand_set_configs_are_kept():
    p = plan(observed(existing=[repo(1), dict(repo(2), scopeConfigId=99)]), settings(), NOW)
    (put,) = of(PutScopes, p)
    assert put.action == "attach_scope_config" and put.scope_ids == ("1",)
    assert put.rows[0]["scopeConfigId"] == 3 and put.rows[0]["htmlUrl"] == "https://gh/org/repo1"


def test_hand_made_project_name_is_left_alone_and_full_name_used():
    p = plan(observed(remote=[repo(1, "api")], projects=[{"name": "github/api", "description": "mine"}]),
             settings(), NOW)
    assert [c.name for c in of(CreateProject, p)] == ["github/org/api"]


def test_two_scopes_with_one_name_get_distinct_names():
    p = plan(observed(remote=[repo(1, "api", "a/api"), repo(2, "api", "b/api")]), settings(), NOW)
    assert sorted(c.name for c in of(CreateProject, p)) == ["github/api", "github/b/api"]  # by full name


def test_long_multibyte_names_fit_100_bytes_stably_and_uniquely():
    long_cjk = "数据" * 30                      # 60 characters, 180 bytes
    remote = [repo(1, long_cjk, "org/" + long_cjk), repo(2, long_cjk, "org/" + long_cjk)]
    first = sorted(c.name for c in of(CreateProject, plan(observed(remote=remote), settings(), NOW)))
    again = sorted(c.name for c in of(CreateProject, plan(observed(remote=remote), settings(), NOW)))
    assert first == again and len(set(first)) == 2
    assert all(len(n.encode()) <= MAX_PROJECT_NAME_BYTES for n in first)
    assert all(n.startswith("github/数据") for n in first)
    accented = "é" * 51                            # 51 characters but 102 bytes: too long for DevLake
    (project,) = of(CreateProject, plan(observed(remote=[repo(3, accented, accented)]), settings(), NOW))
    assert len(project.name.encode()) <= 100 and project.name.encode().decode() == project.name


def test_interrupted_project_is_completed_not_recreated():
    scope = ScopeRef(GH, "1", "repo1", "org/repo1")
    ours = {"name": "github/repo1", "description": marker(scope), "blueprint": {"id": 9}}
    p = plan(observed(existing=[dict(repo(1), scopeConfigId=3)], projects=[ours],
                      blueprints=[{"id": 9, "projectName": "github/repo1", "connections": []}]), settings(), NOW)
    assert not of(CreateProject, p)
    (patch,) = of(PatchBlueprint, p)
    assert patch.blueprint_id == 9 and patch.fields["labels"][0] == MANAGED_LABEL
    assert recorded_cron(patch.fields["labels"]) == patch.fields["cronConfig"] != DEVLAKE_DEFAULT_CRON
    assert [(t.project, t.blueprint) for t in of(TriggerBlueprint, p)] == [("github/repo1", 9)]


def test_time_after_moves_forward_only_and_compares_instants():
    bps = [managed_bp(1, "same", 1, "2026-11-20T17:00:00Z"), managed_bp(2, "old", 2, "2026-11-14T00:00:00+07:00"),
           managed_bp(3, "later", 3, "2026-11-23T00:00:00+07:00"), dict(managed_bp(4, "hand", 4), labels=[],
                                                                       timeAfter="2020-01-01T00:00:00Z")]
    p = plan(observed(configs=(), projects=[], blueprints=settled(bps[:3]) + bps[3:]), settings(), NOW)
    patches = of(PatchBlueprint, p)
    assert [(c.blueprint_id, c.fields) for c in patches] == [(2, {"timeAfter": TARGET})]
    assert [w[0] for w in p.warnings] == ["time_after_later_kept"]


def test_failed_latest_pipeline_is_rerun_within_the_limit():
    projects = [{"name": "p", "lastPipeline": {"id": 40, "status": "TASK_FAILED"}},
                {"name": "q", "lastPipeline": {"id": 41, "status": "TASK_FAILED"}}]
    bps = [managed_bp(1, "p", 1), managed_bp(2, "q", 2)]
    p = plan(observed(configs=(), projects=projects, blueprints=bps), settings(), NOW, rerun_counts={41: 1})
    assert [(c.project, c.pipeline_id) for c in of(RerunPipeline, p)] == [("p", 40)]


def test_unreadable_parts_are_problems_not_guesses():
    obs = observed(remote=[repo(1)])
    obs.connections[0].existing = None
    obs.failures.append("scopes of github/1: boom")
    p = plan(obs, settings(), NOW)
    assert p.changes == [] and p.problems == ["scopes of github/1: boom"]


def test_an_unread_project_or_blueprint_list_plans_no_write_at_all():
    # issue 21: a scope may already be in a hand-made project; even new scopes wait for a good read
    for unread in ("projects", "blueprints"):
        obs = observed(remote=[repo(1)])
        setattr(obs, unread, None)
        obs.failures.append(f"{unread}: malformed")
        p = plan(obs, settings(), NOW)
        assert p.changes == [] and p.problems == [f"{unread}: malformed"]
