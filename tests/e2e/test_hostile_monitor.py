"""The monitor against a DevLake that lies (issue 21): its pipeline walks are bounded too."""
from __future__ import annotations

import itertools
import json

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from config import load_settings
from modules import answers
from modules.client import build_client
from modules.monitoring.monitor import Monitor
from tests.clock import T0, Clock
from tests.hostile import HostileServer


def as_json(body) -> tuple[int, dict, bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()


def monitor_for(url: str, tmp_path, clock=None, **env) -> Monitor:
    settings = load_settings({"DEVLAKE_URL": url, "STATE_DIR": str(tmp_path), "DEVLAKE_HTTP_RETRIES": "0",
                              "DEVLAKE_RETRY_BACKOFF_SECONDS": "0", "DEVLAKE_TIMEOUT_SECONDS": "5",
                              "CONNECTION_CHECK_INTERVAL_SECONDS": "0", **env})
    return Monitor(build_client(settings), settings, CollectorRegistry(), clock=clock or Clock())


def endless_pipelines(repeat_every_page: bool = False):
    """Projects: none. In-flight lists: empty. The full list: full pages of fresh, recent ids forever
    (or the same page again and again), with a `count` that lies."""
    ids = itertools.count(10**9, -1)
    created = T0.isoformat()

    def answer(_method, path, query):
        if path == "/projects":
            return as_json({"count": 0, "projects": []})
        if "status" in query:
            return as_json({"count": 0, "pipelines": []})
        size = int(query["pageSize"])
        first = 10**9 if repeat_every_page else None
        rows = [{"id": first - i if first else next(ids), "blueprintId": 0, "status": "TASK_COMPLETED",
                 "createdAt": created, "finishedAt": created} for i in range(size)]
        return as_json({"count": 10**9, "pipelines": rows})
    return answer


@pytest.mark.parametrize("repeat", [False, True], ids=["fresh ids", "the same page"])
def test_an_endless_pipeline_list_fails_the_poll_at_the_item_cap(tmp_path, monkeypatch, repeat):
    monkeypatch.setattr(answers, "MAX_LIST_ITEMS", 5_000)
    with HostileServer(endless_pipelines(repeat)) as server, capture_logs() as logs:
        monitor = monitor_for(server.url, tmp_path)
        assert monitor.poll_once() is False
    assert monitor.last_error == "malformed"
    assert monitor.registry.get_sample_value("devlake_up") == 0
    scans = server.calls - 1 - 6  # the project list, four in-flight and two failure lists
    assert scans == (2 if repeat else 5_000 // 500 + 1)
    [line] = [e for e in logs if e["event"] == "devlake_answer_malformed"]
    assert line["route"] == "/pipelines"
    assert ("repeats only" if repeat else "more than 5000 items") in line["problem"]


def test_a_poll_never_waits_past_its_interval_for_a_retry(tmp_path):
    """Issue 21: a `Retry-After` that would end after the next poll is due is not waited for."""
    sleeps: list = []
    with HostileServer(lambda *_: (429, {"Retry-After": "200", "Content-Length": "0"}, b"")) as server, \
            capture_logs() as logs:
        settings = load_settings({"DEVLAKE_URL": server.url, "STATE_DIR": str(tmp_path), "DEVLAKE_HTTP_RETRIES": "3",
                                  "POLL_INTERVAL_SECONDS": "60", "CONNECTION_CHECK_INTERVAL_SECONDS": "0"})
        monitor = Monitor(build_client(settings, sleep=sleeps.append), settings, CollectorRegistry(), clock=Clock())
        assert monitor.poll_once() is False
    assert sleeps == [] and server.calls == 1  # 200 s fits the 300 s cap, not the 60 s interval
    assert monitor.last_error == "http_error"
    assert [e["allowed_seconds"] <= 60 for e in logs if e["event"] == "devlake_retry_not_waited"] == [True]
