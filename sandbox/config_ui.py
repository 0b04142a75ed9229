"""A fake of DevLake's config-ui web server: the single-page app's HTML on every path but /api/.

config-ui's nginx serves `location / { try_files $uri /index.html; }` and proxies `location /api/`
to the backend (`config-ui/nginx.conf`). So a DEVLAKE_URL of config-ui without `/api` answers
`GET /version` (or `/rest/version`) with 200 and `index.html`, which is not JSON. This fake has no
backend behind it: `/api/...` answers nginx's 502 page, as config-ui does while the backend is down.

    with FakeConfigUi() as ui:
        requests.get(ui.url + "/version").text  # '<!doctype html>...'
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INDEX_HTML = (b'<!doctype html>\n<html lang="en">\n  <head>\n    <meta charset="UTF-8" />\n'
              b'    <title>DevLake</title>\n  </head>\n  <body><div id="root"></div></body>\n</html>\n')
BAD_GATEWAY_HTML = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
                    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
                    b"</body>\r\n</html>\r\n")


class _Handler(BaseHTTPRequestHandler):
    server_version = "nginx"
    sys_version = ""

    def _answer(self) -> None:
        status, body = (502, BAD_GATEWAY_HTML) if self.path.startswith("/api/") else (200, INDEX_HTML)
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


class FakeConfigUi:
    """Serves on 127.0.0.1, port 0 (any free port), in a daemon thread; `url` is its base."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeConfigUi:
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         name="fake-config-ui", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
