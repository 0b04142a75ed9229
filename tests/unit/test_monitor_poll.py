"""poll_once() against a tiny DevLake on requests-mock: which calls, which errors, which metrics."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from structlog.testing import capture_logs

from config import load_settings
from modules.client import build_client
from modules.monitoring.monitor import Monitor

BASE = "http://devlake.test"
from tests.clock import Clock  # noqa: E402


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


class MiniDevLake:
    """Enough of `docs/devlake-api.md` §7-§9 for the monitor: id DESC pages, exact status filter, 404s."""

    def __init__(self, mock, base: str = BASE):
        self.pipelines: dict[int, dict] = {}
        self.projects: dict[str, int] = {}  # name -> blueprint id
        self.next_id = 1
        self.tasks: dict[int, list[dict]] = {}
        mock.get(re.compile(re.escape(base) + r"/pipelines(\?.*)?$"), json=self._list_pipelines)
        mock.get(re.compile(re.escape(base) + r"/pipelines/\d+/tasks$"), json=self._tasks)
        mock.get(re.compile(re.escape(base) + r"/pipelines/\d+$"), json=self._get_pipeline)
        mock.get(re.compile(re.escape(base) + r"/projects(\?.*)?$"), json=self._list_projects)
        mock.get(re.compile(re.escape(base) + r"/blueprints/\d+$"), json=self._get_blueprint)

    def add_project(self, name: str) -> int:
        self.projects[name] = len(self.projects) + 100
        return self.projects[name]

    def add_pipeline(self, blueprint_id: int, status: str, finished_at=None, began_at=None, created_at=None) -> int:
        pid, self.next_id = self.next_id, self.next_id + 1
        self.pipelines[pid] = {"id": pid, "blueprintId": blueprint_id, "status": status,
                               "finishedAt": iso(finished_at), "beganAt": iso(began_at),
                               "createdAt": iso(created_at or began_at or finished_at)}
        return pid

    def set_status(self, pid: int, status: str, finished_at=None) -> None:
        self.pipelines[pid]["status"] = status
        if finished_at is not None:
            self.pipelines[pid]["finishedAt"] = iso(finished_at)

    def _list_pipelines(self, request, context):
        qs = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        rows = sorted(self.pipelines.values(), key=lambda p: -p["id"])
        if "status" in qs:
            rows = [p for p in rows if p["status"] == qs["status"]]
        page, size = int(qs.get("page", 1)), int(qs.get("pageSize", 50))
        return {"count": len(rows), "pipelines": rows[(page - 1) * size: page * size]}

    def _tasks(self, request, context):
        tasks = self.tasks.get(int(request.path.split("/")[2]))
        return {"tasks": tasks, "count": len(tasks or [])}  # null for none (§9.1)

    def _get_pipeline(self, request, context):
        pid = int(request.path.rsplit("/", 1)[1])
        if pid not in self.pipelines:
            context.status_code = 404
            return {"success": False, "message": "pipeline not found"}
        return self.pipelines[pid]

    def _list_projects(self, request, context):
        qs = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        rows = [{"name": n, "blueprint": {"id": b}} for n, b in self.projects.items()]
        page, size = int(qs.get("page", 1)), int(qs.get("pageSize", 50))
        return {"count": len(rows), "projects": rows[(page - 1) * size: page * size]}

    def _get_blueprint(self, request, context):
        bid = int(request.path.rsplit("/", 1)[1])
        for name, b in self.projects.items():
            if b == bid:
                return {"id": bid, "projectName": name}
        context.status_code = 404
        return {"success": False, "message": "blueprint not found"}


def make_monitor(tmp_path, clock, registry=None, **env) -> Monitor:
    settings = load_settings({"DEVLAKE_URL": BASE, "STATE_DIR": str(tmp_path), "DEVLAKE_HTTP_RETRIES": "0",
                              "DEVLAKE_RETRY_BACKOFF_SECONDS": "0", **env})
    return Monitor(build_client(settings), settings, registry or CollectorRegistry(), clock=clock)


def paths(mock) -> list[str]:
    """Each request as 'path?sorted query', for asserting exactly what a poll asked."""
    out = []
    for r in mock.request_history:
        q = "&".join(f"{k}={v[0]}" for k, v in sorted(parse_qs(urlsplit(r.url).query).items()))
        out.append(r.path + (f"?{q}" if q else ""))
    return out


# -- tests ---------------------------------------------------------------------------------------

@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def lake(requests_mock):
    return MiniDevLake(requests_mock)


def value(monitor, name, **labels):
    return monitor.registry.get_sample_value(name, labels)


def test_first_and_steady_state_calls(tmp_path, clock, lake, requests_mock):
    bp = lake.add_project("github/a")
    lake.add_pipeline(bp, "TASK_COMPLETED", finished_at=clock.now - timedelta(hours=2))
    monitor = make_monitor(tmp_path, clock)
    assert monitor.poll_once()
    first = paths(requests_mock)
    assert first[0] == "/projects?page=1&pageSize=100"
    assert "/pipelines?page=1&pageSize=500&status=TASK_FAILED" in first
    assert "/pipelines?page=1&pageSize=500&status=TASK_PARTIAL" in first
    requests_mock.reset_mock()
    clock.advance(minutes=5)
    lake.add_pipeline(bp, "TASK_FAILED", finished_at=clock.now)
    assert monitor.poll_once()
    assert paths(requests_mock) == [
        "/pipelines?page=1&pageSize=500&status=TASK_CREATED",
        "/pipelines?page=1&pageSize=500&status=TASK_RERUN",
        "/pipelines?page=1&pageSize=500&status=TASK_RESUME",
        "/pipelines?page=1&pageSize=500&status=TASK_RUNNING",
        "/pipelines?page=1&pageSize=100",
        "/pipelines/2/tasks",  # the new failure's reason, read once
    ]
    assert value(monitor, "devlake_project_failures_total", project_name="github/a") == 1
    assert value(monitor, "devlake_monitor_last_poll_api_calls") == 6
    requests_mock.reset_mock()
    clock.advance(minutes=5)
    assert monitor.poll_once() and requests_mock.call_count == 5  # never read again


def test_steady_state_cost_does_not_depend_on_project_count(tmp_path, clock, lake, requests_mock):
    blueprints = [lake.add_project(f"github/r{i}") for i in range(1200)]
    monitor = make_monitor(tmp_path, clock)
    monitor.poll_once()
    assert value(monitor, "devlake_projects") == 1200
    assert value(monitor, "devlake_project_failures_total", project_name="github/r777") == 0.0
    requests_mock.reset_mock()
    clock.advance(minutes=5)
    for bp in blueprints[:30]:
        lake.add_pipeline(bp, "TASK_FAILED", finished_at=clock.now)
    monitor.poll_once()
    assert requests_mock.call_count == 5 + 30  # plus one task read per new failure
    assert value(monitor, "devlake_project_failures_total", project_name="github/r29") == 1


def test_project_list_refreshed_hourly_not_every_poll(tmp_path, clock, lake, requests_mock):
    lake.add_project("github/a")
    monitor = make_monitor(tmp_path, clock)
    for _ in range(13):
        monitor.poll_once()
        clock.advance(minutes=5)
    project_calls = [p for p in paths(requests_mock) if p.startswith("/projects")]
    assert len(project_calls) == 2  # first poll, then once 60 minutes later


def test_pipeline_finished_outside_the_new_page_is_read_by_id(tmp_path, clock, lake, requests_mock):
    bp = lake.add_project("github/a")
    for _ in range(150):
        lake.add_pipeline(bp, "TASK_COMPLETED", finished_at=clock.now - timedelta(days=3))
    lake.pipelines[5].update(status="TASK_RUNNING", finishedAt=None, beganAt=iso(clock.now - timedelta(hours=3)))
    monitor = make_monitor(tmp_path, clock)
    monitor.poll_once()
    since = value(monitor, "devlake_project_pipeline_in_flight_since_timestamp_seconds", project_name="github/a")
    assert since == (clock.now - timedelta(hours=3)).timestamp()
    clock.advance(minutes=5)
    lake.add_pipeline(bp, "TASK_COMPLETED", finished_at=clock.now)
    lake.set_status(5, "TASK_FAILED", finished_at=clock.now)
    requests_mock.reset_mock()
    monitor.poll_once()
    assert paths(requests_mock)[-2:] == ["/pipelines/5", "/pipelines/5/tasks"]
    assert value(monitor, "devlake_project_failures_total", project_name="github/a") == 1
    assert value(monitor, "devlake_project_pipeline_in_flight_since_timestamp_seconds",
                 project_name="github/a") is None


def test_unknown_blueprint_resolved_once_and_cached(tmp_path, clock, lake, requests_mock):
    lake.add_project("github/a")
    monitor = make_monitor(tmp_path, clock)
    monitor.poll_once()
    bp = lake.add_project("github/new")  # created after the project list was read
    for _ in range(2):
        clock.advance(minutes=5)
        lake.add_pipeline(bp, "TASK_FAILED", finished_at=clock.now)
        monitor.poll_once()
    assert paths(requests_mock).count(f"/blueprints/{bp}") == 1
    assert value(monitor, "devlake_project_failures_total", project_name="github/new") == 2


@pytest.mark.parametrize("status, body, reason", [
    (503, {"message": "down"}, "unreachable"),
    (401, {"message": "token is missing"}, "auth"),
    (500, {"message": "boom"}, "http_error"),
    (200, "<html>not json</html>", "malformed"),
    (200, {"count": 1, "pipelines": [{"id": "x", "status": 1}]}, "malformed"),
])
def test_poll_errors_are_counted_by_reason(tmp_path, clock, requests_mock, status, body, reason):
    kwargs = {"text": body} if isinstance(body, str) else {"json": body}
    requests_mock.get(re.compile(re.escape(BASE) + "/.*"), status_code=status, **kwargs)
    monitor = make_monitor(tmp_path, clock)
    with capture_logs() as logs:
        assert monitor.poll_once() is False
    assert value(monitor, "devlake_up") == 0
    assert value(monitor, "devlake_monitor_poll_errors_total", reason=reason) == 1
    others = [r for r in ("unreachable", "auth", "http_error", "malformed", "internal") if r != reason]
    assert all(value(monitor, "devlake_monitor_poll_errors_total", reason=r) == 0 for r in others)
    assert [(e["event"], e["reason"]) for e in logs if e["event"] == "poll_failed"] == [("poll_failed", reason)]
    assert not (tmp_path / "monitor_state.json").exists()  # nothing half-applied


def test_internal_error_is_survived(tmp_path, clock, lake, monkeypatch):
    monitor = make_monitor(tmp_path, clock)
    monkeypatch.setattr(monitor.fetcher, "fetch", lambda **_: 1 / 0)
    assert monitor.poll_once() is False
    assert value(monitor, "devlake_monitor_poll_errors_total", reason="internal") == 1


def test_health_follows_the_last_successful_poll(tmp_path, clock, lake, requests_mock):
    monitor = make_monitor(tmp_path, clock, POLL_INTERVAL_SECONDS="60")
    assert monitor.health()[0] == 503
    monitor.poll_once()
    status, body = monitor.health()
    assert status == 200 and body["status"] == "ok"
    requests_mock.get(re.compile(re.escape(BASE) + "/.*"), status_code=503)
    clock.advance(minutes=2)
    monitor.poll_once()
    assert monitor.health()[0] == 200  # one failed poll is not yet stale (2 x interval + 60 s)
    clock.advance(minutes=2)
    status, body = monitor.health()
    assert status == 503 and body["last_error"] == "unreachable" and "ago" in body["reason"]


def test_exposition_is_rendered_once_per_poll(tmp_path, clock, lake):
    monitor = make_monitor(tmp_path, clock)
    monitor.poll_once()
    first = monitor.exposition()
    assert monitor.exposition() is first
    monitor.poll_once()
    assert monitor.exposition() is not first


def test_a_pushed_failure_and_its_reason_show_in_the_next_exposition(tmp_path, clock, lake):
    """Nothing outside the monitor invalidates its cached exposition: counting a push does."""
    bp = lake.add_project("github/a")
    monitor = make_monitor(tmp_path, clock)
    monitor.poll_once()
    assert b'devlake_project_failures_total{project_name="github/a"} 0.0' in monitor.exposition()
    clock.advance(minutes=1)
    pid = lake.add_pipeline(bp, "TASK_FAILED", finished_at=clock.now)
    lake.tasks[pid] = [{"id": 1, "plugin": "github", "status": "TASK_FAILED", "message": "boom"}]
    assert len(monitor.count_pushed([monitor.read_pipeline(monitor.client, pid)]) or []) == 1
    assert b'devlake_project_failures_total{project_name="github/a"} 1.0' in monitor.exposition()
    assert b'devlake_pipeline_failures_by_reason_total{plugin="github"' not in monitor.exposition()
    assert monitor.explain(monitor.client) == 1
    assert b'devlake_pipeline_failures_by_reason_total{plugin="github"' in monitor.exposition()


def test_a_crash_of_the_connection_thread_shows_in_the_next_exposition(tmp_path, clock, lake):
    monitor = make_monitor(tmp_path, clock)
    assert b'devlake_monitor_poll_errors_total{reason="internal"} 0.0' in monitor.exposition()
    monitor.connections.on_crash()  # what its thread calls after logging the crash
    assert b'devlake_monitor_poll_errors_total{reason="internal"} 1.0' in monitor.exposition()


def test_state_is_saved_only_when_something_changed(tmp_path, clock, lake):
    bp = lake.add_project("github/a")
    monitor = make_monitor(tmp_path, clock)
    monitor.poll_once()
    path = tmp_path / "monitor_state.json"
    before = path.stat().st_mtime_ns
    clock.advance(minutes=5)
    path.touch()
    touched = path.stat().st_mtime_ns
    monitor.poll_once()
    assert path.stat().st_mtime_ns == touched  # nothing new: no write
    lake.add_pipeline(bp, "TASK_FAILED", finished_at=clock.now)
    monitor.poll_once()
    saved = json.loads(path.read_text())
    assert [dict(zip(saved["event_fields"], row, strict=True))["project"] for row in saved["events"]] == ["github/a"]
    assert before <= path.stat().st_mtime_ns


GITHUB_401 = ("Retry exceeded 3 times calling repos/acme/api/pulls. The last error was: Http DoAsync error "
              "calling [GET https://api.github.com/repos/acme/api/pulls?access_token=ghp_abcdefgh12345678]. "
              "Response: {\"message\":\"Bad credentials\",\"documentation_url\":\"https://docs.github.com/rest\"}"
              " (401)")


def test_a_new_failure_is_explained_by_its_failed_task(tmp_path, clock, lake, requests_mock):
    bp = lake.add_project("github/a")
    monitor = make_monitor(tmp_path, clock)
    monitor.poll_once()
    clock.advance(minutes=5)
    pid = lake.add_pipeline(bp, "TASK_FAILED", finished_at=clock.now)
    lake.tasks[pid] = [
        {"id": 2, "plugin": "gitextractor", "status": "TASK_COMPLETED", "message": "", "failedSubTask": "",
         "pipelineRow": 2, "pipelineCol": 1},
        {"id": 1, "plugin": "github", "status": "TASK_FAILED", "message": GITHUB_401,
         "failedSubTask": "collectApiPullRequests", "pipelineRow": 1, "pipelineCol": 1}]
    with capture_logs() as logs:
        assert monitor.poll_once()
    assert value(monitor, "devlake_pipeline_failures_by_reason_total", plugin="github", reason="unauthorized") == 1
    assert value(monitor, "devlake_project_last_failure_info", project_name="github/a", plugin="github",
                 connection_id="unknown", reason="unauthorized", failed_subtask="collectApiPullRequests") == 1
    stats = monitor.state.projects["github/a"]
    assert (stats.last_reason, stats.last_plugin, stats.last_failed_subtask) == (
        "unauthorized", "github", "collectApiPullRequests")
    (line,) = [e for e in logs if e["event"] == "pipeline_failed"]
    assert (line["project"], line["pipeline_id"], line["reason"]) == ("github/a", pid, "unauthorized")
    assert "ghp_abcdefgh12345678" not in line["message"] and "Bad credentials" in line["message"]
    assert len(line["message"]) <= 500


def test_unreadable_tasks_count_as_other_after_three_tries_and_are_not_read_again(tmp_path, clock, lake,
                                                                                 requests_mock):
    bp = lake.add_project("github/a")
    monitor = make_monitor(tmp_path, clock)
    monitor.poll_once()
    clock.advance(minutes=5)
    pid = lake.add_pipeline(bp, "TASK_FAILED", finished_at=clock.now)
    requests_mock.get(f"{BASE}/pipelines/{pid}/tasks", status_code=500, json={"message": "db gone"})
    for _ in range(3):
        assert monitor.poll_once()  # the poll itself succeeds: the count is not held back
        assert value(monitor, "devlake_project_failures_total", project_name="github/a") == 1
        clock.advance(minutes=5)
    assert value(monitor, "devlake_pipeline_failures_by_reason_total", plugin="unknown", reason="other") == 1
    assert monitor.state.unexplained == {}
    requests_mock.reset_mock()
    assert monitor.poll_once() and requests_mock.call_count == 5


def test_config_ui_url_is_exposed_for_the_dashboards_links_only_when_set(tmp_path, clock):
    with_ui = make_monitor(tmp_path, clock, DEVLAKE_UI_URL="http://config-ui.example:4000/")
    assert value(with_ui, "devlake_monitor_config_ui_info", url="http://config-ui.example:4000") == 1
    without = make_monitor(tmp_path, clock)
    assert "devlake_monitor_config_ui_info" not in generate_latest(without.registry).decode()
