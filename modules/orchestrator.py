"""The daily run, in order: connections, scopes, scope configs, projects, timeAfter, collection.

This is the only module that knows the order. Failures are isolated at each
loop boundary (plugin, connection, scope, blueprint): logged with context,
counted, and the run goes on.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import structlog

from modules import collection, connection, projects, scopes
from modules.api import DevLakeError
from modules.context import PlannedChange, RunContext
from modules.scopes import Connection, ScopeRef

log = structlog.get_logger("automation")


def run_cycle(ctx: RunContext) -> RunContext:
    """One full automation cycle. Raises only if DevLake cannot be used at all (first call)."""
    conns = connection.discover_connections(ctx)
    ctx.log.info("run_discovered", connections=len(conns))
    all_scopes: list[ScopeRef] = []
    for conn in conns:
        if ctx.stop.is_set():
            break
        with structlog.contextvars.bound_contextvars(plugin=conn.plugin, connection_id=conn.id):
            all_scopes.extend(_guard(ctx, f"connection {conn.label}", lambda c=conn: sync_connection(ctx, c)) or [])
    if ctx.stop.is_set():
        return ctx
    index = _guard(ctx, "project index", lambda: projects.ProjectIndex.load(ctx.api))
    if index is None:
        return ctx
    created = create_projects(ctx, index, all_scopes)
    _parallel(ctx, "blueprint", index.managed_blueprints(), lambda bp: projects.sync_time_after(ctx, bp),
              lambda bp: f"blueprint {bp.get('id')} ({bp.get('projectName')})")
    drive_collection(ctx, index, created)
    return ctx


def sync_connection(ctx: RunContext, conn: Connection) -> list[ScopeRef]:
    """Add upstream scopes DevLake lacks and attach the scope config; return every tracked scope."""
    existing = scopes.list_scopes(ctx.api, conn)
    # Without its scope config a connection still gets its scopes and projects;
    # the next run attaches the config to scopes that have none.
    config_id = _guard(ctx, f"scope config of {conn.label}", lambda: connection.ensure_scope_config(ctx, conn))
    remote = _guard(ctx, f"remote scopes of {conn.label}", lambda: scopes.walk_remote_scopes(ctx.api, conn))
    new_rows = [scopes.new_scope_row(conn.plugin, data, config_id)
                for sid, data in sorted((remote or {}).items()) if sid not in existing]
    unconfigured = [] if config_id is None else [
        scopes.attach_row(row, config_id) for sid, row in sorted(existing.items()) if not row.get("scopeConfigId")]
    ctx.log.info("connection_scanned", remote=len(remote or {}), existing=len(existing),
                 new=len(new_rows), without_scope_config=len(unconfigured))
    saved = _put_rows(ctx, conn, new_rows, "create", "scope_created")
    _put_rows(ctx, conn, unconfigured, "attach_scope_config", "scope_config_attached")
    if not new_rows and not unconfigured:
        ctx.record("unchanged")
    rows = list(existing.values()) + saved
    return [scopes.scope_ref(conn, row) for row in rows if scopes.scope_id_of(conn.plugin, row)]


def _put_rows(ctx: RunContext, conn: Connection, rows: list[dict], action: str, event: str) -> list[dict]:
    """PUT rows in batches; a failed batch fails only its own scopes. Returns the rows DevLake holds."""
    saved: list[dict] = []
    for batch in scopes.batches(rows):
        ids = [scopes.scope_id_of(conn.plugin, r) for r in batch]
        if ctx.dry_run:
            for row, sid in zip(batch, ids, strict=True):
                ctx.record("created" if action == "create" else "updated", event,
                           PlannedChange("scope", action,
                                         f"{conn.label} {row.get('fullName') or row.get('name') or sid}",
                                         f"scope id {sid}"))
            saved.extend(batch)
            continue
        try:
            saved.extend(ctx.api.put_scopes(conn.plugin, conn.id, batch))
        except DevLakeError as exc:
            ctx.log.error("scope_batch_failed", action=action, scopes=len(batch), first=ids[0], error=str(exc))
            for sid in ids:
                ctx.record("failed", failure=f"{conn.label} scope {sid}: {exc}")
            continue
        for _ in ids:
            ctx.record("created" if action == "create" else "updated", event)
        ctx.log.info(event, scopes=len(batch))
    return saved


def create_projects(ctx: RunContext, index: projects.ProjectIndex, all_scopes: list[ScopeRef]) -> list[tuple[int, str]]:
    """A project for every scope no blueprint connects yet; returns (blueprint id, scope label) to trigger."""
    untracked = [s for s in all_scopes if s.key not in index.tracked]
    ctx.log.info("projects_to_create", scopes=len(all_scopes), untracked=len(untracked))
    ctx.record("unchanged", count=len(all_scopes) - len(untracked))
    names = projects.assign_names(ctx, index, untracked)
    results = _parallel(ctx, "scope", list(names.items()),
                        lambda item: projects.ensure_project(ctx, index, *item),
                        lambda item: f"project {item[1]} ({item[0].connection.label} scope {item[0].scope_id})")
    return [(bp_id, item[1]) for item, bp_id in results if bp_id]


def drive_collection(ctx: RunContext, index: projects.ProjectIndex, created: list[tuple[int, str]]) -> None:
    if ctx.settings.trigger_new_blueprints:
        _parallel(ctx, "trigger", created, lambda item: collection.trigger(ctx, *item),
                  lambda item: f"blueprint {item[0]} ({item[1]})")
    ledger = collection.RerunLedger(ctx.settings.state_dir, ctx.log)
    managed = {bp.get("projectName") for bp in index.managed_blueprints()}
    managed_projects = [p for name, p in index.projects.items() if name in managed]
    for project in managed_projects:
        if ctx.stop.is_set():
            break
        _guard(ctx, f"rerun of {project.get('name')}", lambda p=project: collection.rerun_if_failed(ctx, ledger, p))
    if not ctx.dry_run:
        last_ids = {(p.get("lastPipeline") or {}).get("id") for p in managed_projects}
        ledger.keep_only({pid for pid in last_ids if isinstance(pid, int)})
        _guard(ctx, "rerun state", ledger.save)


def _guard(ctx: RunContext, what: str, fn: Callable):
    """Run one unit of work; a failure is logged with context and counted, never raised."""
    try:
        return fn()
    except DevLakeError as exc:
        ctx.log.error("item_failed", item=what, error=str(exc), status=exc.status)
        reason = str(exc)
    except Exception:  # loop boundary: an unexpected bug in one item must not stop the others
        ctx.log.exception("item_crashed", item=what)
        reason = "unexpected error (see log)"
    ctx.record("failed", failure=f"{what}: {reason}")
    return None


def _parallel(ctx: RunContext, kind: str, items: Iterable, fn: Callable, describe: Callable) -> list:
    """Run fn over items with bounded concurrency, overlapping DevLake's latency.

    Items not started when a stop is requested are skipped; started ones finish.
    Returns (item, result) pairs of the items that ran.
    """
    items = list(items)
    if not items:
        return []
    done = []
    progress_every = max(50, len(items) // 10)

    def one(item):
        if ctx.stop.is_set():
            return
        result = _guard(ctx, describe(item), lambda: fn(item))
        done.append((item, result))
        if len(done) % progress_every == 0:
            ctx.log.info("progress", kind=kind, done=len(done), total=len(items))

    with ThreadPoolExecutor(max_workers=ctx.settings.max_concurrency, thread_name_prefix=kind) as pool:
        list(pool.map(one, items))
    return done
