"""The state-backed metric families and the automation-health file, on a fresh registry per test."""
import json
import threading
from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from modules.monitoring.metrics import SelfMetrics, StateCollector, read_automation
from modules.monitoring.state import ALL_STATUSES, NO_PROJECT, FailureEvent, InFlight, MonitorState, ProjectStats


def collect(state, automation=None, due_after=0.0):
    registry = CollectorRegistry()
    registry.register(StateCollector(SimpleNamespace(lock=threading.RLock(), state=state, automation=automation),
                                     due_after=due_after))
    return registry


def event(pid, project, time_failed, epoch=1754636766.0):
    return FailureEvent(pid, f"t{pid}", epoch, project, time_failed)


def test_the_users_metric_exactly():
    state = MonitorState()
    state.projects["github/my-repo"] = ProjectStats(failures=1, runs=1)
    e = event(7, "github/my-repo", "2025-08-08 14:06:06")
    state.events[e.key] = e
    text = generate_latest(collect(state)).decode()
    assert ("# HELP devlake_blueprint_failure_total Count of failed blueprint executions\n"
            "# TYPE devlake_blueprint_failure_total counter\n"
            'devlake_blueprint_failure_total{project_name="github/my-repo",time_failed="2025-08-08 14:06:06"} 1.0\n'
            ) in text


def test_same_second_failures_share_a_series_and_deleted_projects_are_hidden():
    state = MonitorState()
    state.projects["a"] = ProjectStats()
    for e in (event(1, "a", "2025-08-08 14:06:06"), event(2, "a", "2025-08-08 14:06:06"),
              event(3, "gone", "2025-08-08 14:06:06")):
        state.events[e.key] = e
    registry = collect(state)
    assert registry.get_sample_value("devlake_blueprint_failure_total",
                                     {"project_name": "a", "time_failed": "2025-08-08 14:06:06"}) == 2.0
    assert registry.get_sample_value("devlake_blueprint_failure_total",
                                     {"project_name": "gone", "time_failed": "2025-08-08 14:06:06"}) is None
    assert registry.get_sample_value("devlake_monitor_failure_series") == 1


def test_every_known_project_starts_at_zero():
    state = MonitorState()
    state.projects["quiet"] = ProjectStats()
    registry = collect(state)
    for name in ("devlake_project_failures_total", "devlake_project_runs_total", "devlake_project_consecutive_failures"):
        assert registry.get_sample_value(name, {"project_name": "quiet"}) == 0.0
        assert registry.get_sample_value(name, {"project_name": NO_PROJECT}) == 0.0
    assert registry.get_sample_value("devlake_projects") == 1
    # no failure, success or in-flight pipeline yet: those gauges are absent, not 0
    assert registry.get_sample_value("devlake_project_last_failure_timestamp_seconds", {"project_name": "quiet"}) is None
    assert registry.get_sample_value("devlake_project_last_pipeline_status",
                                     {"project_name": "quiet", "status": "TASK_FAILED"}) is None


def test_last_status_is_one_info_series_and_in_flight_since_is_the_oldest():
    state = MonitorState()
    state.projects["a"] = ProjectStats(last_status="TASK_RUNNING", last_success=100.0, last_failure=50.0)
    state.in_flight[5] = InFlight("a", 300.0, "TASK_RUNNING")
    state.in_flight[6] = InFlight("a", 200.0, "TASK_CREATED")
    registry = collect(state)
    values = {s: registry.get_sample_value("devlake_project_last_pipeline_status", {"project_name": "a", "status": s})
              for s in ALL_STATUSES}
    assert values.pop("TASK_RUNNING") == 1.0 and set(values.values()) == {None} and len(values) == 7
    assert registry.get_sample_value("devlake_project_pipeline_in_flight_since_timestamp_seconds",
                                     {"project_name": "a"}) == 200.0
    assert registry.get_sample_value("devlake_project_last_success_timestamp_seconds", {"project_name": "a"}) == 100.0


def test_exposition_parses_with_prometheus_parser():
    state = MonitorState()
    state.projects['quote"and\\slash'] = ProjectStats(failures=2, runs=3)
    registry = collect(state)
    SelfMetrics(registry)
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert families["devlake_project_failures"].type == "counter"
    assert {s.labels["project_name"] for s in families["devlake_project_failures"].samples} == {
        'quote"and\\slash', NO_PROJECT}
    reasons = {s.labels["reason"]: s.value for s in families["devlake_monitor_poll_errors"].samples
               if s.name.endswith("_total")}
    assert reasons == dict.fromkeys(["unreachable", "auth", "http_error", "malformed", "internal"], 0.0)
    assert families["devlake_monitor_poll_duration_seconds"].type == "histogram"


def test_automation_health_from_the_daemons_file(tmp_path):
    path = tmp_path / "automation_last_run.json"
    assert read_automation(path) is None
    path.write_text(json.dumps({"finished_at_epoch": 2000.5, "last_success_epoch": 1000.0, "outcome": "partial",
                                "exit_code": 1, "created": 3, "unchanged": 40, "failed": 2,
                                "duration_seconds": 12.5}))
    registry = collect(MonitorState(), read_automation(path))
    assert registry.get_sample_value("devlake_automation_last_run_timestamp_seconds") == 2000.5
    assert registry.get_sample_value("devlake_automation_last_success_timestamp_seconds") == 1000.0
    assert registry.get_sample_value("devlake_automation_last_run_success") == 0.0
    assert registry.get_sample_value("devlake_automation_last_run_items", {"outcome": "failed"}) == 2


def test_unreadable_automation_file_is_reported_and_left_alone(tmp_path):
    path = tmp_path / "automation_last_run.json"
    for text in ("{torn", json.dumps({"finished_at_epoch": "yesterday", "outcome": "success"})):
        path.write_text(text)
        with capture_logs() as logs:
            assert read_automation(path) is None
        assert logs[0]["event"] == "automation_state_unreadable" and logs[0]["log_level"] == "warning"
        assert path.read_text() == text  # not ours: never moved aside
    registry = collect(MonitorState(), None)
    assert registry.get_sample_value("devlake_automation_last_run_timestamp_seconds") is None


def test_reasons_by_plugin_and_the_newest_reason_per_project():
    state = MonitorState()
    state.projects["github/a"] = ProjectStats(failures=2, consecutive_failures=2, last_reason="unauthorized",
                                              last_plugin="github", last_failed_subtask="collectApiIssues",
                                              last_connection_id="3")
    state.projects["github/b"] = ProjectStats()
    state.reason_counts = {("github", "unauthorized"): 2.0, ("gitextractor", "network"): 1.0}
    registry = collect(state)
    assert registry.get_sample_value("devlake_pipeline_failures_by_reason_total",
                                     {"plugin": "github", "reason": "unauthorized"}) == 2.0
    assert registry.get_sample_value("devlake_project_last_failure_info", {
        "project_name": "github/a", "plugin": "github", "connection_id": "3", "reason": "unauthorized",
        "failed_subtask": "collectApiIssues"}) == 1.0
    text = generate_latest(registry).decode()
    assert 'devlake_project_last_failure_info{project_name="github/b"' not in text  # never failed: no series


def test_the_failure_info_is_dropped_once_the_newest_pipeline_succeeded():
    state = MonitorState()
    state.projects["github/a"] = ProjectStats(failures=2, runs=3, consecutive_failures=0, last_reason="unauthorized",
                                              last_plugin="github", last_status="TASK_COMPLETED")
    text = generate_latest(collect(state)).decode()
    assert 'devlake_project_last_failure_info{project_name="github/a"' not in text


def test_a_never_collected_scheduled_project_exports_when_its_first_collection_is_due():
    state = MonitorState()
    state.projects["github/new"] = ProjectStats(first_run=1000.0)
    state.projects["github/old"] = ProjectStats(runs=1, last_success=500.0, first_run=1000.0)
    registry = collect(state, due_after=600.0)
    assert registry.get_sample_value("devlake_project_first_collection_due_timestamp_seconds",
                                     {"project_name": "github/new"}) == 1600.0
    assert registry.get_sample_value("devlake_project_first_collection_due_timestamp_seconds",
                                     {"project_name": "github/old"}) is None


def test_at_most_eight_series_per_project_at_steady_state():
    """Issue 10's budget: 5,000 projects must stay scrapeable."""
    state = MonitorState()
    for i in range(50):
        name = f"github/r{i}"
        state.projects[name] = ProjectStats(failures=3, runs=9, last_failure=10.0, last_success=20.0,
                                            last_status="TASK_RUNNING", consecutive_failures=1, last_finish=20.0,
                                            last_reason="rate_limited", last_plugin="github",
                                            last_failed_subtask="collectApiPullRequests", first_run=1.0)
        state.in_flight[i] = InFlight(name, 5.0, "TASK_RUNNING")
    per_project: dict[str, int] = {}
    for family in text_string_to_metric_families(generate_latest(collect(state)).decode()):
        for sample in family.samples:
            if "project_name" in sample.labels and family.name != "devlake_blueprint_failure":
                per_project[sample.labels["project_name"]] = per_project.get(sample.labels["project_name"], 0) + 1
    assert max(per_project.values()) == 8
