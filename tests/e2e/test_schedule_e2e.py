"""Issue 9 end to end against the fake: spread crons, bounded triggers, window change.

`run_once` wires modules/schedule.py and modules/queue.py to the real client the way the
planner/applier will (read, plan, write the plan, then spend the trigger budget); it stands in
for that applier until it exists, so these assertions carry over to it unchanged.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest

from config import Settings, load_settings
from modules.api import DevLakeClient
from modules.queue import TriggerRequest, budget_for_triggers, never_collected, read_pending, select_triggers
from modules.schedule import SchedulePlan, cron_minute_of_day, plan_schedule, zone_shift_minutes
from sandbox.fake_devlake import FakeDevLake
from utils.http import make_session

MANAGED = "managed-by/devlake-automation"
REPOS = 240
BUDGET = 5
RUN_DATE = date(2026, 11, 23)


@dataclass
class Outcome:
    plan: SchedulePlan
    started: list[TriggerRequest]
    deferred: list[TriggerRequest]


def run_once(client: DevLakeClient, settings: Settings) -> Outcome:
    managed = list(client.iter_blueprints(label=MANAGED))
    plan = plan_schedule(managed, window=settings.collection_window, on=RUN_DATE, tz=settings.timezone,
                         devlake_tz=settings.devlake_timezone, forced_cron=settings.blueprint_cron)
    for change in plan.changes:
        client.patch_blueprint(change.blueprint_id, change.body())
    managed_ids = {bp["id"] for bp in managed}
    wanted = [TriggerRequest("first", p["blueprint"]["id"], p["name"]) for p in client.iter_projects()
              if never_collected(p) and p["blueprint"]["id"] in managed_ids]
    budget = budget_for_triggers(sum(read_pending(client).values()), settings.max_pending_pipelines)
    started, deferred = select_triggers(wanted, budget)
    for request in started:
        client.trigger_blueprint(request.blueprint_id)
    return Outcome(plan, started, deferred)


@pytest.fixture
def fake():
    with FakeDevLake() as server:
        cid = server.add_connection("jira", "jira")
        for board in range(1, REPOS + 1):
            server.add_scope("jira", cid, {"boardId": board, "name": f"Board {board}"})
            server.add_project(f"jira/board-{board}", scopes=[("jira", cid, str(board))], labels=[MANAGED])
        server.max_parallel = 1   # DevLake's env.example (§9.5)
        yield server


def settings_for(fake, window: str) -> Settings:
    return load_settings({"DEVLAKE_URL": fake.url, "COLLECTION_WINDOW": window,
                          "MAX_PENDING_PIPELINES": str(BUDGET), "DEVLAKE_HTTP_RETRIES": "0",
                          "DEVLAKE_RETRY_BACKOFF_SECONDS": "0"})


@pytest.fixture
def client(fake):
    session = make_session(api_key=None, retries=0, backoff_seconds=0)
    yield DevLakeClient(session, fake.url, timeout=5)
    session.close()


def crons(fake) -> dict[int, str]:
    return {bp_id: bp["cronConfig"] for bp_id, bp in fake.blueprints.items()}


def assert_spread_inside(fake, settings: Settings, ids) -> None:
    window = settings.collection_window
    shift = zone_shift_minutes(window, RUN_DATE, settings.timezone, settings.devlake_timezone)
    offsets, now = [], crons(fake)
    for bp_id in ids:
        minute = cron_minute_of_day(now[bp_id])
        assert minute is not None
        offsets.append((minute - shift - window.start) % 1440)
    assert all(o < window.minutes for o in offsets)
    fair = len(offsets) * 10 / window.minutes
    assert max(Counter(o // 10 for o in offsets).values()) <= math.ceil(1.2 * fair) + 1


def test_spread_budget_and_window_change(fake, client):
    settings = settings_for(fake, "22:00-02:00")   # ICT = 15:00-19:00 UTC, 240 minutes

    first = run_once(client, settings)
    assert len(first.plan.changes) == REPOS and first.plan.kept == []
    assert_spread_inside(fake, settings, range(1, REPOS + 1))
    assert (len(first.started), len(first.deferred)) == (BUDGET, REPOS - BUDGET)
    assert fake.max_pending_seen <= BUDGET
    assert fake.count("PATCH") == REPOS and fake.count("POST") == BUDGET

    fake.reset_log()
    second = run_once(client, settings)            # nothing new, the queue still full
    assert second.plan.changes == [] and second.started == [] and len(second.deferred) == REPOS - BUDGET
    assert fake.mutating_count() == 0

    while any(fake.queue_step()):                  # DevLake works the queue off, one at a time
        pass
    third = run_once(client, settings)             # a later run: the next never-run ones, within budget
    assert [r.blueprint_id for r in third.started] == [r.blueprint_id for r in second.deferred[:BUDGET]]
    assert fake.max_pending_seen <= BUDGET

    # The night: DevLake's crons start the rest at their own minutes.
    night = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    started_per_minute = []
    for minute in range(settings.collection_window.minutes):
        started_per_minute.append(len(fake.fire_crons(night + timedelta(minutes=minute))))
        fake.queue_step()
    while any(fake.queue_step()):
        pass
    assert max(started_per_minute) <= 2 and sum(started_per_minute) == REPOS  # one pipeline each
    fourth = run_once(client, settings)
    assert fourth.started == [] and fourth.deferred == [] and fourth.plan.changes == []

    # Someone sets one cron by hand; then the operator changes the window.
    assert client.patch_blueprint(7, {"cronConfig": "45 1 * * *"})["cronConfig"] == "45 1 * * *"
    fake.reset_log()
    moved_settings = settings_for(fake, "08:00-10:00")
    before = crons(fake)
    moved = run_once(client, moved_settings)
    assert [k.blueprint_id for k in moved.plan.kept] == [7] and crons(fake)[7] == "45 1 * * *"
    assert {c.blueprint_id for c in moved.plan.changes} == set(range(1, REPOS + 1)) - {7}
    assert fake.count("PATCH") == fake.mutating_count() == REPOS - 1   # one PATCH per moved blueprint
    after = crons(fake)
    assert all(after[i] != before[i] for i in range(1, REPOS + 1) if i != 7)
    assert_spread_inside(fake, moved_settings, [i for i in range(1, REPOS + 1) if i != 7])

    fake.reset_log()
    again = run_once(client, moved_settings)
    assert again.plan.changes == [] and fake.mutating_count() == 0
