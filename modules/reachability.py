"""Is DEVLAKE_URL DevLake at all? One quick probe, and one line in words for each way it is not.

Connection refused, a name that does not resolve, a failed TLS handshake, no answer in time, and
an answer that is not DevLake's API (config-ui's HTML page, the backend's `404 page not found`
under an `/api` prefix) are told apart, so the operator reads what to fix instead of a urllib3
repr. The entry points probe before any work, with at most one retry (`PROBE_RETRIES`): a typo
costs seconds, not the minutes of the daily run's retries.
"""
from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import NameResolutionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from config import Settings
from modules.api import DevLakeClient, DevLakeError, DevLakeNotFound, DevLakeUnavailable
from modules.client import build_client
from utils.urls import without_password

PROBE_RETRIES = 1
# gin's answer to an unknown route: no NoRoute handler is registered (`backend/server/api/router.go`,
# `docs/devlake-api.md` §1.3).
GIN_NOT_FOUND = "404 page not found"


@dataclass(frozen=True)
class Unreachable:
    """Why DEVLAKE_URL is not a usable DevLake: `kind` for logs and tests, `message` for people."""

    kind: str  # refused | dns | tls | timeout | connection | not_devlake | api_prefix
    message: str


def quick_probe(settings: Settings) -> Unreachable | None:
    """`probe` with the operator's timeout and at most one retry: bounded by about two timeouts."""
    return probe(build_client(replace(settings, http_retries=min(settings.http_retries, PROBE_RETRIES))), settings)


def probe(client: DevLakeClient, settings: Settings) -> Unreachable | None:
    """GET /version (public even with AUTH_ENABLED=true, §1.2): None when DevLake answered, or
    refused us in a way the caller explains itself (401/403, 5xx)."""
    try:
        client.version()
    except DevLakeError as exc:
        return diagnose(exc, settings)
    return None


def diagnose(exc: DevLakeError, settings: Settings) -> Unreachable | None:
    """The one-line reason DEVLAKE_URL cannot be DevLake, or None if `exc` says something else."""
    url = without_password(settings.devlake_url)
    parts = urlsplit(settings.devlake_url)
    host = parts.hostname or "?"
    where = f"{host}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    if isinstance(exc, DevLakeUnavailable) and exc.status is None:
        return _transport(exc, url, host, where, settings.timeout_seconds)
    if (exc.status or 0) >= 500:  # a server (or proxy) in trouble, not a wrong URL: retried elsewhere
        return None
    if _looks_like_html(exc):
        if parts.path.rstrip("/").endswith("/api"):
            return Unreachable("not_devlake", f"DEVLAKE_URL={url} answered an HTML page, not DevLake's API: "
                                              "check the URL points at DevLake's backend (port 8080) or config-ui")
        return Unreachable("not_devlake", f"DEVLAKE_URL={url} answered an HTML page, not DevLake's API: this looks "
                                          f"like config-ui: add /api (DEVLAKE_URL={url}/api), or use the backend "
                                          "(http://<host>:8080)")
    if isinstance(exc, DevLakeNotFound) and (exc.body or "").strip() == GIN_NOT_FOUND \
            and parts.path.rstrip("/").endswith("/api"):
        backend = url.rstrip("/")[: -len("/api")]
        return Unreachable("api_prefix", f"DEVLAKE_URL={url} answered {GIN_NOT_FOUND!r}: the backend has no /api "
                                         f"prefix (only config-ui adds it): use DEVLAKE_URL={backend}")
    return None


def _transport(exc: DevLakeError, url: str, host: str, where: str, timeout: float) -> Unreachable:
    causes = list(_causes(exc))
    if any(isinstance(c, (NameResolutionError, socket.gaierror)) for c in causes):
        return Unreachable("dns", f"DEVLAKE_URL={url}: the host name {host!r} does not resolve: check its spelling "
                                  "and that this machine (or container) is on DevLake's network")
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return Unreachable("refused", f"DEVLAKE_URL={url}: {where} refused the connection: check that DevLake "
                                      "is running and listens on that port (backend 8080, config-ui 4000)")
    tls = next((c for c in causes if isinstance(c, ssl.SSLError)), None)
    if tls is not None or any(isinstance(c, requests.exceptions.SSLError) for c in causes):
        why = getattr(tls, "verify_message", None) or getattr(tls, "reason", None) or "handshake failed"
        return Unreachable("tls", f"DEVLAKE_URL={url}: TLS with {where} failed ({why}): if DevLake serves plain "
                                  "HTTP use http://, else check its certificate (REQUESTS_CA_BUNDLE)")
    if any(isinstance(c, (requests.Timeout, TimeoutError, Urllib3Timeout)) for c in causes):
        return Unreachable("timeout", f"DEVLAKE_URL={url}: {where} did not answer within DEVLAKE_TIMEOUT_SECONDS "
                                      f"({timeout:g} s): check the host, the port and any firewall between")
    return Unreachable("connection", f"DEVLAKE_URL={url}: the connection to {where} failed: "
                                     "check the host, the port and that DevLake is up")


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and everything it wraps: __cause__/__context__, urllib3's `.reason`, requests' args."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = [current.__cause__, current.__context__, getattr(current, "reason", None),
                   *(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))]
        todo.extend(w for w in wrapped if isinstance(w, BaseException))


def _looks_like_html(exc: DevLakeError) -> bool:
    body = (exc.body or "").lstrip()[:200].lower()
    return body.startswith(("<!doctype html", "<html")) or "<head" in body
