"""DevLake REST client: one `_request`, typed errors, pagination hidden in generators.

Shapes follow `docs/devlake-api.md` (cited as §n). Methods are thin and hold
no business logic; callers never see `requests` exceptions.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from urllib.parse import quote

import requests

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
SCOPES_PAGE_SIZE = 1000   # plugin scope lists: max 1000 (§5, §10)
LIST_PAGE_SIZE = 500      # /blueprints, /pipelines: no max (§10)
# GET /projects runs several database queries per project on the page, one goroutine each
# (`backend/server/services/project.go`, GetProjects): small pages, one at a time, keep that
# load on DevLake's database bounded (~100 query sets, not ~1,000).
PROJECTS_PAGE_SIZE = 100
MAX_PAGES = 100_000       # a server that never stops paging is an error, not a hang


class DevLakeError(Exception):
    """DevLake answered with an error, or with something that is not the documented shape."""

    def __init__(self, message: str, *, status: int | None = None, body: str | None = None,
                 method: str = "", path: str = ""):
        self.message, self.status, self.body = message, status, body
        self.method, self.path = method, path
        where = f"{method} {path}".strip()
        code = f" -> {status}" if status is not None else ""
        super().__init__(f"{where}{code}: {message}" if where else message)


class DevLakeAuthError(DevLakeError):
    """401/403: the API key is missing, wrong, expired, or not allowed on this path."""


class DevLakeNotFound(DevLakeError):
    """404: unknown id or name, or a route the plugin does not register (§2)."""


class DevLakeUnavailable(DevLakeError):
    """No answer: connection refused, DNS, or timeout (after retries)."""


class DryRunViolation(DevLakeError):
    """A mutating call was attempted in --dry-run mode: a bug, never sent."""


def enc(segment) -> str:
    """Percent-encode one path segment: project names and scope ids may hold '/' (§0 #10)."""
    return quote(str(segment), safe="")


class DevLakeClient:
    """Talks to one DevLake over one session. Thread-safe for concurrent calls."""

    def __init__(self, session: requests.Session, base_url: str, *, timeout: float = 30.0,
                 dry_run: bool = False):
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.timeout = (min(10.0, timeout), timeout)  # (connect, read)
        self.dry_run = dry_run
        self._lock = threading.Lock()
        self.calls = 0
        self.mutating_calls = 0

    # -- transport ---------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, params: dict | None = None, json_body=None):
        if self.dry_run and method in MUTATING:
            raise DryRunViolation("refused in dry-run mode", method=method, path=path)
        with self._lock:
            self.calls += 1
            self.mutating_calls += method in MUTATING
        try:
            response = self.session.request(method, self.base_url + path, params=params,
                                            json=json_body, timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise DevLakeUnavailable(_short(exc), method=method, path=path) from exc
        except requests.RequestException as exc:
            raise DevLakeError(_short(exc), method=method, path=path) from exc
        if 200 <= response.status_code < 300:
            return _decode(response, method, path)
        raise _error_for(response, method, path)

    def get(self, path, **params):
        return self._request("GET", path, params=params or None)

    def _paginate(self, path: str, items_key: str, page_size: int, params: dict | None = None) -> Iterator[dict]:
        """Yield items of a page/pageSize/count list (§10); stop on a short page or at `count`."""
        seen = 0
        for page in range(1, MAX_PAGES + 1):
            body = self.get(path, **(params or {}), page=page, pageSize=page_size)
            items = _field(body, items_key, list, "GET", path, allow_null=True) or []
            count = body.get("count")
            yield from items
            seen += len(items)
            if len(items) < page_size or (isinstance(count, int) and seen >= count):
                return
        raise DevLakeError(f"more than {MAX_PAGES} pages", method="GET", path=path)

    def _paginate_concurrently(self, path: str, items_key: str, page_size: int, workers: int,
                               params: dict | None = None) -> list[dict]:
        """All items of a page/count list: page 1 first, then the rest `workers` at a time (§10).

        Saves a round trip per page on long lists; without a `count` it falls back to paging on.
        """
        first = self.get(path, **(params or {}), page=1, pageSize=page_size)
        items = list(_field(first, items_key, list, "GET", path, allow_null=True) or [])
        count = first.get("count")
        if len(items) < page_size or not isinstance(count, int) or count <= page_size:
            return items
        last_page = min(-(-count // page_size), MAX_PAGES)

        def page(n: int) -> list[dict]:
            body = self.get(path, **(params or {}), page=n, pageSize=page_size)
            return _field(body, items_key, list, "GET", path, allow_null=True) or []

        if workers <= 1:
            for n in range(2, last_page + 1):
                items.extend(page(n))
            return items
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="page") as pool:
            for rest in pool.map(page, range(2, last_page + 1)):
                items.extend(rest)
        return items

    # -- discovery (§2, §3) ------------------------------------------------------------------

    def ping(self) -> None:
        self._request("GET", "/ping")

    def version(self) -> str:
        body = self.get("/version")
        return str(body.get("version", "unknown")) if isinstance(body, dict) else "unknown"

    def list_plugins(self) -> list[str]:
        body = self.get("/plugins")
        if not isinstance(body, list):
            raise DevLakeError("expected a JSON array of plugins", method="GET", path="/plugins")
        return [p["plugin"] for p in body if isinstance(p, dict) and isinstance(p.get("plugin"), str)]

    def list_connections(self, plugin: str) -> list[dict]:
        """Connections of a plugin: a bare array (§0 #2). DevLakeNotFound if the plugin has no connection API."""
        path = f"/plugins/{enc(plugin)}/connections"
        return _list_of_dicts(self.get(path), "GET", path)

    # -- remote scopes (§4) ------------------------------------------------------------------

    def iter_remote_children(self, plugin: str, connection_id: int, group_id: str | None = None) -> Iterator[dict]:
        """Every child entry of one group (or the top level), following nextPageToken (§4.1)."""
        path = f"/plugins/{enc(plugin)}/connections/{connection_id}/remote-scopes"
        token, seen_tokens = "", set()
        while True:
            params = {k: v for k, v in (("groupId", group_id), ("pageToken", token)) if v}
            body = self.get(path, **params)
            yield from _list_of_dicts(_field(body, "children", list, "GET", path), "GET", path)
            token = body.get("nextPageToken") or ""
            if not token:
                return
            if token in seen_tokens:
                raise DevLakeError("remote-scopes returned a page token twice", method="GET", path=path)
            seen_tokens.add(token)

    # -- scopes (§5) and scope configs (§6) --------------------------------------------------

    def iter_scopes(self, plugin: str, connection_id: int, workers: int = 1) -> Iterator[dict]:
        """Scopes DevLake tracks, unwrapped: each item is `{"scope": {...}, "scopeConfig": ...}` (§0 #3)."""
        path = f"/plugins/{enc(plugin)}/connections/{connection_id}/scopes"
        for item in self._paginate_concurrently(path, "scopes", SCOPES_PAGE_SIZE, workers):
            scope = item.get("scope") if isinstance(item, dict) else None
            if not isinstance(scope, dict):
                raise DevLakeError("scope list item is not {\"scope\": {...}}", method="GET", path=path)
            yield scope

    def put_scopes(self, plugin: str, connection_id: int, rows: list[dict]) -> list[dict]:
        """Upsert scopes. Overwrites every column of each row sent (§0 #5)."""
        path = f"/plugins/{enc(plugin)}/connections/{connection_id}/scopes"
        return _list_of_dicts(self._request("PUT", path, json_body={"data": rows}), "PUT", path)

    def list_scope_configs(self, plugin: str, connection_id: int) -> list[dict]:
        path = f"/plugins/{enc(plugin)}/connections/{connection_id}/scope-configs"
        return _list_of_dicts(self.get(path), "GET", path)

    def create_scope_config(self, plugin: str, connection_id: int, body: dict) -> dict:
        path = f"/plugins/{enc(plugin)}/connections/{connection_id}/scope-configs"
        return _dict(self._request("POST", path, json_body=body), "POST", path)

    # -- projects (§7), blueprints (§8), pipelines (§9) --------------------------------------

    def iter_projects(self, keyword: str | None = None) -> Iterator[dict]:
        """Projects with `blueprint` and `lastPipeline`; by list, never by name in the path (§0 #20).
        Pages of PROJECTS_PAGE_SIZE, one at a time."""
        params = {"keyword": keyword} if keyword else None
        return self._paginate("/projects", "projects", PROJECTS_PAGE_SIZE, params)

    def create_project(self, body: dict) -> dict:
        return _dict(self._request("POST", "/projects", json_body=body), "POST", "/projects")

    def iter_blueprints(self, label: str | None = None, workers: int = 1) -> Iterator[dict]:
        params = {"label": label} if label else None
        return iter(self._paginate_concurrently("/blueprints", "blueprints", LIST_PAGE_SIZE, workers, params))

    def get_blueprint(self, blueprint_id: int) -> dict:
        path = f"/blueprints/{int(blueprint_id)}"
        return _dict(self.get(path), "GET", path)

    def patch_blueprint(self, blueprint_id: int, body: dict) -> dict:
        path = f"/blueprints/{int(blueprint_id)}"
        return _dict(self._request("PATCH", path, json_body=body), "PATCH", path)

    def trigger_blueprint(self, blueprint_id: int) -> dict:
        path = f"/blueprints/{int(blueprint_id)}/trigger"
        body = {"skipCollectors": False, "fullSync": False}
        return _dict(self._request("POST", path, json_body=body), "POST", path)

    def iter_pipelines(self, page_size: int = LIST_PAGE_SIZE, **filters) -> Iterator[dict]:
        """Pipelines newest first; filters use DevLake's keys: status, pending, blueprint_id, label (§0 #6)."""
        return self._paginate("/pipelines", "pipelines", page_size, filters)

    def pipelines_page(self, page: int, page_size: int, **filters) -> dict:
        """One raw page of /pipelines (`{"count","pipelines"}`), for callers that stop early."""
        body = self.get("/pipelines", **filters, page=page, pageSize=page_size)
        _field(body, "pipelines", list, "GET", "/pipelines", allow_null=True)
        return body

    def get_pipeline(self, pipeline_id: int) -> dict:
        path = f"/pipelines/{int(pipeline_id)}"
        return _dict(self.get(path), "GET", path)

    def pipeline_tasks(self, pipeline_id: int) -> list[dict]:
        """The latest attempt of each task (§9.1, §9.4); `tasks` is null for none or an unknown pipeline."""
        path = f"/pipelines/{int(pipeline_id)}/tasks"
        return _list_of_dicts(_field(self.get(path), "tasks", list, "GET", path, allow_null=True) or [], "GET", path)

    def test_connection(self, plugin: str, connection_id: int) -> dict:
        """DevLake's check of a saved connection's stored credentials; changes nothing (§9.6)."""
        path = f"/plugins/{enc(plugin)}/connections/{int(connection_id)}/test"
        body = self._request("POST", path)
        return body if isinstance(body, dict) else {}

    def rerun_pipeline(self, pipeline_id: int):
        return self._request("POST", f"/pipelines/{int(pipeline_id)}/rerun")


# -- response helpers ----------------------------------------------------------------------------

def _short(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def _decode(response: requests.Response, method: str, path: str):
    if not response.content:
        return None  # e.g. GET /ping answers 200 with an empty body (§1.4)
    try:
        return response.json()
    except ValueError as exc:
        raise DevLakeError(f"malformed JSON in a {response.status_code} answer",
                           status=response.status_code, body=response.text[:500],
                           method=method, path=path) from exc


def _error_for(response: requests.Response, method: str, path: str) -> DevLakeError:
    """Pull DevLake's `message` out of the error body (§1.3); bodies may be empty or plain text."""
    text = response.text[:2000]
    message = text.strip() or response.reason or _phrase(response.status_code)
    try:
        body = json.loads(text)
        if isinstance(body, dict) and body.get("message"):
            message = str(body["message"])
    except ValueError:
        pass
    status = response.status_code
    cls = (DevLakeAuthError if status in (401, 403) else
           DevLakeNotFound if status == 404 else
           DevLakeUnavailable if status in (502, 503, 504) else DevLakeError)
    return cls(message, status=status, body=text, method=method, path=path)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _field(body, key: str, kind: type, method: str, path: str, allow_null: bool = False):
    if not isinstance(body, dict) or key not in body:
        raise DevLakeError(f"answer has no {key!r} field", method=method, path=path)
    value = body[key]
    if value is None and allow_null:
        return None
    if not isinstance(value, kind):
        raise DevLakeError(f"{key!r} is not a {kind.__name__}", method=method, path=path)
    return value


def _dict(body, method: str, path: str) -> dict:
    if not isinstance(body, dict):
        raise DevLakeError("expected a JSON object", method=method, path=path)
    return body


def _list_of_dicts(body, method: str, path: str) -> list[dict]:
    if not isinstance(body, list) or not all(isinstance(i, dict) for i in body):
        raise DevLakeError("expected a JSON array of objects", method=method, path=path)
    return body
