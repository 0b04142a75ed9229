"""Shared fixtures: a clean environment for every test, and the repo root on sys.path."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from config import setting_names  # noqa: E402 (after the path is set)

# Every variable config.py declares, so a new setting needs no edit here.
OUR_VARS = setting_names()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No test sees the developer's own DevLake settings."""
    for name in OUR_VARS:
        monkeypatch.delenv(name, raising=False)
    yield
