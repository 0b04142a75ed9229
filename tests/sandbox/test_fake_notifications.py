"""The fake's notification sender behaves like DevLake's (backend/server/services/pipeline_notification_impl.go)."""
from __future__ import annotations

import hashlib
import json
import re
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from sandbox.fake_devlake import FakeDevLake
from sandbox.notifier import go_json

SECRET = "s3cret"
T0 = datetime(2025, 8, 8, 7, 0, 0, tzinfo=UTC)


class Sink:
    """A receiver that records every POST and answers `status`."""

    def __init__(self, status: int = 200):
        self.status, self.requests = status, []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                sink.requests.append((self.path, dict(self.headers), body))
                self.send_response(sink.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def received(self) -> list[dict]:
        out = []
        for path, headers, body in self.requests:
            parts = urlsplit(path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            out.append({"path": parts.path, "query": query, "headers": headers, "body": body,
                        "json": json.loads(body)})
        return out


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.server.shutdown()


@pytest.fixture
def fake(sink):
    with FakeDevLake(clock=lambda: T0, notification_endpoint=sink.url, notification_secret=SECRET) as f:
        yield f


def test_signed_like_devlake(fake, sink):
    bp = fake.add_project("github/a<b>")
    pid = fake.add_pipeline(bp, "TASK_FAILED", finished_at=T0 - timedelta(seconds=5))
    assert fake.notifier.flush()
    created, failed = sink.received()
    for note in (created, failed):
        nouce, sign = note["query"]["nouce"], note["query"]["sign"]
        assert note["path"] == "/hook" and set(note["query"]) == {"nouce", "sign"}
        assert re.fullmatch(r"\d+-[A-Za-z0-9]{16}", nouce)
        assert sign == hashlib.sha256(note["body"] + SECRET.encode() + nouce.encode()).hexdigest()
        assert note["headers"]["Content-Type"] == "application/json"
    assert [n["query"]["nouce"].split("-")[0] for n in (created, failed)] == ["1", "2"]
    assert list(failed["json"]) == ["ProjectName", "PipelineID", "CreatedAt", "UpdatedAt", "BeganAt",
                                    "FinishedAt", "Status"]
    assert failed["json"]["PipelineID"] == pid and failed["json"]["Status"] == "TASK_FAILED"
    assert failed["json"]["FinishedAt"] == "2025-08-08T06:59:55Z"
    assert b'"ProjectName":"github/a\\u003cb\\u003e"' in failed["body"]  # Go escapes <, >, &
    assert created["json"]["Status"] == "TASK_CREATED" and created["json"]["FinishedAt"] is None
    # the times are the stored ones: what GET /pipelines/{id} answers
    assert fake.pipelines[pid]["finishedAt"] == failed["json"]["FinishedAt"]


def test_which_changes_notify(fake, sink):
    bp = fake.add_project("github/a")
    requests.post(f"{fake.url}/blueprints/{bp}/trigger", json={}, timeout=5).raise_for_status()
    fake.run_pending(lambda p: "TASK_FAILED")
    (pid,) = fake.pipelines
    requests.post(f"{fake.url}/pipelines/{pid}/rerun", timeout=5).raise_for_status()  # no notification
    fake.set_pipeline_status(pid, "TASK_RUNNING")
    fake.set_pipeline_status(pid, "TASK_COMPLETED")
    queued = fake.add_pipeline(0, "TASK_CREATED")
    requests.delete(f"{fake.url}/pipelines/{queued}", timeout=5).raise_for_status()  # queued cancel: none
    assert fake.notifier.flush()
    seen = [(n["json"]["PipelineID"], n["json"]["Status"], n["json"]["ProjectName"]) for n in sink.received()]
    assert seen == [(pid, "TASK_CREATED", "github/a"), (pid, "TASK_FAILED", "github/a"),
                    (pid, "TASK_RUNNING", "github/a"), (pid, "TASK_COMPLETED", "github/a"),
                    (queued, "TASK_CREATED", "")]


def test_sent_once_never_retried_and_droppable(fake, sink):
    sink.status = 500
    bp = fake.add_project("github/a")
    fake.notifier.drop_next(1)
    fake.add_pipeline(bp, "TASK_FAILED", finished_at=T0)
    assert fake.notifier.flush()
    assert len(sink.requests) == 1  # the created one was dropped; the 500 is not retried
    dropped, answered = fake.notifier.sent
    assert dropped.response_code is None and dropped.error
    assert (answered.response_code, answered.response) == (500, "ok")


def test_off_by_default_and_switchable(sink):
    with FakeDevLake(clock=lambda: T0) as fake:
        assert fake.notifier is None
        fake.add_pipeline(0, "TASK_FAILED", finished_at=T0)
        fake.configure_notifications(sink.url, SECRET)
        fake.add_pipeline(0, "TASK_COMPLETED", finished_at=T0)
        assert fake.notifier.flush()
    assert [n["json"]["Status"] for n in sink.received()] == ["TASK_CREATED", "TASK_COMPLETED"]


def test_go_json_matches_encoding_json():
    param = {"Status": "TASK_FAILED", "ProjectName": "a&b", "PipelineID": 3, "CreatedAt": "c",
             "UpdatedAt": "u", "BeganAt": None, "FinishedAt": "f"}
    assert go_json(param) == (b'{"ProjectName":"a\\u0026b","PipelineID":3,"CreatedAt":"c","UpdatedAt":"u",'
                              b'"BeganAt":null,"FinishedAt":"f","Status":"TASK_FAILED"}')
