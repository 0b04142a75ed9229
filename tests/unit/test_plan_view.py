"""--dry-run for people and scripts: totals per kind first, 20 lines per kind, crons in TIMEZONE."""
from __future__ import annotations

import json
from datetime import date

from config import load_settings
from modules import plan_view
from modules.changes import CreateProject, PatchBlueprint, Plan, PutScopes, RerunPipeline, TriggerBlueprint
from modules.orchestrator import RunReport
from modules.scopes import Connection, ScopeRef

GH = Connection("github", 1, "gh")
SETTINGS = load_settings({"DEVLAKE_URL": "http://d"})  # Asia/Ho_Chi_Minh, DevLake in UTC
ON = date(2026, 11, 25)


def a_dry_run(projects: int = 45) -> RunReport:
    """45 new projects and their first collections (35 over the queue budget), two patches, a rerun."""
    scopes = [ScopeRef(GH, str(i), f"r{i}", f"acme/r{i}") for i in range(projects)]
    changes: list = [PutScopes(GH, tuple({"githubId": i} for i in range(projects)),
                               tuple(str(i) for i in range(projects)), "create")]
    projects_made = [CreateProject(s, f"github/r{s.scope_id:0>2}", "m", ("dora",), {"cronConfig": "30 15 * * *"})
                     for s in scopes]
    changes += projects_made
    changes += [PatchBlueprint(7, "github/old", {"cronConfig": "0 16 * * *", "labels": ["x"], "isManual": False,
                                                 "timeAfter": "2026-11-21T00:00:00+07:00"},
                               before={"cronConfig": "0 0 * * *", "timeAfter": None}),
                PatchBlueprint(8, "github/old2", {"timeAfter": "2026-11-21T00:00:00+07:00"})]
    triggers = [TriggerBlueprint(made.name, made) for made in projects_made]
    rerun = RerunPipeline("github/old", 41, 7)
    return RunReport(plan=Plan(changes=changes + triggers + [rerun], unchanged=3), dry_run=True,
                     would_defer=tuple(triggers[10:]))


def render(report: RunReport, **kwargs) -> list[str]:
    return plan_view.render(report.plan, SETTINGS, ON, deferred_changes=report.would_defer, **kwargs)


def test_totals_per_kind_come_first():
    lines = render(a_dry_run())
    assert lines[0].startswith("Plan: 94 changes, 3 unchanged, 0 problems; nothing was written.")
    assert "Crons in Asia/Ho_Chi_Minh" in lines[0]
    assert lines[1:7] == [
        "  scope configs      0",
        "  scope batches      1 (45 rows, 45 new)",
        "  projects           45",
        "  blueprint patches  2 (1 cronConfig, 2 timeAfter)",
        "  first collections  45 (10 start now, 35 deferred: queue budget)",
        "  reruns             1 (1 start now)"]


def test_at_most_20_lines_per_kind_unless_full():
    report = a_dry_run()
    short, full = render(report), render(report, full=True)
    projects = short.index("projects (45):")
    assert short[projects + 21] == "  … and 25 more (--full lists them, --json for scripts)"
    assert sum(line.startswith("  github/r") and "create" in line for line in short) == 20
    assert sum(line.startswith("  github/r") and "create" in line for line in full) == 45
    assert not any("more (--full" in line for line in full)
    triggers = short[short.index("first collections (45):") + 1:]
    assert all("deferred" not in line for line in triggers[:10]) and "deferred" in triggers[10]  # started first
    assert len(short) < len(full) == 1 + 6 + (1 + 1) + (1 + 45) + (1 + 2) + (1 + 45) + (1 + 1)


def test_crons_are_shown_in_timezone_with_devlakes_value_beside():
    text = "\n".join(render(a_dry_run()))
    assert "cron 22:30 Asia/Ho_Chi_Minh (30 15 * * * UTC)" in text
    assert ("cron: 07:00 Asia/Ho_Chi_Minh (0 0 * * * UTC) -> 23:00 Asia/Ho_Chi_Minh (0 16 * * * UTC), "
            "timeAfter: None -> '2026-11-21T00:00:00+07:00'") in text
    assert "labels" not in text and "isManual" not in text


def test_json_lists_every_change_with_its_data():
    report = a_dry_run()
    plan = report.plan
    data = json.loads(json.dumps(plan_view.as_json(plan, SETTINGS, ON, deferred_changes=report.would_defer)))
    assert len(data["changes"]) == len(plan.changes) == 94
    assert data["totals"]["trigger"] == {"changes": 45, "start": 10, "deferred": 35}
    assert sum(c["deferred"] for c in data["changes"]) == 35
    (patch,) = [c for c in data["changes"] if c["kind"] == "blueprint" and c["target"] == "github/old"]
    assert patch["data"]["fields"]["cronConfig"] == "0 16 * * *" and patch["data"]["blueprint_id"] == 7
    project = next(c for c in data["changes"] if c["kind"] == "project")
    assert project["data"]["scope"]["connection"] == {"plugin": "github", "id": 1, "name": "gh"}
    trigger = next(c for c in data["changes"] if c["kind"] == "trigger")  # a reference, not a copy
    assert trigger["data"] == {"project": "github/r00", "blueprint": {"planned": "project", "target": "github/r00"}}


def test_a_dry_runs_run_completed_carries_the_totals():
    fields = a_dry_run().as_log_fields()
    assert fields["actions"]["project_changes"] == 45 and fields["actions"]["trigger_deferred"] == 35
    assert fields["actions"]["blueprint_field_timeAfter"] == 2 and fields["actions"]["rerun_start"] == 1
