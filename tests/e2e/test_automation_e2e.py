"""End-to-end: the real automation run against the in-process fake DevLake over real HTTP."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import pytz

from config import load_settings
from modules.changes import CreateProject, CreateScopeConfig, Outcome, PutScopes
from modules.client import build_client
from modules.cron_slots import cron_label, cron_minute_of_day
from modules.projects import MANAGED_LABEL
from modules.rerun_ledger import RERUN_STATE_FILE
from modules.runner import run_once
from sandbox.fake_devlake import FakeDevLake

VN = pytz.timezone("Asia/Ho_Chi_Minh")
NOW = VN.localize(datetime(2026, 11, 25, 18, 0))            # a Wednesday
TARGET = "2026-11-21T00:00:00+07:00"                         # the previous Saturday
TARGET_UTC = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)


@pytest.fixture
def fake():
    with FakeDevLake(clock=lambda: NOW.astimezone(UTC)) as server:
        yield server


@pytest.fixture
def world(fake):
    """Two plugins: github with an org and a duplicated user group, jira with boards."""
    gh = fake.add_connection("github", "gh")
    fake.add_remote_group("github", gh, "octo-org", "octo-org")
    fake.add_remote_group("github", gh, "me", "me")
    repos = [fake.add_remote_scope("github", gh, f"repo{i}", parent_id="octo-org",
                                   full_name=f"octo-org/repo{i}") for i in range(3)]
    fake.add_remote_scope("github", gh, "repo0", parent_id="me", full_name="octo-org/repo0", scope_id=repos[0])
    jira = fake.add_connection("jira", "jira")
    boards = [fake.add_remote_scope("jira", jira, f"Board {i}") for i in range(2)]
    return {"gh": gh, "jira": jira, "repos": repos, "boards": boards}


def settings_for(fake, tmp_path, **env):
    values = {"DEVLAKE_URL": fake.url, "STATE_DIR": str(tmp_path), "DEVLAKE_RETRY_BACKOFF_SECONDS": "0",
              "DEVLAKE_TIMEOUT_SECONDS": "2", "DEVLAKE_HTTP_RETRIES": "2"}
    values.update(env)
    return load_settings(values)


def run(fake, tmp_path, now=NOW, sleeps=None, **env):
    settings = settings_for(fake, tmp_path, **env)
    sleep = sleeps.append if sleeps is not None else (lambda s: None)
    return run_once(settings, build_client(settings, sleep=sleep), now, sleep=sleep)


def managed(fake):
    return {bp["projectName"]: bp for bp in fake.blueprints.values() if MANAGED_LABEL in (bp.get("labels") or [])}


def test_first_run_tracks_every_upstream_scope(fake, world, tmp_path):
    code, ctx = run(fake, tmp_path)
    assert code == 0, ctx.failures()
    # scopes: deduplicated (repo0 listed twice upstream), each with the connection's scope config
    gh_scopes = fake.scopes("github", world["gh"])
    assert sorted(str(s["githubId"]) for s in gh_scopes) == sorted(world["repos"])
    config = fake.scope_configs("github", world["gh"])
    assert [c["name"] for c in config] == [f"devlake-automation-github-{world['gh']}"]
    assert {s.get("scopeConfigId") for s in gh_scopes} == {config[0]["id"]}
    assert all(s.get("HTMLUrl") and s.get("cloneUrl") for s in gh_scopes)
    assert fake.github_api_calls == 0
    # one project per scope, named {plugin}/{name}, blueprint connected to exactly that scope
    bps = managed(fake)
    assert sorted(bps) == ["github/repo0", "github/repo1", "github/repo2", "jira/Board 0", "jira/Board 1"]
    bp = bps["github/repo1"]
    assert bp["connections"] == [{"pluginName": "github", "connectionId": world["gh"],
                                  "scopes": [{"scopeId": world["repos"][1]}]}]
    assert datetime.fromisoformat(bp["timeAfter"].replace("Z", "+00:00")) == TARGET_UTC
    # its own minute in COLLECTION_WINDOW (22:00-06:00 in Vietnam = 15:00-23:00 UTC), set and
    # recorded in its label by the same PATCH that connected it
    assert 15 * 60 <= (cron_minute_of_day(bp["cronConfig"]) or -1) < 23 * 60 and not bp["isManual"]
    assert bp["labels"] == [MANAGED_LABEL, cron_label(bp["cronConfig"])]
    assert len([r for r in fake.requests if r.method == "PATCH"]) == len(bps)
    assert fake.projects["github/repo1"]["metrics"][0]["pluginName"] == "dora"
    # each new blueprint got its first collection
    assert sorted(p["blueprintId"] for p in fake.pipelines.values()) == sorted(b["id"] for b in bps.values())


def test_second_run_changes_nothing_and_reads_only_lists(fake, world, tmp_path):
    run(fake, tmp_path)
    fake.run_pending()
    fake.reset_log()
    code, ctx = run(fake, tmp_path)
    assert code == 0
    assert fake.mutating_count() == 0
    assert ctx.count(Outcome.CREATED) == ctx.count(Outcome.UPDATED) == 0 and not ctx.plan.changes
    assert all(r.method == "GET" for r in fake.requests)
    # no per-repository request: only lists (scopes, remote-scopes, configs, projects, blueprints)
    assert not [r.path for r in fake.requests if "/projects/" in r.path or "/blueprints/" in r.path]


def test_only_new_upstream_scopes_are_added(fake, world, tmp_path):
    run(fake, tmp_path)
    new = fake.add_remote_scope("github", world["gh"], "fresh", parent_id="octo-org", full_name="octo-org/fresh")
    fake.reset_log()
    code, _ = run(fake, tmp_path)
    assert code == 0
    puts = [r for r in fake.requests if r.method == "PUT"]
    assert len(puts) == 1 and [str(row["githubId"]) for row in puts[0].body["data"]] == [new]
    assert "github/fresh" in managed(fake)
    posts = [r.path for r in fake.requests if r.method == "POST"]
    assert posts.count("/projects") == 1


def test_name_taken_by_another_scope_uses_full_name_and_leaves_it_alone(fake, world, tmp_path):
    fake.add_project("github/repo1", description="made by hand")
    code, _ = run(fake, tmp_path)
    assert code == 0
    assert "github/octo-org/repo1" in managed(fake)
    hand = fake.projects["github/repo1"]
    assert hand["description"] == "made by hand" and not hand["blueprint"]["connections"]


def test_scope_already_in_a_hand_made_project_gets_no_second_project(fake, world, tmp_path):
    fake.add_scope("github", world["gh"], {"githubId": int(world["repos"][2]), "name": "repo2",
                                            "fullName": "octo-org/repo2"}, scope_config_id=0)
    fake.add_project("team-dashboard", scopes=[("github", world["gh"], world["repos"][2])])
    code, _ = run(fake, tmp_path)
    assert code == 0
    assert "github/repo2" not in managed(fake)
    assert MANAGED_LABEL not in (fake.blueprints[fake.projects["team-dashboard"]["blueprint"]["id"]].get("labels") or [])


def test_hand_set_scope_configs_are_never_replaced(fake, world, tmp_path):
    mine = fake.add_scope_config("github", world["gh"], "tuned-by-hand", entities=["CODE"])
    ours = fake.add_scope_config("github", world["gh"], f"devlake-automation-github-{world['gh']}",
                                 entities=["CODE"], deploymentPattern="custom")
    fake.add_scope("github", world["gh"], {"githubId": int(world["repos"][0]), "name": "repo0"}, scope_config_id=mine)
    fake.add_scope("github", world["gh"], {"githubId": int(world["repos"][1]), "name": "repo1"}, scope_config_id=0)
    code, _ = run(fake, tmp_path)
    assert code == 0
    by_id = {str(s["githubId"]): s.get("scopeConfigId") for s in fake.scopes("github", world["gh"])}
    assert by_id[world["repos"][0]] == mine           # hand-set: kept
    assert by_id[world["repos"][1]] == ours           # had none: attached
    assert by_id[world["repos"][2]] == ours           # new: created with it
    config = next(c for c in fake.scope_configs("github", world["gh"]) if c["id"] == ours)
    assert config["deploymentPattern"] == "custom"    # content never rewritten
    assert not [r for r in fake.requests if r.method == "PATCH" and "scope-configs" in r.path]


def test_time_after_compares_instants_and_touches_only_managed_blueprints(fake, world, tmp_path):
    same = fake.add_project("same", labels=[MANAGED_LABEL], time_after=TARGET_UTC)  # stored as ...Z
    old = fake.add_project("old", labels=[MANAGED_LABEL], time_after=TARGET_UTC - timedelta(days=7))
    later = fake.add_project("later", labels=[MANAGED_LABEL], time_after=TARGET_UTC + timedelta(days=2))
    hand = fake.add_project("hand", time_after=TARGET_UTC - timedelta(days=30))
    code, _ = run(fake, tmp_path, PLUGINS="jira")
    assert code == 0
    bodies = {int(r.path.rsplit("/", 1)[1]): r.body for r in fake.requests if r.method == "PATCH"}
    assert old in bodies and hand not in bodies
    # one PATCH per blueprint: timeAfter where it moves, with the cron (all three were on DevLake's default)
    assert bodies[old]["timeAfter"] == TARGET and {"timeAfter", "cronConfig", "labels"} <= set(bodies[old])
    assert not {"timeAfter"} & (set(bodies[same]) | set(bodies[later]))
    fake.reset_log()
    code, _ = run(fake, tmp_path, PLUGINS="jira")
    assert code == 0 and not [r for r in fake.requests if r.method == "PATCH"]


def test_failed_pipeline_is_rerun_at_most_max_reruns_times(fake, world, tmp_path):
    bp = fake.add_project("flaky", labels=[MANAGED_LABEL], time_after=TARGET_UTC)
    failed = fake.add_pipeline(bp, "TASK_FAILED", finished_at=NOW)
    hand_bp = fake.add_project("not-ours")
    fake.add_pipeline(hand_bp, "TASK_FAILED", finished_at=NOW)
    run(fake, tmp_path, PLUGINS="jira")
    reruns = [r.path for r in fake.requests if r.path.endswith("/rerun")]
    assert reruns == [f"/pipelines/{failed}/rerun"]
    fake.run_pending(lambda p: "TASK_FAILED" if p["blueprintId"] == bp else "TASK_COMPLETED")
    assert fake.pipelines[failed]["status"] == "TASK_FAILED"
    fake.reset_log()
    run(fake, tmp_path, PLUGINS="jira")
    assert not [r for r in fake.requests if r.path.endswith("/rerun")]


@pytest.mark.parametrize("ledger", ['{"x": 1}', '{"FAILED": "once"}', '{"FAILED": null}', '{"²": 1}', '["ab"]'])
def test_a_rerun_ledger_of_another_shape_is_started_afresh(fake, world, tmp_path, ledger):
    """A hand-edited or foreign automation_reruns.json is valid JSON but no {pipeline id: count}: it used to
    stop every run, at planning (a count that is no number) or after applying (a key that is no id)."""
    bp = fake.add_project("flaky", labels=[MANAGED_LABEL], time_after=TARGET_UTC)
    failed = fake.add_pipeline(bp, "TASK_FAILED", finished_at=NOW)
    (tmp_path / RERUN_STATE_FILE).write_text(ledger.replace("FAILED", str(failed)))
    code, _ = run(fake, tmp_path, PLUGINS="jira")
    assert code == 0 and [r.path for r in fake.requests if r.path.endswith("/rerun")] == [f"/pipelines/{failed}/rerun"]
    assert json.loads((tmp_path / RERUN_STATE_FILE).read_text()) == {str(failed): 1}
    (kept,) = tmp_path.glob(RERUN_STATE_FILE + ".corrupt-*")  # kept for a human, not overwritten
    assert kept.read_text() == ledger.replace("FAILED", str(failed))


def test_a_locked_pipeline_table_is_retried_then_deferred_not_failed(fake, world, tmp_path):
    bp = fake.add_project("flaky", labels=[MANAGED_LABEL], time_after=TARGET_UTC)
    failed = fake.add_pipeline(bp, "TASK_FAILED", finished_at=NOW)
    fake.lock_pipeline_table(times=1)  # the lock frees itself: the retry reruns it
    sleeps: list[float] = []
    code, ctx = run(fake, tmp_path, sleeps=sleeps, PLUGINS="jira")
    assert code == 0 and ctx.failed == 0
    assert [r.status for r in fake.requests if r.path.endswith("/rerun")] == [400, 200]
    assert fake.pipelines[failed]["status"] == "TASK_RERUN" and sleeps
    fake.run_pending(lambda p: "TASK_FAILED" if p["blueprintId"] == bp else "TASK_COMPLETED")
    fake.lock_pipeline_table(times=-1)  # locked throughout: deferred to the next run, not counted
    fake.reset_log()
    code, ctx = run(fake, tmp_path, PLUGINS="jira", MAX_RERUNS="2")
    assert code == 0 and ctx.failed == 0 and ctx.count(Outcome.DEFERRED) == 1
    assert len([r for r in fake.requests if r.path.endswith("/rerun")]) == 3  # the applier's attempts
    fake.lock_pipeline_table(times=0)
    fake.reset_log()
    code, _ = run(fake, tmp_path, PLUGINS="jira", MAX_RERUNS="2")  # the deferred rerun did not use one up
    assert code == 0 and [r.status for r in fake.requests if r.path.endswith("/rerun")] == [200]


def test_pending_pipeline_answers_are_not_errors(fake, world, tmp_path):
    fake.inject("POST", r"/blueprints/\d+/trigger", status=400, times=-1,
                body={"success": False, "message": "there are pending pipelines of current blueprint already"})
    code, ctx = run(fake, tmp_path)
    assert code == 0 and ctx.failed == 0


def test_one_failing_connection_does_not_stop_the_others(fake, world, tmp_path):
    fake.inject("GET", r"/plugins/github/connections/\d+/scopes", status=500, times=-1)
    code, ctx = run(fake, tmp_path)
    assert code == 1 and ctx.failed >= 1
    assert sorted(managed(fake)) == ["jira/Board 0", "jira/Board 1"]


def test_malformed_json_fails_only_that_item(fake, world, tmp_path):
    fake.inject("GET", r"/plugins/jira/connections/\d+/remote-scopes", status=200, body="{oops", times=-1)
    code, ctx = run(fake, tmp_path)
    assert code == 1
    assert sorted(managed(fake)) == ["github/repo0", "github/repo1", "github/repo2"]


def test_retries_429_and_503_honouring_retry_after(fake, world, tmp_path):
    fake.inject("GET", r"^/plugins$", status=429, headers={"Retry-After": "7"})
    fake.inject("GET", r"/remote-scopes", status=503, times=2)
    sleeps = []
    code, _ = run(fake, tmp_path, sleeps=sleeps)
    assert code == 0
    assert 7 in sleeps
    assert len(managed(fake)) == 5


@pytest.mark.parametrize("fault", [dict(status=500, after_write=True), dict(status=504, after_write=True),
                                   dict(delay=2.5, after_write=True)])
def test_ambiguous_project_post_is_reconciled_not_duplicated(fake, world, tmp_path, fault):
    fake.inject("POST", r"^/projects$", times=1, **fault)
    code, ctx = run(fake, tmp_path, PLUGINS="jira", DEVLAKE_TIMEOUT_SECONDS="1")
    assert code == 0, ctx.failures()
    assert sorted(managed(fake)) == ["jira/Board 0", "jira/Board 1"]
    assert len([p for p in fake.projects if p.startswith("jira/")]) == 2


def test_ambiguous_scope_config_post_is_reconciled(fake, world, tmp_path):
    fake.inject("POST", r"/scope-configs$", status=500, after_write=True)
    code, _ = run(fake, tmp_path, PLUGINS="jira")
    assert code == 0
    assert len(fake.scope_configs("jira", world["jira"])) == 1


def test_blueprint_patch_failure_is_completed_next_run(fake, world, tmp_path):
    fake.inject("PATCH", r"/blueprints/\d+", status=500, times=-1)
    code, report = run(fake, tmp_path, PLUGINS="jira")
    assert code == 1 and report.count(Outcome.FAILED) == 2
    assert not [p for p in fake.pipelines.values()]  # no trigger for a blueprint left unconnected
    fake.clear_faults()
    code, ctx = run(fake, tmp_path, PLUGINS="jira")
    assert code == 0, ctx.failures()
    assert sorted(managed(fake)) == ["jira/Board 0", "jira/Board 1"]
    assert len([p for p in fake.projects if p.startswith("jira/")]) == 2


def test_api_key_goes_under_rest_and_names_never_in_paths(fake, world, tmp_path):
    fake.api_key = "s3cr3t-key"
    code, ctx = run(fake, tmp_path, DEVLAKE_API_KEY="s3cr3t-key")
    assert code == 0, ctx.failures()
    assert len(managed(fake)) == 5
    assert all(r.raw_path.startswith("/rest/") for r in fake.requests)


def test_bad_api_key_is_unusable(fake, world, tmp_path):
    fake.api_key = "right"
    code, ctx = run(fake, tmp_path, DEVLAKE_API_KEY="wrong")
    assert code == 2 and fake.mutating_count() == 0


def test_dry_run_makes_no_writes(fake, world, tmp_path):
    settings = settings_for(fake, tmp_path)
    code, report = run_once(settings, build_client(settings, dry_run=True), NOW, dry_run=True)
    assert code == 0 and fake.mutating_count() == 0
    kinds = {type(c) for c in report.plan.changes}
    assert {CreateProject, PutScopes, CreateScopeConfig} <= kinds
    assert len([c for c in report.plan.changes if isinstance(c, CreateProject)]) == 5
    assert not report.results


def test_dry_run_defers_exactly_the_triggers_the_run_defers(fake, world, tmp_path):
    settings = settings_for(fake, tmp_path, MAX_PENDING_PIPELINES="2", DEVLAKE_MAX_CONCURRENCY="4")
    _, preview = run_once(settings, build_client(settings, dry_run=True), NOW, dry_run=True)
    code, report = run(fake, tmp_path, MAX_PENDING_PIPELINES="2", DEVLAKE_MAX_CONCURRENCY="4")
    would = sorted(c.project for c in preview.would_defer)
    did = sorted(r.change.project for r in report.results if r.outcome is Outcome.DEFERRED)
    assert code == 0 and len(did) == len(managed(fake)) - 2 and would == did
