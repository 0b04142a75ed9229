"""What both daemons, the doctor and the tests share: the DevLake client built from settings,
the exit codes, and the words for a DevLake that refuses us."""
from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum

from config import Settings
from modules.api import DevLakeAuthError, DevLakeClient, DevLakeError
from utils.http import make_session


class ExitCode(IntEnum):
    OK = 0
    PARTIAL = 1    # some items failed (automation), or the --once poll failed (monitor)
    UNUSABLE = 2   # invalid configuration, DevLake unreachable, or credentials rejected


def build_client(settings: Settings, *, dry_run: bool = False,
                 sleep: Callable[[float], None] = time.sleep) -> DevLakeClient:
    """The one way to talk to DevLake: retries, timeouts, API key and /rest prefix from settings."""
    session = make_session(api_key=settings.api_key, retries=settings.http_retries,
                           backoff_seconds=settings.retry_backoff_seconds,
                           pool_size=max(10, settings.max_concurrency * 2), sleep=sleep)
    return DevLakeClient(session, settings.api_base_url, timeout=settings.timeout_seconds, dry_run=dry_run)


def unusable_hint(exc: DevLakeError, settings: Settings) -> str:
    """What the operator should do about an error that makes DevLake unusable."""
    if isinstance(exc, DevLakeAuthError) and exc.status == 401 and not settings.api_key:
        # DevLake's main branch defaults AUTH_ENABLED=true (apache/incubator-devlake#8878): every
        # route but /ping, /ready, /health, /version then needs a key (`docs/devlake-api.md` §11).
        return ("DevLake requires authentication: create an API key in DevLake's UI "
                "(config-ui > API keys, allowed path .*) and set DEVLAKE_API_KEY")
    if isinstance(exc, DevLakeAuthError) and exc.status == 401 and auth_gate_refused(exc):
        # The key check passed (it answers other texts, §1.2); DevLake's auth gate then refused the
        # request: on DevLake main with AUTH_ENABLED=true, `RestAuthentication` re-routes with gin's
        # HandleContext, which drops the user the key check stored (`backend/server/api/middlewares.go`,
        # `backend/server/api/auth/middleware.go`).
        return ("DevLake's auth gate (AUTH_ENABLED=true) refused the request after the API key check: "
                "a known DevLake bug on its main branch; set AUTH_ENABLED=false on DevLake "
                "or run a DevLake release with the fix")
    if isinstance(exc, DevLakeAuthError):
        return "DevLake rejected DEVLAKE_API_KEY: check it has not expired and its allowed path is .*"
    return "check DEVLAKE_URL and that DevLake is up"


def auth_gate_refused(exc: DevLakeError) -> bool:
    """The 401 of DevLake's auth gate (`{"message":"unauthorized"}`), not of its API-key check."""
    return (exc.message or "").strip().lower() == "unauthorized"
