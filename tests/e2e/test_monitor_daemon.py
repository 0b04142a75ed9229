"""blueprint_monitor.py end to end: --once against the fake, daemon mode, SIGTERM."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import structlog
from prometheus_client.parser import text_string_to_metric_families

import blueprint_monitor
from modules.monitoring.http import MetricsServer
from modules.monitoring.monitor import serve

ROOT = Path(__file__).resolve().parents[2]
KEY = "k3y-that-must-never-be-printed"


@pytest.fixture(autouse=True)
def reset_structlog():
    yield
    structlog.reset_defaults()  # main() points structlog at this test's captured stderr


def test_once_prints_the_exposition_and_persists_state(monitor_fake, monitor_clock, monitor_env, monkeypatch, capsys):
    monitor_fake.api_key = KEY
    bp = monitor_fake.add_project("github/my-repo")
    monitor_fake.add_pipeline(bp, "TASK_FAILED", finished_at=monitor_clock.now - timedelta(hours=1))
    for name, value in {**monitor_env, "DEVLAKE_API_KEY": KEY, "TIMEZONE": "Asia/Ho_Chi_Minh"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(blueprint_monitor, "datetime", _FrozenDatetime(monitor_clock))
    assert blueprint_monitor.main(["--once"]) == 0
    first = capsys.readouterr()
    families = {f.name: f for f in text_string_to_metric_families(first.out)}
    (sample,) = families["devlake_blueprint_failure"].samples
    assert sample.labels == {"project_name": "github/my-repo", "time_failed": "2025-08-08 13:00:00"}
    assert sample.value == 1.0
    assert json.loads((Path(monitor_env["STATE_DIR"]) / "monitor_state.json").read_text())["events"]
    assert KEY not in first.out + first.err
    # 404 only where --once's connection check probes a plugin the fake does not have (`docs/devlake-api.md` §2)
    assert all(r.raw_path.startswith("/rest/") and (r.status == 200 or (
        r.status == 404 and r.raw_path.endswith("/connections"))) for r in monitor_fake.requests)
    # a second --once process restores the state: same series, not counted again
    monitor_clock.advance(minutes=5)
    assert blueprint_monitor.main(["--once"]) == 0
    second = capsys.readouterr().out
    assert 'devlake_blueprint_failure_total{project_name="github/my-repo",time_failed="2025-08-08 13:00:00"} 1.0' in second
    assert 'devlake_project_failures_total{project_name="github/my-repo"} 1.0' in second


class _FrozenDatetime:
    """Stands in for the `datetime` name in blueprint_monitor so its default clock is the test clock."""

    def __init__(self, clock):
        self.clock = clock

    def now(self, tz=None):
        return self.clock().astimezone(tz)


def test_serve_stops_on_the_event_saves_and_closes_the_port(monitor_fake, monitor_clock, monitor_factory):
    bp = monitor_fake.add_project("github/my-repo")
    monitor_fake.add_pipeline(bp, "TASK_FAILED", finished_at=monitor_clock.now - timedelta(minutes=3))
    monitor = monitor_factory()
    server = MetricsServer(monitor, "127.0.0.1", 0).start()
    stop, result = threading.Event(), []
    runner = threading.Thread(target=lambda: result.append(serve(monitor, server, stop, interval=3600)))
    runner.start()
    url = f"http://127.0.0.1:{server.port}"
    deadline = time.monotonic() + 5
    while monitor.last_success is None and time.monotonic() < deadline:
        time.sleep(0.01)  # waits for the worker thread's first poll, not for time to pass
    assert 'devlake_blueprint_failure_total{project_name="github/my-repo"' in requests.get(f"{url}/metrics").text
    stop.set()
    runner.join(5)
    assert result == [0]
    assert (Path(monitor.settings.state_dir) / "monitor_state.json").exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/healthz", timeout=1)


def test_daemon_exits_0_on_sigterm(monitor_fake, monitor_env):
    env = {**os.environ, **monitor_env, "POLL_INTERVAL_SECONDS": "3600", "LOG_FORMAT": "json"}
    proc = subprocess.Popen([sys.executable, "blueprint_monitor.py"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = _port_from_logs(proc)
        assert requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
    events = [json.loads(line)["event"] for line in proc.stderr.read().splitlines() if line.startswith("{")]
    assert "monitor_stopping" in events and "monitor_stopped" in events


def _port_from_logs(proc) -> int:
    """The daemon logs the bound port (METRICS_PORT=0 picks a free one)."""
    for line in proc.stderr:
        if '"metrics_server_started"' in line:
            return json.loads(line)["port"]
    raise AssertionError("daemon exited before serving: " + proc.stderr.read())
