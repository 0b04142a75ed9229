"""Shared e2e fixtures. Monitor fixtures are prefixed `monitor_`; add other daemons' fixtures below."""
from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry

from config import load_settings
from modules.client import build_client
from modules.monitoring.http import MetricsServer
from modules.monitoring.monitor import Monitor
from sandbox.fake_devlake import FakeDevLake
from tests.clock import Clock

# -- blueprint monitor ----------------------------------------------------------------------------


@pytest.fixture
def monitor_clock():
    return Clock()


@pytest.fixture
def monitor_fake(monitor_clock):
    """A started FakeDevLake on the shared clock."""
    with FakeDevLake(clock=monitor_clock) as fake:
        yield fake


@pytest.fixture
def monitor_env(monitor_fake, tmp_path):
    """The environment blueprint_monitor.py would get: fast failures, state in tmp_path."""
    return {
        "DEVLAKE_URL": monitor_fake.url, "STATE_DIR": str(tmp_path / "state"),
        "DEVLAKE_HTTP_RETRIES": "1", "DEVLAKE_RETRY_BACKOFF_SECONDS": "0",
        "DEVLAKE_TIMEOUT_SECONDS": "2", "METRICS_ADDR": "127.0.0.1", "METRICS_PORT": "0",
    }


@pytest.fixture
def monitor_factory(monitor_env, monitor_clock):
    """new_monitor(**env) -> a fresh Monitor (own registry) on the same STATE_DIR, e.g. after a restart."""
    def new_monitor(**env) -> Monitor:
        settings = load_settings({**monitor_env, **env})
        return Monitor(build_client(settings), settings, CollectorRegistry(), clock=monitor_clock)
    return new_monitor


@pytest.fixture
def monitor_server():
    """serve(monitor) -> base URL of a started /metrics + /healthz server on a free port."""
    servers = []

    def serve(monitor: Monitor) -> str:
        server = MetricsServer(monitor, "127.0.0.1", 0).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.port}"
    yield serve
    for server in servers:
        server.stop()


# -- the status page ------------------------------------------------------------------------------

HOSTILE_NAME = "<img src=x onerror=\"document.title='pwned'\">"
HOSTILE_SUBTASK = "</td><script>document.title='pwned'</script>collectApiIssues"
# What the status page must list, trouble first (see monitor_status_world).
STATUS_ORDER = [(HOSTILE_NAME, "failing"), ("github/acme/failing", "failing"), ("gitlab/acme/stuck", "stuck"),
                ("jira/never", "never"), ("github/acme/stale", "stale"), ("github/acme/new", "scheduled"),
                ("github/acme/healthy", "healthy")]
MANAGED = ("managed-by/devlake-automation",)  # modules/projects.py MANAGED_LABEL


@pytest.fixture
def monitor_status_world(monitor_fake, monitor_clock, monitor_factory, monitor_server):
    """A polled monitor serving its status page over HTTP, with one project per state and a hostile name.

    Returns (base URL, monitor). The reasons come from the failed tasks' messages, as DevLake
    reports them; the hostile project's failed subtask is hostile too.
    """
    now = monitor_clock.now
    # github/acme/new: managed, created now with DevLake's default cron (00:00 UTC, 17 h away): scheduled.
    bp = {name: monitor_fake.add_project(name, labels=MANAGED if name == "github/acme/new" else ())
          for name, _ in STATUS_ORDER}
    for name in ("github/acme/failing", "gitlab/acme/stuck", "github/acme/healthy"):
        monitor_fake.add_pipeline(bp[name], "TASK_COMPLETED", finished_at=now - timedelta(hours=30))
    monitor_fake.add_pipeline(bp["github/acme/stale"], "TASK_COMPLETED", finished_at=now - timedelta(days=3))
    monitor_fake.add_pipeline(bp["github/acme/healthy"], "TASK_COMPLETED", finished_at=now - timedelta(hours=1))
    monitor_fake.add_pipeline(bp["gitlab/acme/stuck"], "TASK_RUNNING", began_at=now - timedelta(hours=8))
    monitor_fake.add_pipeline(bp[HOSTILE_NAME], "TASK_FAILED", finished_at=now - timedelta(minutes=20), failure={
        "plugin": "github", "message": "authentication failed, please check your AccessToken",
        "failedSubTask": HOSTILE_SUBTASK})
    monitor_fake.add_pipeline(bp["github/acme/failing"], "TASK_FAILED", finished_at=now - timedelta(minutes=20),
                              failure={"plugin": "github", "failedSubTask": "collectApiPullRequests",
                                       "message": "Error 403: API rate limit exceeded for installation"})
    monitor = monitor_factory(DEVLAKE_UI_URL="http://devlake-ui.example:4000", STALE_AFTER_HOURS="48")
    assert monitor.poll_once()
    return monitor_server(monitor), monitor
