"""/metrics, /healthz, /livez and POST /notifications on one ThreadingHTTPServer. None ever calls DevLake."""
from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import structlog
# 0.0.4: what prometheus_client itself answers a scraper that does not ask for more,
# and what every Prometheus version parses (our names need no UTF-8 escaping).
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4 as CONTENT_TYPE

log = structlog.get_logger("monitor")

from modules.monitoring.notifications import PATH as NOTIFICATIONS_PATH

INDEX = b"devlake blueprint monitor: /metrics (Prometheus), /healthz and /livez (JSON)\n"
SIGN = re.compile(r"(sign=)[^&\s]*")


class MetricsServer:
    """Serves a Monitor's exposition and health, and DevLake's notifications if a receiver is given.

    Port 0 binds a free port (see `.port`).
    """

    def __init__(self, monitor, addr: str, port: int, receiver=None):
        handler = type("MonitorHandler", (_Handler,), {"monitor": monitor, "receiver": receiver})
        self.httpd = ThreadingHTTPServer((addr, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def start(self) -> "MetricsServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="metrics-http", daemon=True)
        self._thread.start()
        receiver = self.httpd.RequestHandlerClass.receiver
        log.info("metrics_server_started", addr=self.httpd.server_address[0], port=self.port,
                 endpoints=["/metrics", "/healthz", "/livez"] + ([NOTIFICATIONS_PATH] if receiver else []))
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(5)
            self._thread = None
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    monitor = None  # set per server by MetricsServer
    receiver = None  # a NotificationReceiver, or None: notifications are off
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle on, a keep-alive client
    # (Prometheus, DevLake) waits for a delayed ACK, ~40 ms per request.
    disable_nagle_algorithm = True
    timeout = 30  # seconds a client may stall mid-request (the notification endpoint is public)

    def do_GET(self):  # noqa: N802 (http.server naming)
        path = self.path.split("?", 1)[0]
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
        elif path == "/":
            self._send(200, INDEX, "text/plain; charset=utf-8")
        else:
            self._send(404, b"not found: try /metrics or /healthz\n", "text/plain; charset=utf-8")

    def do_POST(self):  # noqa: N802 (http.server naming)
        path, _, query = self.path.partition("?")
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
              close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):  # access logs at debug, through structlog; never the signature
        log.debug("http_request", client=self.client_address[0], request=SIGN.sub(r"\1***", fmt % args))
