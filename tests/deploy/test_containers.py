"""The image and the real docker-compose.yml in a real container engine (podman via its Docker API).

Skipped where podman cannot run as root; required under CI (`CI=true`: a setup failure fails).
Slow (minutes on a fresh machine, images cached afterwards): `make test-containers` runs only this.
What it proves, and the stand-ins it uses, are in docs/operations.md ("What the container test proves").
"""
from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest
import requests

from tests.deploy.containers import (
    BASE_IMAGE,
    PROJECT_IMAGE,
    ROOT,
    Engine,
    EngineUnavailable,
    alertmanager_config_for_test,
    machine_lock,
    run,
)
from tests.deploy.deploy_support import in_ci

HARDENED = ["--read-only", "--tmpfs", "/tmp", "--user", "10001:10001", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges"]
PROJECT = "devlake-ctest"
ARTIFACTS = ROOT / "tests" / "artifacts"
SERVICES = ["devlake", "webhook", "devlake-monitor", "devlake-automation", "prometheus", "alertmanager"]
CONTAINERS = ["devlake", "devlake-ctest-webhook", "devlake-monitor", "devlake-automation", "devlake-prometheus",
              "devlake-alertmanager"]
FLAKY = "github/flaky-integration-tests"  # sandbox/sample.py: the fake fails every pipeline of a *flaky* project

# Only what the test must change: the stand-in images come in by tag; the fake DevLake replaces
# apache/devlake (compose's `!reset` drops its database wiring); Alertmanager reads a copy of the
# shipped config whose receivers point at the test's webhook receiver, a service on the compose network.
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
  webhook:
    image: {image}
    container_name: devlake-ctest-webhook
    read_only: true
    user: "10001:10001"
    command: ["/opt/webhook_receiver.py", "8080"]
    volumes:
      - {receiver}:/opt/webhook_receiver.py:ro
    ports:
      - "127.0.0.1:{webhook_port}:8080"
    healthcheck:
      test: ["CMD-SHELL", "python -c \\"import urllib.request as u; u.urlopen('http://127.0.0.1:8080/ping')\\""]
  alertmanager:
    volumes: !override
      - {alertmanager_config}:/etc/alertmanager/alertmanager.yml:ro
      - alertmanager-data:/alertmanager
"""
TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def one_at_a_time():
    with machine_lock():
        yield


@pytest.fixture(scope="module")
def engine(one_at_a_time):
    started = time.monotonic()
    try:
        engine = Engine.setup()
        engine.ensure_images()
        TIMES["images_seconds"] = time.monotonic() - started
        engine.build_project()
        TIMES["setup_seconds"] = time.monotonic() - started
    except (EngineUnavailable, OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        detail = getattr(exc, "stderr", "") or ""
        if in_ci():
            pytest.fail(f"container engine not usable under CI: {exc} {str(detail)[-2000:]}")
        pytest.skip(f"no usable container engine: {exc}")
    yield engine
    ARTIFACTS.mkdir(exist_ok=True)
    TIMES["total_seconds"] = time.monotonic() - started
    sizes = {tag: json.loads(run("podman", "image", "inspect", tag).stdout)[0]["Size"]
             for tag in (BASE_IMAGE, PROJECT_IMAGE)}
    (ARTIFACTS / "container-test.json").write_text(json.dumps({"times": TIMES, "image_bytes": sizes}, indent=2))


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
    ports = {name: free_port() for name in ("monitor", "prometheus", "alertmanager", "devlake", "webhook")}
    alertmanager_config = tmp / "alertmanager.yml"
    alertmanager_config.write_text(alertmanager_config_for_test(
        (ROOT / "alertmanager" / "alertmanager.yml").read_text(), "http://webhook:8080"))
    alertmanager_config.chmod(0o644)  # Alertmanager runs as nobody
    path = tmp / "compose.test.yml"
    path.write_text(OVERRIDE.format(image=PROJECT_IMAGE, sandbox=ROOT / "sandbox", webhook_port=ports["webhook"],
                                    receiver=ROOT / "tests" / "deploy" / "webhook_receiver.py",
                                    alertmanager_config=alertmanager_config))
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
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "compose-logs.txt").write_text(logs)
        compose("down", "-v", "--remove-orphans", check=False, timeout=300)


def wait_for(check, timeout: float, what: str, every: float = 2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (requests.RequestException, subprocess.CalledProcessError, ValueError, KeyError) as exc:
            last = exc
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def healthy(container: str) -> bool:
    return run("podman", "healthcheck", "run", container, check=False).returncode == 0


def prom_query(ports, query: str) -> list:
    answer = requests.get(f"http://127.0.0.1:{ports['prometheus']}/api/v1/query", params={"query": query}, timeout=5)
    return answer.json()["data"]["result"]


def prom_value(ports, query: str) -> float | None:
    result = prom_query(ports, query)
    return float(result[0]["value"][1]) if result else None


def fail_flaky_pipeline(ports, blueprint_id: int) -> None:
    """Trigger the flaky project's blueprint in the fake (refused while one of its pipelines is
    pending, as DevLake does) and wait until that pipeline has failed."""
    devlake = f"http://127.0.0.1:{ports['devlake']}"
    pipeline = wait_for(lambda: requests.post(f"{devlake}/blueprints/{blueprint_id}/trigger", json={},
                                              timeout=5).json().get("id"), 60, "the fake accepting a trigger")
    wait_for(lambda: requests.get(f"{devlake}/pipelines/{pipeline}", timeout=5).json()["status"] == "TASK_FAILED",
             60, f"pipeline {pipeline} failed")


def delivered(ports, alertname: str, project: str) -> list[dict]:
    """Notifications the webhook received that carry the alert `alertname` for `project`, firing."""
    received = requests.get(f"http://127.0.0.1:{ports['webhook']}/received", timeout=5).json()
    return [note for note in received if any(
        alert["labels"].get("alertname") == alertname and alert["labels"].get("project_name") == project
        and alert["status"] == "firing" for alert in note["body"]["alerts"])]


def test_the_compose_stack_end_to_end(engine, stack):
    compose, ports = stack
    started = time.monotonic()
    for name in CONTAINERS:  # no systemd here: podman runs no healthcheck by itself
        wait_for(lambda name=name: healthy(name), 180, f"{name} healthy")
    TIMES["stack_healthy_seconds"] = time.monotonic() - started
    # Prometheus reaches the monitor by service name, and knows the compose network's Alertmanager
    wait_for(lambda: prom_value(ports, 'up{job="devlake-monitor"}') == 1, 120,
             "Prometheus scraping devlake-monitor:9100")
    managers = requests.get(f"http://127.0.0.1:{ports['prometheus']}/api/v1/alertmanagers", timeout=5).json()
    assert [m["url"] for m in managers["data"]["activeAlertmanagers"]] == ["http://alertmanager:9093/api/v2/alerts"]

    # one cycle of the automation in a one-off container: projects in the fake, and the monitor shows it
    compose("run", "--rm", "--no-deps", "devlake-automation", "manage_projects.py", "--once", timeout=300)
    devlake = f"http://127.0.0.1:{ports['devlake']}"
    blueprints = requests.get(f"{devlake}/blueprints?pageSize=500", timeout=5).json()["blueprints"]
    flaky = next(bp for bp in blueprints if bp["projectName"] == FLAKY)
    wait_for(lambda: b"devlake_automation_last_run_timestamp_seconds" in requests.get(
        f"http://127.0.0.1:{ports['monitor']}/metrics", timeout=5).content, 60, "devlake_automation_* metrics")
    # the sample's hand-made project failed two hours ago: the per-failure series reaches Prometheus
    wait_for(lambda: prom_query(ports, "devlake_blueprint_failure_total"), 120, "failures in Prometheus")
    TIMES["automation_seconds"] = time.monotonic() - started

    # A failure after Prometheus has seen the project's counter, so increase() sees it grow:
    # the alert fires, Alertmanager routes it (the shipped route tree) and the webhook gets it.
    failures = f'devlake_project_failures_total{{project_name="{FLAKY}"}}'
    fail_flaky_pipeline(ports, flaky["id"])
    seen = wait_for(lambda: prom_value(ports, failures), 120, f"{failures} in Prometheus")
    fail_flaky_pipeline(ports, flaky["id"])
    wait_for(lambda: (prom_value(ports, failures) or 0) > seen, 120, f"{failures} above {seen}")
    notes = wait_for(lambda: delivered(ports, "DevLakeBlueprintFailed", FLAKY), 180,
                     "DevLakeBlueprintFailed delivered to the webhook")
    assert all(note["path"] == "/" + note["body"]["receiver"] for note in notes)
    TIMES["alert_delivered_seconds"] = time.monotonic() - started

    # docker compose logs: one JSON object per line from both daemons
    for service in ("devlake-monitor", "devlake-automation"):
        lines = [line for line in compose("logs", "--no-color", "--no-log-prefix", service).stdout.splitlines()
                 if line.strip()]
        assert lines and all(isinstance(json.loads(line), dict) for line in lines), service

    # a restart keeps every counter (state on the volume)
    before = counters(ports)
    for name in ("devlake_project_failures_total{", "devlake_project_runs_total{", "devlake_blueprint_failure_total{",
                 "devlake_pipeline_failures_by_reason_total{"):
        assert any(series.startswith(name) and value > 0 for series, value in before.items()), (name, before)
    compose("restart", "devlake-monitor")
    wait_for(lambda: healthy("devlake-monitor"), 120, "devlake-monitor healthy after restart")
    after = counters(ports)
    lost = {k: (v, after.get(k)) for k, v in before.items() if after.get(k, 0) < v}
    assert not lost, lost

    # a stop is clean: SIGTERM, exit 0 before stop_grace_period would have killed the daemon
    stopping = time.monotonic()
    compose("stop", timeout=120)
    assert time.monotonic() - stopping < 20  # docker-compose.yml: stop_grace_period: 20s
    for name in ("devlake-monitor", "devlake-automation"):
        state = json.loads(run("podman", "inspect", name).stdout)[0]["State"]
        assert state["ExitCode"] == 0, (name, state)

    # down -v leaves nothing behind: no container, no volume, no network of the project
    compose("down", "-v", "--remove-orphans", timeout=300)
    label = f"label=com.docker.compose.project={PROJECT}"
    assert run("podman", "ps", "-a", "--filter", label, "-q").stdout.strip() == ""
    assert run("podman", "volume", "ls", "--filter", label, "-q").stdout.strip() == ""
    assert run("podman", "network", "ls", "--filter", label, "-q").stdout.strip() == ""
    TIMES["stack_seconds"] = time.monotonic() - started


def counters(ports) -> dict[str, float]:
    """Every counter of DevLake's pipelines the monitor exposes (failures, runs, by reason), which its
    state file keeps; its own process counters (devlake_monitor_*: polls, notifications) start anew."""
    text = requests.get(f"http://127.0.0.1:{ports['monitor']}/metrics", timeout=5).text
    names = {line.split()[2] for line in text.splitlines()
             if line.startswith("# TYPE devlake_") and line.split()[3] == "counter"
             and not line.split()[2].startswith("devlake_monitor_")}
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            if series.split("{")[0].removesuffix("_total") in names or series.split("{")[0] in names:
                samples[series] = float(value)
    return samples
