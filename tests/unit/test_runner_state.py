import json
import os
import time
from datetime import UTC, datetime, timedelta

from modules.changes import Outcome, Plan, Result, TriggerBlueprint
from modules.orchestrator import RunReport
from modules.runner import LAST_RUN_FILE as LAST_RUN
from modules.runner import heartbeat_fresh, touch_heartbeat, write_last_run
from tests.scheduler import DailyScheduler


def report(created=0, unchanged=0, failed=0) -> RunReport:
    results = [Result(TriggerBlueprint(f"p{i}", i), Outcome.CREATED) for i in range(created)]
    results += [Result(TriggerBlueprint(f"f{i}", i), Outcome.FAILED, error="boom") for i in range(failed)]
    return RunReport(plan=Plan(unchanged=unchanged), results=results)


def test_last_run_keeps_the_last_success_through_a_partial_run(tmp_path):
    ok_at = datetime(2026, 11, 21, 11, 0, tzinfo=UTC)
    write_last_run(tmp_path, 0, report(created=3, unchanged=7), 1.5, ok_at)
    later = datetime(2026, 11, 22, 11, 0, tzinfo=UTC)
    write_last_run(tmp_path, 1, report(created=1, failed=2), 2.0, later)
    data = json.loads((tmp_path / "automation_last_run.json").read_text())
    assert data["outcome"] == "partial" and data["exit_code"] == 1
    assert data["finished_at_epoch"] == later.timestamp() + 2.0  # started + duration: when it finished
    assert data["last_success_epoch"] == ok_at.timestamp() + 1.5
    assert (data["created"], data["failed"]) == (1, 2)


def test_unusable_run_is_recorded_as_failed(tmp_path):
    write_last_run(tmp_path, 2, report(), 0.1, datetime(2026, 11, 22, tzinfo=UTC))
    data = json.loads((tmp_path / "automation_last_run.json").read_text())
    assert data["outcome"] == "failed" and data["last_success_epoch"] is None


def test_heartbeat_freshness(tmp_path):
    assert not heartbeat_fresh(tmp_path)
    touch_heartbeat(tmp_path)
    assert heartbeat_fresh(tmp_path)
    old = time.time() - 600
    os.utime(tmp_path / "automation_heartbeat", (old, old))
    assert not heartbeat_fresh(tmp_path)


def test_failed_items_are_retried_the_same_day_a_bounded_number_of_times():

    from config import load_settings
    from modules.runner import RetryingJob

    settings = load_settings({"DEVLAKE_URL": "http://d", "RETRY_FAILED_AFTER_MINUTES": "0.5",
                              "RETRY_FAILED_TIMES": "2"})
    clock = [datetime(2026, 11, 22, 11, 0, tzinfo=UTC)]
    codes = [1, 1, 1, 1]
    calls = []

    def job():
        calls.append(clock[0])
        return codes.pop(0)

    runs = RetryingJob(job, settings, lambda: clock[0])
    runs.daily()
    assert runs.retry_at == clock[0] + timedelta(seconds=30) and runs.seconds_until_retry() == 30
    assert not runs.retry_if_due()                   # not yet
    clock[0] += timedelta(seconds=30)
    assert runs.retry_if_due() and len(calls) == 2    # first retry
    clock[0] += timedelta(seconds=30)
    assert runs.retry_if_due() and len(calls) == 3    # second and last
    assert runs.retry_at is None                      # RETRY_FAILED_TIMES spent: tomorrow's run
    runs.daily()
    assert runs.retry_at is not None                  # a new day starts a new count


def test_no_retry_after_success_or_past_the_next_daily_run():

    from config import load_settings
    from modules.runner import next_retry_at

    settings = load_settings({"DEVLAKE_URL": "http://d"})
    now = datetime(2026, 11, 22, 11, 0, tzinfo=UTC)
    assert next_retry_at(1, 0, now, settings, None) == now + timedelta(minutes=30)
    assert next_retry_at(0, 0, now, settings, None) is None
    assert next_retry_at(2, 0, now, settings, None) == now + timedelta(minutes=30)  # DevLake was down
    assert next_retry_at(1, 3, now, settings, None) is None
    assert next_retry_at(1, 0, now, settings, now + timedelta(minutes=10)) is None


def test_deferred_triggers_reach_the_last_run_file_and_the_monitors_gauge(tmp_path):
    import threading
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry

    from modules.monitoring.metrics import StateCollector, read_automation
    from modules.monitoring.state import MonitorState

    run = report(created=2)
    run.results += [Result(TriggerBlueprint(f"d{i}", 100 + i), Outcome.DEFERRED, error="queue budget")
                    for i in range(5)]
    assert run.failed == 0 and run.as_log_fields()["deferred"] == 5
    write_last_run(tmp_path, 0, run, 1.0, datetime(2026, 11, 22, 11, 0, tzinfo=UTC))
    data = json.loads((tmp_path / "automation_last_run.json").read_text())
    assert (data["outcome"], data["deferred"], data["failed"]) == ("success", 5, 0)
    registry = CollectorRegistry()
    registry.register(StateCollector(SimpleNamespace(lock=threading.RLock(), state=MonitorState(),
                                                     automation=read_automation(tmp_path / LAST_RUN))))
    assert registry.get_sample_value("devlake_automation_last_run_items", {"outcome": "deferred"}) == 5
    data.pop("deferred")  # a file from a daemon before the budget: 0, not an error
    (tmp_path / LAST_RUN).write_text(json.dumps(data))
    registry = CollectorRegistry()
    registry.register(StateCollector(SimpleNamespace(lock=threading.RLock(), state=MonitorState(),
                                                     automation=read_automation(tmp_path / LAST_RUN))))
    assert registry.get_sample_value("devlake_automation_last_run_items", {"outcome": "deferred"}) == 0



def test_lifecycle_counts_reach_the_last_run_file_and_the_monitors_gauge(tmp_path):
    import threading
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry

    from modules.changes import PatchBlueprint
    from modules.monitoring.metrics import StateCollector, read_automation
    from modules.monitoring.state import MonitorState

    run = report()
    run.plan.refused = 7
    run.results += [Result(PatchBlueprint(i, f"p{i}", {"enable": False}, lifecycle="retire (missing since x)"),
                           Outcome.UPDATED) for i in range(2)]
    run.results.append(Result(PatchBlueprint(9, "p9", {}, lifecycle="restore"), Outcome.FAILED, error="boom"))
    assert run.lifecycle_counts() == {"marked": 0, "retired": 2, "restored": 0, "refused": 7}
    write_last_run(tmp_path, 1, run, 1.0, datetime(2026, 11, 22, 11, 0, tzinfo=UTC))
    registry = CollectorRegistry()
    registry.register(StateCollector(SimpleNamespace(lock=threading.RLock(), state=MonitorState(),
                                                     automation=read_automation(tmp_path / LAST_RUN))))
    assert registry.get_sample_value("devlake_automation_last_run_items", {"outcome": "retired"}) == 2
    assert registry.get_sample_value("devlake_automation_last_run_items", {"outcome": "refused"}) == 7
    assert registry.get_sample_value("devlake_automation_last_run_items", {"outcome": "restored"}) == 0


def test_the_daemon_loop_retries_a_failed_daily_run_the_same_day(tmp_path):
    import threading

    import pytz
    from structlog.testing import capture_logs

    from config import load_settings
    from modules.runner import run_daemon
    from tests.clock import Clock

    vn = pytz.timezone("Asia/Ho_Chi_Minh")
    settings = load_settings({"DEVLAKE_URL": "http://d", "STATE_DIR": str(tmp_path),
                              "RETRY_FAILED_AFTER_MINUTES": "30", "RETRY_FAILED_TIMES": "2"})
    clock = Clock(vn.localize(datetime(2026, 11, 25, 17, 58)))
    stop = threading.Event()
    codes, runs = [1, 1, 1, 0], []

    def job():
        runs.append(clock().astimezone(vn).strftime("%d %H:%M:%S"))
        code = codes.pop(0)
        if not codes:
            stop.set()
        return code

    def wait(seconds):  # the loop's only way to let time pass
        clock.advance(seconds=seconds)
        return stop.is_set()

    scheduler = DailyScheduler(clock, vn.localize(datetime(2026, 11, 25, 18, 0)))
    with capture_logs() as logs:
        run_daemon(settings, job, stop, scheduler=scheduler, clock=clock, wait=wait)
    # the daily run, two same-day retries (RETRY_FAILED_TIMES=2), then the next day's run
    assert runs == ["25 18:00:00", "25 18:30:00", "25 19:00:00", "26 18:00:00"]
    scheduled = [e for e in logs if e["event"] == "failed_items_retry_scheduled"]
    assert [e["next_retry"] for e in scheduled] == ["2026-11-25T18:30:00+07:00", "2026-11-25T19:00:00+07:00"]
    assert [e["retry"] for e in logs if e["event"] == "failed_items_retry_started"] == [1, 2]


def test_next_daily_run_is_strictly_after():
    import pytz

    from config import load_settings
    from modules.runner import next_daily_run

    vn = pytz.timezone("Asia/Ho_Chi_Minh")
    settings = load_settings({"DEVLAKE_URL": "http://d"})
    at_six = vn.localize(datetime(2026, 11, 25, 18, 0))
    assert next_daily_run(at_six, settings) == vn.localize(datetime(2026, 11, 26, 18, 0))
    assert next_daily_run(at_six.replace(hour=17), settings) == at_six
    assert next_daily_run(datetime(2026, 11, 25, 12, 0, tzinfo=UTC), settings) == vn.localize(
        datetime(2026, 11, 26, 18, 0))
