"""Checks of DevLake's answers at the boundary: the shapes and types the planner, the ledger and the
monitor rely on (`docs/devlake-api.md` §7, §8, §9), and the bounds of a paged list (§10).

A check returns None for a good item and a short reason for a bad one; `modules/api.py` turns a
reason into one `devlake_answer_malformed` log line and a failed read. Nothing here does I/O.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

# Far above any real DevLake (the largest reported have tens of thousands of projects); a list
# that goes past it is a server (or proxy) that never stops, not data.
MAX_LIST_ITEMS = 200_000
# Pages of one remote-scopes group (§4.1): GitHub lists 100 repositories a page, so this is
# 100,000 repositories under one organisation.
MAX_REMOTE_PAGES = 1_000

Check = Callable[[Any], "str | None"]


def positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _optional_dict(item: dict, key: str) -> dict | None:
    value = item.get(key)
    return value if isinstance(value, dict) else None


def check_project(item: object) -> str | None:
    """ApiOutputProject (backend/server/services/project.go): a name; blueprint and lastPipeline
    null/absent or objects with a positive integer id."""
    if not isinstance(item, dict):
        return "project is not an object"
    if not isinstance(item.get("name"), str) or not item["name"]:
        return "project has no string name"
    for key in ("blueprint", "lastPipeline"):
        value = item.get(key)
        if value is None:
            continue
        if not isinstance(value, dict) or ("id" in value and not positive_int(value["id"])):
            return f"project {item['name']!r}: {key} has no positive integer id"
    last = _optional_dict(item, "lastPipeline")
    if last is not None and not isinstance(last.get("status", ""), str):
        return f"project {item['name']!r}: lastPipeline status is not a string"
    return None


def check_blueprint(item: object) -> str | None:
    """models.Blueprint (backend/core/models/blueprint.go): id, labels, connections[].scopes[]."""
    if not isinstance(item, dict) or not positive_int(item.get("id")):
        return "blueprint has no positive integer id"
    labels = item.get("labels")
    if labels is not None and not (isinstance(labels, list) and all(isinstance(v, str) for v in labels)):
        return f"blueprint {item['id']}: labels is not a list of strings"
    connections = item.get("connections")
    if connections is None:
        return None
    if not isinstance(connections, list):
        return f"blueprint {item['id']}: connections is not a list"
    for conn in connections:
        if not isinstance(conn, dict) or not isinstance(conn.get("pluginName"), str) \
                or not positive_int(conn.get("connectionId")):
            return f"blueprint {item['id']}: a connection has no pluginName or positive connectionId"
        scopes = conn.get("scopes")
        if scopes is not None and not (isinstance(scopes, list) and all(
                isinstance(s, dict) and isinstance(s.get("scopeId"), (str, int))
                and not isinstance(s.get("scopeId"), bool) for s in scopes)):
            return f"blueprint {item['id']}: scopes is not a list of {{scopeId}}"
    return None


def check_connection(item: object) -> str | None:
    """A plugin connection (§0 #2): a positive integer id and, if present, a string name."""
    if not isinstance(item, dict) or not positive_int(item.get("id")):
        return "connection has no positive integer id"
    if not isinstance(item.get("name", ""), str):
        return f"connection {item['id']}: name is not a string"
    return None


def check_scope_item(item: object) -> str | None:
    """A scope list item is `{"scope": {...}, "scopeConfig": ...}` (§0 #3)."""
    if not isinstance(item, dict) or not isinstance(item.get("scope"), dict):
        return 'scope list item is not {"scope": {...}}'
    return None


def check_pipeline(item: object) -> str | None:
    if not isinstance(item, dict) or not positive_int(item.get("id")):
        return "pipeline has no positive integer id"
    return None


def _key_of(field: str) -> Callable[[Any], Hashable]:
    return lambda item: item.get(field)


class ListGuard:
    """The bounds of one paged list: page sizes, item checks, repeats and the item cap.

    A page that holds more items than were asked for, an item that fails its check, a page with
    nothing new (a server that repeats itself), or a list longer than `max_items` is malformed.
    An item seen on an earlier page is dropped without complaint: a list read newest first
    shifts by one when a row is inserted between two page reads (real DevLake behaviour).
    """

    def __init__(self, check: Check | None, key: str | Callable[[Any], Hashable] | None,
                 max_items: int | None = None):
        self.check = check
        self.key = _key_of(key) if isinstance(key, str) else key
        self.max_items = MAX_LIST_ITEMS if max_items is None else max_items
        self.received = 0
        self.seen: set = set()

    def page(self, items: list, page_size: int) -> tuple[list, str | None]:
        """(the page's new items, or [] and what is wrong with it)."""
        if len(items) > page_size:
            return [], f"a page of {len(items)} items, {page_size} asked for"
        self.received += len(items)
        if self.received > self.max_items:
            return [], f"more than {self.max_items} items"
        if self.check is not None:
            for item in items:
                problem = self.check(item)
                if problem:
                    return [], problem
        if self.key is None:
            return items, None
        fresh = []
        for item in items:
            key = self.key(item)
            if key not in self.seen:
                self.seen.add(key)
                fresh.append(item)
        if items and not fresh:
            return [], "a page repeats only items already listed"
        return fresh, None
