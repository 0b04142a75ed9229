"""End to end: fake DevLake -> real monitor -> real Prometheus (our rules) -> real Alertmanager (our
config) -> a local webhook receiver. One expired GitHub token breaking 20 repositories gives one
notification group, not 20 x 3 notifications.

The shipped files are used as they are, except: addresses on loopback, 1 s scrape and evaluation,
the `for:` of the four alerts under test set to 0 (their durations are promtool-tested), group
waits of 3 s, and the `default` receiver pointed at the test's webhook. Every process is stopped
in a finally block; the whole test is bounded by DEADLINE_SECONDS.
"""
from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from deploy_support import (
    ALERTMANAGER_CONFIG,
    PROMETHEUS_DIR,
    ROOT,
    free_port,
    load_yaml,
    python,
    require_alertmanager,
    require_tool,
)
from prometheus_client.parser import text_string_to_metric_families
from test_prometheus_e2e import Deadline, http_json, stop_process, write_prometheus_config

DEADLINE_SECONDS = 90
QUIET_SECONDS = 8  # after the first notification: long enough for any other group's group_wait (3 s)
BROKEN_REPOS = 20
FAST = {"DevLakeConnectionDown", "DevLakeProjectCurrentlyBroken", "DevLakeProjectRepeatedlyFailing",
        "DevLakeManyProjectsFailing"}
UNAUTHORIZED = "authentication failed, please check your AccessToken (401 Bad credentials)"
RATE_LIMITED = "API rate limit exceeded for installation (403)"


class Webhook:
    """Records the JSON bodies Alertmanager POSTs (its webhook format, version 4)."""

    def __init__(self):
        self.bodies: list[dict] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def alertmanager_config(workdir, webhook_url: str):
    config = load_yaml(ALERTMANAGER_CONFIG)
    (default,) = [r for r in config["receivers"] if r["name"] == "default"]
    default["webhook_configs"] = [{"url": webhook_url, "send_resolved": False}]
    for route in [config["route"], *config["route"]["routes"]]:
        route.update(group_wait="3s", group_interval="1h", repeat_interval="1h")
    path = workdir / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def fast_rules(workdir) -> None:
    rules = load_yaml(PROMETHEUS_DIR / "alerts.yml")
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule["alert"] in FAST:
                rule.pop("for", None)
    (workdir / "alerts.yml").write_text(yaml.safe_dump(rules, sort_keys=False))


def broken_world(fake, token_expired: bool) -> None:
    """20 repositories of GitHub connection 1 failing `unauthorized` 3 times, 2 more `rate_limited`."""
    cid = fake.add_connection("github", "github-main", endpoint="https://api.github.com/", token="ghp_x")
    assert cid == 1
    now = datetime.now(UTC)
    for i in range(BROKEN_REPOS + 2):
        fake.add_scope("github", cid, {"githubId": 1000 + i, "name": f"svc-{i}", "fullName": f"acme/svc-{i}"})
        bp = fake.add_project(f"github/acme/svc-{i}", scopes=[("github", cid, 1000 + i)])
        message = UNAUTHORIZED if i < BROKEN_REPOS else RATE_LIMITED
        for run in range(3):
            fake.add_pipeline(bp, "TASK_FAILED", finished_at=now - timedelta(minutes=30 - run), failure={
                "plugin": "github", "failedSubTask": "collectApiPullRequests", "message": message})
    if token_expired:
        fake.fail_connection_test("github", cid, 400, "Bad credentials")


@pytest.mark.parametrize("token_expired", [True, False], ids=["connection-down", "connection-up"])
def test_one_expired_token_is_one_notification_group(tmp_path, token_expired):
    prometheus_bin, alertmanager_bin = require_tool("prometheus"), require_alertmanager()
    from sandbox.fake_devlake import FakeDevLake

    logs = [tmp_path / name for name in ("monitor.log", "prometheus.log", "alertmanager.log")]
    deadline = Deadline(DEADLINE_SECONDS, logs=logs)
    monitor_port, prom_port, am_port = free_port(), free_port(), free_port()
    fake, webhook = FakeDevLake(latency=0), Webhook()
    procs: list[subprocess.Popen] = []
    handles = [open(p, "w") for p in logs]
    try:
        broken_world(fake, token_expired)
        env = dict(os.environ, DEVLAKE_URL=fake.start(), POLL_INTERVAL_SECONDS="1", PLUGINS="github",
                   CONNECTION_CHECK_INTERVAL_SECONDS="1", METRICS_ADDR="127.0.0.1",
                   METRICS_PORT=str(monitor_port), STATE_DIR=str(tmp_path / "state"), LOG_FORMAT="json",
                   DEVLAKE_HTTP_RETRIES="0", DEVLAKE_RETRY_BACKOFF_SECONDS="0")
        procs.append(subprocess.Popen([python(), "blueprint_monitor.py"], cwd=ROOT, env=env,
                                      stdout=handles[0], stderr=subprocess.STDOUT))

        def samples(name: str) -> list:
            with urllib.request.urlopen(f"http://127.0.0.1:{monitor_port}/metrics", timeout=2) as response:
                text = response.read().decode()
            return [s for family in text_string_to_metric_families(text) for s in family.samples if s.name == name]

        # Everything is exposed before Prometheus' first scrape: both rule groups see it at once.
        verdict = 0.0 if token_expired else 1.0
        deadline.wait_for("the monitor to explain every failure and check the connection", lambda: (
            len(samples("devlake_project_last_failure_info")) == BROKEN_REPOS + 2 and
            [s.value for s in samples("devlake_connection_up") if s.labels["connection_id"] == "1"] == [verdict]))

        procs.append(subprocess.Popen(
            [alertmanager_bin, f"--config.file={alertmanager_config(tmp_path, webhook.url)}",
             f"--storage.path={tmp_path / 'am-data'}", f"--web.listen-address=127.0.0.1:{am_port}",
             "--cluster.listen-address=", "--log.level=warn"],
            cwd=tmp_path, stdout=handles[2], stderr=subprocess.STDOUT))
        am_url = f"http://127.0.0.1:{am_port}"
        deadline.wait_for("Alertmanager to be ready", lambda: http_json(f"{am_url}/api/v2/status"))

        config_path = write_prometheus_config(tmp_path, monitor_port)
        fast_rules(tmp_path)
        config = load_yaml(config_path)
        config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        procs.append(subprocess.Popen(
            [prometheus_bin, f"--config.file={config_path}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
            cwd=tmp_path, stdout=handles[1], stderr=subprocess.STDOUT))

        first = deadline.wait_for("a notification", lambda: webhook.bodies)
        assert first
        time.sleep(QUIET_SECONDS)  # real seconds: Alertmanager's own timers, shortened above
        groups = {body["groupKey"]: body for body in webhook.bodies}
        notified = [a["labels"] for body in webhook.bodies for a in body["alerts"]]
        received = http_json(f"{am_url}/api/v2/alerts")
        per_project = [a for a in received if a["labels"].get("scope") == "project"]
        # Alertmanager did receive every project's alerts, with the connection and reason ...
        assert len({a["labels"]["project_name"] for a in per_project}) == BROKEN_REPOS + 2
        assert all(a["labels"]["connection_id"] == "1" and a["labels"]["plugin"] == "github" for a in per_project)
        unauthorized = [a for a in per_project if a["labels"]["reason"] == "unauthorized"]
        assert len(unauthorized) == 2 * BROKEN_REPOS  # currently broken + repeatedly failing
        # ... and sent none of the unauthorized ones: inhibited by the connection or the summary.
        assert all(a["status"]["inhibitedBy"] for a in unauthorized)
        assert not [labels for labels in notified if labels.get("scope") == "project"
                    and labels["reason"] == "unauthorized"]
        if token_expired:
            assert all(a["status"]["inhibitedBy"] for a in per_project)
            (body,) = groups.values()
            assert [a["labels"]["alertname"] for a in body["alerts"]] == ["DevLakeConnectionDown"]
            assert body["alerts"][0]["labels"]["connection_id"] == "1"
        else:
            # one group per reason of the connection: unauthorized (summarised, 20 > N) and rate_limited
            by_reason = {body["groupLabels"]["reason"]: body for body in groups.values()}
            assert set(by_reason) == {"unauthorized", "rate_limited"} and len(groups) == 2
            assert [a["labels"]["alertname"] for a in by_reason["unauthorized"]["alerts"]] == [
                "DevLakeManyProjectsFailing"]
            assert "20 DevLake projects fail with unauthorized" in \
                by_reason["unauthorized"]["alerts"][0]["annotations"]["summary"]
            assert by_reason["unauthorized"]["groupLabels"] == {
                "plugin": "github", "connection_id": "1", "reason": "unauthorized"}
            # the two rate-limited projects: "3 in a row" each, their "currently broken" inhibited
            assert sorted(a["labels"]["alertname"] for a in by_reason["rate_limited"]["alerts"]) == [
                "DevLakeProjectRepeatedlyFailing"] * 2
        assert len(notified) <= 3, f"{len(notified)} alerts notified, not {BROKEN_REPOS} x 3"
    finally:
        for proc in reversed(procs):
            stop_process(proc)
        fake.stop()
        webhook.stop()
        for handle in handles:
            handle.close()
