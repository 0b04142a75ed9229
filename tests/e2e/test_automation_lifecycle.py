"""End-to-end: repositories that vanish upstream are marked, retired and restored, never deleted."""
from __future__ import annotations

import json
from datetime import UTC, timedelta

import pytest
import requests
from structlog.testing import capture_logs

from modules.lifecycle import RETIRED_LABEL, missing_label
from sandbox.fake_devlake import FakeDevLake
from tests.e2e.test_automation_e2e import NOW, managed, run

OPERATOR = "team/payments"


@pytest.fixture
def fake():
    with FakeDevLake(clock=lambda: NOW.astimezone(UTC)) as server:
        yield server


@pytest.fixture
def org(fake):
    """One GitHub connection with 20 repositories, all tracked by a first run."""
    gh = fake.add_connection("github", "gh")
    fake.add_remote_group("github", gh, "octo-org", "octo-org")
    repos = [fake.add_remote_scope("github", gh, f"repo{i}", parent_id="octo-org", full_name=f"octo-org/repo{i}")
             for i in range(20)]
    return {"gh": gh, "repos": repos}


@pytest.fixture
def tracked(fake, org, tmp_path):
    """Every repository tracked and collected once (the queue budget defers half the first collections)."""
    for _ in range(2):
        code, report = run(fake, tmp_path, PLUGINS="github")
        assert code == 0, report.failures()
        fake.run_pending()
    return org


def in_config_ui(fake, bp_id: int, **fields) -> None:
    """An operator's edit, as config-ui sends it (PATCH /blueprints/{id})."""
    requests.patch(f"{fake.url}/blueprints/{bp_id}", json=fields, timeout=5).raise_for_status()


def test_removed_repository_is_marked_retired_left_alone_and_restored(fake, tracked, tmp_path):
    gh, repo = tracked["gh"], tracked["repos"][3]
    bp_id = managed(fake)["github/repo3"]["id"]
    in_config_ui(fake, bp_id, labels=fake.blueprints[bp_id]["labels"] + [OPERATOR])  # must survive every PATCH
    fake.remove_remote_scope("github", gh, repo)

    code, report = run(fake, tmp_path, PLUGINS="github", RETIRE_MISSING_AFTER_DAYS="0")
    assert code == 0, report.failures()
    bp = fake.blueprints[bp_id]
    assert bp["enable"] is False
    assert {OPERATOR, RETIRED_LABEL, missing_label(NOW.date())} <= set(bp["labels"])
    assert report.lifecycle_counts() == {"marked": 0, "retired": 1, "restored": 0, "refused": 0}
    last_run = json.loads((tmp_path / "automation_last_run.json").read_text())
    assert (last_run["retired"], last_run["marked"], last_run["restored"]) == (1, 0, 0)
    # nothing deleted: project, blueprint connection and DevLake's scope row stay
    assert "github/repo3" in fake.projects
    assert bp["connections"][0]["scopes"] == [{"scopeId": repo}]
    assert repo in {str(s["githubId"]) for s in fake.scopes("github", gh)}

    # a rerun with nothing new writes nothing, and starts nothing for the retired blueprint
    fake.add_pipeline(bp_id, "TASK_FAILED")
    fake.reset_log()
    code, report = run(fake, tmp_path, now=NOW + timedelta(days=1), PLUGINS="github", RETIRE_MISSING_AFTER_DAYS="0")
    assert code == 0 and fake.mutating_count() == 0

    # it comes back: both labels removed, enabled again, the operator's label kept
    fake.add_remote_scope("github", gh, "repo3", parent_id="octo-org", full_name="octo-org/repo3", scope_id=repo)
    code, report = run(fake, tmp_path, PLUGINS="github", RETIRE_MISSING_AFTER_DAYS="0")
    assert code == 0 and report.lifecycle_counts()["restored"] == 1
    bp = fake.blueprints[bp_id]
    assert bp["enable"] is True and OPERATOR in bp["labels"]
    assert not [label for label in bp["labels"] if label.startswith("devlake-automation/missing")
                or label == RETIRED_LABEL]


def test_grace_period_marks_first_and_retires_later(fake, tracked, tmp_path):
    fake.remove_remote_scope("github", tracked["gh"], tracked["repos"][0])
    bp_id = managed(fake)["github/repo0"]["id"]
    code, report = run(fake, tmp_path, PLUGINS="github")
    assert code == 0 and report.lifecycle_counts()["marked"] == 1
    assert fake.blueprints[bp_id]["enable"] is True
    assert missing_label(NOW.date()) in fake.blueprints[bp_id]["labels"]
    code, report = run(fake, tmp_path, now=NOW + timedelta(days=7), PLUGINS="github")
    assert code == 0 and report.lifecycle_counts()["retired"] == 1
    assert fake.blueprints[bp_id]["enable"] is False


def test_hand_disabled_blueprint_is_not_enabled_when_its_repository_returns(fake, tracked, tmp_path):
    gh, repo = tracked["gh"], tracked["repos"][5]
    bp_id = managed(fake)["github/repo5"]["id"]
    in_config_ui(fake, bp_id, enable=False)
    fake.remove_remote_scope("github", gh, repo)
    run(fake, tmp_path, PLUGINS="github", RETIRE_MISSING_AFTER_DAYS="0")
    assert RETIRED_LABEL not in fake.blueprints[bp_id]["labels"]
    fake.add_remote_scope("github", gh, "repo5", parent_id="octo-org", full_name="octo-org/repo5", scope_id=repo)
    run(fake, tmp_path, PLUGINS="github", RETIRE_MISSING_AFTER_DAYS="0")
    assert fake.blueprints[bp_id]["enable"] is False


def test_a_failing_listing_decides_nothing(fake, tracked, tmp_path):
    fake.remove_remote_scope("github", tracked["gh"], tracked["repos"][1])
    fake.inject("GET", r"/plugins/github/connections/\d+/remote-scopes", status=503, times=-1)
    fake.reset_log()
    code, report = run(fake, tmp_path, PLUGINS="github", RETIRE_MISSING_AFTER_DAYS="0")
    assert code == 1 and any("remote scopes of github" in f for f in report.failures())
    assert not [r for r in fake.requests if r.method == "PATCH" and "labels" in (r.body or {})]
    assert all(bp["enable"] for bp in managed(fake).values())


def test_a_mass_disappearance_retires_nothing(fake, tracked, tmp_path):
    for repo in tracked["repos"][:6]:  # 6 of 20: more than 5 and more than 25 %
        fake.remove_remote_scope("github", tracked["gh"], repo)
    fake.reset_log()
    with capture_logs() as logs:
        code, report = run(fake, tmp_path, PLUGINS="github", RETIRE_MISSING_AFTER_DAYS="0")
    assert code == 0 and fake.mutating_count() == 0
    assert all(bp["enable"] and not any(label.startswith("devlake-automation/missing") for label in bp["labels"])
               for bp in managed(fake).values())
    (refused,) = [e for e in logs if e["event"] == "missing_scopes_refused"]
    assert refused["missing"] == 6 and refused["managed"] == 20 and refused["log_level"] == "warning"
    (done,) = [e for e in logs if e["event"] == "run_completed"]
    assert done["refused"] == 6 and done["retired"] == 0
