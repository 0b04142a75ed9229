"""The image and the real docker-compose.yml in a real container engine (podman via its Docker API).

Skipped where podman cannot run as root; required under CI (`CI=true`: a setup failure fails).
Slow (minutes on a fresh machine, images cached afterwards): `make test-containers` runs only this.
What it proves, and the stand-ins it uses, are in docs/operations.md ("What the container test proves").
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import pytest
import requests

from tests.deploy.containers import PROJECT_IMAGE, ROOT, Engine, EngineUnavailable, run

HARDENED = ["--read-only", "--tmpfs", "/tmp", "--user", "10001:10001", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges"]
PROJECT = "devlake-ctest"
SERVICES = ["devlake", "devlake-monitor", "devlake-automation", "prometheus", "alertmanager"]

# Only images are swapped, plus what the test needs to observe: the fake DevLake replaces apache/devlake
# (compose's `!reset` drops its database wiring).
OVERRIDE = """
services:
  devlake:
    image: {image}
    profiles: !reset []
    environment: !reset {{}}
    depends_on: !reset {{}}
    command: ["-m", "sandbox", "--host", "0.0.0.0", "--port", "8080", "--auto-run-seconds", "2"]
    volumes: !override
      - {sandbox}:/app/sandbox:ro
    healthcheck:
      test: ["CMD-SHELL", "python -c \\"import urllib.request as u; u.urlopen('http://127.0.0.1:8080/ping')\\""]
"""
@pytest.fixture(scope="module")
def engine():
    try:
        engine = Engine.setup()
        engine.ensure_images()
        engine.build_project()
    except (EngineUnavailable, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        detail = getattr(exc, "stderr", "") or ""
        if os.environ.get("CI"):
            pytest.fail(f"container engine not usable under CI: {exc} {str(detail)[-2000:]}")
        pytest.skip(f"no usable container engine: {exc}")
    return engine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_image_runs_as_compose_runs_it(engine):
    volume = "devlake-ctest-state"
    if run("podman", "volume", "exists", volume, check=False).returncode != 0:
        run("podman", "volume", "create", volume)
    try:
        base = ["podman", "run", "--rm", *HARDENED, "-v", f"{volume}:/var/lib/devlake-automation", PROJECT_IMAGE]
        helped = run(*base, "manage_projects.py", "--help")
        assert "--once" in helped.stdout and "DEVLAKE_URL" in helped.stdout
        from modules.version import version
        assert run(*base, "manage_projects.py", "--version").stdout.strip().endswith(version())
        assert run(*base, "blueprint_monitor.py", "--version").stdout.strip().endswith(version())
        missing = run(*base, "blueprint_monitor.py", "--once", check=False)
        assert missing.returncode == 2 and "DEVLAKE_URL" in missing.stderr and "Traceback" not in missing.stderr
        # the non-root user writes the state volume on a read-only root filesystem
        wrote = run(*base, "-c", "import pathlib; p = pathlib.Path('/var/lib/devlake-automation/probe');"
                                 "p.write_text('x'); print(p.read_text())")
        assert wrote.stdout.strip() == "x"
        inspect = json.loads(run("podman", "image", "inspect", PROJECT_IMAGE).stdout)[0]
        assert inspect["Config"]["User"] == "10001:10001"
        assert inspect["Config"]["Labels"]["org.opencontainers.image.version"] == version()
        assert inspect.get("Healthcheck") or inspect["Config"].get("Healthcheck")  # kept: --format docker
    finally:
        run("podman", "volume", "rm", "-f", volume, check=False)


@pytest.fixture(scope="module")
def stack(engine, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compose")
    ports = {name: free_port() for name in ("monitor", "prometheus", "alertmanager", "devlake")}
    path = tmp / "compose.test.yml"
    path.write_text(OVERRIDE.format(image=PROJECT_IMAGE, sandbox=ROOT / "sandbox"))
    env = {"DEVLAKE_URL": "http://devlake:8080", "GRAFANA_ADMIN_PASSWORD": "unused-in-this-test",
           "AUTOMATION_IMAGE": PROJECT_IMAGE, "POLL_INTERVAL_SECONDS": "5", "COMPOSE_PROJECT_NAME": PROJECT,
           "MONITOR_BIND_ADDR": "127.0.0.1", "MONITOR_HOST_PORT": str(ports["monitor"]),
           "PROMETHEUS_HOST_PORT": str(ports["prometheus"]), "ALERTMANAGER_HOST_PORT": str(ports["alertmanager"]),
           "DEVLAKE_HOST_PORT": str(ports["devlake"]), "LOG_FORMAT": "json", "TIMEZONE": "Asia/Ho_Chi_Minh"}

    def compose(*args, **kw):
        return engine.compose(*args, project_dir=ROOT, files=[ROOT / "docker-compose.yml", path], env=env, **kw)

    compose("down", "-v", "--remove-orphans", check=False)
    compose("up", "-d", "--no-build", "--pull", "never", *SERVICES, timeout=600)
    try:
        yield compose, ports
    finally:
        logs = compose("logs", "--no-color", check=False).stdout
        (ROOT / "tests" / "artifacts").mkdir(exist_ok=True)
        (ROOT / "tests" / "artifacts" / "compose-logs.txt").write_text(logs)
        compose("down", "-v", "--remove-orphans", check=False, timeout=300)


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (requests.RequestException, subprocess.CalledProcessError, ValueError, KeyError) as exc:
            last = exc
        time.sleep(2)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def healthy(container: str) -> bool:
    return run("podman", "healthcheck", "run", container, check=False).returncode == 0


def prom_query(ports, query: str) -> list:
    answer = requests.get(f"http://127.0.0.1:{ports['prometheus']}/api/v1/query", params={"query": query}, timeout=5)
    return answer.json()["data"]["result"]


def test_the_compose_stack_end_to_end(stack):
    compose, ports = stack
    containers = {"devlake", "devlake-monitor", "devlake-automation", "devlake-prometheus", "devlake-alertmanager"}
    for name in sorted(containers):  # no systemd here: podman runs no healthcheck by itself
        wait_for(lambda name=name: healthy(name), 180, f"{name} healthy")
    # Prometheus reaches the monitor by service name
    wait_for(lambda: any(r["value"][1] == "1" for r in prom_query(ports, 'up{job="devlake-monitor"}')), 120,
             "Prometheus scraping devlake-monitor:9100")
    # one cycle of the automation in a one-off container: projects in the fake, and the monitor shows it
    once = compose("run", "--rm", "--no-deps", "devlake-automation", "manage_projects.py", "--once", timeout=300)
    assert once.returncode == 0
    projects = requests.get(f"http://127.0.0.1:{ports['devlake']}/projects?pageSize=100", timeout=5).json()
    assert projects["count"] > 0
    wait_for(lambda: b"devlake_automation_" in requests.get(
        f"http://127.0.0.1:{ports['monitor']}/metrics", timeout=5).content, 120, "devlake_automation_* metrics")
    # a failed pipeline (the fake fails its *flaky* projects) reaches Prometheus, which is wired to Alertmanager
    wait_for(lambda: prom_query(ports, "devlake_blueprint_failure_total"), 180, "failures in Prometheus")
    managers = requests.get(f"http://127.0.0.1:{ports['prometheus']}/api/v1/alertmanagers", timeout=5).json()
    assert [m["url"] for m in managers["data"]["activeAlertmanagers"]] == ["http://alertmanager:9093/api/v2/alerts"]
    assert requests.get(f"http://127.0.0.1:{ports['alertmanager']}/api/v2/status", timeout=5).json()["config"]
    # docker compose logs: one JSON object per line from both daemons
    for service in ("devlake-monitor", "devlake-automation"):
        lines = [line for line in compose("logs", "--no-color", "--no-log-prefix", service).stdout.splitlines()
                 if line.strip()]
        assert lines and all(isinstance(json.loads(line), dict) for line in lines), service
    # a restart keeps every counter (state on the volume)
    before = counters(ports)
    assert before
    compose("restart", "devlake-monitor")
    wait_for(lambda: healthy("devlake-monitor"), 120, "devlake-monitor healthy after restart")
    after = counters(ports)
    assert all(after.get(k, 0) >= v for k, v in before.items()), (before, after)
    # a stop is clean: exit 0 within stop_grace_period
    compose("stop", "devlake-monitor", "devlake-automation", timeout=120)
    for name in ("devlake-monitor", "devlake-automation"):
        state = json.loads(run("podman", "inspect", name).stdout)[0]["State"]
        assert state["ExitCode"] == 0, (name, state)


def counters(ports) -> dict[str, float]:
    text = requests.get(f"http://127.0.0.1:{ports['monitor']}/metrics", timeout=5).text
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith("devlake_project_failures_total{")}


def test_down_leaves_nothing_running(stack):
    compose, _ = stack
    compose("down", "-v", "--remove-orphans", timeout=300)
    left = run("podman", "ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}", "-q").stdout
    assert left.strip() == ""
