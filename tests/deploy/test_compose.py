"""docker-compose.yml: the Compose specification's JSON schema, `docker compose config`, and what operators rely on."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import jsonschema
import pytest
from deploy_support import DEPLOY_TESTS, ROOT, compose_command, load_yaml, run

from config import load_settings, setting_names
from modules.monitoring.notifications import PATH as NOTIFICATIONS_PATH

COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
# Vendored from github.com/compose-spec/compose-spec (schema/compose-spec.json,
# Apache-2.0); see tests/deploy/compose-spec.NOTICE.md and compose-spec.LICENSE.
SCHEMA = DEPLOY_TESTS / "compose-spec.json"
DAEMONS = ("devlake-automation", "devlake-monitor")
STATE_MOUNT = "/var/lib/devlake-automation"
# Settings that compose pins on purpose instead of passing them through.
FIXED_BY_IMAGE = {"STATE_DIR", "METRICS_ADDR", "METRICS_PORT"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml(COMPOSE)


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: not NAME=value: {line!r}"
            values[name.strip()] = value
    return values


def config_variables() -> set[str]:
    """Every environment variable config.py reads."""
    return set(setting_names())


def compose_variables() -> set[str]:
    text = COMPOSE.read_text(encoding="utf-8")
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))


# --- schema ------------------------------------------------------------------------------------

def test_schema_is_the_vendored_compose_spec():
    schema = json.loads(SCHEMA.read_text())
    assert schema["title"] == "Compose Specification"
    jsonschema.Draft7Validator.check_schema(schema)


def test_compose_file_validates_against_the_compose_spec(compose):
    schema = json.loads(SCHEMA.read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_schema_validation_catches_mistakes(compose):
    """The validator is live: a typo'd key and a bad restart value are rejected."""
    schema = json.loads(SCHEMA.read_text())
    broken = json.loads(json.dumps(compose))
    broken["services"]["devlake-monitor"]["restart_policy"] = "always"
    broken["services"]["prometheus"]["ports"] = "9090:9090"
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(broken))
    assert len(errors) >= 2


# --- docker compose config (the real Compose CLI, no engine needed) ----------------------------------

def _compose_env() -> dict[str, str]:
    """The test's environment without any variable of ours: shell values would beat --env-file."""
    return {k: v for k, v in os.environ.items() if k not in env_example()}


def _env_file(tmp_path: Path, **overrides) -> Path:
    values = env_example()
    values.update(overrides)
    path = tmp_path / "test.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


@pytest.mark.parametrize("profile", [None, "devlake"])
def test_docker_compose_config_accepts_the_example_env(tmp_path, profile):
    cmd = compose_command()
    env_file = _env_file(tmp_path, GRAFANA_ADMIN_PASSWORD="test-only", ENCRYPTION_SECRET="X" * 128,
                         DEVLAKE_DB_PASSWORD="p", DEVLAKE_DB_ROOT_PASSWORD="r")
    args = ["--project-directory", str(ROOT), "-f", str(COMPOSE), "--env-file", str(env_file)]
    if profile:
        args += ["--profile", profile]
    result = run(cmd + args + ["config", "--format", "json"], cwd=tmp_path, env=_compose_env())
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)
    expected = {"devlake-automation", "devlake-monitor", "prometheus", "alertmanager", "grafana"}
    if profile:
        expected |= {"devlake", "devlake-config-ui", "devlake-mysql"}
    assert set(model["services"]) == expected
    monitor = model["services"]["devlake-monitor"]
    assert monitor["environment"]["DEVLAKE_URL"] == "http://devlake:8080"
    assert [p["target"] for p in monitor["ports"]] == [9100]


@pytest.mark.parametrize("missing", ["DEVLAKE_URL", "GRAFANA_ADMIN_PASSWORD"])
def test_docker_compose_refuses_to_start_without_required_settings(tmp_path, missing):
    env_file = _env_file(tmp_path, **{"GRAFANA_ADMIN_PASSWORD": "test-only", missing: ""})
    result = run(compose_command() + ["--project-directory", str(ROOT), "-f", str(COMPOSE),
                                      "--env-file", str(env_file), "config", "-q"],
                 cwd=tmp_path, env=_compose_env())
    assert result.returncode != 0
    assert missing in result.stderr


# --- what the stack promises ---------------------------------------------------------------

def test_services_and_profiles(compose):
    services = compose["services"]
    default = {n for n, s in services.items() if not s.get("profiles")}
    assert default == {"devlake-automation", "devlake-monitor", "prometheus", "alertmanager", "grafana"}
    optional = {n for n, s in services.items() if s.get("profiles")}
    assert optional == {"devlake", "devlake-config-ui", "devlake-mysql"}
    assert all(services[n]["profiles"] == ["devlake"] for n in optional)
    assert services["devlake"]["image"].startswith("apache/devlake:")
    assert services["devlake-config-ui"]["image"].startswith("apache/devlake-config-ui:")
    assert services["devlake-mysql"]["image"].startswith("mysql:8")
    # DevLake's own compose: DB_URL to MySQL with utf8mb4/parseTime, ENCRYPTION_SECRET, config-ui -> backend.
    env = services["devlake"]["environment"]
    assert "@devlake-mysql:3306/lake?charset=utf8mb4&parseTime=True&loc=UTC" in env["DB_URL"]
    assert env["ENCRYPTION_SECRET"].startswith("${ENCRYPTION_SECRET")
    assert services["devlake-config-ui"]["environment"]["DEVLAKE_ENDPOINT"] == "devlake:8080"


def test_default_services_never_depend_on_the_optional_profile(compose):
    services = compose["services"]
    for name, service in services.items():
        if not service.get("profiles"):
            for dep in service.get("depends_on", {}):
                assert not services[dep].get("profiles"), f"{name} depends on optional {dep}"


def test_images_are_pinned(compose):
    for name, service in compose["services"].items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: pin {image}"
    prometheus_tag = compose["services"]["prometheus"]["image"].split(":")[1]
    assert re.fullmatch(r"v2\.\d+\.\d+", prometheus_tag)
    major, minor, _ = map(int, compose["services"]["grafana"]["image"].split(":")[1].split("."))
    assert (major, minor) >= (9, 1), "file-provisioned alerting needs Grafana 9.1+"


def test_every_service_restarts_rotates_logs_and_is_health_checked(compose):
    for name, service in compose["services"].items():
        assert service.get("restart") in ("unless-stopped", "always"), name
        logging = service.get("logging", {})
        assert logging.get("driver") == "json-file", f"{name}: `docker logs` needs json-file or local"
        assert {"max-size", "max-file"} <= set(logging.get("options", {})), f"{name}: rotate logs"
        if name == "devlake-monitor":
            assert "healthcheck" not in service, "the image's HEALTHCHECK (/healthz) applies"
        elif name != "devlake-config-ui":
            assert service["healthcheck"]["test"], name


def test_daemons_share_the_state_volume_and_run_the_right_command(compose):
    services = compose["services"]
    for name in DAEMONS:
        service = services[name]
        assert service["container_name"] == name, "README's `docker logs <name>` relies on it"
        assert f"automation-state:{STATE_MOUNT}" in service["volumes"]
        assert service.get("build"), "built from this repository's Dockerfile"
        assert service["init"] is True and service["read_only"] is True
    assert services["devlake-automation"]["command"] == ["manage_projects.py"]
    assert services["devlake-monitor"]["command"] == ["blueprint_monitor.py"]
    assert services["devlake-automation"]["healthcheck"]["test"] == [
        "CMD", "python", "manage_projects.py", "--healthcheck"]
    assert services["devlake-monitor"]["ports"][0].endswith(":9100")
    assert set(compose["volumes"]) >= {"automation-state", "prometheus-data", "grafana-data"}


def test_devlake_notifies_the_monitor_with_the_shared_secret(compose):
    services = compose["services"]
    assert services["devlake-monitor"]["environment"]["NOTIFICATION_SECRET"] == "${NOTIFICATION_SECRET:-}"
    devlake = services["devlake"]["environment"]
    assert devlake["NOTIFICATION_SECRET"] == "${NOTIFICATION_SECRET:-}"
    # the container port (not the host port) on the compose network, at the receiver's path
    assert devlake["NOTIFICATION_ENDPOINT"] == f"http://devlake-monitor:9100{NOTIFICATIONS_PATH}"
    assert services["devlake-monitor"]["ports"][0].endswith(":9100")


def test_prometheus_and_grafana_mount_our_files(compose):
    prom = compose["services"]["prometheus"]
    assert "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prom["volumes"]
    assert "./prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in prom["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    graf = compose["services"]["grafana"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in graf["volumes"]
    assert "./grafana/dashboards:/etc/grafana/dashboards:ro" in graf["volumes"]
    home = graf["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / "grafana" / "dashboards" / Path(home).name).is_file()
    for source in ("./prometheus/prometheus.yml", "./prometheus/alerts.yml", "./grafana/provisioning",
                   "./grafana/dashboards"):
        assert (ROOT / source).exists(), source


def test_no_secret_values_in_the_compose_file(compose):
    secret = re.compile(r"(PASSWORD|PASS|SECRET|API_KEY|TOKEN)$")

    def walk(node, where):
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and secret.search(key) and isinstance(value, str):
                    assert value.startswith("${") or value == "", f"{where}/{key}: secrets come from .env"
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")
    walk(compose, "")


def test_daemon_environment_names_are_real_settings(compose):
    known = config_variables()
    for name in DAEMONS:
        passed = set(compose["services"][name]["environment"])
        assert passed <= known, f"{name}: unknown settings {passed - known}"
        assert not passed & FIXED_BY_IMAGE
        assert "DEVLAKE_URL" in passed and "DEVLAKE_API_KEY" in passed
        assert "PLUGINS" in passed  # the monitor checks the connections of the same plugins


def test_env_example_documents_every_variable():
    documented = set(env_example())
    missing = compose_variables() - documented
    assert not missing, f".env.example lacks {sorted(missing)}"
    unused = documented - compose_variables()
    assert not unused, f".env.example sets variables docker-compose.yml never uses: {sorted(unused)}"
    settings = config_variables() - FIXED_BY_IMAGE
    assert settings <= documented, f".env.example lacks settings {sorted(settings - documented)}"
    text = ENV_EXAMPLE.read_text()
    assert "STATE_DIR" in text


def test_env_example_holds_no_secret_values():
    for name, value in env_example().items():
        if re.search(r"(PASSWORD|PASS|SECRET|API_KEY)$", name):
            assert value == "", f"{name} must be empty in .env.example"


def test_env_example_values_are_the_defaults():
    """Copying .env.example changes nothing but DEVLAKE_URL: its values are config.py's defaults."""
    example = {k: v for k, v in env_example().items() if k in config_variables()}
    url = example["DEVLAKE_URL"]
    assert load_settings(example).redacted() == load_settings({"DEVLAKE_URL": url}).redacted()
