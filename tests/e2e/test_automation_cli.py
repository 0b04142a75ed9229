"""The automation entry point as operators run it: a real subprocess against the fake DevLake."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox.fake_devlake import FakeDevLake

ROOT = Path(__file__).resolve().parents[2]
KEY = "k3y-that-must-never-be-logged"


@pytest.fixture
def fake():
    with FakeDevLake(api_key=KEY) as server:
        cid = server.add_connection("gitlab", "gl")
        server.add_remote_group("gitlab", cid, "10", "platform")
        server.add_remote_group("gitlab", cid, "11", "platform/backend", parent_id="10")
        server.add_remote_scope("gitlab", cid, "api", parent_id="11", full_name="platform/backend/api")
        server.add_remote_scope("gitlab", cid, "web", parent_id="10", full_name="platform/web")
        yield server


def cli(*args, env=None, timeout=60):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DEVLAKE_", "PLUGINS", "STATE_DIR"))}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "manage_projects.py", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def env_for(fake, tmp_path, **extra):
    return {"DEVLAKE_URL": fake.url, "DEVLAKE_API_KEY": KEY, "STATE_DIR": str(tmp_path),
            "DEVLAKE_RETRY_BACKOFF_SECONDS": "0", **extra}


def log_events(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_once_runs_a_cycle_logs_json_and_never_the_key(fake, tmp_path):
    proc = cli("--once", env=env_for(fake, tmp_path))
    assert proc.returncode == 0, proc.stderr
    events = log_events(proc.stderr)
    summary = [e for e in events if e["event"] == "run_completed"]
    assert len(summary) == 1 and summary[0]["created"] >= 4 and summary[0]["failed"] == 0
    assert summary[0]["timestamp"].endswith("+07:00")
    assert KEY not in proc.stderr + proc.stdout
    assert sorted(p for p in fake.projects) == ["gitlab/api", "gitlab/web"]
    last = json.loads((tmp_path / "automation_last_run.json").read_text())
    assert last["outcome"] == "success" and last["exit_code"] == 0


def test_dry_run_prints_the_plan_and_writes_nothing(fake, tmp_path):
    proc = cli("--once", "--dry-run", env=env_for(fake, tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert fake.mutating_count() == 0 and not fake.projects
    assert "gitlab/api" in proc.stdout and "gitlab/web" in proc.stdout
    assert "scope configs (1):" in proc.stdout and "nothing was written" in proc.stdout


def test_unreachable_devlake_exits_2(tmp_path):
    proc = cli("--once", env={"DEVLAKE_URL": "http://127.0.0.1:9", "STATE_DIR": str(tmp_path),
                              "DEVLAKE_HTTP_RETRIES": "0"})
    assert proc.returncode == 2
    assert any(e["event"] == "devlake_unusable" for e in log_events(proc.stderr))


def test_rejected_key_exits_2_without_echoing_it(fake, tmp_path):
    proc = cli("--once", env=env_for(fake, tmp_path, DEVLAKE_API_KEY="wrong-key-value"))
    assert proc.returncode == 2
    assert "wrong-key-value" not in proc.stderr + proc.stdout


def test_missing_url_exits_2_with_one_message_and_no_traceback():
    proc = cli("--once", env={"MAX_RERUNS": "many"})
    assert proc.returncode == 2
    assert "DEVLAKE_URL is required" in proc.stderr and "MAX_RERUNS" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_auth_enabled_without_api_key_says_to_create_one(fake, tmp_path):
    fake.require_auth = True  # DevLake with AUTH_ENABLED=true (apache/incubator-devlake#8878)
    env = {"DEVLAKE_URL": fake.url, "STATE_DIR": str(tmp_path), "DEVLAKE_RETRY_BACKOFF_SECONDS": "0"}
    proc = cli("--once", env=env)
    assert proc.returncode == 2
    unusable = next(e for e in log_events(proc.stderr) if e["event"] == "devlake_unusable")
    assert "create an API key in DevLake's UI" in unusable["hint"] and "DEVLAKE_API_KEY" in unusable["hint"]
    proc = cli("--doctor", env=env)
    assert proc.returncode == 2 and "set DEVLAKE_API_KEY" in proc.stdout


def test_the_auth_gates_401_is_not_blamed_on_the_key(fake, tmp_path):
    fake.require_auth = True
    fake.emulate_rest_auth_gate_bug()  # DevLake main: the gate drops the user the key check stored
    proc = cli("--once", env=env_for(fake, tmp_path))
    assert proc.returncode == 2
    unusable = next(e for e in log_events(proc.stderr) if e["event"] == "devlake_unusable")
    assert "auth gate (AUTH_ENABLED=true)" in unusable["hint"] and "AUTH_ENABLED=false" in unusable["hint"]
    assert "rejected DEVLAKE_API_KEY" not in unusable["hint"]
    assert KEY not in proc.stdout + proc.stderr
    proc = cli("--doctor", env=env_for(fake, tmp_path))
    assert proc.returncode == 2 and "AUTH_ENABLED=false" in proc.stdout and KEY not in proc.stdout
    fake.emulate_rest_auth_gate_bug(False)  # a wrong key is still the key's fault
    proc = cli("--once", env=env_for(fake, tmp_path, DEVLAKE_API_KEY="wrong"))
    unusable = next(e for e in log_events(proc.stderr) if e["event"] == "devlake_unusable")
    assert proc.returncode == 2 and "rejected DEVLAKE_API_KEY" in unusable["hint"]


def test_doctor_reports_each_connection(fake, tmp_path):
    proc = cli("--doctor", env=env_for(fake, tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "credentials accepted" in proc.stdout and "remote-scopes answered" in proc.stdout
    fake.inject("GET", r"/remote-scopes", status=500, times=-1)
    proc = cli("--doctor", env=env_for(fake, tmp_path, DEVLAKE_HTTP_RETRIES="0"))
    assert proc.returncode == 2 and "FAIL" in proc.stdout


def test_doctor_runs_devlakes_connection_test(tmp_path):
    from config import load_settings
    from modules.client import build_client
    from modules.doctor import run_doctor

    with FakeDevLake() as lake:
        gh = lake.add_connection("github", "gh", token="ghp_revoked0123")
        ci = lake.add_connection("circleci", "ci")
        lake.fail_connection_test("github", gh, 401, "StatusUnauthorized error when testing connection")
        settings = load_settings({"DEVLAKE_URL": lake.url, "STATE_DIR": str(tmp_path)})
        code, checks = run_doctor(settings, build_client(settings))
        tests = [r for r in lake.requests if r.path.endswith("/test")]
    report = "\n".join(c.render() for c in checks)
    assert code == 2, report
    assert (f"[FAIL] plugin github connection {gh} ('gh'): credentials test failed: "
            "token 1 of 1: StatusUnauthorized error when testing connection") in report
    assert f"[ ok ] plugin circleci connection {ci} ('ci'): credentials test passed" in report
    assert len(tests) == 2 and "ghp_" not in report


def test_help_explains_modes_and_variables():
    proc = cli("--help")
    assert proc.returncode == 0
    for word in ("--once", "--dry-run", "--doctor", "DEVLAKE_URL", "DAILY_RUN_TIME", "Exit codes"):
        assert word in proc.stdout


@pytest.mark.parametrize("daemon", ["automation", "monitor"])
def test_help_names_every_variable_the_daemon_reads(capsys, daemon):
    import blueprint_monitor
    import manage_projects
    from config import Settings
    from utils.env_values import declared

    read = {var.env for _, var in declared(Settings) if var.used_by in ("both", daemon)}
    assert {"DEVLAKE_URL", "COLLECTION_WINDOW", "MAX_PENDING_PIPELINES"} <= read or daemon == "monitor"
    main = manage_projects.main if daemon == "automation" else blueprint_monitor.main
    with pytest.raises(SystemExit):
        main(["--help"], {})
    text = capsys.readouterr().out
    assert sorted(name for name in read if name not in text) == []
    assert "0.1–600 seconds" in text and "[default 30;" in text  # DEVLAKE_TIMEOUT_SECONDS' default and bounds


def test_daemon_logs_next_run_and_stops_on_sigterm(fake, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVLAKE_")}
    env.update(env_for(fake, tmp_path, DAILY_RUN_TIME="03:00"))
    proc = subprocess.Popen([sys.executable, "manage_projects.py"], cwd=ROOT, env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        started = json.loads(proc.stderr.readline())
        assert started["event"] == "automation_started" and started["mode"] == "daemon"
        assert started["config"]["api_key"] == "***" and started["config"]["retry_failed_times"] == 3
        first = json.loads(proc.stderr.readline())
        assert first["event"] == "daemon_started" and first["next_run"].endswith("+07:00")
        assert "T03:00:00" in first["next_run"]
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - started < 10
        assert (tmp_path / "automation_heartbeat").exists()
        health = cli("--healthcheck", env=env_for(fake, tmp_path))
        assert health.returncode == 0
    finally:
        proc.kill()


def test_doctor_reports_devlakes_listing_limits(tmp_path):
    from config import load_settings
    from modules.client import build_client
    from modules.doctor import run_doctor

    with FakeDevLake() as lake:
        lake.add_connection("bitbucket", "bb")
        lake.add_connection("circleci", "ci")
        lake.add_connection("github", "gh")
        settings = load_settings({"DEVLAKE_URL": lake.url, "STATE_DIR": str(tmp_path)})
        code, checks = run_doctor(settings, build_client(settings))
    report = "\n".join(c.render() for c in checks)
    assert code == 0, report
    assert "100 repositories per Bitbucket workspace" in report
    assert "CircleCI projects the token's user follows" in report
    assert "plugin github: note" not in report  # github lists everything
