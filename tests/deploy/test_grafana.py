"""grafana/: datasource, dashboard provider, dashboard JSON, and alert rules equivalent to prometheus/alerts.yml."""
from __future__ import annotations

import re

import pytest
import yaml
from deploy_support import (
    DATASOURCE_UID,
    GRAFANA_DIR,
    GRAFANA_RULES,
    PROMETHEUS_DIR,
    ROOT,
    dashboards,
    grafana_rules,
    iter_panels,
    load_yaml,
    prometheus_rules,
    require_tool,
    run,
)

PROJECT_ALERTS_LABEL = "{{ $labels.project_name }}"
THRESHOLD_OPS = {"gt": ">", "lt": "<"}


def seconds(duration: str | None) -> int:
    """Prometheus/Grafana duration (1h30m, 26h, 3d, 0s) in seconds."""
    if not duration:
        return 0
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|[smhdwy])", duration)
    assert "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    return int(sum(int(n) * units[u] for n, u in parts))


# --- provisioning -----------------------------------------------------------------------------

def test_datasource_has_the_fixed_uid():
    doc = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")
    assert doc["apiVersion"] == 1
    (ds,) = doc["datasources"]
    assert ds["uid"] == DATASOURCE_UID and ds["type"] == "prometheus"
    assert ds["url"] == "http://prometheus:9090", "the compose service name"
    assert ds["isDefault"] is True


def test_dashboard_provider_points_at_the_mounted_dashboards():
    doc = load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "devlake.yml")
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/etc/grafana/dashboards"
    compose = load_yaml(ROOT / "docker-compose.yml")
    assert "./grafana/dashboards:/etc/grafana/dashboards:ro" in compose["services"]["grafana"]["volumes"]


# --- dashboards ----------------------------------------------------------------------------

def test_dashboards_exist_with_unique_uids():
    found = dashboards()
    assert found, "grafana/dashboards/*.json"
    uids = [d["uid"] for d in found.values()]
    assert len(uids) == len(set(uids)) and all(uids)


@pytest.mark.parametrize("path", list(dashboards()), ids=lambda p: p.name)
def test_dashboard_panels_use_the_fixed_datasource(path):
    dash = dashboards()[path]
    ids = []
    for panel in iter_panels(dash["panels"]):
        ids.append(panel["id"])
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, panel["title"]
        assert panel.get("description"), f"{panel['title']}: describe the panel"
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE_UID
            assert target["expr"].strip()
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for var in dash["templating"]["list"]:
        assert var["datasource"]["uid"] == DATASOURCE_UID


def test_dashboard_covers_what_operators_asked_for():
    titles = " | ".join(p["title"].lower() for d in dashboards().values() for p in iter_panels(d["panels"]))
    for wanted in ("failures over time", "failures by project", "without recent success",
                   "last pipeline status", "devlake reachab", "poll", "automation", "in flight"):
        assert wanted in titles, wanted


# --- alert rules ---------------------------------------------------------------------------

def test_alert_rule_file_shape():
    doc = load_yaml(GRAFANA_RULES)
    assert doc["apiVersion"] == 1
    for group in doc["groups"]:
        assert group["orgId"] == 1 and group["folder"] == "DevLake"
        assert seconds(group["interval"]) == 60
    uids = [r["uid"] for r in grafana_rules()]
    assert len(uids) == len(set(uids)) and all(len(u) <= 40 and re.fullmatch(r"[\w-]+", u) for u in uids)


@pytest.mark.parametrize("rule", grafana_rules(), ids=lambda r: r["title"])
def test_alert_rule_is_well_formed(rule):
    queries = {q["refId"]: q for q in rule["data"]}
    assert rule["condition"] in queries
    prom = [q for q in rule["data"] if q["datasourceUid"] != "__expr__"]
    assert len(prom) == 1 and prom[0]["datasourceUid"] == DATASOURCE_UID
    assert prom[0]["model"]["instant"] is True and prom[0]["model"]["expr"].strip()
    condition = queries[rule["condition"]]
    assert condition["datasourceUid"] == "__expr__"
    model = condition["model"]
    assert model["type"] == "threshold" and model["expression"] == prom[0]["refId"]
    (cond,) = model["conditions"]
    assert cond["evaluator"]["type"] in THRESHOLD_OPS and len(cond["evaluator"]["params"]) == 1
    assert rule["noDataState"] in ("OK", "NoData", "Alerting")
    assert rule["execErrState"] in ("OK", "Error", "Alerting")
    seconds(rule["for"])
    assert rule["labels"]["severity"] in ("critical", "warning", "info")
    assert rule["annotations"]["summary"].strip() and rule["annotations"]["description"].strip()
    if "devlake_project" in prom[0]["model"]["expr"]:
        assert PROJECT_ALERTS_LABEL in rule["annotations"]["summary"]
    assert "$value " not in rule["annotations"]["description"], "Grafana: use $values.<refId>.Value"
    assert "time_failed" not in prom[0]["model"]["expr"]


def test_grafana_rules_match_prometheus_rules():
    prom = {r["alert"]: r for r in prometheus_rules()}
    graf = {r["title"]: r for r in grafana_rules()}
    assert set(graf) == set(prom)
    for name, rule in graf.items():
        assert rule["labels"]["severity"] == prom[name]["labels"]["severity"], name
        assert seconds(rule["for"]) == seconds(prom[name].get("for")), name
    prom_groups = {g["name"]: {r["alert"] for r in g["rules"]} for g in load_yaml(PROMETHEUS_DIR / "alerts.yml")["groups"]}
    graf_groups = {g["name"]: {r["title"] for r in g["rules"]} for g in load_yaml(GRAFANA_RULES)["groups"]}
    assert graf_groups == prom_groups


def as_promql(rule: dict) -> str:
    """A Grafana rule's condition written as one PromQL alert expression."""
    query = next(q for q in rule["data"] if q["datasourceUid"] != "__expr__")
    expr = query["model"]["expr"]
    threshold = next(q for q in rule["data"] if q["refId"] == rule["condition"])["model"]["conditions"][0]
    op = THRESHOLD_OPS[threshold["evaluator"]["type"]]
    value = threshold["evaluator"]["params"][0]
    promql = f"({expr}) {op} {value}"
    if rule["noDataState"] == "Alerting":
        promql = f"{promql} or absent({expr})"
    return promql


def test_grafana_rules_behave_like_prometheus_rules(tmp_path):
    """Run prometheus/tests against the Grafana rules translated to PromQL: same alerts, same labels, same times."""
    promtool = require_tool("promtool")
    groups = []
    for group in load_yaml(GRAFANA_RULES)["groups"]:
        rules = [{"alert": r["title"], "expr": as_promql(r), "for": r["for"], "labels": r["labels"]}
                 for r in group["rules"]]
        groups.append({"name": group["name"], "rules": rules})
    (tmp_path / "grafana_as_prometheus.yml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    for source in sorted((PROMETHEUS_DIR / "tests").glob("*.yml")):
        test = load_yaml(source)
        test["rule_files"] = ["grafana_as_prometheus.yml"]
        for case in test["tests"]:
            for check in case.get("alert_rule_test", []):
                for alert in check.get("exp_alerts") or []:
                    alert.pop("exp_annotations", None)  # Grafana templates its annotations differently
        target = tmp_path / source.name
        target.write_text(yaml.safe_dump(test, sort_keys=False))
        result = run([promtool, "test", "rules", str(target)], timeout=90)
        assert result.returncode == 0, result.stdout + result.stderr
