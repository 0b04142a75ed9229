"""Fixtures: a started FakeDevLake with a settable clock, and a tiny HTTP helper."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import requests

from sandbox.fake_devlake import FakeDevLake

ICT = timezone(timedelta(hours=7))


class Clock:
    """A settable clock: `clock.now` is returned until changed."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Http:
    """requests against one base URL, keeping one keep-alive session."""

    def __init__(self, base: str, headers: dict | None = None):
        self.base = base
        self.session = requests.Session()
        self.session.headers.update(headers or {})

    def __call__(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 5)
        return self.session.request(method, self.base + path, **kwargs)

    def get(self, path, **kw):
        return self("GET", path, **kw)

    def post(self, path, **kw):
        return self("POST", path, **kw)

    def put(self, path, **kw):
        return self("PUT", path, **kw)

    def patch(self, path, **kw):
        return self("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self("DELETE", path, **kw)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2025, 11, 22, 10, 30, tzinfo=ICT))


@pytest.fixture
def fake(clock):
    with FakeDevLake(clock=clock, remote_page_size=2) as server:
        yield server


@pytest.fixture
def http(fake) -> Http:
    client = Http(fake.url)
    yield client
    client.session.close()
