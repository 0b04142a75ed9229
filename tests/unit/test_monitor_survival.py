"""The poller cannot die silently (issue 21): the loops survive anything, /livez says when they did not,
and a poll running past its interval shows in a gauge."""
from __future__ import annotations

import threading

import pytest
from structlog.testing import capture_logs

from modules.monitoring.connections import ConnectionChecker
from modules.monitoring.monitor import run_forever, serve

# clock and lake are that module's fixtures
from tests.unit.test_monitor_poll import clock, lake, make_monitor, value  # noqa: F401


def test_the_poll_loop_survives_an_exception_outside_the_poll(tmp_path, clock, lake):  # noqa: F811
    monitor = make_monitor(tmp_path, clock)
    stop, calls = threading.Event(), []

    def exploding_exposition(compressed=False):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("render bug")
        stop.set()
        return b""
    monitor.exposition = exploding_exposition
    with capture_logs() as logs:
        run_forever(monitor, stop, interval=0)
    assert len(calls) == 2  # the loop went on after the first error
    assert value(monitor, "devlake_monitor_poll_errors_total", reason="internal") == 1
    assert [e["event"] for e in logs].count("poll_loop_error") == 1


@pytest.mark.parametrize("job", ["poll", "connection-check", "notification"])
def test_livez_fails_when_a_worker_thread_has_ended(tmp_path, clock, lake, job):  # noqa: F811
    monitor = make_monitor(tmp_path, clock)
    running, ended = threading.Event(), threading.Thread(target=lambda: None)
    alive = threading.Thread(target=running.wait, daemon=True)
    alive.start()
    for name in ("poll", "connection-check", "notification"):
        monitor.watch(name, alive)
    monitor.watch("nothing", None)  # a job that is off (checks at interval 0): never watched
    assert monitor.liveness()[0] == 200
    ended.start()
    ended.join()
    monitor.watch(job, ended)
    status, body = monitor.liveness()
    running.set()
    assert status == 503 and body == {"status": "dead", "reason": f"the {job} thread has ended"}


@pytest.mark.parametrize("interval, watched", [("600", {"poll", "connection-check"}), ("0", {"poll"})])
def test_serve_watches_the_poll_and_connection_threads(tmp_path, clock, lake, interval, watched):  # noqa: F811
    monitor = make_monitor(tmp_path, clock, CONNECTION_CHECK_INTERVAL_SECONDS=interval)
    stop = threading.Event()
    stop.set()  # serve returns at once: what it started is what /livez watches

    class Server:
        def stop(self) -> None:
            pass
    serve(monitor, Server(), stop, interval=3600, grace_seconds=0.1)
    assert set(monitor.workers) == watched


def test_the_connection_thread_survives_and_counts_a_crash():
    crashes, stop = [], threading.Event()
    checker = ConnectionChecker(client=None, plugins=["github"], interval=1e308, clock=lambda: 0.0,
                                on_crash=lambda: (crashes.append(1), stop.set()))
    checker.check_once = lambda: 1 / 0  # a bug
    with capture_logs() as logs:
        checker.start(stop)
        assert checker._thread is not None
        checker._thread.join(5)
    assert not checker._thread.is_alive() and crashes == [1]  # ended by `stop`, not by the error or the wait
    assert [e["event"] for e in logs] == ["connection_check_crashed"]


def test_a_poll_running_past_its_interval_shows_in_a_gauge(tmp_path, clock, lake):  # noqa: F811
    monitor = make_monitor(tmp_path, clock, POLL_INTERVAL_SECONDS="60")
    assert monitor.poll_once()
    real_fetch, seen = monitor.fetcher.fetch, []

    def slow_fetch(**kwargs):
        clock.advance(seconds=30)
        seen.append(b"devlake_monitor_poll_overrun 0.0" in monitor.exposition())
        clock.advance(seconds=45)
        seen.append(b"devlake_monitor_poll_overrun 1.0" in monitor.exposition())
        seen.append(b"devlake_up 1.0" in monitor.exposition())  # the last completed poll, still
        return real_fetch(**kwargs)
    monitor.fetcher.fetch = slow_fetch
    assert monitor.poll_once()
    assert seen == [True, True, True]
    assert b"devlake_monitor_poll_overrun 0.0" in monitor.exposition()
