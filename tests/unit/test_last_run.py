"""The last-run file: one shape for both daemons, fields named for what they count, finished_at honest."""
from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from config import load_settings
from modules import last_run
from modules.changes import CreateProject, Outcome, PatchBlueprint, Plan, Result, TriggerBlueprint
from modules.monitoring.metrics import StateCollector, read_automation
from modules.monitoring.state import MonitorState
from modules.orchestrator import RunReport
from modules.runner import run_once, write_last_run
from modules.scopes import Connection, ScopeRef
from tests.clients import mock_client

STARTED = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)
BASE = "http://devlake.test:8080"


def a_run() -> RunReport:
    scope = ScopeRef(Connection("github", 1, "gh"), "7", "repo", "octo/repo")
    made = CreateProject(scope, "github/repo", "marker", ("dora",), {})
    results = [Result(made, Outcome.CREATED), Result(PatchBlueprint(3, "github/old", {"timeAfter": "x"}),
                                                     Outcome.UPDATED),
               Result(PatchBlueprint(4, "github/old2", {"timeAfter": "x"}), Outcome.UPDATED),
               Result(TriggerBlueprint("github/lost", 5), Outcome.ADOPTED),
               Result(TriggerBlueprint("github/later", 6), Outcome.DEFERRED, error="queue budget")]
    return RunReport(plan=Plan(unchanged=9), results=results)


def gauges(path) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(StateCollector(SimpleNamespace(lock=threading.RLock(), state=MonitorState(),
                                                     automation=read_automation(path))))
    return registry


def test_each_outcome_is_counted_under_its_own_name_and_exported(tmp_path):
    write_last_run(tmp_path, 0, a_run(), 42.5, STARTED)
    data = json.loads((tmp_path / last_run.FILE).read_text())
    assert {k: data[k] for k in last_run.ITEMS} == {"created": 1, "updated": 2, "adopted": 1, "unchanged": 9,
                                                    "failed": 0, "deferred": 1, "marked": 0, "retired": 0,
                                                    "restored": 0, "refused": 0}
    assert data["changed"] == 4 and data["schema"] == last_run.SCHEMA
    registry = gauges(tmp_path / last_run.FILE)
    for outcome, value in (("created", 1), ("updated", 2), ("adopted", 1), ("unchanged", 9), ("deferred", 1)):
        assert registry.get_sample_value("devlake_automation_last_run_items", {"outcome": outcome}) == value


def test_finished_at_is_when_the_run_finished_not_when_it_started(tmp_path, requests_mock):
    requests_mock.get(f"{BASE}/plugins", json=[])
    requests_mock.get(f"{BASE}/projects", json={"count": 0, "projects": []})
    requests_mock.get(f"{BASE}/blueprints", json={"count": 0, "blueprints": []})
    settings = load_settings({"DEVLAKE_URL": BASE, "STATE_DIR": str(tmp_path), "PLUGINS": "github"})
    ticks = iter([100.0, 712.25])  # the run takes 612.25 s on the monotonic clock
    code, _ = run_once(settings, mock_client(BASE), STARTED, monotonic=lambda: next(ticks))
    data = json.loads((tmp_path / last_run.FILE).read_text())
    finished = STARTED + timedelta(seconds=612.25)
    assert code == 0
    assert (data["started_at"], data["finished_at"]) == (STARTED.isoformat(), finished.isoformat())
    assert data["finished_at_epoch"] == finished.timestamp() == data["last_success_epoch"]
    assert data["duration_seconds"] == 612.25
    assert gauges(tmp_path / last_run.FILE).get_sample_value(
        "devlake_automation_last_run_timestamp_seconds") == finished.timestamp()


def test_a_file_of_an_earlier_release_still_reads(tmp_path):
    path = tmp_path / last_run.FILE
    path.write_text(json.dumps({"finished_at": "2026-11-25T18:00:00+07:00", "finished_at_epoch": 2000.0,
                                "outcome": "partial", "exit_code": 1, "created": 5, "unchanged": 3, "failed": 1,
                                "duration_seconds": 1.0, "last_success_epoch": None}))
    run = last_run.read(path)
    assert run is not None and run.items["created"] == 5 and run.items["updated"] == 0 and run.changed == 5
    assert run.last_success_epoch is None and run.outcome == "partial"


@pytest.mark.parametrize("broken", [[], {"outcome": "success"}, {"finished_at_epoch": True, "outcome": "success"},
                                    {"finished_at_epoch": 1.0, "outcome": "success", "failed": "two"},
                                    {"finished_at_epoch": 1.0, "outcome": "success", "last_success_epoch": "x"}])
def test_a_file_of_another_shape_is_unreadable(tmp_path, broken):
    path = tmp_path / last_run.FILE
    path.write_text(json.dumps(broken))
    with pytest.raises(last_run.LastRunUnreadable):
        last_run.read(path)


def test_the_last_success_survives_failed_runs():
    ok = last_run.record(0, {}, STARTED, STARTED + timedelta(seconds=5), None)
    failed = last_run.record(2, {"failed": 1}, STARTED + timedelta(days=1), STARTED + timedelta(days=1), ok)
    assert (failed.outcome, failed.last_success_epoch) == ("failed", ok.finished_at_epoch)
    assert last_run.record(1, {}, STARTED, STARTED, None).outcome == "partial"
