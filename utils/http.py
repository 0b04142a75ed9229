"""The one HTTP session both daemons use to talk to DevLake."""
from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self
from urllib.parse import urljoin, urlsplit

import requests
import structlog
from requests.adapters import HTTPAdapter
from urllib3 import PoolManager
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from utils.deadline import Deadlines, pool_classes

USER_AGENT = "devlake-automation/1.0"
# DevLake answers 500 for database lock timeouts and deadlocks on any route; nginx
# answers 502/503/504. These are retried for idempotent requests only (RETRY_METHODS).
RETRY_STATUSES = (429, 500, 502, 503, 504)
# PUT (scope upsert) and PATCH (we only send absolute values) are idempotent in
# the way we use them; POST is left out: a POST that may have succeeded is
# reconciled by reading back, never re-sent blindly.
RETRY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
RETRY_AFTER_MAX_SECONDS = 300  # the longest single wait, whatever the window allows

log = structlog.get_logger("devlake")


def refused_unprocessed(status: int, has_retry_after: bool) -> bool:
    """A 429, or a 503 with Retry-After: the server (or a proxy in front of it) refused the request
    before processing it, so resending is safe for every method, POST included (RFC 9110 §15.6.4,
    RFC 6585 §4). Other 5xx are ambiguous for a POST: the applier reads back instead."""
    return status == 429 or (status == 503 and has_retry_after)


class CrossHostRedirect(requests.RequestException):
    """A redirect to another host (or port): not followed, so our API key and our trust stay with
    DEVLAKE_URL. Same-host redirects (and http -> https on the default ports) are followed."""


class DevLakeSession(requests.Session):
    """requests.Session that refuses redirects requests would strip our Authorization header from,
    and whose attempts can be given a total deadline (`deadlines`, utils/deadline.py)."""

    def __init__(self) -> None:
        super().__init__()
        self.deadlines = Deadlines()
        self.retry_window = RetryWindow()

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        target = super().get_redirect_target(resp)
        if target:
            new = urljoin(resp.url, f"{urlsplit(resp.url).scheme}:{target}" if target.startswith("//") else target)
            if self.should_strip_auth(resp.url, new):
                resp.close()
                parts = urlsplit(new)
                where = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"  # never credentials
                raise CrossHostRedirect(f"{resp.status_code} redirect to another host, not followed: {where} "
                                        "(set DEVLAKE_URL to the address DevLake answers on)", response=resp)
        return target


class RetryWindow:
    """Until when retry waits may end (a poll's interval, a run's hour); unset, only the per-wait cap.

    A wait (Retry-After or backoff) longer than what is left is not taken: the request fails now
    with the answer it got, instead of sleeping past the poll's next start or the run's hour."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic):
        self.monotonic = monotonic
        self.until: float | None = None

    def start(self, seconds: float | None) -> None:
        self.until = None if seconds is None else self.monotonic() + seconds

    def allowance(self) -> float:
        left = RETRY_AFTER_MAX_SECONDS if self.until is None else self.until - self.monotonic()
        return min(RETRY_AFTER_MAX_SECONDS, left)


class _InjectableSleepRetry(Retry):
    """urllib3 Retry whose waits go through `sleep`, so tests can record them, and stay within `window`."""

    sleep_function: Callable[[float], None] = staticmethod(time.sleep)
    window: RetryWindow = RetryWindow()

    def increment(self, method: str | None = None, url: str | None = None,
                  response: BaseHTTPResponse | None = None, error: Exception | None = None,
                  _pool: ConnectionPool | None = None, _stacktrace: TracebackType | None = None,
                  ) -> Self:
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        wait, allowed = new.planned_wait(response), self.window.allowance()
        if wait > allowed:
            log.warning("devlake_retry_not_waited", wait_seconds=round(wait, 1),
                        allowed_seconds=round(max(0, allowed), 1),
                        status=response.status if response is not None else None)
            # urllib3 always passes its pool here (connectionpool.py, poolmanager.py); its own
            # Retry.increment raises with the same Optional pool and the same ignore.
            raise MaxRetryError(_pool, url, error or ResponseError(  # type: ignore[arg-type]
                f"a retry wait of {wait:g} s is more than the {max(0.0, allowed):g} s allowed"))
        return new

    def planned_wait(self, response: BaseHTTPResponse | None = None) -> float:
        """What `sleep(response)` will wait: Retry-After if the answer has one, else the backoff."""
        retry_after = self.get_retry_after(response) if response is not None else None
        return retry_after if retry_after else self.get_backoff_time()

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if refused_unprocessed(status_code, has_retry_after):
            return bool(self.total)
        return super().is_retry(method, status_code, has_retry_after)

    def sleep_for_retry(self, response: BaseHTTPResponse | None = None) -> bool:
        retry_after = self.get_retry_after(response) if response is not None else None
        if retry_after:
            self.sleep_function(retry_after)  # within the window: increment() refused longer ones
            return True
        return False

    def _sleep_backoff(self) -> None:
        backoff = self.get_backoff_time()
        if backoff > 0:
            self.sleep_function(backoff)


def make_retry(retries: int, backoff_seconds: float,
               sleep: Callable[[float], None] = time.sleep, window: RetryWindow | None = None) -> Retry:
    """Exponential backoff on 429/5xx, timeouts and connection errors, honouring Retry-After up to
    `window`'s allowance (never more than RETRY_AFTER_MAX_SECONDS); POST only on `refused_unprocessed` answers."""
    retry_class = type("DevLakeRetry", (_InjectableSleepRetry,),
                       {"sleep_function": staticmethod(sleep), "window": window or RetryWindow()})
    return retry_class(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        backoff_factor=backoff_seconds,
        backoff_max=60,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=RETRY_METHODS,
        respect_retry_after_header=True,  # read in full: increment() decides, it never silently shortens
        # The final 5xx reaches the client, which turns it into a typed error.
        raise_on_status=False,
    )


class _WatchedAdapter(HTTPAdapter):
    """HTTPAdapter whose connections start attempts on the session's `Deadlines`."""

    def __init__(self, deadlines: Deadlines, *, max_retries: Retry, pool_size: int) -> None:
        self.deadlines = deadlines
        super().__init__(max_retries=max_retries, pool_connections=pool_size, pool_maxsize=pool_size)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        # Any: urllib3's PoolManager options, passed through untouched (as requests' own stub says)
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = pool_classes(self.deadlines)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        """Through HTTP(S)_PROXY too: the proxy's connections are watched like direct ones. A SOCKS
        proxy's pools bring their own connection classes and keep only urllib3's timeouts."""
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = pool_classes(self.deadlines)
        return manager


def make_session(*, api_key: str | None, retries: int, backoff_seconds: float,
                 pool_size: int = 10, sleep: Callable[[float], None] = time.sleep) -> requests.Session:
    """A session with retries mounted, JSON headers, and the API key as a Bearer token."""
    session = DevLakeSession()
    adapter = _WatchedAdapter(session.deadlines,
                              max_retries=make_retry(retries, backoff_seconds, sleep, session.retry_window),
                              pool_size=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
    if api_key:
        session.headers["Authorization"] = f"Bearer {api_key}"
    return session
