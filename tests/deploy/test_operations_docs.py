"""README.md's operations section documents every setting, metric, alert and panel."""
from __future__ import annotations

import json
import re

from deploy_support import CONTRACT_METRICS, ROOT, dashboards, iter_panels, prometheus_rules

DOC = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## Operations\n", 1)[1]
# Documentation written for the README but not merged into it yet (each piece says where it goes).
DOC += "".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("pending-*.md")))


def _documented_names() -> set[str]:
    return set(re.findall(r"`([A-Z][A-Z0-9_]{2,})`", DOC))


def test_every_setting_is_documented():
    source = (ROOT / "config.py").read_text(encoding="utf-8")
    settings = set(re.findall(r"""\(\s*["']([A-Z][A-Z0-9_]{2,})["']""", source))
    assert settings - _documented_names() == set()


def test_every_env_example_variable_is_documented():
    names = {line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines()
             if line.strip() and not line.startswith("#")}
    assert names - _documented_names() == set()


def test_every_metric_and_alert_is_explained():
    for metric in CONTRACT_METRICS:
        assert f"`{metric}" in DOC, metric
    for rule in prometheus_rules():
        assert f"`{rule['alert']}`" in DOC, rule["alert"]


def test_every_dashboard_panel_is_described():
    for dash in dashboards().values():
        assert dash["title"] in DOC
        for panel in iter_panels(dash["panels"]):
            if panel["type"] != "row":
                assert f"*{panel['title']}*" in DOC, panel["title"]


def test_operator_commands_and_troubleshooting():
    for text in ("docker compose up -d --build", "--profile devlake", "docker logs devlake-automation",
                 "docker logs -f devlake-monitor", "--healthcheck", '"event": "run_completed"',
                 '"event": "poll_failed"', "/rest", "node_exporter", "Notifications"):
        assert text in DOC, text
    for heading in ("DevLake unreachable", "401 / 403", "Nothing is being created", "Alerts not firing",
                    "Port 9100", "No notifications"):
        assert f"**{heading}" in DOC, heading
    for block in re.findall(r"```json\n(.*?)```", DOC, re.S):
        for line in block.strip().splitlines():
            json.loads(line)  # sample log lines are real JSON
