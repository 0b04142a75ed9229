"""The one HTTP session both daemons use to talk to DevLake."""
from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

USER_AGENT = "devlake-automation/1.0"
# DevLake answers 500 for database lock timeouts and deadlocks on any route; nginx
# answers 502/503/504. These are retried for idempotent requests only (RETRY_METHODS).
RETRY_STATUSES = (429, 500, 502, 503, 504)
# PUT (scope upsert) and PATCH (we only send absolute values) are idempotent in
# the way we use them; POST is left out: a POST that may have succeeded is
# reconciled by reading back, never re-sent blindly.
RETRY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
RETRY_AFTER_MAX_SECONDS = 300


def refused_unprocessed(status: int, has_retry_after: bool) -> bool:
    """A 429, or a 503 with Retry-After: the server (or a proxy in front of it) refused the request
    before processing it, so resending is safe for every method, POST included (RFC 9110 §15.6.4,
    RFC 6585 §4). Other 5xx are ambiguous for a POST: the applier reads back instead."""
    return status == 429 or (status == 503 and has_retry_after)


class CrossHostRedirect(requests.RequestException):
    """A redirect to another host (or port): not followed, so our API key and our trust stay with
    DEVLAKE_URL. Same-host redirects (and http -> https on the default ports) are followed."""


class DevLakeSession(requests.Session):
    """requests.Session that refuses redirects requests would strip our Authorization header from."""

    def get_redirect_target(self, resp):
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


class _InjectableSleepRetry(Retry):
    """urllib3 Retry whose waits go through `sleep`, so tests can record them."""

    sleep_function: Callable[[float], None] = staticmethod(time.sleep)

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if refused_unprocessed(status_code, has_retry_after):
            return bool(self.total)
        return super().is_retry(method, status_code, has_retry_after)

    def sleep_for_retry(self, response=None):
        retry_after = self.get_retry_after(response) if response is not None else None
        if retry_after:
            self.sleep_function(min(retry_after, RETRY_AFTER_MAX_SECONDS))
            return True
        return False

    def _sleep_backoff(self):
        backoff = self.get_backoff_time()
        if backoff > 0:
            self.sleep_function(backoff)


def make_retry(retries: int, backoff_seconds: float,
               sleep: Callable[[float], None] = time.sleep) -> Retry:
    """Exponential backoff on 429/5xx, timeouts and connection errors, honouring Retry-After;
    POST only on `refused_unprocessed` answers."""
    retry_class = type("DevLakeRetry", (_InjectableSleepRetry,), {"sleep_function": staticmethod(sleep)})
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
        respect_retry_after_header=True,
        retry_after_max=RETRY_AFTER_MAX_SECONDS,
        # The final 5xx reaches the client, which turns it into a typed error.
        raise_on_status=False,
    )


def make_session(*, api_key: str | None, retries: int, backoff_seconds: float,
                 pool_size: int = 10, sleep: Callable[[float], None] = time.sleep) -> requests.Session:
    """A session with retries mounted, JSON headers, and the API key as a Bearer token."""
    session = DevLakeSession()
    adapter = HTTPAdapter(max_retries=make_retry(retries, backoff_seconds, sleep),
                          pool_connections=pool_size, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
    if api_key:
        session.headers["Authorization"] = f"Bearer {api_key}"
    return session
