"""grafana/: datasources, dashboard provider, dashboard JSON; no alert rules (Alertmanager notifies)."""
from __future__ import annotations

import pytest
from deploy_support import (
    DATASOURCE_UID,
    GRAFANA_DIR,
    ROOT,
    dashboards,
    iter_panels,
    load_yaml,
)

# --- provisioning -----------------------------------------------------------------------------

def test_datasource_has_the_fixed_uid():
    doc = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")
    assert doc["apiVersion"] == 1
    (ds,) = [ds for ds in doc["datasources"] if ds["type"] == "prometheus"]
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


# --- alerting: one path -----------------------------------------------------------------------

def test_grafana_provisions_no_alert_rules_of_its_own():
    """Prometheus evaluates prometheus/alerts.yml and Alertmanager notifies (README, Alerts):
    a second copy in Grafana would page twice, through a contact point that needs SMTP."""
    assert not (GRAFANA_DIR / "provisioning" / "alerting").exists()


def test_grafana_shows_the_stacks_alertmanager():
    doc = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")
    (am,) = [ds for ds in doc["datasources"] if ds["type"] == "alertmanager"]
    assert am["url"] == "http://alertmanager:9093", "the compose service name"
    assert am["jsonData"]["implementation"] == "prometheus"
    assert am["jsonData"]["handleGrafanaManagedAlerts"] is False
