"""The automation daemon checks DevLake at start and every 5 minutes while it fails; --healthcheck says so."""
from __future__ import annotations

import threading
from datetime import datetime

import pytz
from structlog.testing import capture_logs

import manage_projects
from config import load_settings
from modules.devlake_watch import UNREACHABLE_FILE
from modules.reachability import Unreachable
from modules.runner import run_daemon, touch_heartbeat
from tests.clock import Clock
from tests.scheduler import DailyScheduler

VN = pytz.timezone("Asia/Ho_Chi_Minh")
DOWN = Unreachable("dns", "DEVLAKE_URL=http://devlkae:8080: the host name 'devlkae' does not resolve: check it")


def healthcheck(tmp_path, capsys) -> tuple[int, str]:
    code = manage_projects.main(["--healthcheck"], environ={"DEVLAKE_URL": "http://d", "STATE_DIR": str(tmp_path)})
    return code, capsys.readouterr().err


def test_an_unreachable_devlake_is_checked_every_5_minutes_and_makes_the_daemon_unhealthy(tmp_path, capsys):
    settings = load_settings({"DEVLAKE_URL": "http://devlkae:8080", "STATE_DIR": str(tmp_path)})
    clock = Clock(VN.localize(datetime(2026, 11, 25, 9, 0)))
    stop = threading.Event()
    verdicts = [DOWN, DOWN, DOWN, None]
    checks, health = [], []

    def check():
        checks.append(clock().strftime("%H:%M"))
        health.append(healthcheck(tmp_path, capsys))  # as Docker sees it just before this check
        if len(verdicts) == 1:
            stop.set()
        return verdicts.pop(0)

    def wait(seconds):
        clock.advance(seconds=seconds)
        touch_heartbeat(tmp_path)  # the heartbeat thread's job, in test time
        return stop.is_set()

    touch_heartbeat(tmp_path)
    with capture_logs() as logs:
        run_daemon(settings, lambda: 0, stop, scheduler=DailyScheduler(clock, VN.localize(datetime(2026, 11, 25, 18, 0))),
                   clock=clock, wait=wait, check=check)
    assert checks == ["09:00", "09:05", "09:10", "09:15"]  # at start, then every 5 minutes while failing
    assert health[0][0] == 0                                 # nothing known before the first check
    assert health[1][0] == 1 and "does not resolve" in health[1][1] and "unhealthy" in health[1][1]
    assert health[1][1].count("\n") == 1                     # one line, with the reason
    started = next(e for e in logs if e["event"] == "daemon_started")
    assert started["devlake_reachable"] is False
    assert [e["kind"] for e in logs if e["event"] == "devlake_unreachable"] == ["dns"] * 3
    assert any(e["event"] == "devlake_reachable" for e in logs)
    assert not (tmp_path / UNREACHABLE_FILE).exists()
    assert healthcheck(tmp_path, capsys) == (0, "")          # healthy again once DevLake answers


def test_a_run_that_finds_devlake_unusable_starts_the_checks(tmp_path):
    settings = load_settings({"DEVLAKE_URL": "http://d", "STATE_DIR": str(tmp_path), "RETRY_FAILED_TIMES": "0"})
    clock = Clock(VN.localize(datetime(2026, 11, 25, 17, 59)))
    stop = threading.Event()
    verdicts, checks = [None, DOWN, None], []

    def check():
        checks.append(clock().strftime("%H:%M"))
        if len(verdicts) == 1:
            stop.set()
        return verdicts.pop(0)

    def wait(seconds):
        clock.advance(seconds=seconds)
        return stop.is_set()

    run_daemon(settings, lambda: 2, stop, scheduler=DailyScheduler(clock, VN.localize(datetime(2026, 11, 25, 18, 0))),
               clock=clock, wait=wait, check=check)
    assert checks == ["17:59", "18:00", "18:05"]  # start (fine), after the 18:00 run (down), 5 min later


def test_healthcheck_without_a_heartbeat_says_why(tmp_path, capsys):
    code, err = healthcheck(tmp_path, capsys)
    assert code == 1 and "no heartbeat" in err and "not running" in err
