"""/metrics, /healthz, /livez, the status page (/, /status.json) and POST /notifications on one
ThreadingHTTPServer. None ever calls DevLake.

With a WEB_CONFIG_FILE the port serves HTTPS only and/or asks for basic auth on every
path except OPEN_PATHS (utils/webconfig.py).
"""
from __future__ import annotations

import io
import json
import re
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol

import structlog

# 0.0.4: what prometheus_client itself answers a scraper that does not ask for more,
# and what every Prometheus version parses (our names need no UTF-8 escaping).
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4 as CONTENT_TYPE

from modules.monitoring import status_page
from modules.monitoring.notifications import PATH as NOTIFICATIONS_PATH
from modules.monitoring.notifications import Reply
from modules.monitoring.status_model import StatusModel
from utils.webconfig import BasicAuth, WebConfig

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

log = structlog.get_logger("monitor")

# Default deny: with basic auth on, every path needs it except these. /healthz and /livez
# reveal only up/down and must answer Docker's and Kubernetes' probes, which send no
# credentials; /notifications has DevLake's own signature check (notifications.py) and
# DevLake cannot send basic auth. Everything else, the status page included, is protected.
OPEN_PATHS = frozenset({"/healthz", "/livez", NOTIFICATIONS_PATH})
REALM = 'Basic realm="devlake-monitor", charset="UTF-8"'
SIGN = re.compile(r"(sign=)[^&\s]*")
# Connections served at once (one thread each); beyond it a client gets a 503 at once (over TLS
# the connection is closed: answering would need a handshake in the accept loop).
MAX_CONNECTIONS = 64
# From a request's first byte (or a new connection), its request line and headers must be in
# within this; a keep-alive connection may still idle `_Handler.timeout` between requests.
HEADER_SECONDS = 5.0
LISTEN_BACKLOG = 128  # the standard library's 5 drops connects under a burst of scrapers and browsers
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 32\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
        b"too many connections, try again\n")
_Request = socket.socket | tuple[bytes, socket.socket]  # what socketserver hands a server's hooks


class Served(Protocol):
    """What the HTTP server reads of the monitor: pre-rendered exposition, health verdicts and
    the status page's immutable model."""

    def exposition(self, compressed: bool = False) -> bytes: ...
    def health(self) -> tuple[int, dict]: ...
    def liveness(self) -> tuple[int, dict]: ...
    def status(self) -> StatusModel: ...


class Receiver(Protocol):
    """What the HTTP server hands a POST /notifications to (notifications.NotificationReceiver)."""

    def handle(self, length: str | None, read: Callable[[int], bytes], query: str, peer: str) -> Reply: ...


class MetricsServer:
    """Serves a monitor's exposition and health, and DevLake's notifications if a receiver is given.

    Port 0 binds a free port (see `.port`).
    """

    def __init__(self, monitor: Served, addr: str, port: int, receiver: Receiver | None = None,
                 web: WebConfig | None = None, max_connections: int = MAX_CONNECTIONS) -> None:
        auth = BasicAuth(web.users) if web is not None and web.users else None
        handler = type("MonitorHandler", (_Handler,), {"monitor": monitor, "receiver": receiver, "auth": auth})
        self.tls = web is not None and web.tls is not None
        self.basic_auth = auth is not None
        self.receiver = receiver
        self.httpd: ThreadingHTTPServer
        if web is not None and web.tls is not None:
            self.httpd = _TLSServer((addr, port), handler, web.tls.context(), max_connections=max_connections)
        else:
            self.httpd = _Server((addr, port), handler, max_connections=max_connections)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def start(self) -> MetricsServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="metrics-http", daemon=True)
        self._thread.start()
        log.info("metrics_server_started", addr=self.httpd.server_address[0], port=self.port,
                 scheme="https" if self.tls else "http", basic_auth=self.basic_auth,
                 endpoints=["/", "/status.json", "/metrics", "/healthz", "/livez"]
                 + ([NOTIFICATIONS_PATH] if self.receiver else []))
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(5)
            self._thread = None
        self.httpd.server_close()


class _Server(ThreadingHTTPServer):
    """A thread per connection, at most `max_connections` at once; client errors never reach stderr."""

    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request: _Request, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.debug("http_busy", client=client_address[0])
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: _Request, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request: _Request) -> None:
        """Answer 503 from the accept loop: a few bytes into an empty send buffer never block."""
        assert isinstance(request, socket.socket)  # a TCP server's requests are sockets; tells the type checker
        try:
            request.setblocking(False)
            request.send(BUSY)
            request.recv(65536)  # whatever already arrived, so closing sends FIN, not a reset
        except OSError:
            pass
        self.shutdown_request(request)

    def handle_error(self, request: _Request, client_address: Any) -> None:
        """One structured line instead of the standard library's traceback on stderr.

        A client that resets, hangs up or stalls is its own business: DEBUG. Anything else is a
        bug in a handler: an ERROR line with the traceback inside the JSON."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (OSError, ssl.SSLError)):  # resets, broken pipes, timeouts
            log.debug("http_client_error", client=client_address[0], error=type(exc).__name__)
        else:
            log.error("http_handler_failed", client=client_address[0], exc_info=True)


class _TLSServer(_Server):
    """HTTPS only. The handshake runs in the request's thread (`_Handler.handle`), not in
    accept(): a client that connects and stalls must not block everyone else."""

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.context = context
        super().__init__(address, handler, max_connections)

    def _refuse(self, request: _Request) -> None:
        self.shutdown_request(request)  # no handshake in the accept loop: just close

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, client = super().get_request()
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), client


class _Handler(BaseHTTPRequestHandler):
    monitor: Served  # set per server by MetricsServer
    receiver: Receiver | None = None  # None: notifications are off
    auth: BasicAuth | None = None  # None: no basic auth configured
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle on, a keep-alive client
    # (Prometheus, DevLake) waits for a delayed ACK, ~40 ms per request.
    disable_nagle_algorithm = True
    timeout = 30  # seconds a client may stall mid-request (the notification endpoint is public)
    header_seconds = HEADER_SECONDS

    def setup(self) -> None:
        super().setup()
        # Reads of the request line and headers are held to one deadline (_HeaderDeadline).
        self._deadline = _HeaderDeadline(self.rfile.detach(), self.connection, self.timeout)
        self._buffered = io.BufferedReader(self._deadline)
        self.rfile = self._buffered
        self._served = 0

    def handle_one_request(self) -> None:
        if self._served:  # keep-alive: idle up to `timeout` for the next request's first byte
            try:
                if not self._buffered.peek(1):
                    self.close_connection = True
                    return
            except OSError:  # idle too long, or the client went away: nothing worth a line
                self.close_connection = True
                return
        self._deadline.deadline = time.monotonic() + self.header_seconds
        try:
            super().handle_one_request()
        finally:
            self._deadline.deadline = None
            self._served += 1

    def parse_request(self) -> bool:
        try:
            return super().parse_request()
        finally:
            self._deadline.deadline = None  # the headers are in; a body gets the ordinary timeout

    def handle(self) -> None:
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()  # under the handler's timeout, set in setup()
            except (ssl.SSLError, OSError) as exc:  # plain HTTP, no or a bad client certificate, a stall
                log.debug("tls_handshake_failed", client=self.client_address[0], error=str(exc))
                return
        super().handle()

    def _authorized(self, path: str) -> bool:
        """Answer 401 (body left unread, connection closed) unless the path is open or the credentials match."""
        if self.auth is None or path in OPEN_PATHS or self.auth.check(self.headers.get("Authorization")):
            return True
        log.debug("http_unauthorized", client=self.client_address[0], method=self.command, path=path[:100])
        self._send(401, b"unauthorized\n", "text/plain; charset=utf-8", close=True,
                   headers={"WWW-Authenticate": REALM})
        return False

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        path = self.path.split("?", 1)[0]
        if not self._authorized(path):
            return
        if path == "/metrics":
            # Prometheus asks for gzip; with thousands of projects the text is megabytes.
            gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
            self._send(200, self.monitor.exposition(compressed=gzipped), CONTENT_TYPE, gzipped)
        elif path == "/healthz":
            status, payload = self.monitor.health()
            self._send(status, json.dumps(payload).encode() + b"\n", "application/json")
        elif path == "/livez":
            status, payload = self.monitor.liveness()
            self._send(status, json.dumps(payload).encode() + b"\n", "application/json")
        elif path in status_page.PATHS:
            body, content_type, gzipped = status_page.respond(self.monitor.status(), path,
                                                              self.headers.get("Accept-Encoding", ""))
            self._send(200, body, content_type, gzipped, headers=status_page.HEADERS)
        else:
            self._send(404, b"not found: try /, /status.json, /metrics, /healthz or /livez\n",
                       "text/plain; charset=utf-8")

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        path, _, query = self.path.partition("?")
        if not self._authorized(path):
            return
        if path != NOTIFICATIONS_PATH or self.receiver is None:
            text = (b"notifications are off: set NOTIFICATION_SECRET\n" if path == NOTIFICATIONS_PATH
                    else b"not found\n")
            self._send(404, text, "text/plain; charset=utf-8", close=True)  # body left unread
            return
        answer = self.receiver.handle(self.headers.get("Content-Length"), self._read, query,
                                      self.client_address[0])
        self._send(answer.status, answer.text.encode() + b"\n", "text/plain; charset=utf-8", close=answer.close)

    def _read(self, size: int) -> bytes:
        try:
            return self.rfile.read(size)
        except OSError:  # timed out or reset: the receiver sees a short body
            return b""

    def _send(self, status: int, body: bytes, content_type: str, gzipped: bool = False,
              close: bool = False, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802 (http.server naming). Uptime checkers often probe with HEAD.
        self.do_GET()

    def log_message(self, fmt: str, *args: Any) -> None:  # access logs at debug, through structlog; never the signature
        log.debug("http_request", client=self.client_address[0], request=SIGN.sub(r"\1***", fmt % args))


class _HeaderDeadline(io.RawIOBase):
    """The connection's reads, each given only what is left of `deadline` while one is set:
    a client dripping its headers a byte at a time is cut off at the deadline, not after
    `timeout` seconds per byte."""

    def __init__(self, raw: io.RawIOBase, sock: socket.socket, timeout: float | None) -> None:
        self.raw, self.sock, self.timeout = raw, sock, timeout
        self.deadline: float | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int | None:
        deadline = self.deadline
        if deadline is None:
            return self.raw.readinto(buffer)
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request headers did not arrive in time")
        self.sock.settimeout(left if self.timeout is None else min(left, self.timeout))
        try:
            return self.raw.readinto(buffer)
        finally:
            self.sock.settimeout(self.timeout)

    def close(self) -> None:
        self.raw.close()
        super().close()
