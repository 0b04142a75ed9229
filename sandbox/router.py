"""A tiny gin-like router: raw-path matching, `:param` and `*wildcard` segments."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

from .common import ApiError, dumps, error_body

_UNSET = object()


@dataclass
class Request:
    method: str
    path: str  # raw (still percent-encoded), `/rest` stripped, no query string
    query: dict[str, str]
    body: bytes
    headers: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)

    def json(self, *, plugin: bool = False, optional: bool = False):
        """The JSON body. gin's bind errors are 400; /plugins/... passes the raw error on as 500 (§1.3)."""
        status = 500 if plugin else 400
        if not self.body.strip():
            if optional:
                return None
            raise ApiError(status, "EOF")
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(status, f"invalid character in JSON body: {exc}") from None


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False  # close the connection without answering (a "connection reset")


def json_response(status: int, obj) -> Response:
    return Response(status, dumps(obj))


def error_response(exc: ApiError) -> Response:
    if exc.plain:
        return Response(exc.status, b"404 page not found", "text/plain")
    if exc.empty:
        return Response(exc.status, b"", "text/plain")
    return json_response(exc.status, error_body(exc.message, exc.data, exc.causes))


Handler = Callable[..., object]


class Router:
    def __init__(self):
        self._routes: dict[tuple[str, str], list[tuple[list[str], Handler]]] = {}

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        segments = pattern.strip("/").split("/")
        self._routes.setdefault((method, segments[0]), []).append((segments, handler))

    def route(self, method: str, pattern: str):
        def decorator(func):
            self.add(method, pattern, func)
            return func
        return decorator

    def match(self, method: str, raw_path: str) -> tuple[Handler, dict[str, str]] | None:
        parts = raw_path[1:].split("/") if raw_path.startswith("/") else [raw_path]
        for segments, handler in self._routes.get((method, parts[0]), ()):
            params = _match(segments, parts)
            if params is not None:
                return handler, params
        return None


def _match(segments: list[str], parts: list[str]) -> dict[str, str] | None:
    params = {}
    for index, seg in enumerate(segments):
        if seg.startswith("*"):
            rest = "/".join(parts[index:])
            if not rest:
                return None
            params[seg[1:]] = unquote(rest)
            params["_raw_" + seg[1:]] = rest
            return params
        if index >= len(parts):
            return None
        if seg.startswith(":"):
            if not parts[index]:
                return None
            params[seg[1:]] = unquote(parts[index])
        elif seg != parts[index]:
            return None
    return params if len(parts) == len(segments) else None
