"""The status page model: states, thresholds, order, links; read under the monitor's lock."""
from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from config import load_settings
from modules.monitoring.connections import ConnectionHealth
from modules.monitoring.state import NO_PROJECT, InFlight, MonitorState, ProjectStats
from modules.monitoring.status_model import (
    ConnectionRow,
    Thresholds,
    build_rows,
    classify,
    project_link,
    snapshot,
)
from tests.clock import Clock

NOW = 1_754_636_400.0  # 2025-08-08 07:00 UTC
HOUR = 3600.0
TH = Thresholds(stuck_after=6 * HOUR, stale_after=48 * HOUR)


def ok(hours_ago: float) -> ProjectStats:
    return ProjectStats(last_success=NOW - hours_ago * HOUR, last_status="TASK_COMPLETED", runs=1)


def failed(hours_ago: float | None, streak: int = 1, status="TASK_FAILED") -> ProjectStats:
    return ProjectStats(last_success=None if hours_ago is None else NOW - hours_ago * HOUR,
                        last_failure=NOW - 0.5 * HOUR, last_status=status, consecutive_failures=streak)


@pytest.mark.parametrize("stats, flight_hours, expected", [
    (ok(1), None, ("healthy", None)),
    (ok(47.9), None, ("healthy", None)),
    (ok(48), None, ("healthy", None)),  # at the threshold: not yet
    (ok(48.01), None, ("stale", NOW - 48.01 * HOUR)),
    (ProjectStats(), None, ("never", None)),
    (ProjectStats(last_status="TASK_RUNNING"), 1, ("never", None)),  # first run, not stuck yet
    (failed(3), None, ("failing", NOW - 3 * HOUR)),
    (failed(None), None, ("failing", None)),
    (failed(3, status="TASK_PARTIAL"), None, ("failing", NOW - 3 * HOUR)),
    (ok(1), 6, ("healthy", None)),  # in flight exactly 6 h: not yet stuck
    (ok(1), 6.01, ("stuck", NOW - 6.01 * HOUR)),
    (ProjectStats(last_status="TASK_CREATED"), 7, ("stuck", NOW - 7 * HOUR)),  # stuck before "never"
    (ok(100), 7, ("stuck", NOW - 7 * HOUR)),  # stuck before stale
    (failed(3), 7, ("failing", NOW - 3 * HOUR)),  # failing wins over a stuck rerun
])
def test_classify(stats, flight_hours, expected):
    flight = None if flight_hours is None else NOW - flight_hours * HOUR
    assert classify(stats, flight, NOW, TH) == expected


def test_failing_while_a_rerun_runs_or_after_a_cancel_but_not_after_a_success():
    for status in ("TASK_RUNNING", "TASK_RERUN", "TASK_CANCELLED"):
        stats = ProjectStats(last_success=NOW - HOUR, last_status=status, consecutive_failures=1)
        assert classify(stats, None, NOW, TH)[0] == "failing", status
    recovered = ProjectStats(last_success=NOW - 60, last_status="TASK_COMPLETED", consecutive_failures=1)
    assert classify(recovered, None, NOW, TH)[0] == "healthy"


def test_thresholds_come_from_settings():
    state = MonitorState(projects={"p": ok(3)})
    state.in_flight[9] = InFlight("p", NOW - 40 * 60, "TASK_RUNNING")
    monitor = fake_monitor(state, STUCK_AFTER_MINUTES="30", STALE_AFTER_HOURS="2")
    assert [r.state for r in snapshot(monitor).rows] == ["stuck"]
    state.in_flight.clear()
    assert [r.state for r in snapshot(monitor).rows] == ["stale"]


def state_of(projects: dict[str, ProjectStats], flights: dict[str, float] | None = None) -> MonitorState:
    state = MonitorState()
    state.projects.update(projects)
    for pid, (name, hours) in enumerate((flights or {}).items(), start=1):
        state.in_flight[pid] = InFlight(name, NOW - hours * HOUR, "TASK_RUNNING")
    return state


def test_trouble_first_in_state_order_longest_trouble_first_then_names():
    state = state_of({
        "z-healthy": ok(1), "a-healthy": ok(2), "B-healthy": ok(1),
        "stale-recent": ok(50), "stale-old": ok(90),
        "never-b": ProjectStats(), "never-a": ProjectStats(),
        "stuck-short": ok(1), "stuck-long": ok(1),
        "fail-recent": failed(2), "fail-old": failed(30, streak=4), "fail-never": failed(None, streak=2),
        "fail-never-more": failed(None, streak=5),
    }, flights={"stuck-short": 7, "stuck-long": 20})
    rows = build_rows(state, NOW, TH, None)
    assert [(r.project, r.state) for r in rows] == [
        ("fail-never-more", "failing"), ("fail-never", "failing"), ("fail-old", "failing"), ("fail-recent", "failing"),
        ("stuck-long", "stuck"), ("stuck-short", "stuck"),
        ("never-a", "never"), ("never-b", "never"),
        ("stale-old", "stale"), ("stale-recent", "stale"),
        ("a-healthy", "healthy"), ("B-healthy", "healthy"), ("z-healthy", "healthy"),
    ]


def test_retired_wins_over_every_other_state_and_sorts_last():
    state = state_of({"gone-failing": failed(2), "gone-stuck": ok(1), "a-healthy": ok(1), "z-failing": failed(3)},
                     flights={"gone-stuck": 20})
    state.retired = {"gone-failing", "gone-stuck"}
    assert [(r.project, r.state) for r in build_rows(state, NOW, TH, None)] == [
        ("z-failing", "failing"), ("a-healthy", "healthy"), ("gone-failing", "retired"), ("gone-stuck", "retired")]


def test_oldest_flight_of_a_project_decides_and_rows_carry_the_failure_reason():
    stats = failed(5)
    stats.last_reason, stats.last_failed_subtask, stats.last_plugin = "rate limited", "collectApiIssues", "github"
    state = state_of({"p": stats, "q": ok(1)})
    state.in_flight[1] = InFlight("q", NOW - 7 * HOUR, "TASK_RUNNING")
    state.in_flight[2] = InFlight("q", NOW - 1 * HOUR, "TASK_CREATED")
    rows = {r.project: r for r in build_rows(state, NOW, TH, None)}
    assert (rows["q"].state, rows["q"].in_flight_since) == ("stuck", NOW - 7 * HOUR)
    p = rows["p"]
    assert (p.reason, p.failed_subtask, p.plugin, p.consecutive_failures) == ("rate limited", "collectApiIssues",
                                                                              "github", 1)


FIRST = NOW + 2 * HOUR  # the blueprint's first cron run (first_run.py), two hours from now


@pytest.mark.parametrize("hours_later, flight_hours, expected", [
    (0, None, "scheduled"),       # day one: waiting for its cron minute, not broken
    (2, None, "scheduled"),       # the cron minute itself
    (8, None, "scheduled"),       # plus STUCK_AFTER_MINUTES (6 h here): still within the grace
    (8.01, None, "never"),        # grace over and no pipeline: now it is "never collected"
    (3, 1, "scheduled"),          # its first pipeline is running
    (10, 1, "scheduled"),         # ... also after the grace, while not stuck
    (10, 6.5, "stuck"),           # stuck wins
])
def test_scheduled_until_the_first_cron_minute_plus_the_stuck_threshold(hours_later, flight_hours, expected):
    """The scheduled/never-collected rule with an injected clock (`now` is an argument)."""
    now = NOW + hours_later * HOUR
    flight = None if flight_hours is None else now - flight_hours * HOUR
    since = flight if expected == "stuck" else None
    assert classify(ProjectStats(first_run=FIRST), flight, now, TH) == (expected, since)


def test_a_project_that_ran_or_has_no_schedule_is_never_scheduled():
    assert classify(ProjectStats(first_run=FIRST, runs=1, last_status="TASK_CANCELLED"), None, NOW, TH)[0] == "never"
    assert classify(ProjectStats(first_run=FIRST, last_status="TASK_FAILED", consecutive_failures=1), None, NOW,
                    TH)[0] == "failing"
    assert classify(ProjectStats(first_run=None), None, NOW, TH)[0] == "never"  # manual, disabled, unmanaged


def test_scheduled_rows_show_the_next_start_and_sort_after_trouble_before_healthy():
    state = state_of({"new": ProjectStats(first_run=FIRST), "running": ProjectStats(first_run=FIRST),
                      "fine": ok(1), "broken": ProjectStats()}, flights={"running": 1})
    rows = build_rows(state, NOW, TH, None)
    assert [(r.project, r.state, r.next_run) for r in rows] == [
        ("broken", "never", None), ("new", "scheduled", FIRST), ("running", "scheduled", None),
        ("fine", "healthy", None)]


def test_names_sort_naturally_numbers_as_numbers():
    state = state_of({name: ok(1) for name in ("service-110", "service-11", "Service-9", "service-109",
                                               "service-2a", "service-2", "api")})
    assert [r.project for r in build_rows(state, NOW, TH, None)] == [
        "api", "service-2", "service-2a", "Service-9", "service-11", "service-109", "service-110"]


def test_rows_carry_the_newest_failures_message():
    stats = failed(5)
    stats.last_reason, stats.last_message = "unauthorized", "401 Bad credentials token=***"
    (row,) = build_rows(state_of({"p": stats}), NOW, TH, None)
    assert row.message == "401 Bad credentials token=***"


def test_no_project_row_only_when_ad_hoc_pipelines_are_in_trouble():
    state = state_of({"p": ok(1)})
    assert [r.project for r in build_rows(state, NOW, TH, None)] == ["p"]  # "(no project)" never collected: hidden
    state.projects[NO_PROJECT] = failed(None)
    rows = build_rows(state, NOW, TH, "http://ui:4000")
    assert [(r.project, r.link) for r in rows] == [(NO_PROJECT, None), ("p", "http://ui:4000/projects/p")]


@pytest.mark.parametrize("name, link", [
    ("github/acme/api", "http://ui/projects/github%2Facme%2Fapi"),
    ("a b?c#d&e", "http://ui/projects/a%20b%3Fc%23d%26e"),
    ('"><script>', "http://ui/projects/%22%3E%3Cscript%3E"),
])
def test_project_link_is_one_encoded_path_segment(name, link):
    assert project_link("http://ui", name) == link
    assert project_link(None, name) is None


class RecordingLock:
    """An RLock that remembers whether the state was read while it was held."""

    def __init__(self):
        self.lock, self.held = threading.RLock(), False

    def __enter__(self):
        self.lock.acquire()
        self.held = True

    def __exit__(self, *exc):
        self.held = False
        self.lock.release()


class GuardedState:
    def __init__(self, state, lock):
        self._state, self._lock = state, lock

    def __getattr__(self, name):
        assert self._lock.held, f"state.{name} read without the monitor's lock"
        return getattr(self._state, name)


def fake_monitor(state: MonitorState, **env) -> SimpleNamespace:
    settings = load_settings({"DEVLAKE_URL": "http://devlake:8080", **env})
    lock = RecordingLock()
    clock = Clock()
    clock.now = clock.now.fromtimestamp(NOW, clock.now.tzinfo)
    return SimpleNamespace(settings=settings, clock=clock, lock=lock, state=GuardedState(state, lock),
                           last_success=None, last_error=None, pending={"TASK_CREATED": 0},
                           connections=SimpleNamespace(snapshot=lambda: []))


def test_snapshot_reads_state_under_the_lock_and_the_header_facts():
    monitor = fake_monitor(state_of({"p": failed(3)}), DEVLAKE_UI_URL="http://ui:4000/")
    model = snapshot(monitor)
    assert model.up is None and model.last_poll_success is None  # before the first poll
    assert model.pending is None  # not known before the first poll
    assert model.connections == []
    assert (model.now, model.devlake_url, model.ui_url, model.refresh_seconds) == (
        NOW, "http://devlake:8080", "http://ui:4000", 60.0)
    assert model.thresholds == Thresholds(360 * 60, 72 * HOUR)
    assert model.counts == {"failing": 1, "stuck": 0, "never": 0, "stale": 0, "scheduled": 0, "healthy": 0, "retired": 0}
    monitor.last_success, monitor.last_error = NOW - 60, None
    assert snapshot(monitor).up is True
    monitor.last_error = "unreachable"
    assert snapshot(monitor).up is False


def test_snapshot_reads_connections_and_pending():
    monitor = fake_monitor(state_of({}))
    monitor.last_success = NOW - 60
    monitor.pending = {"TASK_CREATED": 2, "TASK_RUNNING": 1}
    monitor.connections = SimpleNamespace(
        snapshot=lambda: [ConnectionHealth("github", 1, "gh", False, NOW, "401", NOW - HOUR)])
    model = snapshot(monitor)
    assert model.pending == {"TASK_CREATED": 2, "TASK_RUNNING": 1}
    assert model.connections == [ConnectionRow("github", 1, "gh", False, NOW, "401", NOW - HOUR)]
    assert snapshot(fake_monitor(state_of({}), CONNECTION_CHECK_INTERVAL_SECONDS="0")).connections is None
