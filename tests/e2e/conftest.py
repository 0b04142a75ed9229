"""Shared e2e fixtures. Monitor fixtures are prefixed `monitor_`; add other daemons' fixtures below."""
from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from config import load_settings
from modules.api import DevLakeClient
from modules.monitoring.http import MetricsServer
from modules.monitoring.monitor import Monitor
from sandbox.fake_devlake import FakeDevLake
from tests.clock import Clock
from utils.http import make_session

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
        session = make_session(api_key=settings.api_key, retries=settings.http_retries,
                               backoff_seconds=settings.retry_backoff_seconds)
        client = DevLakeClient(session, settings.api_base_url, timeout=settings.timeout_seconds)
        return Monitor(client, settings, CollectorRegistry(), clock=monitor_clock)
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
