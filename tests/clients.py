"""The DevLake client of the requests-mock unit tests, built the way the daemons build it."""
from __future__ import annotations

from config import load_settings
from modules.api import DevLakeClient
from modules.client import build_client


def mock_client(base: str, **env: str) -> DevLakeClient:
    """`modules.client.build_client` for `base` (no retries, no backoff: requests-mock replaces
    the transport anyway); `env` adds or overrides settings."""
    settings = load_settings({"DEVLAKE_URL": base, "DEVLAKE_HTTP_RETRIES": "0",
                              "DEVLAKE_RETRY_BACKOFF_SECONDS": "0", "DEVLAKE_TIMEOUT_SECONDS": "5", **env})
    return build_client(settings)
