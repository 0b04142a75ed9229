"""Connections: which plugins and connections exist, and each connection's scope config."""
from __future__ import annotations

from modules.api import DevLakeError, DevLakeNotFound, DevLakeUnavailable
from modules.context import PlannedChange, RunContext
from modules.scopes import Connection

SCOPE_CONFIG_PREFIX = "devlake-automation"
# config-ui's default entities per plugin (devlake-api.md §6, "Entities").
DEFAULT_ENTITIES = {
    "github": ["CODE", "TICKET", "CODEREVIEW", "CROSS", "CICD"],
    "gitlab": ["CODE", "TICKET", "CODEREVIEW", "CROSS", "CICD"],
    "bitbucket": ["CODE", "TICKET", "CODEREVIEW", "CROSS", "CICD"],
    "azuredevops_go": ["CODE", "CODEREVIEW", "CROSS", "CICD"],
    "jira": ["TICKET", "CROSS"],
    "jenkins": ["CICD"],
    "circleci": ["CICD"],
    "bamboo": ["CICD", "CROSS"],
}
# Plugins whose scope config has deployment/production patterns (§6 per-plugin fields).
PATTERN_PLUGINS = {"github", "gitlab", "bitbucket", "azuredevops_go", "jenkins", "circleci", "bamboo"}
DEFAULT_DEPLOYMENT_PATTERN = "(deploy|push-image)"
DEFAULT_PRODUCTION_PATTERN = "prod"


def discover_connections(ctx: RunContext) -> list[Connection]:
    """Connections of every wanted plugin that DevLake has; a failing plugin is logged and skipped."""
    installed = set(ctx.installed_plugins if ctx.installed_plugins is not None else ctx.api.list_plugins())
    found: list[Connection] = []
    for plugin in ctx.settings.plugins:
        if plugin not in installed:
            ctx.log.warning("plugin_not_installed", plugin=plugin)
            continue
        try:
            rows = ctx.api.list_connections(plugin)
        except DevLakeNotFound:
            ctx.log.info("plugin_has_no_connection_api", plugin=plugin)
            continue
        except DevLakeError as exc:
            ctx.log.error("plugin_failed", plugin=plugin, error=str(exc))
            ctx.record("failed", failure=f"plugin {plugin}: {exc}")
            continue
        conns = [Connection(plugin, int(r["id"]), str(r.get("name", ""))) for r in rows if "id" in r]
        ctx.log.info("connections_discovered", plugin=plugin, connections=len(conns))
        found.extend(sorted(conns, key=lambda c: c.id))
    return found


def scope_config_name(connection: Connection) -> str:
    """Deterministic and unique per plugin: names are unique across connections (§6)."""
    return f"{SCOPE_CONFIG_PREFIX}-{connection.plugin}-{connection.id}"


def desired_scope_config(connection: Connection, settings) -> dict:
    plugin = connection.plugin
    body = {
        "name": scope_config_name(connection),
        "entities": list(settings.scope_config_entities or DEFAULT_ENTITIES.get(plugin, [])),
    }
    if plugin in PATTERN_PLUGINS:
        body["deploymentPattern"] = settings.deployment_pattern or DEFAULT_DEPLOYMENT_PATTERN
        body["productionPattern"] = settings.production_pattern or DEFAULT_PRODUCTION_PATTERN
    return body


def ensure_scope_config(ctx: RunContext, connection: Connection) -> int | None:
    """The id of the connection's managed scope config, creating it if missing.

    An existing config is never rewritten: changing its content makes DevLake
    re-collect every scope that uses it from scratch, and an operator may have
    tuned it by hand. A difference is only logged. Returns None in dry-run when
    the config would be created.
    """
    desired = desired_scope_config(connection, ctx.settings)
    existing = _find_by_name(ctx.api.list_scope_configs(connection.plugin, connection.id), desired["name"])
    if existing is not None:
        drift = sorted(k for k, v in desired.items() if existing.get(k) != v and k != "name")
        if drift:
            ctx.log.warning("scope_config_differs_kept", connection=connection.label,
                            scope_config=desired["name"], fields=drift)
        ctx.record("unchanged")
        return int(existing["id"])
    change = PlannedChange("scope_config", "create", f"{connection.label} {desired['name']}",
                           "entities=" + ",".join(desired["entities"]))
    if ctx.dry_run:
        ctx.record("created", "scope_config_created", change)
        return None
    created = _create_reconciled(ctx, connection, desired)
    ctx.record("created", "scope_config_created", change)
    ctx.log.info("scope_config_created", connection=connection.label, scope_config=desired["name"],
                 scope_config_id=created["id"])
    return int(created["id"])


def _create_reconciled(ctx: RunContext, connection: Connection, body: dict) -> dict:
    """POST, and after an ambiguous failure read back by name before giving up (§0 #24)."""
    try:
        return ctx.api.create_scope_config(connection.plugin, connection.id, body)
    except DevLakeError as exc:
        ambiguous = isinstance(exc, DevLakeUnavailable) or (exc.status or 0) >= 500
        if not ambiguous:
            raise
        found = _find_by_name(ctx.api.list_scope_configs(connection.plugin, connection.id), body["name"])
        if found is None:
            raise
        ctx.log.info("scope_config_write_reconciled", connection=connection.label, scope_config=body["name"])
        return found


def _find_by_name(configs: list[dict], name: str) -> dict | None:
    return next((c for c in configs if c.get("name") == name and "id" in c), None)
