"""End-to-end against the fake DevLake: failure reasons, restart failures, connection health, the backlog."""
from __future__ import annotations

from datetime import timedelta

import requests
from structlog.testing import capture_logs

from tests.e2e.test_monitor_e2e import get, scrape

SECONDARY_RATE_LIMIT = ("Retry exceeded 3 times calling repos/acme/api/pulls. Response: {\"message\":\"You have "
                        "exceeded a secondary rate limit. Please wait a few minutes before you try again.\"} (403)")
GITLAB_401 = ("Http DoAsync error calling [GET https://gitlab.com/api/v4/projects/42/issues?private_token="
              "glpat-abcdefghijklmnop]. Response: {\"message\":\"401 Unauthorized\"} (401)")


def test_reasons_reach_metrics_and_logs(monitor_fake, monitor_clock, monitor_factory, monitor_server):
    gh = monitor_fake.add_project("github/dự-án")
    gl = monitor_fake.add_project("gitlab/other")
    monitor = monitor_factory()
    url = monitor_server(monitor)
    assert monitor.poll_once()
    monitor_clock.advance(minutes=5)
    monitor_fake.add_pipeline(gh, "TASK_FAILED", finished_at=monitor_clock.now, failure={
        "plugin": "org", "failedSubTask": "collectApiPullRequests", "message": SECONDARY_RATE_LIMIT})
    monitor_fake.add_pipeline(gl, "TASK_FAILED", finished_at=monitor_clock.now, failure={
        "plugin": "org", "failedSubTask": "collectApiIssues", "message": GITLAB_401})
    with capture_logs() as logs:
        assert monitor.poll_once()
    samples = scrape(url)
    assert get(samples, "devlake_pipeline_failures_by_reason_total", plugin="org", reason="rate_limited") == 1.0
    assert get(samples, "devlake_pipeline_failures_by_reason_total", plugin="org", reason="unauthorized") == 1.0
    assert get(samples, "devlake_project_last_failure_info", project_name="gitlab/other", plugin="org",
               connection_id="unknown", reason="unauthorized", failed_subtask="collectApiIssues") == 1.0
    lines = {e["project"]: e for e in logs if e["event"] == "pipeline_failed"}
    assert lines["github/dự-án"]["reason"] == "rate_limited"
    assert "glpat-abcdefghijklmnop" not in lines["gitlab/other"]["message"]
    assert monitor_fake.count("GET", "/pipelines/") == 2  # one task read per failure ...
    monitor_fake.reset_log()
    monitor_clock.advance(minutes=5)
    assert monitor.poll_once()
    assert monitor_fake.count("GET", "/pipelines/") == 0  # ... and never again


def test_a_restart_failure_is_counted_once_across_polls_and_monitor_restarts(monitor_fake, monitor_clock,
                                                                            monitor_factory):
    bp = monitor_fake.add_project("github/api")
    monitor = monitor_factory()
    monitor.poll_once()
    monitor_clock.advance(minutes=5)
    monitor_fake.add_pipeline(bp, "TASK_RUNNING", began_at=monitor_clock.now)
    monitor.poll_once()
    monitor_clock.advance(minutes=3)
    monitor_fake.restart()  # RESUME_PIPELINES=false: TASK_FAILED, finishedAt NULL, no notification
    failed_at = monitor_fake.now()
    monitor_clock.advance(minutes=2)
    assert monitor.poll_once()
    reg = monitor.registry
    assert reg.get_sample_value("devlake_project_failures_total", {"project_name": "github/api"}) == 1
    assert reg.get_sample_value("devlake_pipeline_failures_by_reason_total",
                                {"plugin": "org", "reason": "interrupted"}) == 1
    assert monitor.state.projects["github/api"].last_reason == "interrupted"
    assert monitor.state.projects["github/api"].last_failure == failed_at.timestamp()  # its updatedAt
    for hours in (1, 1):  # polls, the hourly re-scan, and a restart of the monitor: still one
        monitor_clock.advance(hours=hours)
        assert monitor.poll_once()
    restarted = monitor_factory()
    monitor_clock.advance(hours=1)
    assert restarted.poll_once()
    assert restarted.registry.get_sample_value("devlake_project_failures_total", {"project_name": "github/api"}) == 1
    assert restarted.registry.get_sample_value("devlake_pipeline_failures_by_reason_total",
                                               {"plugin": "org", "reason": "interrupted"}) == 1


def test_connection_health_from_devlakes_own_check(monitor_fake, monitor_clock, monitor_factory, monitor_server):
    good = monitor_fake.add_connection("github", "github-main")
    broken = monitor_fake.add_connection("circleci", "circle")
    other = monitor_fake.add_connection("gitlab", "gitlab-self")
    monitor_fake.fail_connection_test("circleci", broken, 401, "unexpected status code: 401")
    monitor = monitor_factory(PLUGINS="github,gitlab,circleci,bamboo")  # bamboo: no connections
    url = monitor_server(monitor)
    with capture_logs() as logs:
        monitor.connections.check_once()
    samples = scrape(url)
    assert get(samples, "devlake_connection_up", plugin="circleci", connection_id=str(broken),
               connection_name="circle") == 0.0
    assert get(samples, "devlake_connection_up", plugin="github", connection_id=str(good),
               connection_name="github-main") == 1.0
    assert get(samples, "devlake_connection_up", plugin="gitlab", connection_id=str(other),
               connection_name="gitlab-self") == 1.0
    (down,) = [e for e in logs if e["event"] == "connection_down"]
    assert down["plugin"] == "circleci" and "401" in down["error"]
    health = {h.plugin: h for h in monitor.connections.snapshot()}
    assert health["circleci"].up is False and health["circleci"].since == monitor_clock.now.timestamp()
    monitor_fake.fail_connection_test("circleci", broken, None)
    monitor_clock.advance(hours=1)
    with capture_logs() as logs:
        monitor.connections.check_once()
    assert [e["event"] for e in logs if e["event"].startswith("connection_")] == ["connection_recovered"]
    assert get(scrape(url), "devlake_connection_up", plugin="circleci", connection_id=str(broken),
               connection_name="circle") == 1.0
    assert monitor_fake.mutating_count() == 3 * 2  # the test route only: it changes nothing in DevLake


def test_a_refused_api_key_ends_the_connection_round_in_one_line_and_keeps_the_verdicts(
        monitor_fake, monitor_factory):
    cid = monitor_fake.add_connection("github", "github-main")
    monitor = monitor_factory(PLUGINS="github,gitlab,jira,circleci", DEVLAKE_API_KEY="right-key-0123")
    monitor_fake.api_key = "right-key-0123"
    monitor.connections.check_once()
    monitor_fake.api_key = "rotated-key-4567"  # the monitor's key no longer works
    monitor_fake.reset_log()
    with capture_logs() as logs:
        monitor.connections.check_once()
    (failed,) = [e for e in logs if e["event"] == "connection_check_failed"]
    assert failed["plugins"] == ["github", "gitlab", "jira", "circleci"]
    assert monitor_fake.count() == 1  # the other plugins' listings would be refused the same way
    (health,) = monitor.connections.snapshot()
    assert (health.plugin, health.connection_id, health.up) == ("github", cid, True)  # DevLake, not it, failed
    assert "right-key" not in str(logs) and "rotated-key" not in str(logs)


def test_a_revoked_github_token_shows_as_down(monitor_fake, monitor_factory, monitor_server):
    # GitHub answers 200 with success:false for a bad access token (`docs/devlake-api.md` §9.6)
    cid = monitor_fake.add_connection("github", "github-main", token="ghp_revokedtoken123")
    monitor_fake.fail_connection_test("github", cid, 401, "StatusUnauthorized error when testing connection")
    monitor = monitor_factory(PLUGINS="github")
    url = monitor_server(monitor)
    with capture_logs() as logs:
        monitor.connections.check_once()
    assert get(scrape(url), "devlake_connection_up", plugin="github", connection_id=str(cid),
               connection_name="github-main") == 0.0
    (down,) = [e for e in logs if e["event"] == "connection_down"]
    assert down["error"] == "token 1 of 1: StatusUnauthorized error when testing connection"
    status = requests.get(f"{url}/status.json", timeout=5)
    (row,) = status.json()["connections"]
    assert row["up"] is False and "StatusUnauthorized" in row["error"]
    page = requests.get(f"{url}/", timeout=5).text
    assert "StatusUnauthorized error when testing connection" in page
    assert "ghp_" not in status.text + page + str(logs)


def test_pending_counts_match_the_fake(monitor_fake, monitor_clock, monitor_factory):
    bp = [monitor_fake.add_project(f"github/r{i}") for i in range(4)]
    monitor_fake.add_pipeline(bp[0], "TASK_CREATED", created_at=monitor_clock.now - timedelta(hours=2))
    monitor_fake.add_pipeline(bp[1], "TASK_CREATED", created_at=monitor_clock.now)
    monitor_fake.add_pipeline(bp[2], "TASK_RUNNING", began_at=monitor_clock.now - timedelta(minutes=30))
    monitor_fake.add_pipeline(bp[3], "TASK_COMPLETED", finished_at=monitor_clock.now - timedelta(minutes=1),
                              began_at=monitor_clock.now - timedelta(minutes=21))
    monitor = monitor_factory()
    assert monitor.poll_once()
    assert monitor.pending == {"TASK_CREATED": 2, "TASK_RERUN": 0, "TASK_RESUME": 0, "TASK_RUNNING": 1}
    reg = monitor.registry
    assert reg.get_sample_value("devlake_pipelines_pending", {"status": "TASK_CREATED"}) == 2
    assert reg.get_sample_value("devlake_pipelines_oldest_pending_age_seconds") == 7200
    assert reg.get_sample_value("devlake_pipeline_duration_seconds_count", {"status": "TASK_COMPLETED"}) == 1
    assert reg.get_sample_value("devlake_pipeline_duration_seconds_sum", {"status": "TASK_COMPLETED"}) == 1200
