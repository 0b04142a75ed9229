"""HTTP layer: auth (§1.2), fault injection, request log, routing and the socket server."""

from __future__ import annotations

import json
import random
import re
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote

from .common import ApiError, dumps, error_body, not_routed
from .router import Request, Response, error_response, json_response
from .routes_core import router as core_router
from .routes_plugins import router as plugin_router

# `backend/server/api/auth/middleware.go` on main: /proceed-db-migration needs auth since ad202276a.
PUBLIC_PATHS = ("/ping", "/ready", "/health", "/version")
PUBLIC_PREFIXES = ("/auth/", "/swagger/")


@dataclass
class RequestRecord:
    """One handled request. `path` is percent-encoded with any /rest prefix stripped (what routes
    and fault patterns see); `raw_path` is exactly as received. Neither has the query string."""

    method: str
    path: str
    query: dict[str, str]
    json: object  # the parsed JSON body, or None
    status: int
    raw_path: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def body(self):
        """Alias of `json`."""
        return self.json


@dataclass
class Fault:
    method: str
    pattern: re.Pattern
    status: int | None
    times: int
    body: object
    headers: dict
    delay: float
    after_write: bool
    reset: bool = False

    def response(self) -> Response:
        if self.reset:
            return Response(0, b"", reset=True)
        if isinstance(self.body, dict) or isinstance(self.body, list):
            resp = json_response(self.status, self.body)
        elif isinstance(self.body, (str, bytes)):
            raw = self.body.encode() if isinstance(self.body, str) else self.body
            resp = Response(self.status, raw)
        else:
            resp = json_response(self.status, error_body(f"injected fault ({self.status})"))
        resp.headers.update(self.headers or {})
        return resp


# What a DevLake behind nginx answers now and then (`docs/devlake-api.md` §1.3): 500 for MySQL lock
# timeouts and deadlocks, before or after the write; 502/503 from nginx; connections reset; 429 from
# a rate limit in front of it (nginx `limit_req`, an API gateway), always before the request is processed.
TRANSIENT_KINDS = ("500", "500_after_write", "502", "503", "reset", "reset_after_write", "429")


class Chaos:
    """Seeded random transient faults on a share of the requests (`rate`, 0..1)."""

    def __init__(self, rate: float, seed: int, kinds: tuple[str, ...] = TRANSIENT_KINDS):
        self.rate, self.kinds = rate, kinds
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.injected: dict[str, int] = {}

    def pick(self, method: str) -> Fault | None:
        with self.lock:
            if self.rng.random() >= self.rate:
                return None
            kind = self.rng.choice(self.kinds)
            self.injected[kind] = self.injected.get(kind, 0) + 1
        after_write = kind.endswith("_after_write") and method != "GET"
        status = None if kind.startswith("reset") else int(kind[:3])
        return Fault(method, re.compile(""), status, 1, None, {}, 0.0, after_write,
                     reset=kind.startswith("reset"))


def _canonical(raw_path: str) -> bool:
    """True when Go would leave URL.RawPath empty, i.e. the raw path is the canonical escaping."""
    return quote(unquote(raw_path), safe="/$&+,:;=@-_.~") == raw_path


class App:
    """Turns one HTTP request into a Response; shared by every handler thread."""

    def __init__(self, state, *, latency: float, api_key: str | None, require_auth: bool):
        self.state = state
        self.latency = latency
        self.api_key = api_key
        self.require_auth = require_auth
        self.rest_gate_drops_user = False  # see authenticate(): DevLake main's /rest + AUTH_ENABLED bug
        self.forwarded_user_secret: str | None = None  # DevLake's FORWARDED_USER_SECRET
        self.faults: list[Fault] = []
        self.chaos: Chaos | None = None
        self.records: list[RequestRecord] = []
        self.log_lock = threading.Lock()

    def take_fault(self, method: str, route_path: str) -> Fault | None:
        with self.log_lock:
            for fault in self.faults:
                if fault.times != 0 and fault.method in (method, "*") and fault.pattern.search(route_path):
                    if fault.times > 0:
                        fault.times -= 1
                    return fault
        return self.chaos.pick(method) if self.chaos is not None else None

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        if self.latency:
            time.sleep(self.latency)
        path, _, query_string = target.partition("?")
        query = {k: v[0] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
        is_rest = path == "/rest" or path.startswith("/rest/")
        route_path = (path[5:] or "/") if is_rest else path
        fault = self.take_fault(method, route_path)
        if fault is None:
            resp = self.dispatch(method, path, is_rest, route_path, query, headers, body)
        elif fault.after_write:  # an ambiguous write: it happens, the answer says otherwise
            resp = self.dispatch(method, path, is_rest, route_path, query, headers, body)
            time.sleep(fault.delay)
            resp = resp if fault.status is None and not fault.reset else fault.response()
        else:
            time.sleep(fault.delay)
            resp = (self.dispatch(method, path, is_rest, route_path, query, headers, body)
                    if fault.status is None and not fault.reset else fault.response())
        self.record(method, path, route_path, query, headers, body, resp.status)
        return resp

    def record(self, method, path, route_path, query, headers, body, status) -> None:
        try:
            parsed = json.loads(body) if body.strip() else None
        except (ValueError, UnicodeDecodeError):
            parsed = None
        rec = RequestRecord(method, route_path, query, parsed, status, path, dict(headers))
        with self.log_lock:
            self.records.append(rec)

    def dispatch(self, method, path, is_rest, route_path, query, headers, body) -> Response:
        try:
            self.authenticate(path, is_rest, headers)
            if is_rest and not _canonical(route_path):
                # quirk #20: /rest is stripped from the decoded path only; gin routes on the raw one
                return error_response(not_routed())
            return self.route(Request(method, route_path, query, body, headers))
        except ApiError as exc:
            return error_response(exc)

    def authenticate(self, path: str, is_rest: bool, headers: dict[str, str]) -> None:
        if is_rest:
            if self.api_key is None:
                return  # convenience: no key configured means /rest is open
            auth = headers.get("authorization", "")
            if not auth:
                raise ApiError(401, "token is missing")
            if not auth.startswith("Bearer ") or not auth[7:].strip():
                raise ApiError(401, "token is not present or malformed")
            if auth[7:].strip() != self.api_key:
                raise ApiError(403, "api key is invalid")
            if self.require_auth and self.rest_gate_drops_user and (path[5:] or "/") not in PUBLIC_PATHS:
                # DevLake main with AUTH_ENABLED=true: RestAuthentication re-routes with gin's
                # HandleContext, which resets the context keys, so the gate no longer sees the user
                # the key check stored (`backend/server/api/middlewares.go`, `auth/middleware.go`).
                raise ApiError(401, "unauthorized")
            return
        if not self.require_auth or path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return
        # AUTH_ENABLED=true: Basic (password not verified) is enough; X-Forwarded-User only with the
        # FORWARDED_USER_SECRET DevLake was given, sent as X-Forwarded-User-Secret (§1.2)
        if headers.get("authorization", "").startswith("Basic "):
            return
        secret = self.forwarded_user_secret
        if headers.get("x-forwarded-user") and secret and headers.get("x-forwarded-user-secret") == secret:
            return
        raise ApiError(401, "unauthorized")

    def route(self, req: Request) -> Response:
        found = core_router.match(req.method, req.path) or plugin_router.match(req.method, req.path)
        if found is None:
            raise not_routed()
        handler, req.params = found
        try:
            with self.state.lock:  # serialise inside the lock: the objects are live state
                result = handler(self.state, req)
                if isinstance(result, Response):
                    return result
                status, obj = result
                return Response(status, dumps(obj))
        except ApiError:
            raise
        except Exception:  # gin Recovery: a panic is a 500 with an empty body (§1.3)
            traceback.print_exc()
            return Response(500, b"", "text/plain")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients reuse connections
    server_version = "FakeDevLake"
    sys_version = ""

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.conn_lock:
            self.server.open_conns.add(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            with self.server.conn_lock:
                self.server.open_conns.discard(self.connection)

    def log_message(self, format, *args):  # quiet: no per-request stderr lines
        pass

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        resp = self.server.app.handle(self.command, self.path, headers, body)
        if resp.reset:  # drop the connection unanswered: the client sees a reset / remote disconnect
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        for key, value in resp.headers.items():
            self.send_header(key, str(value))
        # one write for headers + body: avoids Nagle/delayed-ACK stalls on keep-alive connections
        self._headers_buffer.append(b"\r\n" + resp.body)
        try:
            self.flush_headers()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, address, app: App):
        super().__init__(address, _Handler)
        self.app = app
        self.open_conns: set[socket.socket] = set()
        self.conn_lock = threading.Lock()

    def handle_error(self, request, client_address):  # client went away: not worth a traceback
        pass

    def close_connections(self) -> None:
        """Drop idle keep-alive connections so a stopped fake really stops answering."""
        with self.conn_lock:
            conns = list(self.open_conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
