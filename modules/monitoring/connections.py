"""Connection health: DevLake's own check of each saved connection, in its own thread, on its own interval.

Each check is DevLake's own test of the stored credentials: an expired token shows up here
before the next nightly collection fails with a 401 in the middle of a pipeline.

How DevLake answers (`docs/devlake-api.md` §9.6; `backend/plugins/<p>/api/connection_api.go`):
the status alone does not say whether the credentials work. GitHub with access tokens
(`testExistingConnection` in `backend/plugins/github/api/connection_api.go`) answers **200 in
every case**: a bad or revoked token makes its `tokens[]` entry and the top level
`success: false`, with the failing token's message. Most plugins answer 400 with the upstream's
reason; Jira 401/403; circleci 401: on this route that is the upstream's verdict on the stored
token, not DevLake rejecting our API key. `manage_projects.py --doctor` reads it the same way
(`check_connection`).

The checker never holds the monitor's lock and never runs in the poll thread:
a slow upstream delays only the next check. Scrapes read a snapshot.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric

from modules.api import DevLakeAuthError, DevLakeClient, DevLakeError, DevLakeNotFound, DevLakeUnavailable
from modules.monitoring.reasons import mask

log = structlog.get_logger("monitor")

# 401/403 texts of DevLake's own API-key check (`docs/devlake-api.md` §1.2): our key, not the connection.
OUR_KEY_REJECTED = ("token is missing", "token is not present", "api key is invalid", "api key has expired",
                    "path doesn't match api key")
ERROR_LIMIT = 300


@dataclass(frozen=True)
class CheckOutcome:
    """up: True (credentials work), False (they do not), None (DevLake could not say)."""

    up: bool | None
    error: str | None = None


def check_connection(client: DevLakeClient, plugin: str, connection_id: int) -> CheckOutcome:
    """Run DevLake's test of one saved connection and read its answer (status and body)."""
    try:
        body = client.test_connection(plugin, connection_id)
    except DevLakeError as exc:
        return CheckOutcome(verdict(exc), mask(exc.message or str(exc), ERROR_LIMIT))
    failure = failure_in_answer(body)
    return CheckOutcome(True) if failure is None else CheckOutcome(False, mask(failure, ERROR_LIMIT))


def verdict(exc: DevLakeError) -> bool | None:
    """Down (False) or unknown (None) from a test call that answered an error."""
    if isinstance(exc, DevLakeUnavailable) or exc.status is None or exc.status >= 500:
        return None  # DevLake itself failed: says nothing about the connection
    if any(text in (exc.message or "").lower() for text in OUR_KEY_REJECTED):
        return None
    return False  # 400 (upstream reason), 401 (circleci's verdict), 403, 404 (bamboo: gone)


def failure_in_answer(body: dict) -> str | None:
    """Why a 2xx test answer says the connection does not work, or None when it does.

    Only an explicit `success: false` is a failure (plugins that answer a bare object say
    nothing more). GitHub's per-token entries name which of several tokens failed; the tokens
    themselves are never repeated.
    """
    if body.get("success") is not False:
        return None
    tokens = [t for t in body.get("tokens") or [] if isinstance(t, dict)]
    failed = [(n, t) for n, t in enumerate(tokens, 1) if t.get("success") is False]
    if failed:
        return "; ".join(f"token {n} of {len(tokens)}: {_text(t.get('message'))}" for n, t in failed)
    return _text(body.get("message"))


def _text(message: object) -> str:
    text = str(message or "").strip()
    return text or "the test failed without a message"


@dataclass(frozen=True)
class ConnectionHealth:
    """The last verdict on one connection; `since` is when its current up/down state began."""

    plugin: str
    connection_id: int
    name: str
    up: bool | None = None  # None: not checked yet, or DevLake could not say
    checked_at: float | None = None
    error: str | None = None
    since: float | None = None


def transition(old: ConnectionHealth | None, new: ConnectionHealth) -> ConnectionHealth:
    """The new verdict with `since` carried over while the state does not change (pure)."""
    if new.up is None and old is not None:  # unknown: keep the last verdict, note the error
        return replace(old, error=new.error)
    if old is not None and old.up == new.up:
        return replace(new, since=old.since)
    return new


class ConnectionChecker:
    """Tests every connection of `plugins` every `interval` seconds (0: never)."""

    def __init__(self, client: DevLakeClient, plugins: Iterable[str], interval: float, *,
                 clock: Callable[[], float], on_change: Callable[[], None] = lambda: None,
                 registry: CollectorRegistry | None = None, on_crash: Callable[[], None] = lambda: None):
        self.client, self.plugins, self.interval = client, tuple(plugins), interval
        self.clock, self.on_change, self.on_crash = clock, on_change, on_crash
        self._health: dict[tuple[str, int], ConnectionHealth] = {}
        self._lock = threading.Lock()  # guards _health only; never held during HTTP
        self._thread: threading.Thread | None = None
        if registry is not None:
            registry.register(_ConnectionCollector(self))

    def snapshot(self) -> list[ConnectionHealth]:
        with self._lock:
            return sorted(self._health.values(), key=lambda h: (h.plugin, h.connection_id))

    def check_once(self) -> list[ConnectionHealth]:
        """List the connections of each plugin and test each; returns the new snapshot."""
        for n, plugin in enumerate(self.plugins):
            try:
                connections = self.client.list_connections(plugin)
            except DevLakeNotFound:
                continue  # plugin not installed in this DevLake (`docs/devlake-api.md` §2)
            except (DevLakeAuthError, DevLakeUnavailable) as exc:
                # DevLake-wide (our key refused, DevLake down): every other plugin would fail the same
                # way after its own retries, so this round ends with one line; the last verdicts stay.
                log.warning("connection_check_failed", plugins=list(self.plugins[n:]), error=mask(str(exc), 300))
                break
            except DevLakeError as exc:
                log.warning("connection_check_failed", plugin=plugin, error=mask(str(exc), 300))
                continue  # keep the last verdicts: DevLake, not the connections, failed
            self._check_plugin(plugin, connections)
        self.on_change()
        return self.snapshot()

    def _check_plugin(self, plugin: str, connections: list[dict]) -> None:
        seen = set()
        for conn in connections:
            cid = conn.get("id")
            if not isinstance(cid, int) or isinstance(cid, bool):
                continue
            seen.add((plugin, cid))
            outcome = check_connection(self.client, plugin, cid)
            now = self.clock()
            new = ConnectionHealth(plugin, cid, str(conn.get("name") or cid), outcome.up, now, outcome.error, now)
            self._record(new)
        with self._lock:  # connections deleted in DevLake disappear
            for key in [k for k in self._health if k[0] == plugin and k not in seen]:
                del self._health[key]

    def _record(self, new: ConnectionHealth) -> None:
        with self._lock:
            old = self._health.get((new.plugin, new.connection_id))
            current = self._health[(new.plugin, new.connection_id)] = transition(old, new)
        fields = dict(plugin=new.plugin, connection_id=new.connection_id, connection_name=new.name)
        if current.up is False and (old is None or old.up is not False):
            log.warning("connection_down", **fields, error=current.error)
        elif current.up is True and old is not None and old.up is False:
            log.info("connection_recovered", **fields, down_since=old.since)
        elif new.up is None:
            log.warning("connection_check_failed", **fields, error=new.error)

    @property
    def thread(self) -> threading.Thread | None:
        """The checking thread once started; None when checks are off (interval 0)."""
        return self._thread

    def start(self, stop: threading.Event) -> ConnectionChecker:
        """Check now and then every `interval` seconds in a daemon thread, until `stop` is set."""
        if self.interval <= 0:
            return self
        self._thread = threading.Thread(target=self._run, args=(stop,), name="connection-checks", daemon=True)
        self._thread.start()
        return self

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.check_once()
            except Exception:  # noqa: BLE001 - thread boundary: a bug must not end the checks
                log.exception("connection_check_crashed")
                self.on_crash()  # counted as an internal poll error
            # never longer than a day at once: Event.wait overflows on absurd intervals
            stop.wait(min(self.interval, 86400.0))


class _ConnectionCollector:
    def __init__(self, checker: ConnectionChecker) -> None:
        self.checker = checker

    def collect(self) -> Iterator[Metric]:
        labels = ["plugin", "connection_id", "connection_name"]
        up = GaugeMetricFamily("devlake_connection_up", "1 if DevLake's test of the connection's stored "
                               "credentials passed at the last check, 0 if it failed", labels=labels)
        checked = GaugeMetricFamily("devlake_connection_last_check_timestamp_seconds",
                                    "When the connection was last tested", labels=labels)
        for health in self.checker.snapshot():
            values = [health.plugin, str(health.connection_id), health.name]
            if health.up is not None:
                up.add_metric(values, 1.0 if health.up else 0.0)
            if health.checked_at is not None:
                checked.add_metric(values, health.checked_at)
        yield up
        yield checked

    def describe(self) -> list[Metric]:
        return []
