"""Hostile clients on the monitor's port (issue 21): resets, a header drip, a crowd.

The log stays one JSON object per line, a drip is cut off within seconds, and connections past
the cap get a 503 instead of a thread each.
"""
from __future__ import annotations

import contextlib
import io
import json
import select
import socket
import struct
import threading
import time

import pytest
import requests
import structlog

from modules.monitoring import http as monitor_http
from modules.monitoring.http import MetricsServer
from utils.logging import configure_logging


class StubMonitor:
    def exposition(self, compressed: bool = False) -> bytes:
        return b"devlake_up 1.0\n" * 2000  # big enough that a client resetting early breaks the write

    def health(self):
        return 200, {"status": "ok"}

    def liveness(self):
        return 200, {"status": "alive"}


@pytest.fixture
def served():
    servers = []

    def start(**kwargs) -> tuple[MetricsServer, str]:
        server = MetricsServer(StubMonitor(), "127.0.0.1", 0, **kwargs).start()
        servers.append(server)
        return server, f"127.0.0.1:{server.port}"
    yield start
    for server in servers:
        server.stop()


def reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer sees a TCP reset, not a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def connect(addr: str) -> socket.socket:
    host, port = addr.split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def test_a_burst_of_resetting_clients_leaves_only_json_lines_in_the_log(served):
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream=stream)
    try:
        with contextlib.redirect_stderr(stream):  # the standard library prints tracebacks there
            server, addr = served()
            for n in range(60):
                sock = connect(addr)
                if n % 3 == 0:
                    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # reset mid-headers
                elif n % 3 == 1:
                    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")  # reset before reading
                reset(sock)
            time.sleep(0.3)  # the handler threads finish
            assert requests.get(f"http://{addr}/livez", timeout=5).status_code == 200
            server.stop()
    finally:
        structlog.reset_defaults()
    lines = stream.getvalue().splitlines()
    assert lines
    for line in lines:
        event = json.loads(line)  # every line: one JSON object, no traceback
        assert event["level"] in ("debug", "info"), line
    assert any(json.loads(line)["event"] == "http_client_error" for line in lines)


def test_a_header_drip_is_cut_off_within_seconds(served, monkeypatch):
    monkeypatch.setattr(monitor_http._Handler, "header_seconds", 0.5)
    _server, addr = served()
    sock = connect(addr)
    started, closed_after = time.monotonic(), None
    for byte in b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Drip: " + b"a" * 100:  # 1 byte / 50 ms
        try:
            sock.sendall(bytes([byte]))
            if select.select([sock], [], [], 0.05)[0] and sock.recv(1) == b"":
                closed_after = time.monotonic() - started  # the server hung up on us
                break
        except OSError:
            closed_after = time.monotonic() - started
            break
    sock.close()
    assert closed_after is not None and closed_after < 2.0  # the drip alone would take 6 s


def test_connections_past_the_cap_get_a_503_and_the_backlog_is_128(served):
    server, addr = served(max_connections=2)
    assert server.httpd.request_queue_size >= 128
    stalled = [connect(addr), connect(addr)]  # two threads held by clients that say nothing
    time.sleep(0.2)
    third = requests.get(f"http://{addr}/healthz", timeout=5)
    assert third.status_code == 503 and third.headers["Retry-After"] == "1"
    assert "too many connections" in third.text
    for sock in stalled:
        sock.close()
    time.sleep(0.2)
    assert requests.get(f"http://{addr}/healthz", timeout=5).status_code == 200


def test_threads_do_not_grow_with_stalled_clients(served):
    _server, addr = served(max_connections=4)
    before = threading.active_count()
    socks = [connect(addr) for _ in range(40)]
    time.sleep(0.3)
    assert threading.active_count() - before <= 4
    for sock in socks:
        sock.close()
