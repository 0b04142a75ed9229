"""Shared fixtures: a clean environment for every test, and the repo root on sys.path."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

OUR_VARS = (
    "DEVLAKE_URL", "DEVLAKE_API_KEY", "TIMEZONE", "DAILY_RUN_TIME", "PLUGINS",
    "PROJECT_NAME_TEMPLATE", "PROJECT_METRICS", "BLUEPRINT_CRON", "TRIGGER_NEW_BLUEPRINTS",
    "MAX_RERUNS", "SCOPE_CONFIG_ENTITIES", "DEPLOYMENT_PATTERN", "PRODUCTION_PATTERN",
    "DEVLAKE_TIMEOUT_SECONDS", "DEVLAKE_MAX_CONCURRENCY", "DEVLAKE_HTTP_RETRIES",
    "DEVLAKE_RETRY_BACKOFF_SECONDS", "STATE_DIR", "LOG_LEVEL", "LOG_FORMAT",
    "POLL_INTERVAL_SECONDS", "METRICS_ADDR", "METRICS_PORT", "FAILURE_SERIES_RETENTION_DAYS",
    "MONITOR_LOOKBACK_HOURS", "NOTIFICATION_SECRET", "WEB_CONFIG_FILE",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No test sees the developer's own DevLake settings."""
    for name in OUR_VARS:
        monkeypatch.delenv(name, raising=False)
    yield
