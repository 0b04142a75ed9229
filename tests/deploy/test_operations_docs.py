"""The operations docs (docs/configuration.md, metrics.md, operations.md) document every setting, metric, alert and panel."""
from __future__ import annotations

import json
import re

from deploy_support import CONTRACT_METRICS, ROOT, configuration_rows, dashboards, iter_panels, prometheus_rules

from config import Settings, setting_names
from utils.env_values import Number, declared

DOC = "\n".join((ROOT / "docs" / name).read_text(encoding="utf-8")
                for name in ("configuration.md", "metrics.md", "operations.md"))


def _documented_names() -> set[str]:
    return set(re.findall(r"`([A-Z][A-Z0-9_]{2,})`", DOC))


def test_every_setting_is_documented():
    assert set(setting_names()) - _documented_names() == set()


def test_configuration_table_shows_each_declared_default_bound_and_reader():
    """docs/configuration.md's Default, Allowed and Used by cells equal config.py's declarations."""
    rows = configuration_rows()
    wrong = {}
    for _, var in declared(Settings):
        default, allowed, used_by = rows[var.env][:3]
        readers = used_by.split(",")[0]  # "monitor, profile `devlake`": what follows is not ours
        if (default, allowed, readers) != (var.default_text, var.parse.allowed, var.used_by):
            wrong[var.env] = {"docs": (default, allowed, readers),
                              "config.py": (var.default_text, var.parse.allowed, var.used_by)}
    assert wrong == {}


def test_every_number_has_an_upper_bound_in_the_table():
    """Issue 21: a setting with a unit has a documented upper bound (a day, 10 minutes, 64 ...)."""
    rows = configuration_rows()
    numbers = [var for _, var in declared(Settings) if isinstance(var.parse, Number)]
    assert len(numbers) >= 15
    for var in numbers:
        assert f"{var.parse.high:g}" in rows[var.env][1], var.env


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
