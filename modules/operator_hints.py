"""The words for a DevLake that refuses us: what the operator should do about it."""
from __future__ import annotations

from config import Settings
from modules.api import DevLakeAuthError, DevLakeError


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
