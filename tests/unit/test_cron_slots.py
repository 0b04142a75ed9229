"""modules/cron_slots.py: slot spreading, time zones, ownership and the cron plan (no HTTP)."""
from __future__ import annotations

import copy
import math
import random
from collections import Counter
from datetime import date

import pytest
import pytz

from config import CollectionWindow
from modules.cron_slots import (
    DEVLAKE_DEFAULT_CRON,
    assign_slots,
    blueprint_key,
    cron_label,
    cron_minute_of_day,
    owned_by_daemon,
    plan_schedule,
    recorded_cron,
    slot_crons,
    window_offset,
    zone_shift_minutes,
)

ICT = pytz.timezone("Asia/Ho_Chi_Minh")
NY = pytz.timezone("America/New_York")
UTC = pytz.utc
DAY = date(2026, 11, 23)
MANAGED = "managed-by/devlake-automation"


def window(text: str) -> CollectionWindow:
    return CollectionWindow.parse(text)


def keys(n: int, prefix: str = "github/1/") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def per_slice(slots: dict[str, int], width: int = 10) -> Counter:
    return Counter(offset // width for offset in slots.values())


def blueprint(bp_id: int, cron: str = DEVLAKE_DEFAULT_CRON, labels=(MANAGED,), manual: bool = False) -> dict:
    return {"id": bp_id, "projectName": f"github/repo{bp_id}", "cronConfig": cron, "isManual": manual,
            "labels": list(labels),
            "connections": [{"pluginName": "github", "connectionId": 1, "scopes": [{"scopeId": str(bp_id)}]}]}


def in_window(cron: str, win: CollectionWindow, shift: int) -> bool:
    minute = cron_minute_of_day(cron)
    assert minute is not None, cron
    return (minute - shift - win.start) % 1440 < win.minutes


# --- spreading ----------------------------------------------------------------------------------

@pytest.mark.parametrize("n, minutes", [(5000, 480), (5000, 360), (240, 240), (240, 480), (1000, 95), (3, 480)])
def test_spread_is_even_within_the_window(n, minutes):
    slots = assign_slots(keys(n), minutes)
    assert len(slots) == n and all(0 <= s < minutes for s in slots.values())
    fair = n * 10 / minutes
    assert max(per_slice(slots).values()) <= math.ceil(fair)  # a first assignment fills to the fair share
    assert max(Counter(slots.values()).values()) <= math.ceil(1.2 * n / minutes) + 1


def test_spread_is_deterministic_and_order_free():
    forward = assign_slots(keys(500), 480)
    assert assign_slots(list(reversed(keys(500))), 480) == forward == assign_slots(keys(500), 480)
    current = {k: (7 * i) % 480 for i, k in enumerate(keys(300))}
    more = keys(500) + keys(40, "gitlab/2/")
    assert assign_slots(more, 480, current) == assign_slots(list(reversed(more)), 480, dict(reversed(current.items())))


def test_current_offsets_stay_when_keys_are_added_or_removed():
    before = assign_slots(keys(5000), 480)
    for added in (1, 100):
        after = assign_slots(keys(5000) + keys(added, "github/1/new-"), 480, before)
        assert {k: after[k] for k in before} == before
    fewer = keys(5000)[1000:]                            # 1,000 repositories removed
    assert assign_slots(fewer, 480, before) == {k: before[k] for k in fewer}


def test_only_the_overflow_of_an_over_full_slice_moves():
    before = assign_slots(keys(1000), 480)              # fair share 20.8 per slice, keep limit 24
    crowded = {k: (before[k] % 10) for k in keys(1000)[:40]}   # 40 keys pushed into slice 0, 4 per minute
    current = {**before, **crowded}
    after = assign_slots(keys(1000), 480, current)
    moved = {k for k in current if after[k] != current[k]}
    in_slice_0 = [k for k in current if current[k] < 10]
    assert moved <= set(in_slice_0) and len(moved) == len(in_slice_0) - 24
    assert max(per_slice(after).values()) <= 24


def test_tiny_windows_and_no_keys():
    assert assign_slots([], 480) == {}
    assert set(assign_slots(keys(50), 1).values()) == {0}
    assert sorted(assign_slots(keys(5), 5).values()) == [0, 1, 2, 3, 4]


# --- time zones ---------------------------------------------------------------------------------

def test_ict_window_across_midnight_converts_to_utc():
    win = window("22:00-04:00")
    assert zone_shift_minutes(win, DAY, ICT, UTC) == -420
    crons = slot_crons(keys(240), win, DAY, ICT, UTC)
    minutes = [cron_minute_of_day(c) for c in crons.values()]
    assert all(m is not None and 15 * 60 <= m < 21 * 60 for m in minutes)  # 22:00-04:00 ICT = 15:00-21:00 UTC


def test_window_across_midnight_in_the_same_zone_wraps():
    win = window("22:00-04:00")
    minutes = {cron_minute_of_day(c) for c in slot_crons(keys(600), win, DAY, UTC, UTC).values()}
    assert all(m is not None and (m >= 22 * 60 or m < 4 * 60) for m in minutes)
    assert any(m is not None and m >= 22 * 60 for m in minutes) and any(m is not None and m < 60 for m in minutes)


def test_dst_zone_uses_the_run_date_offset():
    win = window("01:00-03:00")
    assert zone_shift_minutes(win, date(2026, 1, 15), NY, UTC) == 300   # EST
    assert zone_shift_minutes(win, date(2026, 7, 15), NY, UTC) == 240   # EDT
    winter = slot_crons(["a"], win, date(2026, 1, 15), NY, UTC)["a"]
    summer = slot_crons(["a"], win, date(2026, 7, 15), NY, UTC)["a"]
    assert cron_minute_of_day(winter) - cron_minute_of_day(summer) == 60
    # the spring-forward day itself (02:00-03:00 does not exist): one offset for the whole window
    assert zone_shift_minutes(win, date(2026, 3, 8), NY, UTC) == 300


def test_devlake_in_another_zone():
    win = window("22:00-06:00")
    assert zone_shift_minutes(win, DAY, ICT, ICT) == 0
    assert all(in_window(c, win, 0) for c in slot_crons(keys(100), win, DAY, ICT, ICT).values())


# --- ownership ----------------------------------------------------------------------------------

def test_cron_label_round_trips():
    for cron in ("30 2 * * *", "@daily", "@every 1h30m", "manual", "*/5 1-3 * * 1,3"):
        assert recorded_cron([MANAGED, cron_label(cron)]) == cron
    assert cron_label("30 2 * * *") == "devlake-automation/cron:30_2_*_*_*"
    assert recorded_cron([MANAGED]) is None and recorded_cron(None) is None


@pytest.mark.parametrize("bp, forced, owned", [
    (blueprint(1), None, True),                                                   # DevLake's default
    (blueprint(1, "7 3 * * *", (MANAGED, cron_label("7 3 * * *"))), None, True),  # the daemon's
    (blueprint(1, "9 3 * * *", (MANAGED, cron_label("7 3 * * *"))), None, False), # changed by hand
    (blueprint(1, DEVLAKE_DEFAULT_CRON, (MANAGED, cron_label("7 3 * * *"))), None, False),
    (blueprint(1, "15 4 * * *"), None, False),                                    # hand-set, no label
    (blueprint(1, DEVLAKE_DEFAULT_CRON, manual=True), None, False),               # made manual by hand
    (blueprint(1, "0 2 * * *"), "0 2 * * *", True),                               # BLUEPRINT_CRON, pre-label
    (blueprint(1, "manual", (MANAGED, cron_label("manual")), manual=True), None, True),
])
def test_ownership_rule(bp, forced, owned):
    assert owned_by_daemon(bp, forced) is owned


def test_blueprint_key_prefers_the_scope():
    assert blueprint_key(blueprint(7)) == "github/1/7"
    assert blueprint_key({"id": 3, "projectName": "p", "connections": []}) == "p"
    assert blueprint_key({"id": 3}) == "blueprint/3"


# --- the plan -----------------------------------------------------------------------------------

def apply(blueprints: list[dict], plan) -> None:
    """What DevLake does with the planned PATCH bodies (keys present overwrite, §8.2)."""
    by_id = {bp["id"]: bp for bp in blueprints}
    for change in plan.changes:
        by_id[change.blueprint_id].update(change.body())


def plan(blueprints, win="22:00-06:00", forced=None):
    return plan_schedule(blueprints, window=window(win), on=DAY, tz=ICT, devlake_tz=UTC, forced_cron=forced)


def test_first_plan_moves_defaults_keeps_hand_set_and_second_plan_is_empty():
    bps = [blueprint(i) for i in range(1, 101)]
    bps[4]["cronConfig"] = "15 4 * * *"
    first = plan(bps)
    assert len(first.changes) == 99 and first.unchanged == 0
    assert [(k.blueprint_id, k.cron, k.recorded) for k in first.kept] == [(5, "15 4 * * *", None)]
    change = first.changes[0]
    assert change.body() == {"cronConfig": change.target, "isManual": False,
                             "labels": [MANAGED, cron_label(change.target)]}
    shift = zone_shift_minutes(window("22:00-06:00"), DAY, ICT, UTC)
    assert all(in_window(c.target, window("22:00-06:00"), shift) for c in first.changes)
    apply(bps, first)
    second = plan(bps)
    assert second.changes == [] and second.unchanged == 99 and len(second.kept) == 1


def test_window_change_moves_only_what_the_daemon_owns():
    bps = [blueprint(i) for i in range(1, 241)]
    apply(bps, plan(bps))
    bps[0]["cronConfig"] = "45 1 * * *"    # someone edits one cron in config-ui afterwards
    moved = plan(bps, "08:00-12:00")  # disjoint from the old window: every owned cron moves
    assert {c.blueprint_id for c in moved.changes} == set(range(2, 241))
    assert [k.blueprint_id for k in moved.kept] == [1]
    apply(bps, moved)
    assert bps[0]["cronConfig"] == "45 1 * * *"
    assert plan(bps, "08:00-12:00").changes == []


def test_forced_cron_applies_to_owned_and_spreading_resumes_when_unset():
    bps = [blueprint(i) for i in range(1, 21)] + [blueprint(21, "15 4 * * *")]
    forced = plan(bps, forced="0 2 * * *")
    assert {c.target for c in forced.changes} == {"0 2 * * *"} and len(forced.changes) == 20
    apply(bps, forced)
    assert plan(bps, forced="0 2 * * *").changes == []
    spread = plan(bps)
    assert len(spread.changes) == 20 and len({c.target for c in spread.changes}) > 10
    manual = plan(bps, forced="manual")
    assert all(c.body()["isManual"] is True and c.body()["cronConfig"] == "manual" for c in manual.changes)


def test_pre_label_blueprints_on_the_forced_cron_are_adopted_with_one_label_patch():
    bps = [blueprint(i, "0 2 * * *") for i in range(1, 4)]
    adopt = plan(bps, forced="0 2 * * *")
    assert [(c.current, c.target) for c in adopt.changes] == [("0 2 * * *", "0 2 * * *")] * 3
    apply(bps, adopt)
    assert all(recorded_cron(bp["labels"]) == "0 2 * * *" for bp in bps)


# --- sticky plans -------------------------------------------------------------------------------

def settled(n: int, win: str = "22:00-06:00", **kw) -> list[dict]:
    """n blueprints as a first run leaves them: each on its slot, recorded in its label."""
    bps = [blueprint(i) for i in range(1, n + 1)]
    apply(bps, plan_at(bps, win, **kw))
    return bps


def plan_at(bps, win="22:00-06:00", on=DAY, tz=ICT, devlake_tz=UTC, forced=None):
    return plan_schedule(bps, window=window(win), on=on, tz=tz, devlake_tz=devlake_tz, forced_cron=forced)


def offsets_in(bps: list[dict], win: str = "22:00-06:00", on=DAY, tz=ICT, devlake_tz=UTC) -> list[int | None]:
    shift = zone_shift_minutes(window(win), on, tz, devlake_tz)
    return [window_offset(bp["cronConfig"], window(win), shift) for bp in bps]


def assert_even(bps: list[dict], win: str = "22:00-06:00", **kw) -> None:
    offsets = offsets_in(bps, win, **kw)
    assert None not in offsets
    fair = len(offsets) * 10 / window(win).minutes
    assert max(Counter(o // 10 for o in offsets if o is not None).values()) <= math.ceil(1.2 * fair) + 1


@pytest.mark.parametrize("added", [1, 100])
def test_adding_repositories_to_5000_moves_no_existing_blueprint(added):
    bps = settled(5000)
    bps += [blueprint(i) for i in range(5001, 5001 + added)]
    p = plan(bps)
    assert sorted(c.blueprint_id for c in p.changes) == list(range(5001, 5001 + added))
    assert p.unchanged == 5000
    apply(bps, p)
    assert_even(bps)
    assert plan(bps).changes == []


def test_removing_blueprints_moves_nothing_unless_many_are_gone():
    bps = settled(2000)
    assert plan(bps[300:]).changes == []                   # 15 % removed: every slice stays under its limit
    for rest in (bps[600:], bps[::3]):                     # 30 %, two thirds: a crowded slice or two rebalance
        p = plan(rest)
        assert len(p.changes) <= len(rest) // 25             # a few per cent
        apply(rest, p)
        assert_even(rest)


def test_evenness_after_ten_rounds_of_one_hundred_new_repositories():
    bps = settled(4000)
    assert_even(bps)
    for round_ in range(10):
        start = len(bps) + 1
        bps += [blueprint(i) for i in range(start, start + 100)]
        p = plan(bps)
        assert {c.blueprint_id for c in p.changes} == set(range(start, start + 100)), round_
        apply(bps, p)
        assert_even(bps)
    offsets = [o for o in offsets_in(bps) if o is not None]
    assert max(Counter(o // 10 for o in offsets).values()) <= math.ceil(len(bps) * 10 / 480) + 1


def test_an_over_full_slice_moves_only_its_overflow():
    bps = settled(480)                     # 10 per slice of 22:00-06:00 ICT (15:00-23:00 UTC)
    for bp in bps[:30]:                    # 30 of them recorded (as if assigned) in 15:00-15:09 UTC
        cron = f"{bp['id'] % 10} 15 * * *"
        bp.update(cronConfig=cron, labels=[MANAGED, cron_label(cron)])
    crowded = {bp["id"] for bp in bps if (cron_minute_of_day(bp["cronConfig"]) or 0) < 15 * 60 + 10}
    p = plan(bps)
    assert {c.blueprint_id for c in p.changes} <= crowded
    assert len(p.changes) == len(crowded) - 12        # the slice keeps ceil(10 x 1.15) = 12
    apply(bps, p)
    assert_even(bps)
    assert plan(bps).changes == []


def test_a_window_overlapping_the_old_one_moves_only_the_crons_outside_it():
    bps = settled(1000) + [blueprint(1001, "45 1 * * *")]          # one hand-set cron
    outside = {bp["id"] for bp, o in zip(bps[:1000], offsets_in(bps[:1000], "20:00-02:00"), strict=True)
               if o is None}
    assert 400 < len(outside) < 600                                   # 02:00-06:00 ICT: about half
    p = plan(bps, "20:00-02:00")
    assert {c.blueprint_id for c in p.changes} == outside and [k.blueprint_id for k in p.kept] == [1001]
    apply(bps, p)
    assert_even(bps[:1000], "20:00-02:00")
    assert bps[1000]["cronConfig"] == "45 1 * * *" and plan(bps, "20:00-02:00").changes == []


def test_a_much_longer_window_rebalances_the_crowded_slices():
    bps = settled(960, "22:00-02:00")                                 # 40 per slice
    p = plan(bps, "22:00-06:00")                                      # twice as long: fair 20, keep limit 23
    assert 300 < len(p.changes) < 480
    apply(bps, p)
    assert_even(bps, "22:00-06:00")


def test_window_across_midnight_stays_put():
    bps = settled(600, "22:00-04:00", tz=UTC)
    minutes = {cron_minute_of_day(bp["cronConfig"]) for bp in bps}
    assert any(m is not None and m >= 22 * 60 for m in minutes) and any(m is not None and m < 60 for m in minutes)
    bps += [blueprint(i) for i in range(601, 651)]
    p = plan_at(bps, "22:00-04:00", tz=UTC)
    assert {c.blueprint_id for c in p.changes} == set(range(601, 651))
    apply(bps, p)
    assert_even(bps, "22:00-04:00", tz=UTC)


def test_crons_recorded_under_utc_map_back_into_the_local_window():
    bp = blueprint(1, "30 15 * * *", (MANAGED, cron_label("30 15 * * *")))   # 22:30 in Ho Chi Minh City
    kept = plan([bp])
    assert kept.changes == [] and kept.unchanged == 1
    assert window_offset("30 15 * * *", window("22:00-06:00"), -420) == 30
    assert window_offset("30 14 * * *", window("22:00-06:00"), -420) is None   # 21:30 local: outside
    spelled = blueprint(2, "05 15 * * *", (MANAGED, cron_label("05 15 * * *")))
    assert plan([spelled]).changes == []               # kept verbatim, not re-spelled "5 15 * * *"


def test_daylight_saving_moves_only_the_crons_it_pushes_out_of_the_window():
    winter, summer = date(2026, 1, 15), date(2026, 7, 15)
    bps = settled(480, "22:00-06:00", on=winter, tz=NY)          # 03:00-11:00 UTC in winter
    p = plan_at(bps, "22:00-06:00", on=summer, tz=NY)              # 02:00-10:00 UTC in summer
    pushed_out = {bp["id"] for bp in bps if (cron_minute_of_day(bp["cronConfig"]) or 0) >= 10 * 60}
    assert {c.blueprint_id for c in p.changes} == pushed_out and 40 <= len(pushed_out) <= 80
    apply(bps, p)
    assert all(2 * 60 <= (cron_minute_of_day(bp["cronConfig"]) or -1) < 10 * 60 for bp in bps)
    assert_even(bps, on=summer, tz=NY)
    assert plan_at(bps, on=summer, tz=NY).changes == []


def test_hand_set_crons_do_not_count_toward_a_slice():
    bps = [blueprint(i) for i in range(1, 201)]
    hand = [blueprint(i, f"{i % 10} 15 * * *") for i in range(201, 261)]   # 60 in the window's first slice
    assert plan(bps).changes == plan(bps + hand).changes


def test_two_blueprints_on_one_scope_get_their_own_minutes():
    twins = [blueprint(1), dict(blueprint(2), connections=blueprint(1)["connections"])]
    p = plan(twins)
    assert len({c.target for c in p.changes}) == 2
    apply(twins, p)
    assert plan(twins).changes == []


def test_forced_crons_inside_the_window_spread_out_when_unset():
    bps = [blueprint(i) for i in range(1, 21)]
    apply(bps, plan(bps, forced="0 16 * * *"))                    # 23:00 ICT, inside the window
    spread = plan(bps)
    assert len(spread.changes) == 19                              # a slice keeps ceil(20 x 10/480 x 1.15) = 1
    apply(bps, spread)
    assert len({bp["cronConfig"] for bp in bps}) == 20 and plan(bps).changes == []
    many = [blueprint(i, "0 16 * * *", (MANAGED, cron_label("0 16 * * *"))) for i in range(1, 5001)]
    assert len(plan(many).changes) == 5000 - 13                   # a minute keeps ceil(5000/480 x 1.15) + 1


def test_the_plan_is_deterministic_and_free_of_input_order():
    bps = settled(300) + [blueprint(i) for i in range(301, 341)] + [blueprint(341, "15 4 * * *")]
    for bp in bps[:20]:                                            # a crowded slice too
        cron = f"{bp['id'] % 10} 15 * * *"
        bp.update(cronConfig=cron, labels=[MANAGED, cron_label(cron)])
    first = plan(bps, "21:00-05:00")
    assert first.changes and first == plan(copy.deepcopy(bps), "21:00-05:00")
    shuffled = copy.deepcopy(bps)
    random.Random(9).shuffle(shuffled)
    assert plan(shuffled, "21:00-05:00") == first
