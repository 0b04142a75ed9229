"""/metrics and /healthz on one ThreadingHTTPServer. Neither ever calls DevLake."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import structlog
# 0.0.4: what prometheus_client itself answers a scraper that does not ask for more,
# and what every Prometheus version parses (our names need no UTF-8 escaping).
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4 as CONTENT_TYPE

log = structlog.get_logger("monitor")

INDEX = b"devlake blueprint monitor: /metrics (Prometheus), /healthz (JSON)\n"


class MetricsServer:
    """Serves a Monitor's exposition and health. Port 0 binds a free port (see `.port`)."""

    def __init__(self, monitor, addr: str, port: int):
        handler = type("MonitorHandler", (_Handler,), {"monitor": monitor})
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
        log.info("metrics_server_started", addr=self.httpd.server_address[0], port=self.port,
                 endpoints=["/metrics", "/healthz"])
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
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server naming)
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            # Prometheus asks for gzip; with thousands of projects the text is megabytes.
            gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
            self._send(200, self.monitor.exposition(compressed=gzipped), CONTENT_TYPE, gzipped)
        elif path == "/healthz":
            status, payload = self.monitor.health()
            self._send(status, json.dumps(payload).encode() + b"\n", "application/json")
        elif path == "/":
            self._send(200, INDEX, "text/plain; charset=utf-8")
        else:
            self._send(404, b"not found: try /metrics or /healthz\n", "text/plain; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str, gzipped: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):  # access logs at debug, through structlog
        log.debug("http_request", client=self.client_address[0], request=fmt % args)
