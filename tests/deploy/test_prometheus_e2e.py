"""End to end without Docker: fake DevLake -> real monitor -> real Prometheus with our config and rules -> firing alert.

Everything listens on 127.0.0.1 only, the test is bounded by DEADLINE_SECONDS,
and every process it starts is stopped in a finally block.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime

import pytest
import yaml
from deploy_support import MONITOR_JOB, PROMETHEUS_DIR, ROOT, free_port, load_yaml, python, require_tool

DEADLINE_SECONDS = 60
PROJECT = "github/e2e-repo"


class Deadline:
    def __init__(self, seconds: float, logs=()):
        self.end = time.monotonic() + seconds
        self.logs = logs  # files whose tails explain a timeout

    def wait_for(self, what: str, probe, interval: float = 0.25):
        """Call probe() until it returns a truthy value; fail when the deadline passes."""
        last = None
        while time.monotonic() < self.end:
            try:
                last = probe()
            except (OSError, ValueError, KeyError) as exc:  # not up yet
                last = exc
            else:
                if last:
                    return last
            time.sleep(interval)
        tails = "".join(f"\n--- {p.name} (tail) ---\n" + "".join(p.read_text(errors="replace").splitlines(True)[-15:])
                        for p in self.logs if p.exists())
        pytest.fail(f"timed out waiting for {what} (last: {last!r}){tails}")


def http_json(url: str, context: ssl.SSLContext | None = None):
    with urllib.request.urlopen(url, timeout=2, context=context) as response:
        return json.loads(response.read())


def stop_process(proc: subprocess.Popen | None, timeout: float = 10) -> int | None:
    if proc is None or proc.poll() is not None:
        return proc.returncode if proc else None
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
        return None


def write_prometheus_config(workdir, monitor_port: int, secure=None) -> tuple:
    """Our scrape config and rules, with the target on loopback and short intervals.

    `secure` (certs, password file): the job of prometheus/scrape-tls.example.yml instead,
    with its CA and password files pointed at the test's.
    """
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    jobs = [job for job in config["scrape_configs"] if job["job_name"] == MONITOR_JOB]
    assert len(jobs) == 1
    if secure is not None:
        certs, password_file = secure
        (job,) = load_yaml(PROMETHEUS_DIR / "scrape-tls.example.yml")["scrape_configs"]
        job["tls_config"]["ca_file"] = str(certs.ca)
        job["basic_auth"]["password_file"] = str(password_file)
        jobs = [job]
    jobs[0]["static_configs"] = [{"targets": [f"127.0.0.1:{monitor_port}"]}]
    config["scrape_configs"] = jobs
    shutil.copy(PROMETHEUS_DIR / "alerts.yml", workdir / "alerts.yml")
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def secure_monitor(tmp_path):
    """A web config with TLS (certificate made here) and basic auth; (env, scrape files, client context)."""
    pytest.importorskip("cryptography")
    from tests.tls_support import bcrypt_hash, make_certs

    certs = make_certs(tmp_path / "tls")
    password = "scrape-" + os.urandom(8).hex()
    (tmp_path / "password").write_text(password)
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump({
        "tls_server_config": {"cert_file": str(certs.server_cert), "key_file": str(certs.server_key)},
        "basic_auth_users": {"prometheus": bcrypt_hash(password)}}))
    return {"WEB_CONFIG_FILE": str(web)}, (certs, tmp_path / "password"), ssl.create_default_context(
        cafile=str(certs.ca))


@pytest.mark.parametrize("secure", [False, True], ids=["http", "tls-basic-auth"])
def test_failed_pipeline_reaches_a_firing_prometheus_alert(tmp_path, secure):
    prometheus_bin = require_tool("prometheus")
    if not (ROOT / "blueprint_monitor.py").exists():
        pytest.skip("blueprint_monitor.py is not in the tree yet")
    try:
        from sandbox.fake_devlake import FakeDevLake
    except ImportError:
        pytest.skip("sandbox.fake_devlake is not in the tree yet")

    deadline = Deadline(DEADLINE_SECONDS, logs=(tmp_path / "monitor.log", tmp_path / "prometheus.log"))
    monitor_port, prom_port = free_port(), free_port()
    prom_url = f"http://127.0.0.1:{prom_port}"
    web_env, scrape_files, context = secure_monitor(tmp_path) if secure else ({}, None, None)
    scheme = "https" if secure else "http"
    fake = FakeDevLake(latency=0)
    monitor = prometheus = None
    monitor_log = open(tmp_path / "monitor.log", "w")
    prom_log = open(tmp_path / "prometheus.log", "w")
    try:
        blueprint = fake.add_project(PROJECT)
        env = dict(os.environ, DEVLAKE_URL=fake.start(), POLL_INTERVAL_SECONDS="1",
                   METRICS_ADDR="127.0.0.1", METRICS_PORT=str(monitor_port),
                   STATE_DIR=str(tmp_path / "state"), LOG_FORMAT="json",
                   DEVLAKE_HTTP_RETRIES="0", DEVLAKE_RETRY_BACKOFF_SECONDS="0", **web_env)
        monitor = subprocess.Popen([python(), "blueprint_monitor.py"], cwd=ROOT, env=env,
                                   stdout=monitor_log, stderr=subprocess.STDOUT)
        deadline.wait_for("the monitor's /healthz", lambda: http_json(
            f"{scheme}://127.0.0.1:{monitor_port}/healthz", context) is not None)
        if secure:  # the monitor really asks for credentials
            with pytest.raises(urllib.error.HTTPError) as refused:
                http_json(f"https://127.0.0.1:{monitor_port}/metrics", context)
            assert refused.value.code == 401

        config = write_prometheus_config(tmp_path, monitor_port, scrape_files)
        prometheus = subprocess.Popen(
            [prometheus_bin, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--storage.tsdb.retention.time=1h",
             "--log.level=warn"],
            cwd=tmp_path, stdout=prom_log, stderr=subprocess.STDOUT)

        def query(expr: str):
            url = f"{prom_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
            return http_json(url)["data"]["result"]

        # Prometheus scrapes the monitor, and has seen the project's failure counter at 0
        # (increase() needs that first sample).
        deadline.wait_for("up == 1", lambda: query(f'up{{job="{MONITOR_JOB}"}} == 1'))
        deadline.wait_for("the failure counter at 0", lambda: query(
            f'devlake_project_failures_total{{project_name="{PROJECT}"}} == 0'))
        deadline.wait_for("DevLake reachable", lambda: query("devlake_up == 1"))
        assert http_json(f"{prom_url}/api/v1/rules")["data"]["groups"], "alerts.yml was not loaded"

        # A pipeline of the project's blueprint fails in DevLake.
        fake.add_pipeline(blueprint, "TASK_FAILED", finished_at=datetime.now(UTC))

        deadline.wait_for("the failure to be scraped", lambda: query(
            f'devlake_project_failures_total{{project_name="{PROJECT}"}} == 1'))
        event = deadline.wait_for("the per-failure series", lambda: query(
            f'devlake_blueprint_failure_total{{project_name="{PROJECT}"}}'))
        assert event[0]["metric"]["time_failed"]

        def firing():
            alerts = http_json(f"{prom_url}/api/v1/alerts")["data"]["alerts"]
            return [a for a in alerts if a["labels"]["alertname"] == "DevLakeBlueprintFailed"
                    and a["state"] == "firing"]

        (alert,) = deadline.wait_for("DevLakeBlueprintFailed to fire", firing)
        assert alert["labels"]["project_name"] == PROJECT
        assert alert["labels"]["severity"] == "warning"
        assert PROJECT in alert["annotations"]["summary"]
        # No other alert is firing for a healthy monitor and DevLake.
        others = [a["labels"]["alertname"] for a in http_json(f"{prom_url}/api/v1/alerts")["data"]["alerts"]
                  if a["state"] == "firing" and a["labels"]["alertname"] != "DevLakeBlueprintFailed"]
        assert others == []

        # SIGTERM reaches the exporter (as Docker's stop does with the exec-form entrypoint).
        assert stop_process(monitor) == 0
    finally:
        stop_process(prometheus)
        stop_process(monitor)
        fake.stop()
        monitor_log.close()
        prom_log.close()
