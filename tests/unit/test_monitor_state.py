"""monitor_state.json: round trip, and survival of a corrupt file."""
import json

import pytest
from structlog.testing import capture_logs

from modules.monitoring.state import NO_PROJECT, FailureEvent, InFlight, MonitorState, ProjectStats, Unexplained


def sample_state() -> MonitorState:
    s = MonitorState(watermark=42, floor=1000.0)
    e = FailureEvent(41, "2025-08-08T07:06:06+00:00", 1754636766.0, "github/a", "2025-08-08 14:06:06")
    s.events[e.key] = e
    s.projects["github/a"] = ProjectStats(failures=3, runs=9, last_failure=1754636766.0, last_status="TASK_FAILED",
                                          last_pipeline_id=41, consecutive_failures=2, last_finish=1754636766.0)
    s.in_flight[42] = InFlight("github/a", 1754636000.0, "TASK_RUNNING", None)
    return s


def test_round_trip_through_the_file(tmp_path):
    path = tmp_path / "monitor_state.json"
    original = sample_state()
    original.dirty = True
    original.save(path)
    assert original.dirty is False
    restored = MonitorState.load(path)
    assert restored.to_dict() == original.to_dict()
    assert json.loads(path.read_text())["version"] == 2
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temp file


def test_missing_file_is_a_first_start(tmp_path):
    s = MonitorState.load(tmp_path / "monitor_state.json")
    assert s.watermark is None and s.floor is None and set(s.projects) == {NO_PROJECT}


def test_torn_file_is_moved_aside_with_a_warning(tmp_path):
    path = tmp_path / "monitor_state.json"
    path.write_text('{"version": 1, "waterm')
    with capture_logs() as logs:
        s = MonitorState.load(path)
    assert s.watermark is None
    assert not path.exists() and len(list(tmp_path.glob("monitor_state.json.corrupt-*"))) == 1
    assert [entry["event"] for entry in logs] == ["state_file_corrupt"]
    assert logs[0]["log_level"] == "warning"


def test_wrong_shape_is_moved_aside_too(tmp_path):
    path = tmp_path / "monitor_state.json"
    path.write_text(json.dumps({"version": 1, "watermark": "x", "floor_epoch": None,
                                "events": [], "projects": {}, "in_flight": {}}))
    with capture_logs() as logs:
        s = MonitorState.load(path)
    assert s.watermark is None and logs[0]["event"] == "state_file_corrupt"
    assert len(list(tmp_path.glob("monitor_state.json.corrupt-*"))) == 1


def test_prune_raises_the_floor_and_drops_old_events():
    s = sample_state()
    assert s.prune(1754636766.0) == 0  # an event exactly at the cutoff is kept
    assert s.prune(1754636767.0) == 1 and s.events == {}
    assert s.floor == 1754636767.0 and s.dirty


def test_reasons_and_unexplained_failures_survive_a_restart(tmp_path):
    path = tmp_path / "monitor_state.json"
    original = sample_state()
    original.projects["github/a"].last_reason = "unauthorized"
    original.projects["github/a"].last_plugin = "github"
    original.projects["github/a"].last_failed_subtask = "collectApiIssues"
    original.unexplained["43@x"] = Unexplained(43, "github/a", 1754636800.0, interrupted=True, attempts=1)
    original.reason_counts[("github", "unauthorized")] = 2.0
    original.save(path)
    restored = MonitorState.load(path)
    assert restored.to_dict() == original.to_dict()
    assert restored.projects["github/a"].last_reason == "unauthorized"
    assert restored.unexplained["43@x"].interrupted and restored.reason_counts == {("github", "unauthorized"): 2.0}


def test_a_version_1_file_loads_with_the_new_fields_at_their_defaults(tmp_path):
    """What the monitor wrote before failure reasons existed: no reason fields, no unexplained."""
    v1_fields = ["failures", "runs", "last_failure", "last_success", "last_status", "last_pipeline_id",
                 "consecutive_failures", "last_finish"]
    data = sample_state().to_dict()
    data["version"] = 1
    data["project_fields"] = v1_fields
    data["projects"] = {name: row[:len(v1_fields)] for name, row in data["projects"].items()}
    del data["unexplained_fields"], data["unexplained"], data["reason_counts"]
    path = tmp_path / "monitor_state.json"
    path.write_text(json.dumps(data))
    restored = MonitorState.load(path)
    stats = restored.projects["github/a"]
    assert (stats.failures, stats.consecutive_failures, stats.last_reason) == (3, 2, None)
    assert restored.watermark == 42 and len(restored.events) == 1 and restored.unexplained == {}


def _saved_state_with(tmp_path, **changes):
    """A real saved state file, then one value replaced by `changes` (a dotted path -> raw JSON text)."""
    state = MonitorState(watermark=5, floor=1000.0)
    state.projects["p"] = ProjectStats(failures=1, runs=2)
    state.in_flight[7] = InFlight("p", 1000.0, "TASK_RUNNING")
    path = tmp_path / "monitor_state.json"
    state.save(path)
    text = path.read_text()
    for old, new in changes.items():
        assert old in text
        text = text.replace(old, new, 1)
    path.write_text(text)
    return path


@pytest.mark.parametrize("old, new", [
    ('[1,2,', '["abc",2,'),  # "failures": "abc" (issue 21)
    ('"floor_epoch":1000.0', '"floor_epoch":NaN'),
    ('"floor_epoch":1000.0', '"floor_epoch":"nan"'),
    ('"floor_epoch":1000.0', '"floor_epoch":Infinity'),
    ('"watermark":5', '"watermark":true'),
    ('"watermark":5', '"watermark":-3'),
    ('["p",1000.0,"TASK_RUNNING"', '[["p"],1000.0,"TASK_RUNNING"'),
    ('["p",1000.0,"TASK_RUNNING"', '["p",1000.0,7'),
])
def test_a_wrong_typed_state_file_is_moved_aside(tmp_path, old, new):
    path = _saved_state_with(tmp_path, **{old: new})
    with capture_logs() as logs:
        state = MonitorState.load(path)
    assert state.watermark is None and state.floor is None  # fresh
    assert [e["event"] for e in logs] == ["state_file_corrupt"] and logs[0]["log_level"] == "warning"
    assert not path.exists() and len(list(tmp_path.glob("monitor_state.json.corrupt-*"))) == 1


def test_an_absurdly_nested_state_file_is_moved_aside(tmp_path):
    path = tmp_path / "monitor_state.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with capture_logs() as logs:
        state = MonitorState.load(path)
    assert state.watermark is None and logs[0]["event"] == "state_file_corrupt"
    assert len(list(tmp_path.glob("monitor_state.json.corrupt-*"))) == 1
