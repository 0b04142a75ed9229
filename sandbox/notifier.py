"""DevLake's pipeline notification sender (NOTIFICATION_ENDPOINT / NOTIFICATION_SECRET).

Follows backend/server/services/pipeline_notification_impl.go, backend/server/services/pipeline.go
and backend/server/services/pipeline_runner.go:

* `NotifyExternal(pipelineId)` runs when a pipeline is created (CreateDbPipeline),
  when the runner starts it (TASK_RUNNING) and when it ends (any final status).
  It re-reads the pipeline from the database, so the times are what the DB stored
  (what the REST API answers too). Rerun (TASK_RERUN) and cancelling a queued
  pipeline send nothing.
* The body is `json.Marshal(PipelineNotificationParam)`: Go field names in
  declaration order, no JSON tags, compact, `<`, `>`, `&` escaped as Go does;
  `ProjectName` is "" for a pipeline without a blueprint.
* Each notification gets a row in `_devlake_notifications` (its auto-increment id)
  and a 16-character nonce of [a-zA-Z0-9] (utils.RandLetterBytes); it is POSTed to
  `<endpoint>?nouce=<id>-<nonce>&sign=<hex sha256(body + secret + nouce)>` with
  http.Post, once: no retry, whatever the answer or error.

Callers hold the fake's lock when they call `pipeline_changed`; sending happens
in background threads, as DevLake sends from the pipeline's goroutine.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import queue
import secrets
import select
import socket
import string
import threading
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from .common import fmt_time

NONCE_LETTERS = string.ascii_letters + string.digits
FIELDS = ("ProjectName", "PipelineID", "CreatedAt", "UpdatedAt", "BeganAt", "FinishedAt", "Status")


def sign(body: bytes, secret: str, nouce: str) -> str:
    """DefaultPipelineNotificationService.signature: hex(sha256(input + secret + nouce))."""
    return hashlib.sha256(body + secret.encode() + nouce.encode()).hexdigest()


def go_json(param: dict) -> bytes:
    """encoding/json's output for a struct: declared field order, compact, HTML-safe escapes."""
    text = json.dumps({k: param[k] for k in FIELDS}, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text.encode()


def notification_param(pipeline: dict, project_name: str) -> dict:
    """PipelineNotificationParam of a pipeline row, times as Go prints a time.Time."""
    return {"ProjectName": project_name, "PipelineID": pipeline["id"],
            "CreatedAt": fmt_time(pipeline["createdAt"]), "UpdatedAt": fmt_time(pipeline["updatedAt"]),
            "BeganAt": fmt_time(pipeline["beganAt"]), "FinishedAt": fmt_time(pipeline["finishedAt"]),
            "Status": pipeline["status"]}


@dataclass
class SentNotification:
    """One row of `_devlake_notifications`, with what came back."""

    id: int
    nouce: str
    body: bytes
    status: str  # the pipeline status it reports
    response_code: int | None = None  # None: not delivered (network error or dropped)
    response: str = ""
    error: str = ""


class Notifier:
    """Sends notifications to one endpoint from `workers` threads, each with a keep-alive connection."""

    def __init__(self, endpoint: str, secret: str, *, workers: int = 1, timeout: float = 10.0):
        parts = urlsplit(endpoint)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the fake sends to http:// endpoints only, not {endpoint!r}")
        self.endpoint, self.secret, self.timeout = endpoint, secret, timeout
        self._host, self._port = parts.hostname, parts.port or 80
        self._path = (parts.path or "/") + (f"?{parts.query}&" if parts.query else "?")
        self.sent: list[SentNotification] = []
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._seq = 0
        self._drop = 0
        self._threads = [threading.Thread(target=self._run, name=f"fake-devlake-notify-{i}", daemon=True)
                         for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def pipeline_changed(self, pipeline: dict, project_name: str) -> None:
        """Insert the notification row (id, nonce, body) now; POST it in the background."""
        body = go_json(notification_param(pipeline, project_name))
        with self._lock:
            self._seq += 1
            record = SentNotification(self._seq, f"{self._seq}-{_nonce()}", body, pipeline["status"])
            self.sent.append(record)
        self._queue.put(record)

    def drop_next(self, count: int = 1) -> None:
        """The next `count` notifications are lost on the way (DevLake never retries)."""
        with self._lock:
            self._drop += count

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued notification was answered or failed; False on timeout."""
        done = threading.Event()
        threading.Thread(target=lambda: (self._queue.join(), done.set()), daemon=True).start()
        return done.wait(timeout)

    def stop(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=5)

    def _run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        while True:
            record = self._queue.get()
            try:
                if record is None:
                    return
                conn = self._deliver(conn, record)
            finally:
                self._queue.task_done()

    def _deliver(self, conn, record: SentNotification):
        """POST once; returns the connection to reuse (None after an error or `Connection: close`)."""
        with self._lock:
            dropped, self._drop = self._drop > 0, max(0, self._drop - 1)
        if dropped:
            record.error = "dropped by the test"
            return conn
        target = f"{self._path}nouce={quote(record.nouce)}&sign={sign(record.body, self.secret, record.nouce)}"
        if conn is not None and not _idle_and_open(conn):
            conn.close()  # Go's transport drops an idle connection the server closed before reusing it
            conn = None
        try:
            conn = conn or _connect(self._host, self._port, self.timeout)
            conn.request("POST", target, body=record.body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            record.response = response.read().decode("utf-8", "replace")
            record.response_code = response.status
        except (OSError, http.client.HTTPException) as exc:  # logged by DevLake, never retried
            record.error = f"{type(exc).__name__}: {exc}"
            if conn is not None:
                conn.close()
            return None
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
            return None
        return conn


def _idle_and_open(conn: http.client.HTTPConnection) -> bool:
    """An idle keep-alive socket is never readable; readable means the server closed it."""
    readable, _, _ = select.select([conn.sock], [], [], 0)
    return not readable


def _connect(host: str, port: int, timeout: float) -> http.client.HTTPConnection:
    """A connection with TCP_NODELAY, as Go's net/http dials: no Nagle delay between headers and body."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def _nonce() -> str:
    return "".join(secrets.choice(NONCE_LETTERS) for _ in range(16))
