"""In-memory plugin data: plugins, connections, scopes and scope configs (§2, §3, §5, §6).

Callers hold the fake's lock. Section numbers (§) refer to `docs/devlake-api.md`.
"""

from __future__ import annotations

from itertools import islice

from .common import ApiError, not_routed, weak_int
from .plugins import (
    CONNECTION_DEFAULTS,
    DEFAULT_METRIC,
    HELPER_PLUGINS,
    INT_ID_PLUGINS,
    METRIC_INFO,
    SCOPE_CONFIG_DEFAULTS,
    SCOPE_ID_FIELD,
    SEARCH_FIELD,
    sanitize_connection,
)
from .remote import RemoteTree

DUPLICATE_SCOPE_CONFIG = "The name of the current scope config is duplicated. Please modify it before saving."
_RAW_DEFAULTS = {"_raw_data_params": "", "_raw_data_table": "", "_raw_data_id": 0, "_raw_data_remark": ""}


class PluginStore:
    def __init__(self, state):
        self._state = state
        self.plugins: dict[str, bool] = {}  # name → has a connection API
        self.connections: dict[str, dict[int, dict]] = {}
        self.scope_rows: dict[tuple[str, int], dict[str, dict]] = {}
        self.configs: dict[str, dict[int, dict]] = {}  # per plugin: one table for all connections
        self.remote: dict[tuple[str, int], RemoteTree] = {}
        self.github_api_calls = 0
        self.test_failures: dict[tuple[str, int], tuple[int, str]] = {}  # connection test verdicts
        self._seq: dict[str, int] = {}
        for name, has_api in HELPER_PLUGINS.items():
            self.add_plugin(name, has_connections=has_api)

    def next_id(self, key: str) -> int:
        self._seq[key] = self._seq.get(key, 0) + 1
        return self._seq[key]

    # --- plugins and connections (§2, §3) -------------------------------------------------------

    def add_plugin(self, name: str, *, has_connections: bool = True) -> None:
        self.plugins[name] = has_connections
        if has_connections:
            self.connections.setdefault(name, {})

    def plugin_list(self) -> list[dict]:
        return [{"plugin": p, "metric": METRIC_INFO.get(p, DEFAULT_METRIC)} for p in self.plugins]

    def require_api(self, plugin: str) -> None:
        """Routes under /plugins/{p}/ exist only for plugins registering them (§2)."""
        if not self.plugins.get(plugin):
            raise not_routed()

    def create_connection(self, plugin: str, body: dict) -> dict:
        name = body.get("name")
        if not isinstance(name, str) or not name or len(name) > 100:
            raise ApiError(400, "Key: 'Connection.Name' Error:Field validation for 'Name' failed")
        conns = self.connections.setdefault(plugin, {})
        if any(c["name"] == name for c in conns.values()):
            raise ApiError(500, DUPLICATE_SCOPE_CONFIG)  # same Create path as scope configs (§6)
        now = self._state.now()
        cid = self.next_id("conn:" + plugin)
        row = {"name": name, "id": cid, "createdAt": now, "updatedAt": now,
               **CONNECTION_DEFAULTS.get(plugin, {}), **{k: v for k, v in body.items() if k not in ("id", "name")}}
        conns[cid] = row
        return row

    def connection(self, plugin: str, cid) -> dict:
        row = self.connections.get(plugin, {}).get(_int_or_none(cid))
        if row is None:
            raise ApiError(404, "record not found", causes=["record not found (404)"])
        return row

    def sanitized(self, plugin: str, row: dict) -> dict:
        return sanitize_connection(plugin, row)

    def patch_connection(self, plugin: str, cid, body: dict) -> dict:
        row = self.connection(plugin, cid)
        name = body.get("name", row["name"])
        if any(c["name"] == name and c is not row for c in self.connections[plugin].values()):
            raise ApiError(400, f"Error 1062 (23000): Duplicate entry '{name}' for key 'name'")
        row.update({k: v for k, v in body.items() if k not in ("id", "createdAt")})
        row["updatedAt"] = self._state.now()
        return row

    def delete_connection(self, plugin: str, cid) -> dict:
        row = self.connection(plugin, cid)
        self._no_refs(plugin, row["id"], None)
        del self.connections[plugin][row["id"]]
        self.scope_rows.pop((plugin, row["id"]), None)
        return row

    def _no_refs(self, plugin: str, cid: int, scope_id: str | None) -> None:
        """409 while any pipeline runs (quirk #13) or blueprints reference the object (§1.3)."""
        if self._state.pipelines.any_running():
            raise ApiError(409, "Some pipelines are running, please try again later")
        refs = self._state.projects.blueprints_using(plugin, cid, scope_id)
        if refs:
            raise ApiError(409, "Found references in blueprints or projects", data={
                "blueprints": [b["name"] for b in refs], "projects": [b["projectName"] for b in refs]})

    # --- remote scopes (§4) ----------------------------------------------------------------------

    def tree(self, plugin: str, cid: int) -> RemoteTree:
        return self.remote.setdefault((plugin, cid), RemoteTree(plugin))

    # --- scopes (§5) -----------------------------------------------------------------------------

    def rows(self, plugin: str, cid: int) -> dict[str, dict]:
        return self.scope_rows.setdefault((plugin, cid), {})

    def put_scopes(self, plugin: str, cid, body) -> list[dict]:
        """Upsert overwriting every column (quirk #5); returns the flat saved rows (quirk #3)."""
        conn = self.connection(plugin, cid)
        items = body.get("data") if isinstance(body, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ApiError(400, "invalid data")
        if plugin == "github":  # quirk #18: one GitHub API call per item lacking the URLs
            self.github_api_calls += sum(1 for i in items if i.get("fullName") and (
                not i.get("htmlUrl") or not i.get("cloneUrl")))
        return self.upsert(plugin, conn["id"], items)

    def upsert(self, plugin: str, cid: int, items: list[dict]) -> list[dict]:
        """Validate every item first, then replace whole rows (gorm CreateOrUpdate)."""
        rows = [self._normalize(plugin, cid, item) for item in items]
        table, now = self.rows(plugin, cid), self._state.now()
        for sid, row in rows:
            old = table.get(sid)
            row["createdAt"] = old["createdAt"] if old else now
            row["updatedAt"] = now
            table[sid] = row
        return [row for _, row in rows]

    def _normalize(self, plugin: str, cid: int, item: dict) -> tuple[str, dict]:
        field = SCOPE_ID_FIELD.get(plugin, "id")
        row = {**_RAW_DEFAULTS, **item, "connectionId": cid}
        if plugin == "github" and "htmlUrl" in row:
            # mapstructure folds htmlUrl into HTMLUrl, the model's only field and JSON key
            # (backend/plugins/github/models/repo.go): a listed row never has `htmlUrl`,
            # so a client re-sending listed rows must add it itself (quirk #18)
            html = row.pop("htmlUrl")
            row["HTMLUrl"] = row.get("HTMLUrl") or html
        value = row.get(field)
        if plugin in INT_ID_PLUGINS and value is not None:
            value = row[field] = weak_int(value, field)
        if value in (None, "", 0):
            model = field[0].upper() + field[1:]
            raise ApiError(400, f"Key: '{model}' Error:Field validation for '{model}' failed on the 'required' tag")
        if plugin == "azuredevops_go" and not row.get("type"):
            raise ApiError(400, "Key: 'Type' Error:Field validation for 'Type' failed on the 'required' tag")
        self._set_config_id(row, row.pop("scopeConfigId", 0))
        return str(value), row

    @staticmethod
    def _set_config_id(row: dict, value) -> None:
        config_id = weak_int(value or 0, "scopeConfigId")
        if config_id:
            row["scopeConfigId"] = config_id  # omitempty: absent when 0 (quirk #4)
        else:
            row.pop("scopeConfigId", None)

    def list_scopes(self, plugin: str, cid, page: int, size: int, term: str, with_bp: bool) -> dict:
        conn = self.connection(plugin, cid)
        if page < 1 or not 1 <= size <= 1000:
            raise ApiError(400, "invalid pagination parameters")
        table = self.rows(plugin, conn["id"])
        start = (page - 1) * size
        column = SEARCH_FIELD.get(plugin)
        if term and column:
            needle = term.lower()
            hits = [r for r in table.values() if needle in str(r.get(column, "")).lower()]
            count, chunk = len(hits), hits[start:start + size]
        else:
            count, chunk = len(table), list(islice(table.values(), start, start + size))
        bp_index = self._state.projects.scope_blueprint_index() if with_bp else None
        return {"count": count, "scopes": [self._wrap(plugin, r, bp_index) for r in chunk]}

    def _wrap(self, plugin: str, row: dict, bp_index: dict | None) -> dict:
        """List/GET item shape: {"scope", "scopeConfig"?, "blueprints"?} (quirk #3)."""
        item = {"scope": row}
        config = self.configs.get(plugin, {}).get(row.get("scopeConfigId", 0))
        if config is not None:
            item["scopeConfig"] = config
        if bp_index is not None:
            key = (plugin, row["connectionId"], str(row[SCOPE_ID_FIELD.get(plugin, "id")]))
            item["blueprints"] = bp_index.get(key, [])
        return item

    def scope(self, plugin: str, cid, sid: str) -> dict:
        row = self.rows(plugin, self.connection(plugin, cid)["id"]).get(sid)
        if row is None:
            raise ApiError(404, "record not found", causes=["record not found (404)"])
        return row

    def get_scope(self, plugin: str, cid, sid: str, with_bp: bool) -> dict:
        bp_index = self._state.projects.scope_blueprint_index() if with_bp else None
        return self._wrap(plugin, self.scope(plugin, cid, sid), bp_index)

    def patch_scope(self, plugin: str, cid, sid: str, body: dict) -> dict:
        row = self.scope(plugin, cid, sid)
        keep = (SCOPE_ID_FIELD.get(plugin, "id"), "connectionId", "createdAt")
        changes = {k: v for k, v in body.items() if k not in keep}
        if "scopeConfigId" in changes:
            self._set_config_id(row, changes.pop("scopeConfigId"))
        row.update(changes)
        row["updatedAt"] = self._state.now()
        return row

    def delete_scope(self, plugin: str, cid, sid: str) -> dict:
        row = self.scope(plugin, cid, sid)
        self._no_refs(plugin, row["connectionId"], sid)
        del self.rows(plugin, row["connectionId"])[sid]
        return row

    # --- scope configs (§6) ----------------------------------------------------------------------

    def list_configs(self, plugin: str, cid) -> list[dict]:
        conn_id = self.connection(plugin, cid)["id"]
        rows = [r for r in self.configs.get(plugin, {}).values() if r["connectionId"] == conn_id]
        return sorted(rows, key=lambda r: r["id"], reverse=True)

    def create_config(self, plugin: str, cid, body: dict) -> dict:
        conn_id = self.connection(plugin, cid)["id"]
        name = body.get("name")
        if not isinstance(name, str) or not name or len(name) > 255:
            raise ApiError(400, "Key: 'ScopeConfig.Name' Error:Field validation for 'Name' "
                                "failed on the 'required' tag")
        table = self.configs.setdefault(plugin, {})
        if any(r["name"] == name for r in table.values()):  # unique across connections (§6)
            raise ApiError(500, DUPLICATE_SCOPE_CONFIG)
        now = self._state.now()
        config_id = self.next_id("sc:" + plugin)
        row = {"id": config_id, "createdAt": now, "updatedAt": now, "entities": None,
               **SCOPE_CONFIG_DEFAULTS.get(plugin, {}),
               **{k: v for k, v in body.items() if k not in ("id", "createdAt", "updatedAt")},
               "connectionId": conn_id, "name": name}
        table[config_id] = row
        return row

    def config(self, plugin: str, cid, config_id) -> dict:
        conn_id = self.connection(plugin, cid)["id"]
        row = self.configs.get(plugin, {}).get(_int_or_none(config_id))
        if row is None or row["connectionId"] != conn_id:
            raise ApiError(404, "record not found", causes=["record not found (404)"])
        return row

    def patch_config(self, plugin: str, cid, config_id, body: dict) -> dict:
        row = self.config(plugin, cid, config_id)
        name = body.get("name", row["name"])
        if any(r["name"] == name and r is not row for r in self.configs[plugin].values()):
            raise ApiError(400, f"Error 1062 (23000): Duplicate entry '{name}' for key "
                                f"'_tool_{plugin}_scope_configs.idx_name'")
        row.update({k: v for k, v in body.items() if k not in ("id", "createdAt", "connectionId")})
        row["updatedAt"] = self._state.now()
        return row

    def delete_config(self, plugin: str, cid, config_id) -> dict:
        row = self.config(plugin, cid, config_id)
        if self._state.pipelines.any_running():
            raise ApiError(409, "Some pipelines are running, please try again later")
        users = [s for (p, _), t in self.scope_rows.items() if p == plugin
                 for s in t.values() if s.get("scopeConfigId") == row["id"]]
        if users:
            raise ApiError(409, "Found references in scopes", data=users)
        del self.configs[plugin][row["id"]]
        return row


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None

