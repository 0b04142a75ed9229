"""Every YAML and JSON file in the repository parses (what Compose, Prometheus and Grafana will read first)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from deploy_support import ROOT

SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".pytest_cache", "state", "results"}


def data_files(suffixes: tuple[str, ...]) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".")]
        found += [Path(dirpath) / f for f in filenames if f.endswith(suffixes)]
    return sorted(found)


YAML_FILES = data_files((".yml", ".yaml"))
JSON_FILES = data_files((".json",))


def test_the_deployment_files_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in YAML_FILES + JSON_FILES}
    assert {"docker-compose.yml", "prometheus/prometheus.yml", "prometheus/alerts.yml",
            "grafana/provisioning/datasources/prometheus.yml", "grafana/provisioning/dashboards/devlake.yml",
            "alertmanager/alertmanager.yml",
            "grafana/dashboards/devlake-automation.json"} <= names


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_yaml_parses(path):
    with open(path, encoding="utf-8") as fh:
        documents = list(yaml.safe_load_all(fh))
    assert documents and documents[0] is not None, "empty YAML file"


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_json_parses(path):
    json.loads(path.read_text(encoding="utf-8"))
