"""Managed scopes that vanish upstream: marked, retired after RETIRE_MISSING_AFTER_DAYS, restored, never deleted."""
from __future__ import annotations

from datetime import timedelta

import pytest

from config import ConfigError
from modules.changes import PatchBlueprint, RerunPipeline, TriggerBlueprint
from modules.lifecycle import RETIRED_LABEL, missing_label
from modules.observe import ConnectionView, Observed
from modules.planner import plan
from modules.projects import MANAGED_LABEL
from modules.scopes import Connection, RemoteScopes
from tests.unit.test_planner import NOW, TARGET, managed_bp, observed, of, repo, settings, settled

TODAY = NOW.date()  # 2026-11-25 in TIMEZONE
OPERATOR = "team/payments"


def bps(n=4, **extra):
    return settled([dict(managed_bp(i, f"p{i}", i), **extra) for i in range(1, n + 1)])


def listed(blueprints, absent=()):
    """Upstream lists every blueprint's repository except `absent`."""
    return [repo(bp["id"]) for bp in blueprints if bp["id"] not in absent]


def with_labels(bp, *labels, enable=True):
    return dict(bp, labels=list(bp["labels"]) + list(labels), enable=enable)


def lifecycle_patches(p):
    return {c.blueprint_id: c for c in of(PatchBlueprint, p) if c.lifecycle}


def test_first_run_without_the_scope_marks_it_once_and_keeps_other_labels():
    blueprints = bps()
    blueprints[0] = with_labels(blueprints[0], OPERATOR)
    p = plan(observed(remote=listed(blueprints, absent={1}), blueprints=blueprints), settings(), NOW)
    (patch,) = lifecycle_patches(p).values()
    assert patch.blueprint_id == 1 and patch.lifecycle_action == "mark"
    assert patch.fields == {"labels": blueprints[0]["labels"] + [missing_label(TODAY)]}
    assert OPERATOR in patch.fields["labels"] and MANAGED_LABEL in patch.fields["labels"]
    assert "mark (missing since 2026-11-25)" in patch.describe()
    # the next day it is marked already: nothing to write
    marked = [dict(blueprints[0], labels=patch.fields["labels"])] + blueprints[1:]
    again = plan(observed(remote=listed(blueprints, absent={1}), blueprints=marked), settings(), NOW + timedelta(days=1))
    assert lifecycle_patches(again) == {}


def test_mark_date_is_the_day_in_timezone():
    early = NOW.replace(hour=6)  # 2026-11-25 06:00 in Asia/Ho_Chi_Minh is still 2026-11-24 in New York
    blueprints = bps()
    for tz, day in (("Asia/Ho_Chi_Minh", "2026-11-25"), ("America/New_York", "2026-11-24")):
        p = plan(observed(remote=listed(blueprints, absent={2}), blueprints=blueprints), settings(TIMEZONE=tz), early)
        assert lifecycle_patches(p)[2].fields["labels"][-1] == "devlake-automation/missing-since:" + day


@pytest.mark.parametrize(("age", "retired"), [(6, False), (7, True), (30, True)])
def test_retired_once_the_mark_is_old_enough(age, retired):
    blueprints = bps()
    since = TODAY - timedelta(days=age)
    blueprints[0] = with_labels(blueprints[0], missing_label(since))
    p = plan(observed(remote=listed(blueprints, absent={1}), blueprints=blueprints), settings(), NOW)
    patches = lifecycle_patches(p)
    if not retired:
        assert patches == {}
        return
    assert patches[1].lifecycle_action == "retire"
    assert patches[1].fields == {"enable": False,
                                 "labels": blueprints[0]["labels"] + [RETIRED_LABEL]}


def test_zero_days_retires_on_the_first_complete_listing_without_it():
    blueprints = bps()
    p = plan(observed(remote=listed(blueprints, absent={3}), blueprints=blueprints),
             settings(RETIRE_MISSING_AFTER_DAYS="0"), NOW)
    (patch,) = lifecycle_patches(p).values()
    assert patch.blueprint_id == 3 and patch.fields["enable"] is False
    assert patch.fields["labels"][-2:] == [missing_label(TODAY), RETIRED_LABEL]


def test_off_neither_marks_nor_retires_but_still_restores():
    blueprints = bps()
    blueprints[1] = with_labels(blueprints[1], missing_label(TODAY - timedelta(days=30)), RETIRED_LABEL, enable=False)
    p = plan(observed(remote=listed(blueprints, absent={1}), blueprints=blueprints),
             settings(RETIRE_MISSING_AFTER_DAYS="off"), NOW)
    assert {i: c.lifecycle_action for i, c in lifecycle_patches(p).items()} == {2: "restore"}


def test_bad_setting_is_a_config_error():
    with pytest.raises(ConfigError, match="RETIRE_MISSING_AFTER_DAYS"):
        settings(RETIRE_MISSING_AFTER_DAYS="-1")


def test_a_retired_blueprint_is_left_alone_never_triggered_rerun_or_rescheduled():
    blueprints = bps()
    old = dict(blueprints[0], timeAfter="2020-01-01T00:00:00Z", cronConfig="0 0 * * *")
    blueprints[0] = with_labels(old, missing_label(TODAY - timedelta(days=9)), RETIRED_LABEL, enable=False)
    projects = [{"name": "p1", "blueprint": {"id": 1}, "lastPipeline": {"id": 40, "status": "TASK_FAILED"}}]
    p = plan(observed(remote=listed(blueprints, absent={1}), blueprints=blueprints, projects=projects),
             settings(), NOW, {})
    assert [c for c in p.changes if getattr(c, "blueprint_id", None) == 1] == []
    assert not of(RerunPipeline, p) and not of(TriggerBlueprint, p)


def test_retiring_now_writes_only_labels_and_enable_and_starts_nothing():
    blueprints = bps()
    blueprints[0] = with_labels(dict(blueprints[0], timeAfter="2020-01-01T00:00:00Z"),
                                missing_label(TODAY - timedelta(days=7)))
    projects = [{"name": "p1", "blueprint": {"id": 1}, "lastPipeline": {"id": 40, "status": "TASK_FAILED"}}]
    p = plan(observed(remote=listed(blueprints, absent={1}), blueprints=blueprints, projects=projects),
             settings(), NOW, {})
    (patch,) = of(PatchBlueprint, p)
    assert set(patch.fields) == {"labels", "enable"} and not of(RerunPipeline, p)


def test_returning_scope_is_restored_and_enabled_again():
    blueprints = bps()
    blueprints[0] = with_labels(blueprints[0], OPERATOR, missing_label(TODAY - timedelta(days=9)), RETIRED_LABEL,
                                enable=False)
    blueprints[1] = with_labels(blueprints[1], missing_label(TODAY - timedelta(days=2)))
    p = plan(observed(remote=listed(blueprints), blueprints=blueprints), settings(), NOW)
    patches = lifecycle_patches(p)
    assert patches[1].fields == {"enable": True, "labels": [MANAGED_LABEL, blueprints[0]["labels"][1], OPERATOR]}
    assert patches[2].fields == {"labels": blueprints[1]["labels"][:-1]}
    assert {c.lifecycle_action for c in patches.values()} == {"restore"}


def test_restored_blueprint_also_gets_its_overdue_time_after_in_the_same_patch():
    blueprints = bps()
    blueprints[0] = with_labels(dict(blueprints[0], timeAfter="2020-01-01T00:00:00Z"),
                                missing_label(TODAY), RETIRED_LABEL, enable=False)
    p = plan(observed(remote=listed(blueprints), blueprints=blueprints), settings(), NOW)
    (patch,) = of(PatchBlueprint, p)
    assert patch.fields["timeAfter"] == TARGET and patch.fields["enable"] is True
    assert RETIRED_LABEL not in patch.fields["labels"]


def test_hand_disabled_blueprint_is_never_enabled_nor_labelled_retired():
    blueprints = bps()
    blueprints[0] = with_labels(blueprints[0], missing_label(TODAY - timedelta(days=30)), enable=False)
    gone = plan(observed(remote=listed(blueprints, absent={1}), blueprints=blueprints), settings(), NOW)
    assert lifecycle_patches(gone) == {}
    back = plan(observed(remote=listed(blueprints), blueprints=blueprints), settings(), NOW)
    assert lifecycle_patches(back)[1].fields == {"labels": [lab for lab in blueprints[0]["labels"]
                                                            if not lab.startswith("devlake-automation/missing")]}


def test_failed_listing_decides_nothing():
    blueprints = bps()
    blueprints[0] = with_labels(blueprints[0], missing_label(TODAY - timedelta(days=30)))
    o = observed(blueprints=blueprints)
    o.connections[0].remote = None  # the remote-scopes walk failed
    assert lifecycle_patches(plan(o, settings(), NOW)) == {}


@pytest.mark.parametrize("failed_read", ["existing", "scope_configs"])
def test_any_failed_read_of_the_connection_decides_nothing(failed_read):
    blueprints = bps()
    o = observed(remote=listed(blueprints, absent={1}), blueprints=blueprints)
    setattr(o.connections[0], failed_read, None)  # the listing was whole, another read of it failed
    assert lifecycle_patches(plan(o, settings(), NOW)) == {}


def test_capped_and_followed_only_listings_prove_nothing_absent():
    blueprints = bps()
    capped = observed(remote=listed(blueprints, absent={1}), blueprints=blueprints)
    capped.connections[0].remote.capped_groups.append("workspace")
    assert lifecycle_patches(plan(capped, settings(), NOW)) == {}
    circle = Connection("circleci", 1, "ci")
    bp = dict(managed_bp(9, "ci/p", "gh/org/x"), connections=[
        {"pluginName": "circleci", "connectionId": 1, "scopes": [{"scopeId": "gh/org/x"}]}])
    o = Observed([ConnectionView(circle, {}, [], RemoteScopes({}))], [], settled([bp]))
    assert lifecycle_patches(plan(o, settings(), NOW)) == {}


def test_mass_absence_is_refused_for_that_connection_and_counted():
    blueprints = bps(20)
    absent = {1, 2, 3, 4, 5, 6}  # 6 of 20: more than 5 and more than 25 %
    p = plan(observed(remote=listed(blueprints, absent=absent), blueprints=blueprints), settings(), NOW)
    assert lifecycle_patches(p) == {} and p.refused == 6
    (warning,) = [w for w in p.warnings if w[0] == "missing_scopes_refused"]
    assert warning[1]["connection"] == "github/1" and warning[1]["missing"] == 6 and warning[1]["managed"] == 20
    assert "token" in warning[1]["hint"]


@pytest.mark.parametrize("absent", [{1, 2, 3, 4, 5}, {1, 2, 3, 4, 5, 6}])
def test_guard_needs_both_more_than_five_and_more_than_a_quarter(absent):
    blueprints = bps(5 if len(absent) == 5 else 24)  # 5 of 5 (100 %) / 6 of 24 (exactly 25 %)
    p = plan(observed(remote=listed(blueprints, absent=absent), blueprints=blueprints), settings(), NOW)
    assert len(lifecycle_patches(p)) == len(absent) and p.refused == 0


def test_refused_connection_still_restores_returning_scopes():
    blueprints = bps(20)
    blueprints[19] = with_labels(blueprints[19], missing_label(TODAY), RETIRED_LABEL, enable=False)
    p = plan(observed(remote=listed(blueprints, absent={1, 2, 3, 4, 5, 6}), blueprints=blueprints), settings(), NOW)
    assert {i: c.lifecycle_action for i, c in lifecycle_patches(p).items()} == {20: "restore"}
