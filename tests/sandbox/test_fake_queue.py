"""The fake's queue: status/pending counts, PIPELINE_MAX_PARALLEL, the high-water mark, crons."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sandbox.autorun import flaky_outcome
from sandbox.common import cron_matches


@pytest.fixture
def boards(fake):
    cid = fake.add_connection("jira", "jira")
    for board in range(1, 7):
        fake.add_scope("jira", cid, {"boardId": board, "name": f"Board {board}"})
    return [fake.add_project(f"p{b}", scopes=[("jira", cid, str(b))]) for b in range(1, 7)]


def count(http, **params) -> int:
    return http.get("/pipelines", params={"pageSize": 1, **params}).json()["count"]


def test_status_counts_include_resume_and_rerun_which_pending_misses(fake, http, boards):
    a, b, c, d = boards[:4]
    fake.add_pipeline(a, "TASK_CREATED")
    fake.add_pipeline(b, "TASK_RUNNING")
    fake.add_pipeline(c, "TASK_RESUME")
    failed = fake.add_pipeline(d, "TASK_FAILED", finished_at=datetime(2025, 11, 21, tzinfo=UTC))
    http.post(f"/pipelines/{failed}/rerun")
    counts = {s: count(http, status=s) for s in ("TASK_CREATED", "TASK_RERUN", "TASK_RUNNING", "TASK_RESUME")}
    assert counts == {"TASK_CREATED": 1, "TASK_RERUN": 1, "TASK_RUNNING": 1, "TASK_RESUME": 1}
    assert count(http, pending=1) == 2      # finishedAt kept on the rerun (§0 #16), RESUME excluded (§9.3)
    assert fake.pending_count() == 4 == fake.max_pending_seen


def test_queue_step_honours_max_parallel_priority_and_id_order(fake, http, boards):
    fake.max_parallel = 2
    for bp in boards[:5]:
        http.post(f"/blueprints/{bp}/trigger")
    http.patch(f"/blueprints/{boards[5]}", json={"priority": 5})
    urgent = http.post(f"/blueprints/{boards[5]}/trigger").json()["id"]
    assert fake.max_pending_seen == 6
    finished, started = fake.queue_step()
    assert finished == [] and started == [urgent, 1]          # priority first, then lowest id
    assert count(http, status="TASK_RUNNING") == 2 and count(http, status="TASK_CREATED") == 4
    finished, started = fake.queue_step(flaky_outcome)
    assert finished == [1, urgent] and started == [2, 3]
    while any(fake.queue_step()):
        assert count(http, status="TASK_RUNNING") <= 2
    assert fake.pending_count() == 0 and fake.max_pending_seen == 6
    assert {p["status"] for p in fake.pipelines.values()} == {"TASK_COMPLETED"}


def test_high_water_mark_resets_to_the_current_queue(fake, http, boards):
    for bp in boards[:3]:
        http.post(f"/blueprints/{bp}/trigger")
    fake.run_pending()
    assert fake.max_pending_seen == 3 and fake.pending_count() == 0
    fake.reset_max_pending()
    http.post(f"/blueprints/{boards[0]}/trigger")
    assert fake.max_pending_seen == 1
    http.delete("/pipelines/4")
    assert fake.pending_count() == 0 and fake.max_pending_seen == 1


def test_resumed_pipelines_are_dequeued(fake, boards):
    fake.max_parallel = 1
    resumed = fake.add_pipeline(boards[0], "TASK_RESUME")
    assert fake.queue_step() == ([], [resumed])
    assert fake.queue_step() == ([resumed], [])
    assert fake.pipelines[resumed]["status"] == "TASK_COMPLETED"


def test_fire_crons_starts_matching_blueprints_once(fake, http, boards):
    http.patch(f"/blueprints/{boards[0]}", json={"cronConfig": "7 15 * * *"})
    http.patch(f"/blueprints/{boards[1]}", json={"cronConfig": "7 15 * * *", "enable": False})
    http.patch(f"/blueprints/{boards[2]}", json={"cronConfig": "manual"})
    at = datetime(2026, 11, 23, 15, 7, tzinfo=UTC)
    assert fake.fire_crons(at) == [1]
    assert fake.fire_crons(at) == []                        # still pending: the cron queues nothing
    # every other blueprint keeps DevLake's default 0 0 * * * (UTC)
    assert len(fake.fire_crons(datetime(2026, 11, 24, 0, 0, tzinfo=UTC))) == 3


@pytest.mark.parametrize("expr, at, fires", [
    ("30 2 * * *", datetime(2026, 1, 5, 2, 30, tzinfo=UTC), True),
    ("30 2 * * *", datetime(2026, 1, 5, 2, 31, tzinfo=UTC), False),
    ("*/15 * * * *", datetime(2026, 1, 5, 9, 45, tzinfo=UTC), True),
    ("0 0 1 * 1", datetime(2026, 1, 5, 0, 0, tzinfo=UTC), True),   # a Monday: dom OR dow
    ("0 0 1 * *", datetime(2026, 1, 5, 0, 0, tzinfo=UTC), False),
    # robfig's starBit, not the field's text: `1,*` and `*/1` are `*` (both days must match),
    # `*/2` is restricted (either may)
    ("0 0 1,* * 2", datetime(2026, 1, 5, 0, 0, tzinfo=UTC), False),
    ("0 0 */1 * 2", datetime(2026, 1, 5, 0, 0, tzinfo=UTC), False),
    ("0 0 */2 * 2", datetime(2026, 1, 5, 0, 0, tzinfo=UTC), True),
    ("@daily", datetime(2026, 1, 5, 0, 0, tzinfo=UTC), True),
    ("@every 1h", datetime(2026, 1, 5, 0, 0, tzinfo=UTC), False),
])
def test_cron_matches(expr, at, fires):
    assert cron_matches(expr, at) is fires
