"""Scopes: walk what exists upstream (remote-scopes) and add what DevLake lacks.

A "scope" is a repository, board, job or plan, depending on the plugin.
"""
from __future__ import annotations

from dataclasses import dataclass

from modules.api import DevLakeClient, DevLakeError

# The field holding each plugin's scope id (devlake-api.md §5 table); plugins
# not listed use `id`, as config-ui does (`getPluginScopeId`).
SCOPE_ID_FIELDS = {
    "github": "githubId",
    "gitlab": "gitlabId",
    "bitbucket": "bitbucketId",
    "azuredevops_go": "id",
    "jira": "boardId",
    "jenkins": "fullName",
    "circleci": "id",
    "bamboo": "planKey",
}
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


def scope_id_field(plugin: str) -> str:
    return SCOPE_ID_FIELDS.get(plugin, "id")


def scope_id_of(plugin: str, row: dict) -> str | None:
    value = row.get(scope_id_field(plugin))
    return None if value in (None, "") else str(value)


def scope_ref(connection: Connection, row: dict) -> ScopeRef:
    sid = scope_id_of(connection.plugin, row) or ""  # callers pass rows that have an id
    name = str(row.get("name") or sid)
    full = (row.get("fullName") or row.get("pathWithNamespace") or row.get("slug") or name)
    return ScopeRef(connection, sid, name, str(full))


def walk_remote_scopes(api: DevLakeClient, connection: Connection) -> dict[str, dict]:
    """Every scope upstream, as `{scope_id: data}`, walking groups to any depth (§4).

    The same scope can appear under several groups (GitHub PAT lists org repos
    under the user too, §0 #21), so entries are deduplicated by scope id. For
    azuredevops_go external repos the entry id differs from `data.id`; the
    scope id always comes from `data`.
    """
    found: dict[str, dict] = {}
    pending: list[tuple[str | None, int]] = [(None, 0)]
    visited: set[str | None] = set()
    while pending:
        group_id, depth = pending.pop()
        if group_id in visited or depth > MAX_GROUP_DEPTH:
            continue
        visited.add(group_id)
        for entry in api.iter_remote_children(connection.plugin, connection.id, group_id):
            if entry.get("type") == "group" and entry.get("id") not in (None, ""):
                pending.append((str(entry["id"]), depth + 1))
            elif entry.get("type") == "scope" and isinstance(entry.get("data"), dict):
                data = dict(entry["data"])
                sid = scope_id_of(connection.plugin, data) or str(entry.get("id") or "")
                if not sid:
                    continue
                data.setdefault(scope_id_field(connection.plugin), entry.get("id"))
                data.setdefault("name", entry.get("name"))
                data.setdefault("fullName", entry.get("fullName"))
                found.setdefault(sid, data)
    return found


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
    row = {k: v for k, v in data.items() if k != "connectionId"}
    if plugin == "github":
        # Without non-empty htmlUrl and cloneUrl DevLake calls GitHub once per repo (§0 #18);
        # remote data spells it HTMLUrl.
        html = row.get("htmlUrl") or row.get("HTMLUrl")
        if html:
            row["htmlUrl"] = html
            row.setdefault("cloneUrl", html.rstrip("/") + ".git")
    if scope_config_id:
        row["scopeConfigId"] = scope_config_id
    return row


def attach_row(row: dict, scope_config_id: int) -> dict:
    """An existing row with a scope config added. PUT overwrites every column (§0 #5),
    so the row goes back whole, exactly as DevLake listed it, plus scopeConfigId."""
    out = dict(row)
    out["scopeConfigId"] = scope_config_id
    return out


def batches(rows: list[dict], size: int = PUT_BATCH_SIZE):
    for start in range(0, len(rows), size):
        yield rows[start:start + size]
