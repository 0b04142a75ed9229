"""apply_push with apply_batch: a failure seen by a notification and by the poller counts once."""
from datetime import UTC, datetime, timedelta

import pytest
import pytz

from modules.monitoring.ledger import Batch, Observation, apply_batch, apply_push
from modules.monitoring.state import NO_PROJECT, MonitorState

TZ = pytz.timezone("Asia/Ho_Chi_Minh")
T0 = datetime(2025, 8, 8, 7, 0, 0, tzinfo=UTC)
HOUR = 3600.0
PROJECTS = {1: "github/a", 2: "github/b"}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ob(pid, status, fin=None, bid=1, began=None):
    return Observation(pid, bid, status, finished_at=fin, began_at=began)


def poll(state, observations, now_min, projects=None):
    batch = Batch(observations=list(observations), projects=projects)
    return apply_batch(state, batch, project_of=lambda o: PROJECTS.get(o.blueprint_id, NO_PROJECT),
                       now=at(now_min).timestamp(), lookback_seconds=24 * HOUR,
                       retention_seconds=7 * 24 * HOUR, tz=TZ)


def push(state, obs, _now_min=None):
    return apply_push(state, obs, PROJECTS[obs.blueprint_id], tz=TZ)


def counters(state, project="github/a"):
    s = state.projects[project]
    return s.failures, s.runs, s.consecutive_failures


@pytest.fixture
def state():
    """After a first poll that saw pipeline 10 completed: watermark 10."""
    s = MonitorState()
    poll(s, [ob(10, "TASK_COMPLETED", fin=at(-60))], 0, projects=["github/a", "github/b"])
    return s


def test_push_then_poll_counts_once(state):
    failed = ob(11, "TASK_FAILED", fin=at(1))
    assert [e.pipeline_id for e in push(state, failed, 1).failures] == [11]
    assert counters(state) == (1, 2, 1)
    assert state.watermark == 10 and state.in_flight == {}  # the poller's view is untouched
    summary = poll(state, [failed], 5)  # id 11 > watermark: a trusted sighting, known by its key
    assert summary.failures == [] and summary.runs == 0
    assert counters(state) == (1, 2, 1) and len(state.events) == 1
    assert state.watermark == 11


def test_poll_then_push_counts_once(state):
    failed = ob(11, "TASK_FAILED", fin=at(1))
    poll(state, [failed], 5)
    assert push(state, failed, 6).failures == []
    assert counters(state) == (1, 2, 1)


def test_push_of_a_pipeline_the_poller_tracks_in_flight(state):
    poll(state, [ob(11, "TASK_RUNNING", began=at(1))], 5)
    push(state, ob(11, "TASK_FAILED", fin=at(7)), 7)
    assert 11 in state.in_flight  # left for the poller, which GETs it once more and skips it by key
    poll(state, [ob(11, "TASK_FAILED", fin=at(7))], 10)
    assert counters(state) == (1, 2, 1) and state.in_flight == {}


def test_a_push_never_makes_the_poller_skip_a_lower_id(state):
    push(state, ob(12, "TASK_FAILED", fin=at(2)), 2)
    summary = poll(state, [ob(12, "TASK_FAILED", fin=at(2)), ob(11, "TASK_FAILED", fin=at(1))], 5)
    assert [e.pipeline_id for e in summary.failures] == [11]
    assert counters(state) == (2, 3, 2)


def test_successes_are_left_to_the_poller(state):
    assert push(state, ob(11, "TASK_COMPLETED", fin=at(1)), 1).runs == 0
    assert push(state, ob(12, "TASK_CANCELLED", fin=at(2)), 2).runs == 0
    assert counters(state) == (0, 1, 0)
    assert state.projects["github/a"].last_status == "TASK_CANCELLED"  # status gauges move at once
    assert poll(state, [ob(12, "TASK_CANCELLED", fin=at(2)), ob(11, "TASK_COMPLETED", fin=at(1))], 5).runs == 2


def test_consecutive_failures_follow_finish_order_across_paths(state):
    push(state, ob(12, "TASK_FAILED", fin=at(3)), 3)
    poll(state, [ob(12, "TASK_FAILED", fin=at(3)), ob(11, "TASK_COMPLETED", fin=at(2))], 5)
    assert counters(state) == (1, 3, 1)  # the success came first: one failure since
    poll(state, [ob(13, "TASK_COMPLETED", fin=at(6))], 10)
    push(state, ob(14, "TASK_PARTIAL", fin=at(11)), 11)
    assert counters(state) == (2, 5, 1)


def test_a_rerun_failing_again_is_a_new_event_on_both_paths(state):
    first, again = ob(11, "TASK_FAILED", fin=at(1)), ob(11, "TASK_FAILED", fin=at(9))
    push(state, first, 1)
    poll(state, [first], 5)
    push(state, again, 9)
    poll(state, [again], 10)  # the hourly re-scan sees it untrusted: known by its key
    assert counters(state) == (2, 3, 2) and len(state.events) == 2


def test_push_respects_the_floor(state):
    assert push(state, ob(3, "TASK_FAILED", fin=at(-25 * 60)), 1).failures == []
    assert counters(state) == (0, 1, 0)


def test_push_before_the_first_poll_is_left_to_it():
    s = MonitorState()
    failed = ob(11, "TASK_FAILED", fin=at(-1))
    assert push(s, failed) is None and s.floor is None and "github/a" not in s.projects
    summary = poll(s, [ob(10, "TASK_COMPLETED", fin=at(-30)), failed], 1, projects=["github/a"])
    assert [e.pipeline_id for e in summary.failures] == [11] and counters(s) == (1, 2, 1)


def test_push_for_a_project_not_yet_known_creates_it(state):
    summary = apply_push(state, ob(11, "TASK_FAILED", fin=at(1), bid=3), "github/new", tz=TZ)
    assert summary.projects_added == ["github/new"] and state.projects["github/new"].failures == 1


def test_a_success_found_after_a_pushed_failure_resets_the_streak(state):
    """Success of 11, then failure of 12, within one poll interval: only 12 is notified at once."""
    push(state, ob(10, "TASK_FAILED", fin=at(-30)), 0)  # a rerun of 10 failed: a streak of 1
    push(state, ob(12, "TASK_FAILED", fin=at(3)), 3)
    assert counters(state)[2] == 2  # for now: the success is not known yet
    poll(state, [ob(12, "TASK_FAILED", fin=at(3)), ob(11, "TASK_COMPLETED", fin=at(2))], 5)
    assert counters(state) == (2, 4, 1)


def test_a_late_streak_is_recounted_around_the_newest_success(state):
    push(state, ob(13, "TASK_FAILED", fin=at(5)), 5)
    poll(state, [ob(13, "TASK_FAILED", fin=at(5)), ob(12, "TASK_COMPLETED", fin=at(3)),
                 ob(11, "TASK_FAILED", fin=at(1))], 6)
    assert counters(state) == (2, 4, 1)  # 11 failed before the success of 12: not part of the streak
