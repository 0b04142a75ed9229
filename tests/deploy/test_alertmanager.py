"""alertmanager/alertmanager.yml: `amtool check-config`, its commented receivers, and what it groups and inhibits."""
from __future__ import annotations

import re
import subprocess

from deploy_support import ALERTMANAGER_CONFIG, PROMETHEUS_DIR, load_yaml, prometheus_rules, require_tool, run

PROJECT_SCOPE = re.compile(r'scope=~"project\|projects"')


def amtool_check(path) -> subprocess.CompletedProcess:
    return run([require_tool("amtool"), "check-config", str(path)])


def amtool_version() -> tuple[int, int]:
    out = run([require_tool("amtool"), "--version"])
    major, minor = re.search(r"version (\d+)\.(\d+)", out.stdout + out.stderr).groups()
    return int(major), int(minor)


def test_amtool_check_config():
    result = amtool_check(ALERTMANAGER_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def uncommented(text: str) -> str:
    """The file with its commented receivers and SMTP settings switched on (`  # - ` and `  #   ` lines)."""
    head, sep, tail = text.partition("\nreceivers:\n")
    head = re.sub(r"^  # (smtp_\w+:)", r"  \1", head, flags=re.M)
    tail = re.sub(r"^  # (- |  )", r"  \1", tail, flags=re.M)
    return head + sep + tail


def test_commented_receivers_are_valid_once_uncommented(tmp_path):
    text = uncommented(ALERTMANAGER_CONFIG.read_text())
    if amtool_version() < (0, 26):  # msteams_configs is new in Alertmanager 0.26 (Debian 12 ships 0.25)
        text = re.sub(r"  - name: teams\n(    .*\n)+", "", text)
    path = tmp_path / "alertmanager.yml"
    path.write_text(text)
    result = amtool_check(path)
    assert result.returncode == 0, result.stdout + result.stderr
    receivers = {r["name"] for r in load_yaml(path)["receivers"]}
    assert {"default", "slack", "email", "webhook"} <= receivers


def test_default_receiver_needs_no_secret():
    config = load_yaml(ALERTMANAGER_CONFIG)
    assert config["route"]["receiver"] == "default"
    assert config["receivers"] == [{"name": "default"}]


def test_per_project_alerts_group_by_connection_and_reason_and_are_inhibited_by_its_outage():
    config = load_yaml(ALERTMANAGER_CONFIG)
    (project_route,) = [r for r in config["route"]["routes"] if PROJECT_SCOPE.fullmatch(r["matchers"][0])]
    assert project_route["group_by"] == ["plugin", "connection_id", "reason"]
    inhibits = {r["source_matchers"][0]: r for r in config["inhibit_rules"]}
    down = inhibits['alertname="DevLakeConnectionDown"']
    assert PROJECT_SCOPE.fullmatch(down["target_matchers"][0]) and down["equal"] == ["plugin", "connection_id"]
    assert PROJECT_SCOPE.fullmatch(inhibits['alertname="DevLakeUnreachable"']["target_matchers"][0])
    # the labels it relies on are the rules' own
    rules = {r["alert"]: r for r in prometheus_rules()}
    assert rules["DevLakeConnectionDown"]["expr"].startswith("devlake_connection_up")  # plugin, connection_id
    for name in ("DevLakeBlueprintFailed", "DevLakeProjectCurrentlyBroken", "DevLakeProjectRepeatedlyFailing"):
        assert "group_left (plugin, connection_id, reason)" in rules[name]["expr"], name
        assert rules[name]["labels"]["scope"] == "project"
    assert rules["DevLakeManyProjectsFailing"]["labels"]["scope"] == "projects"


def test_the_summary_alert_arrives_before_the_first_per_project_notification():
    """DevLakeManyProjectsFailing's `for` is shorter than the per-project route's group_wait, so
    a burst of one connection's failures is notified as that one alert, its projects inhibited."""
    config = load_yaml(ALERTMANAGER_CONFIG)
    (project_route,) = [r for r in config["route"]["routes"] if PROJECT_SCOPE.fullmatch(r["matchers"][0])]
    rules = {r["alert"]: r for r in prometheus_rules()}
    assert seconds(rules["DevLakeManyProjectsFailing"]["for"]) < seconds(project_route["group_wait"])
    assert "alertname" in config["route"]["group_by"], "everything else groups by alert name"


def seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smhd])", duration))


def test_prometheus_sends_to_the_stacks_alertmanager():
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    (manager,) = config["alerting"]["alertmanagers"]
    assert manager["static_configs"] == [{"targets": ["alertmanager:9093"]}]
