"""DevLake REST client: one `_request`, typed errors, pagination hidden in generators.

Shapes follow `docs/devlake-api.md` (cited as §n). Methods are thin and hold
no business logic; callers never see `requests` exceptions.
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import requests
import structlog

from modules import answers
from modules.answers import ListGuard

log = structlog.get_logger("devlake")
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
SCOPES_PAGE_SIZE = 1000   # plugin scope lists: max 1000 (§5, §10)
LIST_PAGE_SIZE = 500      # /blueprints, /pipelines: no max (§10)
# GET /projects runs several database queries per project on the page, one goroutine each
# (`backend/server/services/project.go`, GetProjects): small pages, one at a time, keep that
# load on DevLake's database bounded (~100 query sets, not ~1,000).
PROJECTS_PAGE_SIZE = 100
MAX_PAGES = 100_000       # a server that never stops paging is an error, not a hang
# No real DevLake answer comes near this (a page of 1,000 scopes is about 2 MB); a bigger body is a
# server or proxy gone wrong and would otherwise be held in memory whole.
MAX_BODY_BYTES = 32 * 1024 * 1024
BODY_CHUNK_BYTES = 64 * 1024


class DevLakeError(Exception):
    """DevLake answered with an error, or with something that is not the documented shape."""

    def __init__(self, message: str, *, status: int | None = None, body: str | None = None,
                 method: str = "", path: str = ""):
        self.message, self.status, self.body = message, status, body
        self.method, self.path = method, path
        where = f"{method} {path}".strip()
        code = f" -> {status}" if status is not None else ""
        super().__init__(f"{where}{code}: {message}" if where else message)


class DevLakeMalformed(DevLakeError):
    """A 2xx answer that is not the documented shape, or a list past its bounds (`modules/answers.py`)."""


class DevLakeAuthError(DevLakeError):
    """401/403: the API key is missing, wrong, expired, or not allowed on this path."""


class DevLakeNotFound(DevLakeError):
    """404: unknown id or name, or a route the plugin does not register (§2)."""


class DevLakeUnavailable(DevLakeError):
    """No answer: connection refused, DNS, or timeout (after retries)."""


class DryRunViolation(DevLakeError):
    """A mutating call was attempted in --dry-run mode: a bug, never sent."""


def enc(segment: object) -> str:
    """Percent-encode one path segment: project names and scope ids may hold '/' (§0 #10)."""
    return quote(str(segment), safe="")


class DevLakeClient:
    """Talks to one DevLake over one session. Thread-safe for concurrent calls."""

    def __init__(self, session: requests.Session, base_url: str, *, timeout: float = 30.0,
                 dry_run: bool = False):
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.timeout = (min(10.0, timeout), timeout)  # (connect, read): per socket operation
        self.total_timeout = timeout  # the whole body, however slowly its bytes come
        self.dry_run = dry_run
        self._lock = threading.Lock()
        self.calls = 0
        self.mutating_calls = 0

    # -- transport ---------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, params: dict | None = None, json_body: Any = None) -> Any:
        if self.dry_run and method in MUTATING:
            raise DryRunViolation("refused in dry-run mode", method=method, path=path)
        with self._lock:
            self.calls += 1
            self.mutating_calls += method in MUTATING
        try:
            response = self.session.request(method, self.base_url + path, params=params,
                                            json=json_body, timeout=self.timeout, stream=True)
            # Retries happen before the headers; the body then gets the timeout as a whole.
            _read_body(response, time.monotonic() + self.total_timeout)
        except _BodyRefused as exc:
            raise _malformed(str(exc), method, path, status=response.status_code) from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise DevLakeUnavailable(_short(exc), method=method, path=path) from exc
        except requests.RequestException as exc:
            raise DevLakeError(_short(exc), method=method, path=path) from exc
        if 200 <= response.status_code < 300:
            return _decode(response, method, path)
        raise _error_for(response, method, path)

    def get(self, path: str, **params: Any) -> Any:
        return self._request("GET", path, params=params or None)

    def _paginate(self, path: str, items_key: str, page_size: int, params: dict | None = None,
                  guard: ListGuard | None = None) -> Iterator[dict]:
        """Yield items of a page/pageSize/count list (§10); stop on a short page or at `count`.
        `guard` bounds it (modules/answers.py): a malformed page fails the whole read."""
        guard = guard or ListGuard(None, None)
        seen = 0
        for page in range(1, MAX_PAGES + 1):
            body = self.get(path, **(params or {}), page=page, pageSize=page_size)
            items = _field(body, items_key, list, "GET", path, allow_null=True) or []
            count = body.get("count")
            yield from _guarded(guard, items, page_size, path)
            seen += len(items)
            if len(items) < page_size or (isinstance(count, int) and seen >= count):
                return
        raise _malformed(f"more than {MAX_PAGES} pages", "GET", path)

    def _paginate_concurrently(self, path: str, items_key: str, page_size: int, workers: int,
                               params: dict | None = None, guard: ListGuard | None = None) -> list[dict]:
        """All items of a page/count list: page 1 first, then the rest `workers` at a time (§10).

        Saves a round trip per page on long lists; without a `count` it falls back to paging on.
        A `count` past the guard's item cap is refused before any other page is read.
        """
        guard = guard or ListGuard(None, None)
        first = self.get(path, **(params or {}), page=1, pageSize=page_size)
        raw = _field(first, items_key, list, "GET", path, allow_null=True) or []
        items = _guarded(guard, raw, page_size, path)
        count = first.get("count")
        if len(raw) < page_size or not isinstance(count, int) or count <= page_size:
            return items
        if count > guard.max_items:
            raise _malformed(f"count {count} is more than {guard.max_items} items", "GET", path)
        last_page = -(-count // page_size)

        def page(n: int) -> list[dict]:
            body = self.get(path, **(params or {}), page=n, pageSize=page_size)
            got = _field(body, items_key, list, "GET", path, allow_null=True) or []
            if len(got) > page_size:  # before the pool holds many such pages
                raise _malformed(f"a page of {len(got)} items, {page_size} asked for", "GET", path)
            return got

        if workers <= 1:
            for n in range(2, last_page + 1):
                items.extend(_guarded(guard, page(n), page_size, path))
            return items
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="page") as pool:
            for rest in pool.map(page, range(2, last_page + 1)):
                items.extend(_guarded(guard, rest, page_size, path))
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
            raise _malformed("expected a JSON array of plugins", "GET", "/plugins")
        return [p["plugin"] for p in body if isinstance(p, dict) and isinstance(p.get("plugin"), str)]

    def list_connections(self, plugin: str) -> list[dict]:
        """Connections of a plugin: a bare array (§0 #2). DevLakeNotFound if the plugin has no connection API."""
        path = f"/plugins/{enc(plugin)}/connections"
        rows = _list_of_dicts(self.get(path), "GET", path)
        return _guarded(ListGuard(answers.check_connection, "id"), rows, len(rows), path)

    # -- remote scopes (§4) ------------------------------------------------------------------

    def iter_remote_children(self, plugin: str, connection_id: int, group_id: str | None = None) -> Iterator[dict]:
        """Every child entry of one group (or the top level), following nextPageToken (§4.1)."""
        path = f"/plugins/{enc(plugin)}/connections/{connection_id}/remote-scopes"
        token, seen_tokens = "", set()
        for _page in range(answers.MAX_REMOTE_PAGES):
            params = {k: v for k, v in (("groupId", group_id), ("pageToken", token)) if v}
            body = self.get(path, **params)
            yield from _list_of_dicts(_field(body, "children", list, "GET", path), "GET", path)
            token = body.get("nextPageToken") or ""
            if not isinstance(token, str):
                raise _malformed("nextPageToken is not a string", "GET", path)
            if not token:
                return
            if token in seen_tokens:
                raise _malformed("remote-scopes returned a page token twice", "GET", path)
            seen_tokens.add(token)
        raise _malformed(f"more than {answers.MAX_REMOTE_PAGES} pages in one group", "GET", path)

    # -- scopes (§5) and scope configs (§6) --------------------------------------------------

    def iter_scopes(self, plugin: str, connection_id: int, workers: int = 1) -> Iterator[dict]:
        """Scopes DevLake tracks, unwrapped: each item is `{"scope": {...}, "scopeConfig": ...}` (§0 #3)."""
        path = f"/plugins/{enc(plugin)}/connections/{connection_id}/scopes"
        # Repeats need no key here: list_scopes keeps one row per scope id.
        guard = ListGuard(answers.check_scope_item, None)
        for item in self._paginate_concurrently(path, "scopes", SCOPES_PAGE_SIZE, workers, guard=guard):
            yield item["scope"]

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
        return self._paginate("/projects", "projects", PROJECTS_PAGE_SIZE, params,
                              ListGuard(answers.check_project, "name"))

    def create_project(self, body: dict) -> dict:
        return _dict(self._request("POST", "/projects", json_body=body), "POST", "/projects")

    def iter_blueprints(self, label: str | None = None, workers: int = 1) -> Iterator[dict]:
        params = {"label": label} if label else None
        guard = ListGuard(answers.check_blueprint, "id")
        return iter(self._paginate_concurrently("/blueprints", "blueprints", LIST_PAGE_SIZE, workers, params, guard))

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

    def iter_pipelines(self, page_size: int = LIST_PAGE_SIZE, **filters: Any) -> Iterator[dict]:
        """Pipelines newest first; filters use DevLake's keys: status, pending, blueprint_id, label (§0 #6)."""
        return self._paginate("/pipelines", "pipelines", page_size, filters,
                              ListGuard(answers.check_pipeline, "id"))

    def pipelines_page(self, page: int, page_size: int, **filters: Any) -> dict:
        """One raw page of /pipelines (`{"count","pipelines"}`), for callers that stop early."""
        body = self.get("/pipelines", **filters, page=page, pageSize=page_size)
        items = _field(body, "pipelines", list, "GET", "/pipelines", allow_null=True) or []
        if len(items) > page_size:
            raise _malformed(f"a page of {len(items)} items, {page_size} asked for", "GET", "/pipelines")
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

    def rerun_pipeline(self, pipeline_id: int) -> Any:
        return self._request("POST", f"/pipelines/{int(pipeline_id)}/rerun")


# -- response helpers ----------------------------------------------------------------------------

def _malformed(what: str, method: str, path: str, status: int | None = None,
               body: str | None = None) -> DevLakeMalformed:
    """The one log line and the error for an answer that is not the documented shape."""
    log.error("devlake_answer_malformed", method=method, route=path, problem=what)
    return DevLakeMalformed(what, status=status, body=body, method=method, path=path)


def _guarded(guard: ListGuard, items: list, page_size: int, path: str) -> list:
    fresh, problem = guard.page(items, page_size)
    if problem:
        raise _malformed(problem, "GET", path)
    return fresh


class _BodyRefused(Exception):
    """The body is larger than MAX_BODY_BYTES."""


def _read_body(response: requests.Response, deadline: float) -> None:
    """Read the body into `response` (as requests would) within MAX_BODY_BYTES and `deadline`.

    `read1` returns whatever bytes have arrived, so a server dripping one byte a second is caught
    at the deadline, not after the whole body (the read timeout alone is per socket read)."""
    chunks, size = [], 0
    try:
        while chunk := response.raw.read1(BODY_CHUNK_BYTES, decode_content=True):
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _BodyRefused(f"body larger than {MAX_BODY_BYTES} bytes")
            if time.monotonic() > deadline:
                raise requests.Timeout(f"no complete answer within the timeout ({size} bytes read)")
            chunks.append(chunk)
    except (_BodyRefused, requests.Timeout):
        response.close()
        raise
    except Exception as exc:  # noqa: BLE001 - urllib3's read errors, as requests itself maps them
        response.close()
        raise requests.ConnectionError(_short(exc)) from exc
    response._content = b"".join(chunks)  # what response.content/json() read from now on


def _short(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def _decode(response: requests.Response, method: str, path: str) -> Any:
    if not response.content:
        return None  # e.g. GET /ping answers 200 with an empty body (§1.4)
    try:
        return response.json()
    except ValueError as exc:
        raise _malformed(f"malformed JSON in a {response.status_code} answer", method, path,
                         status=response.status_code, body=response.text[:500]) from exc


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


def _field(body: Any, key: str, kind: type, method: str, path: str, allow_null: bool = False) -> Any:
    if not isinstance(body, dict) or key not in body:
        raise _malformed(f"answer has no {key!r} field", method, path)
    value = body[key]
    if value is None and allow_null:
        return None
    if not isinstance(value, kind):
        raise _malformed(f"{key!r} is not a {kind.__name__}", method, path)
    return value


def _dict(body: Any, method: str, path: str) -> dict:
    if not isinstance(body, dict):
        raise _malformed("expected a JSON object", method, path)
    return body


def _list_of_dicts(body: Any, method: str, path: str) -> list[dict]:
    if not isinstance(body, list) or not all(isinstance(i, dict) for i in body):
        raise _malformed("expected a JSON array of objects", method, path)
    return body
