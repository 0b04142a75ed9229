"""The exactly-once rules of modules.monitoring.ledger, without HTTP."""
from datetime import UTC, datetime, timedelta

import pytest
import pytz

from modules.monitoring.ledger import Batch, MalformedAnswer, Observation, apply_batch, parse_pipeline
from modules.monitoring.state import NO_PROJECT, MonitorState

TZ = pytz.timezone("Asia/Ho_Chi_Minh")
T0 = datetime(2025, 8, 8, 7, 0, 0, tzinfo=UTC)
HOUR = 3600.0
PROJECTS = {1: "github/a", 2: "github/b"}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ob(pid, status, fin=None, bid=1, began=None, created=None, updated=None):
    return Observation(pid, bid, status, finished_at=fin, began_at=began, created_at=created, updated_at=updated)


def apply(state, observations, now_min, projects=None, missing=(), mapping=PROJECTS,
          lookback=24 * HOUR, retention=7 * 24 * HOUR):
    batch = Batch(observations=list(observations), projects=projects, missing=set(missing))

    def project_of(o):
        return NO_PROJECT if o.blueprint_id == 0 else mapping.get(o.blueprint_id)
    return apply_batch(state, batch, project_of=project_of, now=at(now_min).timestamp(),
                       lookback_seconds=lookback, retention_seconds=retention, tz=TZ)


@pytest.fixture
def state():
    """A state after a first poll that saw pipeline 10 completed: watermark 10."""
    s = MonitorState()
    apply(s, [ob(10, "TASK_COMPLETED", fin=at(-60))], 0, projects=["github/a", "github/b"])
    return s


def test_first_start_counts_only_failures_within_the_lookback():
    s = MonitorState()
    summary = apply(s, [ob(3, "TASK_FAILED", fin=at(-25 * 60)), ob(4, "TASK_FAILED", fin=at(-23 * 60)),
                        ob(5, "TASK_COMPLETED", fin=at(-30))], 0, projects=["github/a"])
    assert [e.pipeline_id for e in summary.failures] == [4]
    assert s.projects["github/a"].failures == 1 and s.projects["github/a"].runs == 2
    assert s.watermark == 5
    # last-failure time comes from what was seen, even before the lookback
    assert s.projects["github/a"].last_failure == at(-23 * 60).timestamp()


def test_new_failure_gets_the_time_failed_label_in_the_timezone(state):
    fin = datetime(2025, 8, 8, 7, 6, 6, 123000, tzinfo=UTC)
    summary = apply(state, [ob(11, "TASK_FAILED", fin=fin)], 10)
    (event,) = summary.failures
    assert (event.project, event.time_failed) == ("github/a", "2025-08-08 14:06:06")
    assert event.key in state.events
    assert state.projects["github/a"].failures == 1
    assert state.projects["github/a"].consecutive_failures == 1


def test_completed_and_cancelled_are_runs_not_failures(state):
    summary = apply(state, [ob(11, "TASK_COMPLETED", fin=at(1)), ob(12, "TASK_CANCELLED", fin=at(2))], 5)
    assert summary.failures == [] and state.events == {}
    assert state.projects["github/a"].runs == 3  # 10 (first poll), 11, 12
    assert state.projects["github/a"].failures == 0


def test_same_failure_seen_again_is_not_counted_again(state):
    failed = ob(11, "TASK_FAILED", fin=at(1))
    apply(state, [failed], 5)
    summary = apply(state, [failed, failed], 10, projects=["github/a", "github/b"])
    assert summary.failures == [] and summary.runs == 0
    assert state.projects["github/a"].failures == 1 and len(state.events) == 1


def test_a_rerun_that_fails_again_is_a_new_failure(state):
    apply(state, [ob(11, "TASK_FAILED", fin=at(1))], 5)
    # rerun: same id, TASK_RERUN, old finishedAt kept (§0 #16)
    apply(state, [ob(11, "TASK_RERUN", fin=at(1), updated=at(6))], 10)
    assert state.in_flight[11].since == at(6).timestamp()
    summary = apply(state, [ob(11, "TASK_FAILED", fin=at(12))], 15)
    assert [e.finished_at for e in summary.failures] == [at(12).isoformat()]
    assert state.projects["github/a"].failures == 2
    assert state.projects["github/a"].consecutive_failures == 2
    assert 11 not in state.in_flight


def test_rerun_that_failed_between_polls_is_self_healed_once(state):
    apply(state, [ob(11, "TASK_FAILED", fin=at(1))], 5)
    # not trusted (id below watermark, never seen in flight): counted because its key is new
    rescan = [ob(11, "TASK_FAILED", fin=at(20))]
    assert len(apply(state, rescan, 25).failures) == 1
    assert apply(state, rescan, 30).failures == []
    assert state.projects["github/a"].failures == 2


def test_rerun_still_showing_its_old_finish_is_not_a_new_run(state):
    # a cancelled run can be rerun too (its tasks are not all completed, §9.1)
    apply(state, [ob(11, "TASK_CANCELLED", fin=at(1))], 5)
    apply(state, [ob(11, "TASK_RERUN", fin=at(1))], 10)
    # an answer still showing the old final status must not count the old run again
    summary = apply(state, [ob(11, "TASK_CANCELLED", fin=at(1))], 15)
    assert summary.runs == 0 and state.projects["github/a"].runs == 2


def test_in_flight_pipeline_counted_when_it_finishes(state):
    apply(state, [ob(11, "TASK_CREATED", created=at(1))], 2)
    apply(state, [ob(11, "TASK_RUNNING", created=at(1), began=at(3))], 5)
    assert state.in_flight[11].since == at(3).timestamp()
    assert state.projects["github/a"].last_status == "TASK_RUNNING"
    summary = apply(state, [ob(11, "TASK_COMPLETED", fin=at(9), began=at(3))], 10)
    assert summary.runs == 1 and not state.in_flight
    assert state.projects["github/a"].last_success == at(9).timestamp()


def test_success_resets_consecutive_failures_in_finish_order(state):
    # newest first, as pages arrive: the ledger sorts by finishedAt
    apply(state, [ob(13, "TASK_FAILED", fin=at(3)), ob(12, "TASK_COMPLETED", fin=at(2)),
                  ob(11, "TASK_FAILED", fin=at(1))], 5)
    assert state.projects["github/a"].consecutive_failures == 1
    assert state.projects["github/a"].last_status == "TASK_FAILED"


def test_ad_hoc_pipelines_go_to_no_project(state):
    summary = apply(state, [ob(11, "TASK_PARTIAL", fin=at(1), bid=0)], 5)
    assert summary.failures[0].project == NO_PROJECT
    assert state.projects[NO_PROJECT].failures == 1


def test_pipelines_of_deleted_blueprints_are_ignored(state):
    summary = apply(state, [ob(11, "TASK_FAILED", fin=at(1), bid=99)], 5)
    assert summary.failures == [] and state.watermark == 11


def test_project_list_adds_at_zero_and_removes_deleted(state):
    apply(state, [ob(11, "TASK_RUNNING", bid=2, began=at(1))], 2)
    summary = apply(state, [], 5, projects=["github/a", "github/c"])
    assert summary.projects_removed == [] and summary.projects_added == ["github/c"]  # one sweep: maybe missed
    summary = apply(state, [], 65, projects=["github/a", "github/c"])
    assert summary.projects_removed == ["github/b"]
    assert set(state.projects) == {"github/a", "github/c", NO_PROJECT}
    assert state.in_flight == {}  # the deleted project's running pipeline is forgotten too


def test_retention_prunes_events_and_never_recounts_them(state):
    failed = ob(11, "TASK_FAILED", fin=at(1))
    apply(state, [failed], 5)
    summary = apply(state, [], 8 * 24 * 60)
    assert summary.pruned == 1 and state.events == {}
    assert state.floor == at(24 * 60).timestamp()
    assert apply(state, [failed], 8 * 24 * 60 + 5).failures == []
    assert state.projects["github/a"].failures == 1


def test_queued_pipeline_cancelled_without_finish_time_stops_being_tracked(state):
    apply(state, [ob(11, "TASK_CREATED", created=at(1))], 2)
    summary = apply(state, [ob(11, "TASK_CANCELLED", created=at(1))], 5)
    assert state.in_flight == {} and summary.runs == 0
    assert state.projects["github/a"].last_status == "TASK_CANCELLED"


def test_missing_in_flight_pipeline_is_dropped(state):
    apply(state, [ob(11, "TASK_RUNNING", began=at(1))], 2)
    apply(state, [], 5, missing=[11])
    assert state.in_flight == {}


def test_unchanged_poll_leaves_state_clean(state):
    state.dirty = False
    apply(state, [ob(10, "TASK_COMPLETED", fin=at(-60))], 5)
    assert state.dirty is False


@pytest.mark.parametrize("raw", [
    None, {"status": "TASK_FAILED"}, {"id": "7", "status": "TASK_FAILED"},
    {"id": 7, "status": None}, {"id": 7, "status": "TASK_FAILED", "finishedAt": "yesterday"},
])
def test_malformed_pipelines_are_rejected(raw):
    with pytest.raises(MalformedAnswer):
        parse_pipeline(raw)


def test_parse_pipeline_reads_devlake_shape():
    o = parse_pipeline({"id": 7, "blueprintId": None, "status": "TASK_FAILED",
                        "finishedAt": "2025-08-08T14:06:06.123456789+07:00", "beganAt": None})
    assert (o.pipeline_id, o.blueprint_id, o.status) == (7, 0, "TASK_FAILED")
    assert o.finish_key == "7@2025-08-08T07:06:06.123456+00:00"


def test_a_project_missing_from_one_sweep_keeps_its_counters(state):
    """/projects pages by created_at DESC without a tie-break: one sweep can miss a project."""
    apply(state, [ob(11, "TASK_FAILED", fin=at(1), bid=2)], 2)
    summary = apply(state, [], 60, projects=["github/a"])  # github/b missed by this sweep
    assert summary.projects_removed == [] and state.projects["github/b"].failures == 1
    apply(state, [ob(12, "TASK_FAILED", fin=at(61), bid=2)], 62)
    summary = apply(state, [], 120, projects=["github/a", "github/b"])  # back: the count of misses restarts
    assert summary.projects_removed == [] and state.projects["github/b"].failures == 2
    apply(state, [], 180, projects=["github/a"])
    assert "github/b" in state.projects
    summary = apply(state, [], 240, projects=["github/a"])
    assert summary.projects_removed == ["github/b"]


def test_an_interrupted_pipeline_counts_once_at_its_updated_at(state):
    """RESUME_PIPELINES=false: DevLake fails running pipelines at start, finishedAt stays NULL."""
    apply(state, [ob(11, "TASK_RUNNING", began=at(1))], 2)
    raw = {"id": 11, "blueprintId": 1, "status": "TASK_FAILED", "beganAt": at(1).isoformat(),
           "finishedAt": None, "updatedAt": at(30).isoformat()}
    obs = parse_pipeline(raw)
    assert obs.interrupted and obs.finished_at == at(30)
    summary = apply(state, [obs], 35)
    (event,) = summary.failures
    assert event.finished_epoch == at(30).timestamp() and state.unexplained[event.key].interrupted
    assert summary.durations == []  # no real finish: not a duration
    for minute in (40, 45):  # seen again by later polls and the hourly re-scan: never again
        assert apply(state, [parse_pipeline(raw)], minute).failures == []
    assert state.projects["github/a"].failures == 1


def test_an_interrupted_rerun_keeps_its_old_finished_at_and_still_counts(state):
    apply(state, [ob(11, "TASK_FAILED", fin=at(1), began=at(0))], 2)
    apply(state, [ob(11, "TASK_RERUN", fin=at(1), updated=at(3))], 4)  # rerun queued: old finishedAt kept
    summary = apply(state, [ob(11, "TASK_FAILED", fin=at(1), updated=at(20))], 25)
    (event,) = summary.failures
    assert event.finished_epoch == at(20).timestamp() and state.projects["github/a"].failures == 2
    assert apply(state, [ob(11, "TASK_FAILED", fin=at(1), updated=at(20))], 30).failures == []


def test_each_counted_failure_waits_for_its_reason_and_durations_are_reported(state):
    summary = apply(state, [ob(11, "TASK_FAILED", fin=at(10), began=at(4)),
                            ob(12, "TASK_COMPLETED", fin=at(11), began=at(1))], 12)
    assert list(state.unexplained) == [summary.failures[0].key]
    assert sorted(summary.durations) == [("TASK_COMPLETED", 600.0), ("TASK_FAILED", 360.0)]
