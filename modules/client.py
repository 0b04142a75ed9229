"""The one way both daemons, the doctor and the tests build their DevLake client from settings."""
from __future__ import annotations

import time
from collections.abc import Callable

from config import Settings
from modules.api import DevLakeClient
from utils.http import make_session


def build_client(settings: Settings, *, dry_run: bool = False,
                 sleep: Callable[[float], None] = time.sleep) -> DevLakeClient:
    """The one way to talk to DevLake: retries, timeouts, API key and /rest prefix from settings."""
    session = make_session(api_key=settings.api_key, retries=settings.http_retries,
                           backoff_seconds=settings.retry_backoff_seconds,
                           pool_size=max(10, settings.max_concurrency * 2), sleep=sleep)
    return DevLakeClient(session, settings.api_base_url, timeout=settings.timeout_seconds, dry_run=dry_run)
