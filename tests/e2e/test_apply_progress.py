"""A long apply shows its progress: `apply_progress` per phase, done/total as planned, one INFO line per change."""
from __future__ import annotations

import itertools
from collections import Counter
from datetime import datetime

import pytz
from structlog.testing import capture_logs

from config import load_settings
from modules.changes import Outcome, Phase
from modules.client import build_client
from modules.runner import run_once
from sandbox.fake_devlake import FakeDevLake

NOW = pytz.timezone("Asia/Ho_Chi_Minh").localize(datetime(2026, 11, 25, 18, 0))
REPOS = 60


def test_progress_lines_during_a_long_apply_match_the_plan(tmp_path):
    with FakeDevLake(latency=0.002) as fake:  # every request takes a while, as DevLake's do
        cid = fake.add_connection("github", "gh")
        fake.add_remote_group("github", cid, "acme", "acme")
        for i in range(REPOS):
            fake.add_remote_scope("github", cid, f"repo{i}", parent_id="acme")
        settings = load_settings({"DEVLAKE_URL": fake.url, "STATE_DIR": str(tmp_path), "PLUGINS": "github",
                                  "DEVLAKE_RETRY_BACKOFF_SECONDS": "0", "MAX_PENDING_PIPELINES": "25"})
        seconds = itertools.count(0.0, 1.0)  # each reading of the clock is one second later: a long run
        with capture_logs() as logs:
            code, report = run_once(settings, build_client(settings), NOW, monotonic=lambda: next(seconds))
    assert code == 0
    progress = [e for e in logs if e["event"] == "apply_progress"]
    applied = Counter(r.change.phase for r in report.results if r.outcome is not Outcome.DEFERRED)
    for phase, count in applied.items():
        lines = [e for e in progress if e["phase"] == phase.name.lower()]
        assert lines[-1]["done"] == lines[-1]["total"] == count and lines[-1]["remaining_seconds"] == 0
        assert all(e["total"] == count and e["failed"] == 0 for e in lines)
        assert [e["done"] for e in lines] == sorted(e["done"] for e in lines)
    projects = [e for e in progress if e["phase"] == "projects"]
    assert applied[Phase.PROJECTS] == REPOS and len(projects) >= 3  # a line every 10 s, then the end
    middle = projects[0]
    assert 0 < middle["done"] < REPOS and middle["elapsed_seconds"] >= 10 and middle["remaining_seconds"] > 0
    elapsed = [e["elapsed_seconds"] for e in projects[:-1]]
    assert all(b - a >= 10 for a, b in itertools.pairwise(elapsed))  # at most every 10 s
    assert applied[Phase.COLLECTION] == 25  # the queue budget: progress counts what was started
    # one INFO line per applied change: the details are DEBUG
    info = Counter(e["event"] for e in logs if e["log_level"] == "info")
    assert info["change_applied"] == sum(applied.values())
    assert info["project_created"] == info["collection_triggered"] == 0
