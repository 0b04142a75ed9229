"""The planner's collection schedule and first collections: crons ride in the blueprint PATCHes.

Window arithmetic and slot assignment are tested in test_cron_slots.py; here, how the planner uses
them: one PATCH per blueprint, new blueprints on their slot from creation, ownership respected.
"""
from __future__ import annotations

from collections import Counter

from modules.changes import CreateProject, PatchBlueprint, TriggerBlueprint
from modules.cron_slots import DEVLAKE_DEFAULT_CRON, cron_label, cron_minute_of_day, recorded_cron, slot_crons
from modules.projects import MANAGED_LABEL
from tests.unit.test_planner import NOW, TARGET, managed_bp, observed, of, plan, repo, settings, settled

UTC_WINDOW = range(15 * 60, 23 * 60)  # the default 22:00-06:00 in Asia/Ho_Chi_Minh, in UTC (DevLake's zone)


def key(scope_id):
    return f"github/1/{scope_id}"


def in_window(cron):
    minute = cron_minute_of_day(cron)
    return minute is not None and minute in UTC_WINDOW


def test_new_blueprints_get_their_slot_and_label_in_the_creating_patch():
    existing = [managed_bp(7, "github/repo1", 1)]               # still on DevLake's default cron
    p = plan(observed(remote=[repo(1), repo(2), repo(3)], existing=[dict(repo(1), scopeConfigId=3)],
                      projects=[{"name": "github/repo1"}], blueprints=existing), settings(), NOW)
    created = {c.scope.scope_id: c.blueprint for c in of(CreateProject, p)}
    assert sorted(created) == ["2", "3"]
    s = settings()
    # slots are planned over existing and new keys together, so they agree with a later run's
    expected = slot_crons([key(1), key(2), key(3)], s.collection_window, NOW.date(), s.timezone, s.devlake_timezone)
    for sid, fields in created.items():
        assert fields["cronConfig"] == expected[key(sid)] and in_window(fields["cronConfig"])
        assert fields["isManual"] is False
        assert fields["labels"] == [MANAGED_LABEL, cron_label(fields["cronConfig"])]
        assert fields["timeAfter"] == TARGET and fields["connections"][0]["scopes"] == [{"scopeId": sid}]
    (patch,) = of(PatchBlueprint, p)
    assert patch.blueprint_id == 7 and patch.fields["cronConfig"] == expected[key(1)]
    assert "cron" in CreateProject.describe(of(CreateProject, p)[0])


def test_cron_and_time_after_share_one_patch_per_blueprint():
    bps = [managed_bp(1, "old", 1, time_after="2026-11-14T00:00:00+07:00"), managed_bp(2, "fresh", 2)]
    p = plan(observed(blueprints=bps), settings(), NOW)
    patches = {c.blueprint_id: c for c in of(PatchBlueprint, p)}
    assert sorted(patches) == [1, 2] and len(of(PatchBlueprint, p)) == 2
    assert set(patches[1].fields) == {"timeAfter", "cronConfig", "isManual", "labels"}
    assert set(patches[2].fields) == {"cronConfig", "isManual", "labels"}
    assert patches[1].fields["timeAfter"] == TARGET and in_window(patches[1].fields["cronConfig"])
    assert patches[2].fields["labels"] == [MANAGED_LABEL, cron_label(patches[2].fields["cronConfig"])]
    line = patches[2].describe()
    assert f"cronConfig: '{DEVLAKE_DEFAULT_CRON}' -> '{patches[2].fields['cronConfig']}'" in line
    assert "labels" not in line


def test_settled_blueprints_plan_nothing_and_spread_evenly():
    bps = settled([managed_bp(i, f"p{i}", i) for i in range(1, 481)])
    p = plan(observed(blueprints=bps), settings(), NOW)
    assert p.changes == [] and p.warnings == []
    minutes = [cron_minute_of_day(bp["cronConfig"]) for bp in bps]
    assert all(m in UTC_WINDOW for m in minutes if m is not None) and None not in minutes
    per_slice = Counter((m - UTC_WINDOW.start) // 10 for m in minutes if m is not None)
    assert max(per_slice.values()) <= 12   # fair share 10 per 10 minutes (480 over 480 minutes)


def test_hand_set_crons_are_kept_and_logged_once():
    bps = settled([managed_bp(i, f"p{i}", i) for i in range(1, 31)])
    bps = [dict(bp, cronConfig=f"{i} 1 * * *") for i, bp in enumerate(bps)]          # all changed by hand
    bps.append(dict(managed_bp(99, "manual", 99), isManual=True, cronConfig="manual"))
    p = plan(observed(blueprints=bps), settings(), NOW)
    assert p.changes == []
    (warning,) = [w for w in p.warnings if w[0] == "cron_hand_set_kept"]
    assert warning[1]["count"] == 31 and len(warning[1]["examples"]) == 10
    assert warning[1]["examples"][0] == {"project": "p1", "blueprint_id": 1, "cron": "0 1 * * *",
                                         "recorded": recorded_cron(bps[0]["labels"])}


def test_window_change_moves_only_what_the_daemon_owns():
    bps = settled([managed_bp(i, f"p{i}", i) for i in range(1, 41)])
    bps[4] = dict(bps[4], cronConfig="45 1 * * *")                  # p5: set by hand since
    bps.append(managed_bp(41, "p41", 41, cron="30 4 * * *"))         # never the daemon's
    moved = settings(COLLECTION_WINDOW="08:00-10:00")                # 01:00-03:00 UTC
    p = plan(observed(blueprints=bps), moved, NOW)
    patches = of(PatchBlueprint, p)
    assert sorted(c.blueprint_id for c in patches) == [i for i in range(1, 41) if i != 5]
    assert all(set(c.fields) == {"cronConfig", "isManual", "labels"} for c in patches)
    assert all(60 <= (cron_minute_of_day(c.fields["cronConfig"]) or -1) < 180 for c in patches)
    assert [w[1]["count"] for w in p.warnings if w[0] == "cron_hand_set_kept"] == [2]
    again = plan(observed(blueprints=settled(bps, moved)), moved, NOW)
    assert again.changes == []


def test_window_crossing_midnight_in_utc_and_another_devlake_zone():
    s = settings(TIMEZONE="UTC", COLLECTION_WINDOW="23:00-01:00", DEVLAKE_TIMEZONE="Europe/Berlin")
    p = plan(observed(remote=[repo(i) for i in range(1, 61)]), s, NOW)
    minutes = [cron_minute_of_day(c.blueprint["cronConfig"]) for c in of(CreateProject, p)]
    # 23:00-01:00 UTC is 00:00-02:00 in Berlin in November (UTC+1)
    assert len(minutes) == 60 and all(m is not None and 0 <= m < 120 for m in minutes)


def test_blueprint_cron_forces_one_cron_on_daemon_owned_blueprints():
    forced = settings(BLUEPRINT_CRON="0 3 * * *")
    bps = settled([managed_bp(1, "p1", 1), managed_bp(2, "p2", 2)]) + [managed_bp(3, "hand", 3, cron="5 5 * * *")]
    p = plan(observed(remote=[repo(i) for i in range(1, 5)], blueprints=bps), forced, NOW)
    (created,) = of(CreateProject, p)
    assert created.blueprint["cronConfig"] == "0 3 * * *"
    assert created.blueprint["labels"] == [MANAGED_LABEL, cron_label("0 3 * * *")]
    assert sorted((c.blueprint_id, c.fields["cronConfig"]) for c in of(PatchBlueprint, p)) == [
        (1, "0 3 * * *"), (2, "0 3 * * *")]


def test_never_collected_managed_blueprints_are_triggered_unless_disabled_or_manual():
    projects = [{"name": n, "blueprint": {"id": i}} for i, n in enumerate(["a", "b", "c", "d"], start=1)]
    projects[3]["lastPipeline"] = {"id": 50, "status": "TASK_COMPLETED"}
    bps = settled([managed_bp(i, p["name"], i) for i, p in enumerate(projects, start=1)])
    bps[1] = dict(bps[1], enable=False)
    bps[2] = dict(bps[2], isManual=True, cronConfig="manual")
    p = plan(observed(projects=projects, blueprints=bps), settings(), NOW)
    assert [(t.project, t.blueprint) for t in of(TriggerBlueprint, p)] == [("a", 1)]
    off = plan(observed(projects=projects, blueprints=bps), settings(TRIGGER_NEW_BLUEPRINTS="false"), NOW)
    assert of(TriggerBlueprint, off) == []


def test_new_repositories_do_not_move_existing_blueprints():
    bps = settled([managed_bp(i, f"github/repo{i}", i) for i in range(1, 61)])
    projects = [{"name": f"github/repo{i}", "blueprint": {"id": i}} for i in range(1, 61)]
    p = plan(observed(remote=[repo(i) for i in range(1, 66)],
                      existing=[dict(repo(i), scopeConfigId=3) for i in range(1, 61)],
                      projects=projects, blueprints=bps), settings(), NOW)
    assert of(PatchBlueprint, p) == []                               # slots are sticky (modules/cron_slots.py)
    created = of(CreateProject, p)
    assert sorted(c.scope.scope_id for c in created) == ["61", "62", "63", "64", "65"]
    assert all(in_window(c.blueprint["cronConfig"]) for c in created)
