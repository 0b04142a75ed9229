"""`--once --dry-run` at 2,000 repositories against the fake: a summary a person reads, JSON a script reads."""
from __future__ import annotations

import json

import pytest
import structlog

import manage_projects
from sandbox.fake_devlake import FakeDevLake
from sandbox.sample import add_scale

REPOS = 2000
MAX_SUMMARY_LINES = 1 + 6 + 6 * (1 + 20 + 1)  # header, totals, six kinds of at most 20 lines and "… and N more"


@pytest.fixture(autouse=True)
def reset_structlog():
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="module")
def world():
    with FakeDevLake() as fake:
        add_scale(fake, REPOS)
        yield fake


def dry_run(world, tmp_path, capsys, *extra: str) -> tuple[str, list[dict]]:
    env = {"DEVLAKE_URL": world.url, "STATE_DIR": str(tmp_path), "PLUGINS": "github,gitlab,jira,jenkins",
           "DEVLAKE_RETRY_BACKOFF_SECONDS": "0"}
    assert manage_projects.main(["--once", "--dry-run", *extra], environ=env) == 0
    out = capsys.readouterr()
    return out.out, [json.loads(line) for line in out.err.splitlines() if line.startswith("{")]


def test_the_summary_is_short_and_totals_come_first(world, tmp_path, capsys):
    out, events = dry_run(world, tmp_path, capsys)
    lines = out.splitlines()
    assert len(lines) <= MAX_SUMMARY_LINES, len(lines)
    assert lines[3] == "  projects           2,000"
    assert lines[5] == "  first collections  2,000 (10 start now, 1,990 deferred: queue budget)"
    assert "  … and 1,980 more (--full lists them, --json for scripts)" in lines
    completed = next(e for e in events if e["event"] == "run_completed")
    assert completed["actions"]["project_changes"] == REPOS and completed["actions"]["trigger_deferred"] == 1990
    assert world.mutating_count() == 0


def test_full_lists_every_change_and_json_parses_with_every_change(world, tmp_path, capsys):
    full, _ = dry_run(world, tmp_path, capsys, "--full")
    listed = [line for line in full.splitlines()[1 + 6:] if line.startswith("  ")]  # after the six totals
    as_json, _ = dry_run(world, tmp_path, capsys, "--json")
    plan = json.loads(as_json)
    assert len(plan["changes"]) == len(listed) == sum(t["changes"] for t in plan["totals"].values())
    by_kind = plan["totals"]
    assert by_kind["project"]["changes"] == by_kind["trigger"]["changes"] == by_kind["scope"]["rows"] == REPOS
    assert {c["target"] for c in plan["changes"] if c["kind"] == "project"} == {
        c["target"] for c in plan["changes"] if c["kind"] == "trigger"}
    assert sum(c["deferred"] for c in plan["changes"]) == 1990


def test_full_and_json_need_a_dry_run(capsys):
    with pytest.raises(SystemExit) as exit_info:
        manage_projects.main(["--once", "--json"], environ={})
    assert exit_info.value.code == 2 and "--dry-run" in capsys.readouterr().err
