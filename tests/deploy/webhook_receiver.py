"""The container test's notification receiver: Alertmanager's webhook target, run in the compose
network (so the host is only reached on 127.0.0.1). Stdlib only; it runs in the project image.

POST /<receiver name>  records Alertmanager's JSON body
GET  /received         every recorded body, as a JSON list of {"path", "body"}
GET  /ping             200 (its healthcheck)
"""
from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RECEIVED: list[dict] = []
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with LOCK:
            RECEIVED.append({"path": self.path, "body": json.loads(body or b"null")})
        self._answer(200, b"{}")

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/received":
            with LOCK:
                self._answer(200, json.dumps(RECEIVED).encode())
        else:
            self._answer(200 if self.path == "/ping" else 404, b"{}")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        print(json.dumps({"event": "webhook_request", "line": format % args}), flush=True)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    import signal
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()
