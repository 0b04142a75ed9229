"""Remote-scope trees (what exists upstream) and their page tokens, §4 of `docs/devlake-api.md`."""

from __future__ import annotations

import base64
import binascii
import json

from .common import ApiError

# How each plugin pages a group's children (§4.2):
#   "full": a token whenever the page is full (so the last page may come back empty)
#   "more": a token only while more entries remain
#   "cap":  at most 100 entries, never a token (bitbucket, quirk #11)
#   "all":  no paging at all
PAGING = {"github": "full", "jenkins": "full", "gitlab": "more", "jira": "more", "bamboo": "more",
          "bitbucket": "cap", "azuredevops_go": "all", "circleci": "all"}
TOP_LEVEL_ONLY = {"jira", "circleci", "bamboo"}  # scopes only; `groupId` is ignored
BITBUCKET_CAP = 100


def encode_token(page: int, per_page: int) -> str:
    raw = json.dumps({"page": page, "perPage": per_page}, separators=(",", ":")).encode()
    return base64.b64encode(raw).decode()


def decode_token(token: str) -> tuple[int, int | None]:
    """Returns (page, perPage). Bad base64 → 400; base64 of a non-token → 500 empty (errors.Must)."""
    try:
        raw = base64.b64decode(token.encode(), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "failed to decode page token",
                       causes=["illegal base64 data at input byte 0 (400)"]) from None
    try:
        info = json.loads(raw)
        page = int(info.get("page", 1))
        per_page = info.get("perPage")
        return max(page, 1), (int(per_page) if per_page else None)
    except (ValueError, TypeError, AttributeError):
        raise ApiError(500, empty=True) from None  # the helper panics on a bad JSON payload


class RemoteTree:
    """Groups and scopes of one connection. Children keep insertion order, groups before scopes
    (gitlab lists subgroups, then projects). A scope may sit under several groups (quirk #21)."""

    def __init__(self, plugin: str):
        self.plugin = plugin
        self.groups: dict[str, dict] = {}
        self._groups_under: dict[str | None, list[dict]] = {}
        self._scopes_under: dict[str | None, list[dict]] = {}
        self.scope_data: dict[str, dict] = {}  # scope id → data, to reuse for duplicates
        self.unique_scopes: dict[str, dict] = {}  # scope id → first entry (for search)
        self._entries: dict[str, list[dict]] = {}  # scope id → its entries under every group

    def add_group(self, group_id: str, name: str, parent_id: str | None, full_name: str | None) -> dict:
        if self.plugin in TOP_LEVEL_ONLY:
            raise ValueError(f"{self.plugin} remote scopes have no groups")
        if group_id in self.groups:
            raise ValueError(f"group {group_id!r} already exists")
        self._require_parent(parent_id)
        entry = {"type": "group", "parentId": parent_id, "id": group_id, "name": name,
                 "fullName": full_name if full_name is not None else name, "data": None}
        self.groups[group_id] = entry
        self._groups_under.setdefault(parent_id, []).append(entry)
        return entry

    def add_scope(self, entry_id: str, name: str, full_name: str, parent_id: str | None,
                  scope_id: str, data: dict) -> dict:
        if parent_id is not None and self.plugin in TOP_LEVEL_ONLY:
            raise ValueError(f"{self.plugin} remote scopes live at the top level only")
        self._require_parent(parent_id)
        entry = {"type": "scope", "parentId": parent_id, "id": entry_id, "name": name,
                 "fullName": full_name, "data": data}
        self._scopes_under.setdefault(parent_id, []).append(entry)
        self.scope_data.setdefault(scope_id, data)
        self.unique_scopes.setdefault(scope_id, entry)
        self._entries.setdefault(scope_id, []).append(entry)
        return entry

    def remove_scope(self, scope_id: str) -> None:
        """The repository is gone upstream (deleted, transferred, renamed): DevLake's remote-scopes
        only relay the upstream listing (backend/plugins/<plugin>/api/remote_api.go),
        so it vanishes from every group; DevLake's own scope row and blueprints stay."""
        for entries in self._scopes_under.values():
            entries[:] = [e for e in entries if all(e is not gone for gone in self._entries.get(scope_id, ()))]
        self._entries.pop(scope_id, None)
        self.scope_data.pop(scope_id, None)
        self.unique_scopes.pop(scope_id, None)

    def group(self, group_id: str | None) -> dict | None:
        return self.groups.get(group_id) if group_id else None

    def _require_parent(self, parent_id):
        if parent_id is not None and parent_id not in self.groups:
            raise ValueError(f"unknown parent group {parent_id!r}")

    def list(self, group_id: str, page_token: str, page_size: int) -> dict:
        """GET .../remote-scopes?groupId=&pageToken= → {"children", "nextPageToken"}."""
        parent = None if (self.plugin in TOP_LEVEL_ONLY or not group_id) else group_id
        if parent is not None and parent not in self.groups:
            raise ApiError(404, f"group {group_id} not found upstream",
                           causes=["upstream answered 404 Not Found (404)"])
        page, per_page = decode_token(page_token) if page_token else (1, None)
        groups = self._groups_under.get(parent, [])
        scopes = self._scopes_under.get(parent, [])
        mode = PAGING.get(self.plugin, "more")
        if mode == "all":
            return {"children": groups + scopes, "nextPageToken": ""}
        if mode == "cap":
            return {"children": (groups + scopes)[:BITBUCKET_CAP], "nextPageToken": ""}
        size = per_page or page_size
        start, end = (page - 1) * size, page * size
        children = groups[start:end]
        if len(children) < size:
            children += scopes[max(0, start - len(groups)):end - len(groups)]
        total = len(groups) + len(scopes)
        more = len(children) == size if mode == "full" else end < total
        return {"children": children, "nextPageToken": encode_token(page + 1, size) if more else ""}

    def search(self, term: str, page: int, page_size: int) -> dict:
        """search-remote-scopes: matches names, parentId forced to null (§4.3)."""
        needle = term.lower()
        hits = [e for e in self.unique_scopes.values()
                if needle in e["fullName"].lower() or needle in e["name"].lower()]
        chunk = hits[(page - 1) * page_size: page * page_size]
        return {"children": [{**e, "parentId": None} for e in chunk], "page": page, "pageSize": page_size}
