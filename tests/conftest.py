"""Shared fixtures: a clean environment for every test, and the repo root on sys.path."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Every variable config.py reads (its upper-case string literals), so a new setting needs no edit here.
OUR_VARS = tuple(sorted(set(re.findall(r'"([A-Z][A-Z0-9_]{2,})"', (ROOT / "config.py").read_text()))))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No test sees the developer's own DevLake settings."""
    for name in OUR_VARS:
        monkeypatch.delenv(name, raising=False)
    yield
