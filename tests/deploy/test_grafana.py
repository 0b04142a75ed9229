"""grafana/: datasources, dashboard provider, dashboard JSON; no alert rules (Alertmanager notifies)."""
from __future__ import annotations

import re

import pytest
from deploy_support import (
    DASHBOARD_DIR,
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
        if var["type"] == "query":
            assert var["datasource"]["uid"] == DATASOURCE_UID


def test_dashboard_covers_what_operators_asked_for():
    titles = " | ".join(p["title"].lower() for d in dashboards().values() for p in iter_panels(d["panels"]))
    for wanted in ("failures over time", "failures by project", "without recent success",
                   "last pipeline status", "devlake reachab", "poll", "automation", "in flight"):
        assert wanted in titles, wanted


def test_the_first_row_answers_which_projects_fail_and_why():
    dash = dashboards()[DASHBOARD_DIR / "devlake-automation.json"]
    first = min((p for p in dash["panels"] if p["type"] != "row"), key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"]))
    assert first["title"] == "Failing now" and first["type"] == "table"
    columns = table_columns(first)
    assert {"Project", "Failing since (last success)", "Consecutive failures", "Reason", "Failed subtask",
            "Plugin"} <= columns
    assert first["options"]["sortBy"] == [{"displayName": "Consecutive failures", "desc": True}]
    exprs = " ".join(t["expr"] for t in first["targets"])
    assert "devlake_project_consecutive_failures" in exprs and "> 0" in exprs, "only failing projects"
    assert "devlake_project_retired == 1" in exprs
    links = {o["matcher"]["options"]: [link for prop in o["properties"] if prop["id"] == "links"
                                       for link in prop["value"]] for o in first["fieldConfig"]["overrides"]}
    assert [link["url"] for link in links["Project"]] == ["${status_page}/"]
    assert "status_page" in {v["name"] for v in dash["templating"]["list"]}
    # config-ui: a column only when the monitor has DEVLAKE_UI_URL (devlake_monitor_config_ui_info)
    assert "config-ui" in columns and "devlake_monitor_config_ui_info" in exprs
    assert [link["url"] for link in links["config-ui"]] == [
        "${__value.raw}/projects/${__data.fields.Project:percentencode}"]


# --- dashboard lint -----------------------------------------------------------------------------
# Our own rules in the spirit of grafana/dashboard-linter: what Grafana accepts silently but shows
# wrong (a sort by a column the table lacks, raw Time/Value columns, overlapping panels).

_BY = re.compile(r"\b(?:max|min|sum|count|avg|topk\(\s*\d+\s*,\s*sum)\s+by\s*\(([^)]*)\)")


def table_columns(panel: dict) -> set[str]:
    """The columns a table panel shows: its queries' `by` labels and one value per query, after
    the organize transformation's renames and exclusions (and a join's Time columns)."""
    raw: set[str] = {"Time"}
    targets = panel["targets"]
    for target in targets:
        for group in _BY.findall(target["expr"]):
            raw.update(label.strip() for label in group.split(",") if label.strip())
        raw.add("Value" if len(targets) == 1 else f"Value #{target['refId']}")
    if len(targets) > 1:
        raw.update(f"Time {i}" for i in range(1, len(targets) + 1))
    organize = next((t["options"] for t in panel.get("transformations", []) if t["id"] == "organize"), {})
    shown = {name for name in raw if not organize.get("excludeByName", {}).get(name)}
    renames = organize.get("renameByName", {})
    columns = {renames.get(name, name) for name in shown}
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        for prop in override["properties"]:
            if prop["id"] == "displayName":
                columns.add(prop["value"])
    return columns


def lint_dashboard(dash: dict) -> list[str]:
    problems = []
    cells: dict[tuple[int, int], str] = {}
    for panel in iter_panels(dash["panels"]):
        title, grid = panel["title"], panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                if (x, y) in cells:
                    problems.append(f"{title}: overlaps {cells[(x, y)]}")
                    break
                cells[(x, y)] = title
            else:
                continue
            break
        if panel["type"] == "row":
            continue
        refs = [t["refId"] for t in panel["targets"]]
        if len(refs) != len(set(refs)):
            problems.append(f"{title}: duplicate refId")
        if panel["type"] != "table" or not all(t.get("format") == "table" for t in panel["targets"]):
            continue
        columns = table_columns(panel)
        for sort in panel.get("options", {}).get("sortBy", []):
            if sort["displayName"] not in columns:
                problems.append(f"{title}: sorted by {sort['displayName']!r}, a column it does not have")
        for override in panel.get("fieldConfig", {}).get("overrides", []):
            matcher = override["matcher"]
            if matcher["id"] == "byName" and matcher["options"] not in columns:
                problems.append(f"{title}: override for {matcher['options']!r}, a column it does not have")
        raw = {c for c in columns if c == "Time" or re.fullmatch(r"(Time|Value)( #?\w+)?", c)}
        if raw:
            problems.append(f"{title}: shows raw columns {sorted(raw)}")
    return problems


@pytest.mark.parametrize("path", list(dashboards()), ids=lambda p: p.name)
def test_dashboard_lint(path):
    assert lint_dashboard(dashboards()[path]) == []


def test_the_lint_catches_the_old_why_projects_fail_panel():
    """The panel as it shipped before: sorted by "Running for" (copied from another panel) and
    showing Grafana's raw Time and Value columns."""
    broken = {"panels": [{"type": "table", "id": 1, "title": "Why projects fail",
                          "gridPos": {"h": 8, "w": 8, "x": 8, "y": 64},
                          "targets": [{"refId": "A", "format": "table", "expr": (
                              "max by (project_name, plugin, reason, failed_subtask) "
                              "(devlake_project_last_failure_info)")}],
                          "transformations": [],
                          "options": {"sortBy": [{"displayName": "Running for", "desc": True}]},
                          "fieldConfig": {"overrides": [{"matcher": {"id": "byName", "options": "Running for"},
                                                         "properties": []}]}}]}
    problems = lint_dashboard(broken)
    assert any("sorted by 'Running for'" in p for p in problems)
    assert any("override for 'Running for'" in p for p in problems)
    assert any("raw columns ['Time', 'Value']" in p for p in problems)


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
