"""Routes under /plugins/{p}/ (§3–§6 of `docs/devlake-api.md`). They exist only for plugins that
register a connection API; for any other plugin they answer gin's plain-text 404 (§2)."""

from __future__ import annotations

from .common import SUCCESS_BODY, ApiError, not_routed, query_int
from .plugins import NO_SEARCH_ROUTE, WILDCARD_SCOPE_PLUGINS
from .router import Router

router = Router()


def _plugin(state, req) -> str:
    plugin = req.params["plugin"]
    state.plugins.require_api(plugin)
    return plugin


def _body(req):
    """Plugin endpoints pass a malformed body's raw bind error on as 500 (§1.3)."""
    return req.json(plugin=True)


# --- connections (§3) ---------------------------------------------------------------------------

@router.route("GET", "/plugins/:plugin/connections")
def list_connections(state, req):
    plugin = _plugin(state, req)
    # a bare array (quirk #2), secrets sanitized
    return 200, [state.plugins.sanitized(plugin, c) for c in state.plugins.connections[plugin].values()]


@router.route("POST", "/plugins/:plugin/connections")
def create_connection(state, req):
    plugin = _plugin(state, req)
    body = _body(req)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid connection body")
    return 201, state.plugins.sanitized(plugin, state.plugins.create_connection(plugin, body))


@router.route("GET", "/plugins/:plugin/connections/:cid")
def get_connection(state, req):
    plugin = _plugin(state, req)
    return 200, state.plugins.sanitized(plugin, state.plugins.connection(plugin, req.params["cid"]))


@router.route("PATCH", "/plugins/:plugin/connections/:cid")
def patch_connection(state, req):
    plugin = _plugin(state, req)
    body = _body(req)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid connection body")
    row = state.plugins.patch_connection(plugin, req.params["cid"], body)
    return 200, state.plugins.sanitized(plugin, row)


@router.route("DELETE", "/plugins/:plugin/connections/:cid")
def delete_connection(state, req):
    plugin = _plugin(state, req)
    return 200, state.plugins.sanitized(plugin, state.plugins.delete_connection(plugin, req.params["cid"]))


@router.route("POST", "/plugins/:plugin/test")
def test_connection(state, req):
    _plugin(state, req)
    _body(req)
    return 200, {**SUCCESS_BODY, "message": "success"}


@router.route("POST", "/plugins/:plugin/connections/:cid/test")
def test_existing_connection(state, req):
    """Tests the stored credentials against the upstream and changes nothing (§9.6)."""
    plugin = _plugin(state, req)
    try:
        conn = state.plugins.connection(plugin, req.params["cid"])
    except ApiError:
        if plugin == "bamboo":
            raise
        raise ApiError(400, "find connection from db") from None
    failure = state.plugins.test_failures.get((plugin, conn["id"]))
    if plugin == "github" and conn.get("authMethod", "AccessToken") == "AccessToken":
        return 200, github_token_test(conn, failure[1] if failure else None)
    if failure is not None:
        raise ApiError(failure[0], failure[1])
    return 200, {**SUCCESS_BODY, "message": "success"}


def github_token_test(conn: dict, failure: str | None) -> dict:
    """GitHub's test of an access-token connection answers 200 whatever the tokens say
    (`backend/plugins/github/api/connection_api.go`, `testExistingConnection`): one `tokens[]`
    entry per comma-separated token (masked), and the top level `success: false` with the
    failing token's message. Here every token of a failing connection fails."""
    tokens = [t.strip() for t in str(conn.get("token") or "ghp_fake").split(",") if t.strip()]
    entries = [{"auth_method": "AccessToken", "token": t[:4] + "*" * 8, "success": failure is None,
                "message": failure or "success", "login": "" if failure else "octocat", "warning": ""}
               for t in tokens]
    if failure is None:
        return {**SUCCESS_BODY, "message": "success", "tokens": entries}
    return {**SUCCESS_BODY, "success": False, "message": failure, "causes": [failure], "tokens": entries}


# --- remote scopes (§4) -------------------------------------------------------------------------

@router.route("GET", "/plugins/:plugin/connections/:cid/remote-scopes")
def remote_scopes(state, req):
    plugin = _plugin(state, req)
    conn = state.plugins.connection(plugin, req.params["cid"])
    tree = state.plugins.tree(plugin, conn["id"])
    return 200, tree.list(req.query.get("groupId", ""), req.query.get("pageToken", ""), state.remote_page_size)


@router.route("GET", "/plugins/:plugin/connections/:cid/search-remote-scopes")
def search_remote_scopes(state, req):
    plugin = _plugin(state, req)
    if plugin in NO_SEARCH_ROUTE:
        raise not_routed()  # quirk #12
    conn = state.plugins.connection(plugin, req.params["cid"])
    if plugin == "azuredevops_go":
        raise ApiError(500, empty=True)  # nil search function: the handler panics (quirk #12)
    search = req.query.get("search", "")
    if not search:
        raise ApiError(400, "search is required")
    page, size = query_int(req.query, "page", 1), query_int(req.query, "pageSize", 50)
    return 200, state.plugins.tree(plugin, conn["id"]).search(search, max(page, 1), size if size > 0 else 50)


# --- scopes (§5) --------------------------------------------------------------------------------

@router.route("GET", "/plugins/:plugin/connections/:cid/scopes")
def list_scopes(state, req):
    plugin = _plugin(state, req)
    page, size = query_int(req.query, "page", 1), query_int(req.query, "pageSize", 100)
    return 200, state.plugins.list_scopes(plugin, req.params["cid"], page, size, req.query.get("searchTerm", ""),
                                          req.query.get("blueprints") == "true")


@router.route("PUT", "/plugins/:plugin/connections/:cid/scopes")
def put_scopes(state, req):
    plugin = _plugin(state, req)
    return 200, state.plugins.put_scopes(plugin, req.params["cid"], _body(req))


def _scope_id(req) -> str:
    # jenkins and bitbucket register `*scopeId`, so a raw slash routes; others use `:scopeId` (§5)
    if "/" in req.params["_raw_scopeId"] and req.params["plugin"] not in WILDCARD_SCOPE_PLUGINS:
        raise not_routed()
    return req.params["scopeId"].lstrip("/")


@router.route("GET", "/plugins/:plugin/connections/:cid/scopes/*scopeId")
def get_scope(state, req):
    plugin = _plugin(state, req)
    return 200, state.plugins.get_scope(plugin, req.params["cid"], _scope_id(req),
                                        req.query.get("blueprints") == "true")


@router.route("PATCH", "/plugins/:plugin/connections/:cid/scopes/*scopeId")
def patch_scope(state, req):
    plugin = _plugin(state, req)
    sid = _scope_id(req)
    body = _body(req)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid data")
    return 200, state.plugins.patch_scope(plugin, req.params["cid"], sid, body)


@router.route("DELETE", "/plugins/:plugin/connections/:cid/scopes/*scopeId")
def delete_scope(state, req):
    plugin = _plugin(state, req)
    return 200, state.plugins.delete_scope(plugin, req.params["cid"], _scope_id(req))


# --- scope configs (§6) -------------------------------------------------------------------------

@router.route("GET", "/plugins/:plugin/connections/:cid/scope-configs")
def list_scope_configs(state, req):
    plugin = _plugin(state, req)
    return 200, state.plugins.list_configs(plugin, req.params["cid"])


@router.route("POST", "/plugins/:plugin/connections/:cid/scope-configs")
def create_scope_config(state, req):
    plugin = _plugin(state, req)
    body = _body(req)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid scope config body")
    return 201, state.plugins.create_config(plugin, req.params["cid"], body)


@router.route("GET", "/plugins/:plugin/connections/:cid/scope-configs/:scid")
def get_scope_config(state, req):
    plugin = _plugin(state, req)
    return 200, state.plugins.config(plugin, req.params["cid"], req.params["scid"])


@router.route("PATCH", "/plugins/:plugin/connections/:cid/scope-configs/:scid")
def patch_scope_config(state, req):
    plugin = _plugin(state, req)
    body = _body(req)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid scope config body")
    return 200, state.plugins.patch_config(plugin, req.params["cid"], req.params["scid"], body)


@router.route("DELETE", "/plugins/:plugin/connections/:cid/scope-configs/:scid")
def delete_scope_config(state, req):
    plugin = _plugin(state, req)
    return 200, state.plugins.delete_config(plugin, req.params["cid"], req.params["scid"])
