"""One version, from pyproject.toml: --version of both daemons, the start log lines, the build_info gauge."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import structlog
from prometheus_client import CollectorRegistry

import blueprint_monitor
import manage_projects
from modules.monitoring.metrics import SelfMetrics
from modules.version import UNKNOWN, version

ROOT = Path(__file__).resolve().parents[2]
DECLARED = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


@pytest.fixture(autouse=True)
def reset_structlog():
    yield
    structlog.reset_defaults()


def test_version_is_pyprojects_and_unknown_without_it(tmp_path):
    assert version() == DECLARED and DECLARED.count(".") == 2
    assert version(tmp_path / "missing.toml") == UNKNOWN
    (tmp_path / "bad.toml").write_text("[project\n")
    assert version(tmp_path / "bad.toml") == UNKNOWN


@pytest.mark.parametrize("daemon, prog", [(manage_projects, "manage_projects.py"),
                                          (blueprint_monitor, "blueprint_monitor.py")])
def test_both_daemons_answer_version(daemon, prog, capsys):
    with pytest.raises(SystemExit) as exit_info:
        daemon.main(["--version"], environ={})  # no DEVLAKE_URL needed to ask the version
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"{prog} {DECLARED}"


def test_the_start_log_line_carries_the_version(tmp_path, requests_mock, capsys):
    requests_mock.get("http://devlake.test:8080/version", json={"version": "v1.0.2"})
    requests_mock.get("http://devlake.test:8080/plugins", json=[])
    manage_projects.main(["--doctor"], environ={"DEVLAKE_URL": "http://devlake.test:8080",
                                                "STATE_DIR": str(tmp_path), "DEVLAKE_HTTP_RETRIES": "0"})
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    started = next(e for e in events if e["event"] == "automation_started")
    assert started["version"] == DECLARED


def test_build_info_gauge():
    registry = CollectorRegistry()
    SelfMetrics(registry)
    assert registry.get_sample_value("devlake_automation_build_info", {"version": DECLARED}) == 1.0
