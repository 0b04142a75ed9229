"""A total deadline for each HTTP attempt: connect, headers and body together, however slowly the
bytes come (issue 21). urllib3's timeouts are per socket operation: a server that sends one byte a
second never trips them.

A `Deadlines` belongs to one session. A thread that wants its attempts bounded enters
`deadlines.each_attempt(seconds)`; every attempt urllib3 makes inside (retries included) is armed
when its connection connects or sends, and a watchdog thread shuts that socket down when the
attempt's time is up. The blocked read then ends at once, and `expired()` tells the caller why.
Threads that never enter `each_attempt` are not watched. The watchdog thread exists only while
some attempt is armed.
"""
from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


@dataclass
class _Attempt:
    deadline: float
    conn: HTTPConnection | None = None
    expired: bool = False


class Deadlines:
    def __init__(self, monotonic: Callable[[], float] = time.monotonic):
        self.monotonic = monotonic
        self._local = threading.local()
        self._armed: dict[int, _Attempt] = {}  # thread id -> its current attempt
        self._cond = threading.Condition()
        self._watchdog: threading.Thread | None = None

    @contextlib.contextmanager
    def each_attempt(self, seconds: float) -> Iterator[None]:
        """Bound every attempt this thread makes inside the block to `seconds` in total."""
        self._local.seconds = seconds
        try:
            yield
        finally:
            self._local.seconds = None
            with self._cond:
                self._armed.pop(threading.get_ident(), None)

    def arm(self, conn: HTTPConnection) -> None:
        """A new attempt on `conn` starts now (connect, or a request on a kept-alive connection)."""
        seconds = getattr(self._local, "seconds", None)
        if seconds is None:
            return
        with self._cond:
            self._armed[threading.get_ident()] = _Attempt(self.monotonic() + seconds, conn)
            if self._watchdog is None:
                self._watchdog = threading.Thread(target=self._watch, name="http-deadlines", daemon=True)
                self._watchdog.start()
            self._cond.notify()

    def current(self) -> float | None:
        """This thread's current attempt's deadline (monotonic), or None."""
        with self._cond:
            attempt = self._armed.get(threading.get_ident())
        return attempt.deadline if attempt is not None else None

    def expired(self) -> bool:
        """Whether this thread's last attempt was cut off at its deadline."""
        with self._cond:
            attempt = self._armed.get(threading.get_ident())
        return attempt is not None and attempt.expired

    def _watch(self) -> None:
        with self._cond:
            while True:
                live = [a for a in self._armed.values() if not a.expired]
                if not live:
                    self._watchdog = None  # started again by the next arm()
                    return
                now = self.monotonic()
                for attempt in live:
                    if attempt.deadline <= now:
                        attempt.expired = True
                        _hang_up(attempt.conn)
                soonest = min((a.deadline for a in live if not a.expired), default=None)
                if soonest is not None:
                    self._cond.wait(max(0.0, soonest - now))
                # else: loop once more and leave


def _hang_up(conn: HTTPConnection | None) -> None:
    """Shut the connection's socket down: a read blocked on it in another thread returns at once.
    `socket.socket.shutdown` acts on the descriptor even for a TLS socket, without touching its state."""
    sock = getattr(conn, "sock", None)
    if sock is None:
        return
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


class _Armed:
    """Mixed into urllib3's connection classes: each connect, and each request on a connection
    that is already open, starts a new attempt."""

    deadlines: Deadlines
    _armed_by_connect = False

    def connect(self) -> None:
        self.deadlines.arm(self)  # type: ignore[arg-type]
        self._armed_by_connect = True
        super().connect()  # type: ignore[misc]

    def request(self, *args: Any, **kwargs: Any) -> None:
        if not self._armed_by_connect and getattr(self, "sock", None) is not None:
            self.deadlines.arm(self)  # type: ignore[arg-type]  # a kept-alive connection: a new attempt
        self._armed_by_connect = False
        try:
            return super().request(*args, **kwargs)  # type: ignore[misc]  # may connect (plain HTTP)
        finally:
            self._armed_by_connect = False


def pool_classes(deadlines: Deadlines) -> dict[str, type]:
    """urllib3 pool classes whose connections are watched by `deadlines`."""
    http_conn = type("WatchedHTTPConnection", (_Armed, HTTPConnection), {"deadlines": deadlines})
    https_conn = type("WatchedHTTPSConnection", (_Armed, HTTPSConnection), {"deadlines": deadlines})
    return {"http": type("WatchedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
            "https": type("WatchedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn})}
