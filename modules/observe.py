"""What a run reads from DevLake before deciding anything: connections, scopes, projects, blueprints.

Every connection's three reads (tracked scopes, scope configs, remote scopes)
and the project and blueprint lists run concurrently: on a DevLake with
thousands of scopes the run is bound by round trips, not by work. A read that
fails is recorded and leaves its part unplanned; the rest of the run goes on.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import structlog

from config import Settings
from modules.api import DevLakeClient, DevLakeError
from modules.connection import discover_connections
from modules.plugins import plugin_of
from modules.scopes import Connection, RemoteScopes, list_scopes, walk_remote_scopes

log = structlog.get_logger("automation")
# Remote-scope walks list several groups at once per connection, on top of the
# connections read side by side: keep the total near DEVLAKE_MAX_CONCURRENCY × 2.
GROUP_WORKERS = 4


@dataclass
class ConnectionView:
    """One connection as read. None means that read failed (see `Observed.failures`)."""

    connection: Connection
    existing: dict[str, dict] | None = None
    scope_configs: list[dict] | None = None
    remote: RemoteScopes | None = None


@dataclass
class Observed:
    connections: list[ConnectionView] = field(default_factory=list)
    projects: list[dict] | None = None
    blueprints: list[dict] | None = None
    failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail(self, what: str, exc: Exception) -> None:
        status = getattr(exc, "status", None)
        if isinstance(exc, DevLakeError):
            log.error("item_failed", item=what, error=str(exc), status=status)
        else:  # a bug in one read must not stop the others; it is logged with its traceback
            log.exception("item_crashed", item=what)
        with self._lock:
            self.failures.append(f"{what}: {exc}")


def observe(api: DevLakeClient, settings: Settings, installed_plugins: list[str]) -> Observed:
    """Read everything a plan needs. Raises only if discovery itself is impossible."""
    observed = Observed()
    conns, failures = discover_connections(api, settings.plugins, installed_plugins)
    observed.failures.extend(failures)
    log.info("run_discovered", connections=len(conns))
    workers = max(1, settings.max_concurrency)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="read") as pool:
        projects = pool.submit(_read, observed, "project list",
                               lambda: list(api.iter_projects()))
        blueprints = pool.submit(_read, observed, "blueprint list",
                                 lambda: list(api.iter_blueprints(workers=2)))
        views = [_submit_connection(pool, api, observed, conn) for conn in conns]
        observed.projects, observed.blueprints = projects.result(), blueprints.result()
        observed.connections = [_collect_view(conn, futures) for conn, futures in views]
    for view in observed.connections:
        _log_view(view)
    return observed


def _read(observed: Observed, what: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - loop boundary: recorded and logged by fail()
        observed.fail(what, exc)
        return None


def _submit_connection(pool: ThreadPoolExecutor, api: DevLakeClient, observed: Observed,
                       conn: Connection) -> tuple[Connection, dict[str, Future]]:
    label = conn.label
    return conn, {
        "existing": pool.submit(_read, observed, f"scopes of {label}", lambda: list_scopes(api, conn)),
        "scope_configs": pool.submit(_read, observed, f"scope configs of {label}",
                                     lambda: api.list_scope_configs(conn.plugin, conn.id)),
        "remote": pool.submit(_read, observed, f"remote scopes of {label}",
                              lambda: walk_remote_scopes(api, conn, GROUP_WORKERS)),
    }


def _collect_view(conn: Connection, futures: dict[str, Future]) -> ConnectionView:
    return ConnectionView(conn, futures["existing"].result(), futures["scope_configs"].result(),
                          futures["remote"].result())


def _log_view(view: ConnectionView) -> None:
    conn = view.connection
    if view.remote is not None:
        spec = plugin_of(conn.plugin)  # only plugins with a listing cap have capped groups
        for group in view.remote.capped_groups:
            log.warning("remote_listing_capped", plugin=conn.plugin, connection_id=conn.id, workspace=group,
                        listed=spec.group_listing_cap, hint=spec.capped_hint)
    log.info("connection_scanned", plugin=conn.plugin, connection_id=conn.id,
             remote=None if view.remote is None else len(view.remote.scopes),
             existing=None if view.existing is None else len(view.existing))
