"""Issue 9 end to end against the fake: spread crons, bounded triggers, window change.

The real run (modules.runner.run_once: read → plan → apply) against the fake over HTTP.
240 managed blueprints still on DevLake's default cron and never collected, a queue budget of 5
and DevLake's PIPELINE_MAX_PARALLEL=1.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
import pytz

from config import Settings, load_settings
from modules import plan_view
from modules.changes import Outcome, PatchBlueprint, TriggerBlueprint
from modules.client import build_client
from modules.cron_slots import cron_label, cron_minute_of_day, zone_shift_minutes
from modules.orchestrator import RunReport
from modules.runner import run_once
from sandbox.fake_devlake import FakeDevLake

MANAGED = "managed-by/devlake-automation"
REPOS = 240
BUDGET = 5
RUN_DATE = date(2026, 11, 23)
NOW = pytz.timezone("Asia/Ho_Chi_Minh").localize(datetime(2026, 11, 23, 18, 0))


@pytest.fixture
def fake():
    with FakeDevLake(clock=lambda: NOW.astimezone(UTC)) as server:
        cid = server.add_connection("jira", "jira")
        # the connection as an earlier run left it: its scope config, attached to every board
        config = server.add_scope_config("jira", cid, f"devlake-automation-jira-{cid}", entities=["TICKET"])
        for board in range(1, REPOS + 1):
            server.add_scope("jira", cid, {"boardId": board, "name": f"Board {board}"}, scope_config_id=config)
            server.add_project(f"jira/board-{board}", scopes=[("jira", cid, str(board))], labels=[MANAGED])
        server.max_parallel = 1   # DevLake's env.example (§9.5)
        yield server


def settings_for(fake, tmp_path, window: str) -> Settings:
    return load_settings({"DEVLAKE_URL": fake.url, "COLLECTION_WINDOW": window, "STATE_DIR": str(tmp_path),
                          "MAX_PENDING_PIPELINES": str(BUDGET), "DEVLAKE_HTTP_RETRIES": "0",
                          "DEVLAKE_RETRY_BACKOFF_SECONDS": "0"})


def run(settings: Settings, dry_run: bool = False) -> RunReport:
    code, report = run_once(settings, build_client(settings, dry_run=dry_run), NOW, dry_run=dry_run,
                            sleep=lambda s: None)
    assert code == 0, report.failures()          # deferred triggers are not failures
    return report


def started(report: RunReport) -> list[int]:
    return [r.change.blueprint for r in report.results if isinstance(r.change, TriggerBlueprint)
            and r.outcome is Outcome.CREATED and isinstance(r.change.blueprint, int)]


def deferred(report: RunReport) -> list[int]:
    return [r.change.blueprint for r in report.results if r.outcome is Outcome.DEFERRED
            and isinstance(r.change, TriggerBlueprint) and isinstance(r.change.blueprint, int)]


def patches(report: RunReport) -> list[PatchBlueprint]:
    return [c for c in report.plan.changes if isinstance(c, PatchBlueprint)]


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
        assert fake.blueprints[bp_id]["labels"] == [MANAGED, cron_label(now[bp_id])]
    assert all(o < window.minutes for o in offsets)
    fair = len(offsets) * 10 / window.minutes
    assert max(Counter(o // 10 for o in offsets).values()) <= math.ceil(1.2 * fair) + 1


def test_spread_budget_and_window_change(fake, tmp_path):
    settings = settings_for(fake, tmp_path, "22:00-02:00")   # ICT = 15:00-19:00 UTC, 240 minutes

    first = run(settings)
    assert len(patches(first)) == REPOS and not [w for w in first.plan.warnings if w[0] == "cron_hand_set_kept"]
    assert_spread_inside(fake, settings, range(1, REPOS + 1))
    assert (len(started(first)), len(deferred(first)), first.deferred) == (BUDGET, REPOS - BUDGET, REPOS - BUDGET)
    assert fake.max_pending_seen <= BUDGET
    # cron, labels and timeAfter in one PATCH per blueprint; triggers only within the budget
    assert fake.count("PATCH") == REPOS and fake.count("POST") == BUDGET == fake.mutating_count() - REPOS
    assert all({"cronConfig", "labels", "timeAfter"} <= set(r.body) for r in fake.requests if r.method == "PATCH")
    last_run = json.loads((tmp_path / "automation_last_run.json").read_text())
    assert (last_run["deferred"], last_run["failed"], last_run["outcome"]) == (REPOS - BUDGET, 0, "success")

    fake.reset_log()
    preview = run(settings, dry_run=True)         # the queue is full: every trigger would wait
    assert preview.deferred == REPOS - BUDGET and fake.mutating_count() == 0
    every_line = plan_view.render(preview.plan, settings, NOW.date(), deferred_changes=preview.would_defer, full=True)
    assert sum("[deferred: queue budget]" in line for line in every_line) == REPOS - BUDGET
    second = run(settings)                          # nothing new, the queue still full
    assert patches(second) == [] and started(second) == [] and len(deferred(second)) == REPOS - BUDGET
    assert fake.mutating_count() == 0

    while any(fake.queue_step()):                  # DevLake works the queue off, one at a time
        pass
    third = run(settings)                          # a later run: the next never-run ones, within budget
    assert started(third) == deferred(second)[:BUDGET] == sorted(deferred(second))[:BUDGET]
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
    fourth = run(settings)
    assert started(fourth) == [] and deferred(fourth) == [] and fourth.plan.changes == []

    # Someone sets one cron by hand; then the operator changes the window.
    client = build_client(settings)
    assert client.patch_blueprint(7, {"cronConfig": "45 1 * * *"})["cronConfig"] == "45 1 * * *"
    fake.reset_log()
    moved_settings = settings_for(fake, tmp_path, "08:00-10:00")
    before = crons(fake)
    preview = run(moved_settings, dry_run=True)
    assert fake.mutating_count() == 0
    every_line = plan_view.render(preview.plan, moved_settings, NOW.date(), deferred_changes=preview.would_defer, full=True)
    assert sum("(cron: " in line for line in every_line) == REPOS - 1
    moved = run(moved_settings)
    (kept,) = [fields for event, fields in moved.plan.warnings if event == "cron_hand_set_kept"]
    assert kept["count"] == 1 and kept["examples"][0]["blueprint_id"] == 7 and crons(fake)[7] == "45 1 * * *"
    assert {c.blueprint_id for c in patches(moved)} == set(range(1, REPOS + 1)) - {7}
    assert fake.count("PATCH") == fake.mutating_count() == REPOS - 1   # one PATCH per moved blueprint
    after = crons(fake)
    assert all(after[i] != before[i] for i in range(1, REPOS + 1) if i != 7)
    assert_spread_inside(fake, moved_settings, [i for i in range(1, REPOS + 1) if i != 7])

    fake.reset_log()
    again = run(moved_settings)
    assert again.plan.changes == [] and fake.mutating_count() == 0
