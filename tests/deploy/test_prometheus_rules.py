"""prometheus/: `promtool check config`, `check rules`, `test rules`, and the rules' conventions."""
from __future__ import annotations

import re

import pytest
from deploy_support import (
    HIGH_CARDINALITY,
    MONITOR_JOB,
    PROMETHEUS_DIR,
    ROOT,
    load_yaml,
    metric_names,
    prometheus_rules,
    require_tool,
    run,
)

ALERTS = PROMETHEUS_DIR / "alerts.yml"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
UNIT_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
SEVERITIES = {"critical", "warning", "info"}
RETIRED_CLAUSE = "unless on (project_name) devlake_project_retired == 1"
# The conditions operators asked for (issue 4), by the alert that covers each.
REQUIRED_ALERTS = {
    "DevLakeBlueprintFailed",          # a blueprint failed
    "DevLakeProjectNoRecentSuccess",   # no successful collection for N days ...
    "DevLakeProjectNeverSucceeded",    # ... including projects that never succeeded
    "DevLakeUnreachable",              # the monitor cannot reach DevLake
    "DevLakeMonitorDown",              # the monitor itself is down ...
    "DevLakeMonitorStale",             # ... or stale
    "DevLakeAutomationRunFailed",      # the daily automation run did not succeed ...
    "DevLakeAutomationRunMissed",      # ... or did not run
    "DevLakePipelineStuck",            # a pipeline runs for hours
    "DevLakeProjectCurrentlyBroken",   # last failure newer than last success
}


def test_promtool_check_config():
    promtool = require_tool("promtool")
    result = run([promtool, "check", "config", str(CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_promtool_check_rules():
    promtool = require_tool("promtool")
    result = run([promtool, "check", "rules", str(ALERTS)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", UNIT_TESTS, ids=lambda p: p.name)
def test_promtool_test_rules(test_file):
    promtool = require_tool("promtool")
    # The 3-day rules evaluate minute by minute: a minute of CPU, more on a shared machine.
    result = run([promtool, "test", "rules", str(test_file)], timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test():
    tested = set()
    for path in UNIT_TESTS:
        for case in load_yaml(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    tested.add(check["alertname"])
    alerts = {r["alert"] for r in prometheus_rules()}
    assert alerts - tested == set(), "alerts never shown firing in prometheus/tests"


def test_required_conditions_are_covered():
    assert REQUIRED_ALERTS <= {r["alert"] for r in prometheus_rules()}


@pytest.mark.parametrize("rule", prometheus_rules(), ids=lambda r: r.get("alert", r.get("record")))
def test_rule_conventions(rule):
    assert re.fullmatch(r"DevLake[A-Z]\w+", rule["alert"])
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"].strip() and annotations["description"].strip()
    if rule["labels"].get("scope") == "projects":  # counts projects: no project_name left
        assert rule["expr"].lstrip().startswith("count by"), "an aggregate over projects"
    elif "project_name" in rule["expr"] or rule["expr"].lstrip().startswith("devlake_project"):
        assert "{{ $labels.project_name }}" in annotations["summary"], "name the project"
        # alertmanager/alertmanager.yml routes and inhibits per-project alerts by this label
        assert rule["labels"].get("scope") == "project", "per-project alerts carry scope: project"
    if rule["labels"].get("scope") in ("project", "projects"):
        # a retired project's failures are no one's to fix (issue 17); promtool-tested in
        # prometheus/tests/alerts_retired_test.yml, this catches a rule added later
        assert RETIRED_CLAUSE in " ".join(rule["expr"].split()), "leave retired projects out"
    assert HIGH_CARDINALITY not in metric_names(rule["expr"]), "never alert on the time_failed series"
    assert "time_failed" not in rule["expr"]


def test_scrape_config_targets_the_compose_monitor():
    config = load_yaml(CONFIG)
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [t for sc in jobs[MONITOR_JOB]["static_configs"] for t in sc["targets"]]
    assert targets == ["devlake-monitor:9100"]
    compose = load_yaml(ROOT / "docker-compose.yml")
    assert "devlake-monitor" in compose["services"]
    assert f'job="{MONITOR_JOB}"' in ALERTS.read_text()
