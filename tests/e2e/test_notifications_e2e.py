"""End-to-end: the fake DevLake sends signed notifications to the real monitor over loopback.

Every count is read from /metrics over HTTP. Waits are bounded and wait for the
sender's queue and the receiver's worker, never for time to pass.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from blueprint_monitor import build_receiver
from modules.monitoring.http import MetricsServer
from sandbox.fake_devlake import FakeDevLake
from sandbox.notifier import sign

ROOT = Path(__file__).resolve().parents[2]
SECRET = "n0tification-secret-never-logged"
FAILURES = "devlake_project_failures_total"
RUNS = "devlake_project_runs_total"


def scrape(url: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(requests.get(f"{url}/metrics", timeout=5).text):
        for s in family.samples:
            out[(s.name, *sorted(s.labels.items()))] = s.value
    return out


def value(url, name, **labels):
    return scrape(url).get((name, *sorted(labels.items())))


def series(url) -> dict[tuple[str, str], float]:
    return {(dict(k[1:])["project_name"], dict(k[1:])["time_failed"]): v
            for k, v in scrape(url).items() if k[0] == "devlake_blueprint_failure_total"}


class Stack:
    """A monitor with its receiver and HTTP server, and the fake notifying it."""

    def __init__(self, fake, clock, factory, **env):
        self.fake, self.clock = fake, clock
        self.monitor = factory(**env)
        self.receiver = build_receiver(self.monitor.settings, self.monitor)
        if self.receiver:
            self.receiver.start()
        self.server = MetricsServer(self.monitor, "127.0.0.1", 0, self.receiver).start()
        self.url = f"http://127.0.0.1:{self.server.port}"
        self.endpoint = f"{self.url}/notifications"
        fake.configure_notifications(self.endpoint, SECRET)
        self.project = fake.add_project("github/my-repo")
        assert self.monitor.poll_once()  # the project is known (at 0) and the watermark set

    def settle(self) -> None:
        """Every notification sent, answered and processed."""
        assert self.fake.notifier.flush(5)
        assert self.receiver.wait_idle(5)

    def fail(self, minutes=1, status="TASK_FAILED") -> int:
        self.clock.advance(minutes=minutes)
        return self.fake.add_pipeline(self.project, status, finished_at=self.clock.now - timedelta(seconds=2))

    def outcome(self, name) -> float:
        return value(self.url, "devlake_monitor_notifications_total", outcome=name)

    def result(self, name) -> float:
        return value(self.url, "devlake_monitor_notifications_processed_total", result=name)

    def close(self):
        self.fake.configure_notifications(None)
        self.server.stop()
        if self.receiver:
            self.receiver.stop()


@pytest.fixture
def stack(monitor_fake, monitor_clock, monitor_factory):
    s = Stack(monitor_fake, monitor_clock, monitor_factory, NOTIFICATION_SECRET=SECRET)
    yield s
    s.close()


def post(url, body: bytes, nouce="900-AbCdEfGhIjKlMnOp", secret=SECRET, signature=None, **kw):
    query = {"nouce": nouce, "sign": signature if signature is not None else sign(body, secret, nouce)}
    return requests.post(url, params=query, data=body, timeout=5, **kw)


def test_a_failure_is_counted_within_a_second_of_devlake_notifying(stack):
    started = time.monotonic()
    stack.fail()
    deadline = started + 1.0
    while value(stack.url, FAILURES, project_name="github/my-repo") != 1.0:
        assert time.monotonic() < deadline, "not counted within a second"
        time.sleep(0.005)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0
    assert list(series(stack.url)) == [("github/my-repo", "2025-08-08 14:00:58")]
    assert value(stack.url, "devlake_monitor_polls_total") == 1  # no poll: the push did it
    stack.settle()
    assert stack.outcome("accepted") == 2  # created, then failed
    assert (stack.result("counted"), stack.result("ignored")) == (1, 1)
    assert value(stack.url, "devlake_monitor_failure_detection_latency_seconds_count", path="push") == 1
    assert [n.response_code for n in stack.fake.notifier.sent] == [200, 200]


def test_push_and_poll_together_count_once_also_after_a_restart(stack, monitor_factory):
    stack.fail()
    stack.settle()
    before = scrape(stack.url)
    stack.clock.advance(minutes=5)
    assert stack.monitor.poll_once()
    stack.clock.advance(hours=2)  # the hourly re-scan reads the failed pipelines again
    assert stack.monitor.poll_once()
    after = scrape(stack.url)
    for name in (FAILURES, RUNS, "devlake_project_consecutive_failures"):
        key = (name, ("project_name", "github/my-repo"))
        assert before[key] == after[key] == 1.0, name
    assert list(series(stack.url).values()) == [1.0]
    restarted = monitor_factory(NOTIFICATION_SECRET=SECRET)
    restarted.poll_once()
    assert restarted.registry.get_sample_value(RUNS, {"project_name": "github/my-repo"}) == 1


def test_a_notification_arriving_after_the_poll_counted_it_changes_nothing(stack):
    stack.fake.notifier.drop_next(2)
    stack.fail()
    stack.settle()
    assert stack.monitor.poll_once()
    late = stack.fake.notifier.sent[-1]  # delivered now, as if it had been slow
    assert post(stack.endpoint, late.body, nouce=late.nouce).status_code == 200
    stack.receiver.wait_idle(5)
    assert stack.result("already_counted") == 1
    assert value(stack.url, FAILURES, project_name="github/my-repo") == 1
    assert value(stack.url, RUNS, project_name="github/my-repo") == 1


def test_a_dropped_notification_is_caught_by_the_next_poll(stack):
    stack.fake.notifier.drop_next(2)
    stack.fail()
    stack.settle()
    assert value(stack.url, FAILURES, project_name="github/my-repo") == 0
    assert stack.outcome("accepted") == 0
    stack.clock.advance(minutes=5)
    assert stack.monitor.poll_once()
    assert value(stack.url, FAILURES, project_name="github/my-repo") == 1
    assert value(stack.url, "devlake_monitor_failure_detection_latency_seconds_sum", path="poll") == 302


def test_a_push_never_makes_the_poller_skip_a_lower_id_failure(stack):
    watermark = stack.monitor.state.watermark
    stack.fake.notifier.drop_next(2)
    lower = stack.fail()
    higher = stack.fail()
    stack.settle()
    assert value(stack.url, FAILURES, project_name="github/my-repo") == 1
    assert stack.monitor.state.watermark == watermark < lower < higher
    assert stack.monitor.poll_once()
    assert value(stack.url, FAILURES, project_name="github/my-repo") == 2
    assert value(stack.url, RUNS, project_name="github/my-repo") == 2
    assert value(stack.url, "devlake_project_consecutive_failures", project_name="github/my-repo") == 2
    assert {k[0] for k in series(stack.url)} == {"github/my-repo"} and len(series(stack.url)) == 2


def test_a_rerun_that_fails_again_is_pushed_as_a_new_failure(stack):
    pid = stack.fail()
    stack.settle()
    requests.post(f"{stack.fake.url}/pipelines/{pid}/rerun", timeout=5).raise_for_status()
    stack.clock.advance(minutes=3)
    stack.fake.run_pending(lambda p: "TASK_FAILED")
    stack.settle()
    assert value(stack.url, FAILURES, project_name="github/my-repo") == 2
    stack.monitor.poll_once()
    assert value(stack.url, FAILURES, project_name="github/my-repo") == 2
    assert value(stack.url, "devlake_project_consecutive_failures", project_name="github/my-repo") == 2


def test_the_key_comes_from_devlakes_api_not_the_notifications_times(stack):
    """A FinishedAt with nanoseconds and an offset (an in-memory Go time) still makes one event."""
    stack.fake.notifier.drop_next(2)
    pid = stack.fail()
    stack.settle()
    body = (b'{"ProjectName":"github/my-repo","PipelineID":%d,"CreatedAt":"2025-08-08T13:51:58.123456789+07:00",'
            b'"UpdatedAt":"2025-08-08T14:00:58.123456789+07:00","BeganAt":null,'
            b'"FinishedAt":"2025-08-08T14:00:58.000000001+07:00","Status":"TASK_FAILED"}' % pid)
    assert post(stack.endpoint, body).status_code == 200
    stack.receiver.wait_idle(5)
    stack.monitor.poll_once()
    assert series(stack.url) == {("github/my-repo", "2025-08-08 14:00:58"): 1.0}
    assert value(stack.url, RUNS, project_name="github/my-repo") == 1


def test_refused_requests_are_answered_and_counted(stack):
    stack.fake.notifier.drop_next(2)
    pid = stack.fail()
    stack.settle()
    good = b'{"ProjectName":"","PipelineID":%d,"Status":"TASK_FAILED"}' % pid
    scrape(stack.url)  # renders and caches the exposition: the counters below must not be stale
    assert post(stack.endpoint, good, secret="wrong").status_code == 401
    assert stack.outcome("bad_signature") == 1
    tampered = good.replace(b"FAILED", b"PARTIAL")
    assert post(stack.endpoint, tampered, signature=sign(good, SECRET, "900-AbCdEfGhIjKlMnOp")).status_code == 401
    assert requests.post(stack.endpoint, data=good, timeout=5).status_code == 401  # unsigned
    assert post(stack.endpoint, b"{not json", nouce="901-AbCdEfGhIjKlMnOp").status_code == 400
    assert post(stack.endpoint, b'{"Status":"TASK_FAILED"}', nouce="902-AbCdEfGhIjKlMnOp").status_code == 400
    assert post(stack.endpoint, b" " * 70_000, nouce="903-AbCdEfGhIjKlMnOp").status_code == 413
    assert _unread_huge_body(stack.server.port) == 413  # answered without waiting for 10 MB
    assert post(stack.endpoint, good, nouce="904-AbCdEfGhIjKlMnOp").status_code == 200
    assert post(stack.endpoint, good, nouce="904-AbCdEfGhIjKlMnOp").status_code == 200  # replay: ignored
    stack.receiver.wait_idle(5)
    assert [stack.outcome(o) for o in ("bad_signature", "malformed", "too_large", "accepted", "replay")] == \
        [3, 2, 2, 1, 1]
    assert value(stack.url, FAILURES, project_name="github/my-repo") == 1  # counted once, by the accepted one
    assert stack.fake.count("GET", f"/pipelines/{pid}") - stack.fake.count("GET", f"/pipelines/{pid}/tasks") == 1  # refused ones never reach DevLake


def _unread_huge_body(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /notifications?nouce=1-AbCdEfGhIjKlMnOp&sign=00 HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 10485760\r\n\r\n")
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status


def test_devlake_unreachable_while_processing_is_left_to_the_poll(stack):
    stack.fake.inject("GET", r"^/pipelines/\d+$", status=503, times=-1)
    stack.fail()
    stack.settle()
    assert stack.result("fetch_failed") == 1
    assert value(stack.url, FAILURES, project_name="github/my-repo") == 0
    stack.fake.clear_faults()
    stack.monitor.poll_once()
    assert value(stack.url, FAILURES, project_name="github/my-repo") == 1


def test_only_failures_reach_devlake_and_successes_are_left_to_the_poll(stack):
    stack.fail(status="TASK_COMPLETED")
    stack.settle()
    assert stack.result("ignored") == 2
    assert stack.fake.count("GET", "/pipelines/") == 0  # nothing fetched
    stack.monitor.poll_once()
    assert value(stack.url, RUNS, project_name="github/my-repo") == 1


def test_the_secret_and_signatures_are_never_logged(stack):
    with capture_logs() as logs:
        stack.fail()
        stack.settle()
        post(stack.endpoint, b"{}", secret="wrong")
        post(stack.endpoint, b"{}", nouce="bad")
    signatures = [sign(n.body, SECRET, n.nouce) for n in stack.fake.notifier.sent]
    text = repr(logs)
    assert "notification_accepted" in text and "notification_rejected" in text
    assert SECRET not in text
    assert not any(s in text for s in signatures)


def test_off_without_a_secret(monitor_fake, monitor_clock, monitor_factory):
    s = Stack(monitor_fake, monitor_clock, monitor_factory)
    try:
        assert s.receiver is None
        answer = post(s.endpoint, b"{}")
        assert answer.status_code == 404 and "NOTIFICATION_SECRET" in answer.text
        assert value(s.url, "devlake_monitor_notifications_total", outcome="accepted") == 0
        assert requests.get(f"{s.url}/metrics", timeout=5).status_code == 200
    finally:
        s.close()


def test_the_daemon_counts_a_notified_failure_at_once(monitor_env):
    """blueprint_monitor.py itself, with NOTIFICATION_SECRET, against a fake on the real clock."""
    with FakeDevLake() as fake:
        project = fake.add_project("github/live")
        env = {**os.environ, **monitor_env, "DEVLAKE_URL": fake.url, "POLL_INTERVAL_SECONDS": "3600",
               "LOG_FORMAT": "json", "LOG_LEVEL": "DEBUG", "NOTIFICATION_SECRET": SECRET}
        proc = subprocess.Popen([sys.executable, "blueprint_monitor.py"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            started = _started_line(proc)
            assert "/notifications" in started["endpoints"]
            url = f"http://127.0.0.1:{started['port']}"
            _wait_for(lambda: requests.get(f"{url}/healthz", timeout=5).status_code == 200)  # first poll done
            fake.configure_notifications(f"{url}/notifications", SECRET)
            begin = time.monotonic()
            fake.add_pipeline(project, "TASK_FAILED", finished_at=fake.now())
            _wait_for(lambda: value(url, FAILURES, project_name="github/live") == 1.0, timeout=1.0)
            assert time.monotonic() - begin < 1.0
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
            sent = list(fake.notifier.sent)
        finally:
            if proc.poll() is None:
                proc.kill()
        stderr = proc.stderr.read()
    assert '"notification_accepted"' in stderr and '"path": "push"' in stderr and "sign=***" in stderr
    assert SECRET not in stderr
    assert sent and not any(sign(n.body, SECRET, n.nouce) in stderr for n in sent)


def _started_line(proc) -> dict:
    for line in proc.stderr:
        if '"metrics_server_started"' in line:
            return json.loads(line)
    raise AssertionError("daemon exited before serving: " + proc.stderr.read())


def _wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)
