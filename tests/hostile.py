"""A hostile "DevLake" for the tests: a real HTTP server whose every answer comes from a function.

`answer(method, path, query) -> (status, headers, body)`; `body` may be bytes or an iterable of
bytes chunks sent one by one with `pause` seconds between them (a slow drip). A status of None
sends `body` as the raw response, status line and headers included (a drip of the headers).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

Answer = Callable[[str, str, dict], tuple["int | None", dict, "bytes | Iterable[bytes]"]]


class HostileServer:
    def __init__(self, answer: Answer, pause: float = 0.0):
        self.answer, self.pause, self.calls = answer, pause, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else each answer waits ~40 ms for a delayed ACK

            def log_message(self, *args):  # quiet
                pass

            def _serve(self):
                outer.calls += 1
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                status, headers, body = outer.answer(self.command, parts.path, query)
                if status is None:
                    self._drip(body)
                    return
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if isinstance(body, bytes):
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_header("Connection", "close")
                self.end_headers()
                self._drip(body)

            def _drip(self, chunks):
                try:
                    for chunk in chunks:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        time.sleep(outer.pause)
                except OSError:
                    pass  # the client gave up, as it should
                self.close_connection = True

            do_GET = do_POST = do_PUT = do_PATCH = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> HostileServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
