"""Scopes: walk what exists upstream (remote-scopes) and add what DevLake lacks.

A "scope" is a repository, board, job or plan, depending on the plugin.
"""
from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from modules.api import DevLakeClient, DevLakeError
from modules.plugins import plugin_of

PUT_BATCH_SIZE = 200
MAX_GROUP_DEPTH = 50


@dataclass(frozen=True)
class Connection:
    plugin: str
    id: int
    name: str

    @property
    def label(self) -> str:
        return f"{self.plugin}/{self.id}"


@dataclass(frozen=True)
class ScopeRef:
    """One scope DevLake tracks, with what project naming needs."""

    connection: Connection
    scope_id: str
    name: str
    full_name: str

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.connection.plugin, self.connection.id, self.scope_id)


@dataclass
class RemoteScopes:
    """What a connection's remote-scopes walk found."""

    scopes: dict[str, dict] = field(default_factory=dict)
    capped_groups: list[str] = field(default_factory=list)  # listings DevLake cut at its limit


def scope_id_field(plugin: str) -> str:
    return plugin_of(plugin).scope_id_field


def scope_id_of(plugin: str, row: dict) -> str | None:
    value = row.get(scope_id_field(plugin))
    return None if value in (None, "") else str(value)


def scope_ref(connection: Connection, row: dict) -> ScopeRef:
    sid = scope_id_of(connection.plugin, row) or ""  # callers pass rows that have an id
    name = str(row.get("name") or sid)
    full = (row.get("fullName") or row.get("pathWithNamespace") or row.get("slug") or name)
    return ScopeRef(connection, sid, name, str(full))


def walk_remote_scopes(api: DevLakeClient, connection: Connection, workers: int = 1) -> RemoteScopes:
    """Every scope upstream, as `{scope_id: data}`, walking groups to any depth (§4).

    Groups of one level are listed concurrently (`workers`), each following its
    own page tokens. The same scope can appear under several groups (GitHub PAT
    lists org repos under the user too, §0 #21), so entries are deduplicated by
    scope id. For azuredevops_go external repos the entry id differs from
    `data.id`; the scope id always comes from `data`.
    """
    result = RemoteScopes()
    level: list[str | None] = [None]
    visited: set[str | None] = set()

    def children(group_id: str | None) -> list[dict]:
        return list(api.iter_remote_children(connection.plugin, connection.id, group_id))

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="remote") as pool:
        for _depth in range(MAX_GROUP_DEPTH + 1):
            level = [g for g in dict.fromkeys(level) if g not in visited]
            if not level:
                break
            visited.update(level)
            listings = list(pool.map(children, level))
            next_level: list[str | None] = []
            for group_id, entries in zip(level, listings, strict=True):
                next_level.extend(_collect(connection, group_id, entries, result))
            level = next_level
    return result


def _collect(connection: Connection, group_id: str | None, entries: list[dict], result: RemoteScopes) -> list[str]:
    """Add one group's scopes to `result`; return its subgroups."""
    groups: list[str] = []
    scopes_here = 0
    for entry in entries:
        if entry.get("type") == "group" and entry.get("id") not in (None, ""):
            groups.append(str(entry["id"]))
        elif entry.get("type") == "scope" and isinstance(entry.get("data"), dict):
            scopes_here += 1
            data = dict(entry["data"])
            sid = scope_id_of(connection.plugin, data) or str(entry.get("id") or "")
            if not sid:
                continue
            data.setdefault(scope_id_field(connection.plugin), entry.get("id"))
            data.setdefault("name", entry.get("name"))
            data.setdefault("fullName", entry.get("fullName"))
            result.scopes.setdefault(sid, data)
    # a listing DevLake cuts at its limit may hold more than it shows (modules/plugins.py)
    cap = plugin_of(connection.plugin).group_listing_cap
    if cap is not None and group_id is not None and scopes_here >= cap:
        result.capped_groups.append(group_id)
    return groups


def list_scopes(api: DevLakeClient, connection: Connection) -> dict[str, dict]:
    """Scopes DevLake already tracks for a connection, `{scope_id: row}` (paged list, §5)."""
    rows = {}
    for row in api.iter_scopes(connection.plugin, connection.id):
        sid = scope_id_of(connection.plugin, row)
        if sid is None:
            raise DevLakeError(f"scope row without {scope_id_field(connection.plugin)!r}")
        rows[sid] = row
    return rows


def new_scope_row(plugin: str, data: dict, scope_config_id: int | None) -> dict:
    """The PUT row for a scope new to DevLake, from its remote-scopes `data`."""
    row = _with_github_urls(plugin, {k: v for k, v in data.items() if k != "connectionId"})
    if scope_config_id:
        row["scopeConfigId"] = scope_config_id
    return row


def attach_row(plugin: str, row: dict, scope_config_id: int | None) -> dict:
    """An existing row with a scope config added. PUT overwrites every column (§0 #5),
    so the row goes back whole, exactly as DevLake listed it, plus scopeConfigId
    (None: filled in by the applier once the connection's scope config exists)."""
    out = _with_github_urls(plugin, dict(row))
    if scope_config_id:
        out["scopeConfigId"] = scope_config_id
    return out


def _with_github_urls(plugin: str, row: dict) -> dict:
    """Rows of plugins with `html_url` (GitHub) need lowercase `htmlUrl` and `cloneUrl`: PutScopes
    checks `dict["htmlUrl"]` (exact key) and otherwise calls GitHub once per row
    (backend/plugins/github/api/scope_api.go, `docs/devlake-api.md` §0 #18). Remote data and
    DevLake's own scope list spell it `HTMLUrl`."""
    if not plugin_of(plugin).html_url:
        return row
    html = row.get("htmlUrl") or row.get("HTMLUrl")
    if html:
        row["htmlUrl"] = html
        if not row.get("cloneUrl"):
            row["cloneUrl"] = html.rstrip("/") + ".git"
    return row


def batches(rows: list[dict], size: int = PUT_BATCH_SIZE) -> Iterator[list[dict]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]
