"""DevLake's signed pipeline notifications: check them at once, count them in a worker thread.

A DevLake started with NOTIFICATION_ENDPOINT and NOTIFICATION_SECRET POSTs every
pipeline status change (created, started, finished) once and never retries
(backend/server/services/pipeline_notification_impl.go, pipeline.go; `docs/devlake-api.md` §9.7):

    POST <endpoint>?nouce=<notification id>-<16 letters or digits>&sign=<hex>
    {"ProjectName":"…","PipelineID":7,"CreatedAt":"…","UpdatedAt":"…",
     "BeganAt":"…","FinishedAt":"…","Status":"TASK_FAILED"}

where sign = hex(sha256(body + secret + nouce)); the parameter really is spelled
`nouce`. DevLake sends from the pipeline's goroutine with a client that has no
timeout, so the HTTP thread only checks and queues: size, signature (constant
time, over the raw bytes), JSON shape, replay.

The worker then reads each reported failure with GET /pipelines/{id}, the
poller's source, so the event key (id, finishedAt) is the poller's whatever
precision the notification's own times have, and counts it through the ledger
(`apply_push`), which never moves the poller's watermark. Anything refused,
lost or not fetchable is no loss: the poller finds it within a poll interval.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import queue
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs

import structlog

from modules.api import DevLakeClient, DevLakeError
from modules.monitoring.ledger import MalformedAnswer, Observation
from modules.monitoring.state import FAILURE_STATUSES, FailureEvent

PATH = "/notifications"
MAX_BODY_BYTES = 64 * 1024  # DevLake's bodies are ~250 bytes
NOUCE = re.compile(r"[0-9]{1,20}-[A-Za-z0-9]{16}")  # "<row id>-<RandLetterBytes(16)>"
RECENT_NOUCES = 10_000
QUEUE_SIZE = 10_000
BATCH_SIZE = 100  # one lock, one state save per batch, not per notification

log = structlog.get_logger("monitor")


def signature(body: bytes, secret: str, nouce: str) -> str:
    """DevLake's sign: hex(sha256(body + secret + nouce)) (a plain hash, not an HMAC)."""
    return hashlib.sha256(body + secret.encode() + nouce.encode()).hexdigest()


def signature_ok(body: bytes, secret: str, nouce: str | None, sign: str | None) -> bool:
    """True if `sign` is DevLake's signature of the raw body; compared in constant time.

    The nouce must have DevLake's shape: with a free-form nouce, sha256's length
    extension would let anyone holding one signed request sign it again under
    another nouce (padding bytes cannot pass the pattern).
    """
    if not nouce or not sign or not NOUCE.fullmatch(nouce):
        return False
    return hmac.compare_digest(signature(body, secret, nouce).encode(), sign.lower().encode())


@dataclass(frozen=True)
class Notification:
    """What the worker needs from one notification; its times are deliberately ignored."""

    pipeline_id: int
    status: str
    project_name: str
    notification_id: str  # the nouce's row id, for logs


def parse_notification(body: bytes, nouce: str) -> Notification:
    """The body as a Notification, or ValueError saying what is wrong with it."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ValueError(f"not JSON: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    pid, status, project = data.get("PipelineID"), data.get("Status"), data.get("ProjectName") or ""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        raise ValueError("PipelineID is missing or not a positive integer")
    if not isinstance(status, str) or not status:
        raise ValueError("Status is missing or not a string")
    if not isinstance(project, str):
        raise ValueError("ProjectName is not a string")
    return Notification(pid, status, project, nouce.split("-", 1)[0])


class RecentNouces:
    """The last `size` accepted nouces (least recently seen forgotten first).

    Not persisted: a notification replayed after a restart is processed again,
    which changes nothing, because processing re-reads DevLake and counts by key.
    """

    def __init__(self, size: int = RECENT_NOUCES) -> None:
        self.size = size
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, nouce: str) -> bool:
        with self._lock:
            if nouce in self._seen:
                self._seen.move_to_end(nouce)
                return False
            self._seen[nouce] = None
            if len(self._seen) > self.size:
                self._seen.popitem(last=False)
            return True


@dataclass(frozen=True)
class Reply:
    """The HTTP answer; `close` when the body was not (fully) read."""

    status: int
    text: str
    close: bool = False


class PushTarget(Protocol):
    """What the receiver and its worker use of the monitor (the monitor in monitor.py has all of it).

    The counters invalidate the monitor's cached exposition themselves: nothing here has to.
    """

    def count_notification(self, outcome: str) -> None: ...
    def count_processed(self, result: str) -> None: ...
    def read_pipeline(self, client: DevLakeClient, pipeline_id: int) -> tuple[Observation, str | None]: ...
    def count_pushed(self, sightings: list[tuple[Observation, str | None]]) -> list[FailureEvent] | None: ...
    def explain(self, client: DevLakeClient) -> int: ...


class NotificationReceiver:
    """Checks notifications in the HTTP threads and counts failures in one worker thread."""

    def __init__(self, monitor: PushTarget, client: DevLakeClient, secret: str, *,
                 queue_size: int = QUEUE_SIZE) -> None:
        self.monitor, self.client, self.secret = monitor, client, secret
        self.recent = RecentNouces()
        self._queue: queue.Queue[Notification | None] = queue.Queue(queue_size)
        self._pending = 0
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None

    # -- the HTTP thread: check, queue, answer --------------------------------------------------

    def handle(self, length: str | None, read: Callable[[int], bytes], query: str, peer: str) -> Reply:
        """One POST: `length` is its Content-Length header, `read(n)` reads the body."""
        try:
            size = int(length) if length is not None else None
        except ValueError:
            size = -1
        if size is None:
            return self._refuse("malformed", 411, peer, "Content-Length required", close=True)
        if size < 0:
            return self._refuse("malformed", 400, peer, "bad Content-Length", close=True)
        if size > MAX_BODY_BYTES:  # refused unread
            return self._refuse("too_large", 413, peer, f"body over {MAX_BODY_BYTES} bytes", close=True)
        body = read(size)
        if len(body) != size:
            return self._refuse("malformed", 400, peer, "body shorter than Content-Length", close=True)
        params = parse_qs(query)
        nouce, sign = params.get("nouce", [None])[0], params.get("sign", [None])[0]
        if nouce is None or not signature_ok(body, self.secret, nouce, sign):
            return self._refuse("bad_signature", 401, peer, "missing or bad signature")
        try:
            note = parse_notification(body, nouce)
        except ValueError as exc:
            return self._refuse("malformed", 400, peer, str(exc))
        if not self.recent.first_time(nouce):
            return self._refuse("replay", 200, peer, "already received; ignored", notification_id=nouce.split("-")[0])
        if not self._enqueue(note):
            return self._refuse("dropped", 503, peer, "busy; the next poll will catch up",
                                pipeline_id=note.pipeline_id)
        self._outcome("accepted")
        log.info("notification_accepted", notification_id=note.notification_id, pipeline_id=note.pipeline_id,
                 status=note.status, project=note.project_name)
        return Reply(200, "accepted")

    def _refuse(self, outcome: str, status: int, peer: str, reason: str, close: bool = False,
                **fields: Any) -> Reply:
        self._outcome(outcome)
        level = log.info if outcome == "replay" else log.warning
        level("notification_rejected", outcome=outcome, reason=reason, status=status, peer=peer, **fields)
        return Reply(status, reason, close)

    def _outcome(self, outcome: str) -> None:
        self.monitor.count_notification(outcome)

    def _enqueue(self, note: Notification) -> bool:
        with self._idle:
            try:
                self._queue.put_nowait(note)
            except queue.Full:
                return False
            self._pending += 1
            return True

    # -- the worker: fetch, count ----------------------------------------------------------------

    def start(self) -> NotificationReceiver:
        self._thread = threading.Thread(target=self._run, name="notifications", daemon=True)
        self._thread.start()
        return self

    @property
    def thread(self) -> threading.Thread | None:
        """The worker thread while started."""
        return self._thread

    def stop(self, timeout: float = 5.0) -> None:
        """Finish what is queued (up to `timeout`); what is left is the next start's poll's."""
        if self._thread is not None:
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                pass  # a daemon thread: abandoned at exit
            self._thread.join(timeout)
            self._thread = None

    def wait_idle(self, timeout: float) -> bool:
        """True once every accepted notification is processed (for tests and the benchmark)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def _run(self) -> None:
        while True:
            notes = [self._queue.get()]
            while len(notes) < BATCH_SIZE:
                try:
                    notes.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            work = [n for n in notes if n is not None]
            try:
                self._process(work)
            except Exception:  # the worker outlives any bug: the poller covers what it missed
                log.exception("notification_processing_failed", notifications=len(work))
            with self._idle:
                self._pending -= len(work)
                self._idle.notify_all()
            if None in notes:
                return

    def _process(self, notes: list[Notification]) -> None:
        sightings: list[tuple[Observation, str | None]] = []
        reported: set[int] = set()
        for note in notes:
            if note.status not in FAILURE_STATUSES:
                self._result("ignored")  # created, started, completed, cancelled: the poller counts runs
            elif note.pipeline_id in reported:
                self._result("already_counted")
            else:
                reported.add(note.pipeline_id)
                sighting = self._fetch(note.pipeline_id)
                if sighting is not None:
                    sightings.append(sighting)
        counted = self.monitor.count_pushed(sightings) if sightings else []
        if counted is None:  # before the first poll, which reads them back itself
            for _ in sightings:
                self._result("deferred")
            return
        if counted:
            self.monitor.explain(self.client)  # their reasons, read with this worker's client (explain.py)
        keys = {e.key for e in counted}
        for obs, project in sightings:
            if obs.status not in FAILURE_STATUSES or project is None:
                self._result("ignored")  # rerun already queued, or the project was deleted
            else:
                self._result("counted" if obs.finish_key in keys else "already_counted")

    def _fetch(self, pipeline_id: int) -> tuple[Observation, str | None] | None:
        try:
            return self.monitor.read_pipeline(self.client, pipeline_id)
        except (DevLakeError, MalformedAnswer) as exc:
            self._result("fetch_failed")
            log.warning("notification_fetch_failed", pipeline_id=pipeline_id, error=str(exc),
                        action="left to the next poll")
            return None

    def _result(self, result: str) -> None:
        self.monitor.count_processed(result)
