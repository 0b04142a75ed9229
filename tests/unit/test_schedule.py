"""modules/schedule.py: slot spreading, time zones, ownership and the cron plan (no HTTP)."""
from __future__ import annotations

import math
from collections import Counter
from datetime import date

import pytest
import pytz

from config import CollectionWindow
from modules.schedule import (
    DEVLAKE_DEFAULT_CRON,
    assign_slots,
    blueprint_key,
    cron_label,
    cron_minute_of_day,
    owned_by_daemon,
    plan_schedule,
    recorded_cron,
    slot_crons,
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
    assert max(per_slice(slots).values()) <= math.ceil(1.16 * fair) + 1
    assert max(Counter(slots.values()).values()) <= math.ceil(1.2 * n / minutes) + 1


def test_spread_is_deterministic_and_order_free():
    forward = assign_slots(keys(500), 480)
    assert assign_slots(list(reversed(keys(500))), 480) == forward == assign_slots(keys(500), 480)


def test_adding_one_blueprint_moves_few():
    before = assign_slots(keys(5000), 480)
    after = assign_slots(keys(5000) + ["github/1/new"], 480)
    moved = [k for k in before if before[k] != after[k]]
    assert len(moved) <= 20
    assert all(abs(before[k] - after[k]) <= 10 for k in moved)


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
