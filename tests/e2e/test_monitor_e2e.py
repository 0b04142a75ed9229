"""End-to-end: the monitor against the in-process fake DevLake over real HTTP, /metrics over real HTTP."""
from __future__ import annotations

import gzip
from datetime import timedelta

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

FAILURE = "devlake_blueprint_failure_total"
NO_PROJECT = "(no project)"


def scrape(url: str) -> dict[tuple, float]:
    """GET /metrics and parse it with prometheus_client's parser: {(sample name, labels...): value}."""
    response = requests.get(f"{url}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    out = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            out[(s.name, *sorted(s.labels.items()))] = s.value
    return out


def failures(samples: dict) -> dict[tuple[str, str], float]:
    """The user's series as {(project_name, time_failed): value}."""
    return {(dict(k[1:])["project_name"], dict(k[1:])["time_failed"]): v for k, v in samples.items() if k[0] == FAILURE}


def get(samples, name, **labels):
    return samples.get((name, *sorted(labels.items())))


@pytest.fixture
def world(monitor_fake, monitor_clock):
    """Two projects with some history; returns their blueprint ids."""
    a = monitor_fake.add_project("github/my-repo")
    b = monitor_fake.add_project("gitlab/other")
    monitor_fake.add_pipeline(a, "TASK_COMPLETED", finished_at=monitor_clock.now - timedelta(days=3))
    monitor_fake.add_pipeline(b, "TASK_FAILED", finished_at=monitor_clock.now - timedelta(days=2))  # before lookback
    return {"a": a, "b": b}


def fail_now(fake, clock, bp, minutes=5, status="TASK_FAILED") -> int:
    clock.advance(minutes=minutes)
    return fake.add_pipeline(bp, status, finished_at=clock.now - timedelta(seconds=30))


def test_new_failure_appears_after_one_poll_with_the_users_labels(monitor_fake, monitor_clock, world,
                                                                  monitor_factory, monitor_server):
    monitor = monitor_factory()
    url = monitor_server(monitor)
    assert monitor.poll_once()
    samples = scrape(url)
    assert failures(samples) == {}  # the 2-day-old failure is outside MONITOR_LOOKBACK_HOURS
    assert get(samples, "devlake_project_failures_total", project_name="gitlab/other") == 0.0
    assert get(samples, "devlake_projects") == 2 and get(samples, "devlake_up") == 1.0
    with capture_logs() as logs:
        monitor_clock.advance(minutes=5)
        monitor_fake.add_pipeline(world["a"], "TASK_FAILED", finished_at=monitor_clock.now.replace(second=6))
        assert monitor.poll_once()
    samples = scrape(url)
    assert failures(samples) == {("github/my-repo", "2025-08-08 14:05:06"): 1.0}
    assert get(samples, "devlake_project_failures_total", project_name="github/my-repo") == 1.0
    assert get(samples, "devlake_project_runs_total", project_name="github/my-repo") == 1.0
    assert get(samples, "devlake_project_consecutive_failures", project_name="github/my-repo") == 1.0
    assert get(samples, "devlake_project_last_pipeline_status", project_name="github/my-repo",
               status="TASK_FAILED") == 1.0
    assert get(samples, "devlake_project_last_failure_timestamp_seconds", project_name="github/my-repo") == \
        monitor_clock.now.replace(second=6).timestamp()
    counted = [e for e in logs if e["event"] == "failure_counted"]
    assert [(e["project"], e["pipeline_id"]) for e in counted] == [("github/my-repo", 3)]
    assert any(e["event"] == "poll_completed" and e["calls"] <= 6 for e in logs)


def test_completed_and_cancelled_pipelines_never_count(monitor_fake, monitor_clock, world, monitor_factory):
    monitor = monitor_factory()
    monitor.poll_once()
    queued = monitor_fake.add_pipeline(world["a"], "TASK_CREATED", created_at=monitor_clock.now)
    running = monitor_fake.add_pipeline(world["a"], "TASK_RUNNING", began_at=monitor_clock.now)
    monitor.poll_once()
    requests.delete(f"{monitor_fake.url}/pipelines/{queued}", timeout=5).raise_for_status()  # cancel (§9.1)
    monitor_clock.advance(minutes=5)
    monitor_fake.set_pipeline_status(running, "TASK_COMPLETED", finished_at=monitor_clock.now)
    fail_now(monitor_fake, monitor_clock, world["a"], status="TASK_CANCELLED")
    monitor.poll_once()
    reg = monitor.registry
    assert reg.get_sample_value("devlake_project_failures_total", {"project_name": "github/my-repo"}) == 0
    assert reg.get_sample_value("devlake_project_runs_total", {"project_name": "github/my-repo"}) == 2
    assert reg.get_sample_value("devlake_project_last_success_timestamp_seconds",
                                {"project_name": "github/my-repo"}) == (monitor_clock.now - timedelta(minutes=5)).timestamp()
    assert failures(scrape_registry(monitor)) == {}
    assert monitor.state.in_flight == {}


def scrape_registry(monitor) -> dict:
    out = {}
    for family in text_string_to_metric_families(monitor.exposition().decode()):
        for s in family.samples:
            out[(s.name, *sorted(s.labels.items()))] = s.value
    return out


def test_counted_once_across_polls_and_restarts(monitor_fake, monitor_clock, world, monitor_factory, monitor_server):
    first = monitor_factory()
    first.poll_once()
    fail_now(monitor_fake, monitor_clock, world["b"])
    first.poll_once()
    for _ in range(3):
        monitor_clock.advance(minutes=5)
        first.poll_once()
    expected = failures(scrape_registry(first))
    assert list(expected.values()) == [1.0]
    # restart: a new monitor object on the same STATE_DIR re-exposes the series at the same value
    second = monitor_factory()
    url = monitor_server(second)
    before_poll = scrape(url)
    assert failures(before_poll) == expected
    assert get(before_poll, "devlake_project_failures_total", project_name="gitlab/other") == 1.0
    monitor_clock.advance(hours=2)  # past the hourly re-scan: the failed-pipeline list is read again
    assert second.poll_once()
    after = scrape(url)
    assert failures(after) == expected
    assert get(after, "devlake_project_failures_total", project_name="gitlab/other") == 1.0
    assert get(after, "devlake_project_runs_total", project_name="gitlab/other") == 1.0


def test_a_rerun_that_fails_again_counts_again(monitor_fake, monitor_clock, world, monitor_factory):
    monitor = monitor_factory()
    monitor.poll_once()
    pid = fail_now(monitor_fake, monitor_clock, world["a"])
    monitor.poll_once()
    requests.post(f"{monitor_fake.url}/pipelines/{pid}/rerun", timeout=5).raise_for_status()
    monitor_clock.advance(minutes=5)
    monitor.poll_once()  # sees TASK_RERUN (with the old finishedAt): in flight, nothing counted
    assert monitor.registry.get_sample_value("devlake_project_last_pipeline_status",
                                             {"project_name": "github/my-repo", "status": "TASK_RERUN"}) == 1
    monitor_clock.advance(minutes=5)
    monitor_fake.run_pending(lambda p: "TASK_FAILED")
    monitor.poll_once()
    series = failures(scrape_registry(monitor))
    assert sorted(series) == [("github/my-repo", "2025-08-08 14:04:30"), ("github/my-repo", "2025-08-08 14:15:00")]
    assert monitor.registry.get_sample_value("devlake_project_failures_total",
                                             {"project_name": "github/my-repo"}) == 2
    assert monitor.registry.get_sample_value("devlake_project_consecutive_failures",
                                             {"project_name": "github/my-repo"}) == 2


def test_rerun_that_fails_between_two_polls_is_found_by_the_hourly_rescan(monitor_fake, monitor_clock, world,
                                                                          monitor_factory):
    monitor = monitor_factory()
    monitor.poll_once()
    pid = fail_now(monitor_fake, monitor_clock, world["a"])
    monitor.poll_once()
    requests.post(f"{monitor_fake.url}/pipelines/{pid}/rerun", timeout=5).raise_for_status()
    monitor_clock.advance(minutes=1)
    monitor_fake.run_pending(lambda p: "TASK_FAILED")
    for _ in range(12):  # an hour of polls; the project-list refresh also reports it as lastPipeline
        monitor_clock.advance(minutes=5)
        monitor.poll_once()
    assert monitor.registry.get_sample_value("devlake_project_failures_total",
                                             {"project_name": "github/my-repo"}) == 2
    assert len(failures(scrape_registry(monitor))) == 2


def test_outage_then_recovery_loses_nothing(monitor_fake, monitor_clock, world, monitor_factory, monitor_server):
    monitor = monitor_factory()
    url = monitor_server(monitor)
    monitor.poll_once()
    fail_now(monitor_fake, monitor_clock, world["a"])
    monitor.poll_once()
    monitor_fake.inject("*", ".*", status=503, times=-1)
    fail_now(monitor_fake, monitor_clock, world["b"])  # fails while DevLake cannot be read
    for _ in range(3):
        monitor_clock.advance(minutes=5)
        assert monitor.poll_once() is False
    during = scrape(url)
    assert get(during, "devlake_up") == 0.0
    assert get(during, "devlake_monitor_poll_errors_total", reason="unreachable") == 3.0
    assert list(failures(during)) == [("github/my-repo", "2025-08-08 14:04:30")]  # retained series stay
    health = requests.get(f"{url}/healthz", timeout=5)  # 20 min without a good poll > 2 x 300 s + 60 s
    assert health.status_code == 503 and health.json()["last_error"] == "unreachable"
    monitor_fake.clear_faults()
    monitor_clock.advance(minutes=5)
    assert monitor.poll_once()
    after = scrape(url)
    assert get(after, "devlake_up") == 1.0
    assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
    assert get(after, "devlake_project_failures_total", project_name="gitlab/other") == 1.0
    assert len(failures(after)) == 2
    monitor.poll_once()
    assert len(failures(scrape(url))) == 2


@pytest.mark.parametrize("fault, reason", [
    ({"status": 200, "body": "<html>proxy error page</html>"}, "malformed"),
    ({"status": 200, "body": {"count": 1, "pipelines": [{"id": "seven"}]}}, "malformed"),
    ({"status": 403, "body": {"success": False, "message": "api key is invalid"}}, "auth"),
    ({"status": 500, "body": b""}, "http_error"),
    ({"status": None, "delay": 0.6}, "unreachable"),  # slower than DEVLAKE_TIMEOUT_SECONDS
])
def test_garbage_slow_or_refusing_devlake_is_survived(monitor_fake, monitor_clock, world, monitor_factory,
                                                      fault, reason):
    monitor = monitor_factory(DEVLAKE_TIMEOUT_SECONDS="0.3", DEVLAKE_HTTP_RETRIES="0")
    monitor.poll_once()
    monitor_fake.inject("GET", "^/pipelines$", times=1, **fault)
    fail_now(monitor_fake, monitor_clock, world["a"])
    assert monitor.poll_once() is False
    assert monitor.registry.get_sample_value("devlake_monitor_poll_errors_total", {"reason": reason}) == 1
    assert monitor.registry.get_sample_value("devlake_up") == 0
    monitor_clock.advance(minutes=5)
    assert monitor.poll_once()
    assert monitor.registry.get_sample_value("devlake_project_failures_total", {"project_name": "github/my-repo"}) == 1


def test_corrupt_state_file_is_survived(monitor_fake, monitor_clock, world, monitor_factory, monitor_env):
    from pathlib import Path
    state_dir = Path(monitor_env["STATE_DIR"])
    state_dir.mkdir(parents=True)
    (state_dir / "monitor_state.json").write_bytes(b"\x00\x17{not json")
    with capture_logs() as logs:
        monitor = monitor_factory()
        assert monitor.poll_once()
    assert any(e["event"] == "state_file_corrupt" and e["log_level"] == "warning" for e in logs)
    assert len(list(state_dir.glob("monitor_state.json.corrupt-*"))) == 1
    fail_now(monitor_fake, monitor_clock, world["a"])
    assert monitor.poll_once()
    assert '"github/my-repo"' in (state_dir / "monitor_state.json").read_text()


def test_old_failure_series_are_pruned_after_retention(monitor_fake, monitor_clock, world, monitor_factory):
    monitor = monitor_factory(FAILURE_SERIES_RETENTION_DAYS="2")
    monitor.poll_once()
    fail_now(monitor_fake, monitor_clock, world["a"])
    monitor.poll_once()
    assert len(failures(scrape_registry(monitor))) == 1
    monitor_clock.advance(days=1, hours=23)
    monitor.poll_once()
    assert len(failures(scrape_registry(monitor))) == 1
    monitor_clock.advance(hours=2)
    monitor.poll_once()
    samples = scrape_registry(monitor)
    assert failures(samples) == {}
    assert get(samples, "devlake_project_failures_total", project_name="github/my-repo") == 1.0  # counters stay
    monitor_clock.advance(hours=1)
    monitor.poll_once()  # the hourly re-scan sees the old failure again: never re-counted
    assert get(scrape_registry(monitor), "devlake_project_failures_total", project_name="github/my-repo") == 1.0


def test_deleted_project_series_are_removed(monitor_fake, monitor_clock, world, monitor_factory):
    monitor = monitor_factory()
    monitor.poll_once()
    fail_now(monitor_fake, monitor_clock, world["b"])
    monitor.poll_once()
    monitor_fake.delete_project("gitlab/other")
    monitor_clock.advance(hours=1)
    monitor.poll_once()
    # absent from one sweep: maybe just missed (DevLake pages /projects without a tie-break)
    assert get(scrape_registry(monitor), "devlake_project_failures_total", project_name="gitlab/other") == 1.0
    monitor_clock.advance(hours=1)
    monitor.poll_once()
    samples = scrape_registry(monitor)
    assert not [k for k in samples if ("project_name", "gitlab/other") in k]
    assert get(samples, "devlake_projects") == 1
    assert get(samples, "devlake_project_failures_total", project_name="github/my-repo") == 0.0


def test_stuck_pipeline_and_ad_hoc_runs(monitor_fake, monitor_clock, world, monitor_factory):
    started = monitor_clock.now - timedelta(hours=5)
    monitor_fake.add_pipeline(world["a"], "TASK_RUNNING", began_at=started)
    monitor_fake.add_pipeline(0, "TASK_FAILED", finished_at=monitor_clock.now - timedelta(minutes=1))
    monitor = monitor_factory()
    monitor.poll_once()
    reg = monitor.registry
    assert reg.get_sample_value("devlake_project_pipeline_in_flight_since_timestamp_seconds",
                                {"project_name": "github/my-repo"}) == started.timestamp()
    assert reg.get_sample_value("devlake_project_failures_total", {"project_name": NO_PROJECT}) == 1
    assert list(failures(scrape_registry(monitor))) == [(NO_PROJECT, "2025-08-08 13:59:00")]


def test_healthz_and_gzip_over_http(monitor_fake, monitor_clock, world, monitor_factory, monitor_server):
    monitor = monitor_factory(POLL_INTERVAL_SECONDS="60")
    url = monitor_server(monitor)
    response = requests.get(f"{url}/healthz", timeout=5)
    assert response.status_code == 503 and response.json()["reason"] == "no successful poll yet"
    monitor.poll_once()
    assert requests.get(f"{url}/healthz", timeout=5).json()["status"] == "ok"
    head = requests.head(f"{url}/", timeout=5)  # uptime checkers probe with HEAD
    assert head.status_code == 200 and int(head.headers["Content-Length"]) > 0 and head.content == b""
    assert requests.get(f"{url}/healthz", timeout=5).status_code == 200  # the connection still works
    raw = requests.get(f"{url}/metrics", headers={"Accept-Encoding": "gzip"}, timeout=5, stream=True).raw.read()
    assert b"devlake_up 1.0" in gzip.decompress(raw)
    monitor_fake.reset_log()
    for _ in range(3):
        scrape(url)
    assert monitor_fake.count() == 0  # scrapes never call DevLake
    monitor_clock.advance(minutes=4)
    assert requests.get(f"{url}/healthz", timeout=5).status_code == 503
    assert requests.get(f"{url}/nope", timeout=5).status_code == 404


def test_livez_follows_the_poll_loop_not_devlake(monitor_fake, monitor_clock, world, monitor_factory,
                                                  monitor_server):
    """Kubernetes' liveness probe: DevLake down keeps /livez 200; a poll loop that stopped does not."""
    monitor = monitor_factory(POLL_INTERVAL_SECONDS="300")
    url = monitor_server(monitor)
    assert requests.get(f"{url}/livez", timeout=5).status_code == 200  # before the first poll
    monitor_fake.inject("*", ".*", status=503, times=-1)
    for _ in range(20):  # 100 minutes of DevLake down, polls failing every 5 minutes
        monitor_clock.advance(minutes=5)
        assert monitor.poll_once() is False
    assert requests.get(f"{url}/healthz", timeout=5).status_code == 503
    live = requests.get(f"{url}/livez", timeout=5)
    assert live.status_code == 200 and live.json()["status"] == "alive"
    # No poll started or ended for the interval plus an hour: the loop is stuck.
    monitor_clock.advance(minutes=66)
    stuck = requests.get(f"{url}/livez", timeout=5)
    assert stuck.status_code == 503 and stuck.json()["status"] == "wedged"
    monitor_fake.clear_faults()
    assert monitor.poll_once()
    assert requests.get(f"{url}/livez", timeout=5).status_code == 200
