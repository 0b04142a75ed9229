"""Connections: which plugins and connections exist, and each connection's scope config."""
from __future__ import annotations

import structlog

from config import Settings
from modules.api import DevLakeClient, DevLakeError, DevLakeNotFound
from modules.plugins import DEFAULT_DEPLOYMENT_PATTERN, DEFAULT_PRODUCTION_PATTERN, plugin_of
from modules.scopes import Connection

SCOPE_CONFIG_PREFIX = "devlake-automation"

log = structlog.get_logger("automation")


def discover_connections(api: DevLakeClient, plugins: tuple[str, ...],
                         installed: list[str]) -> tuple[list[Connection], list[str]]:
    """Connections of every wanted plugin that DevLake has, and the plugins that failed to list."""
    found: list[Connection] = []
    failures: list[str] = []
    for plugin in plugins:
        if plugin not in installed:
            log.warning("plugin_not_installed", plugin=plugin)
            continue
        try:
            rows = api.list_connections(plugin)
        except DevLakeNotFound:
            log.info("plugin_has_no_connection_api", plugin=plugin)
            continue
        except DevLakeError as exc:
            log.error("item_failed", item=f"plugin {plugin}", error=str(exc), status=exc.status)
            failures.append(f"plugin {plugin}: {exc}")
            continue
        conns = [Connection(plugin, int(r["id"]), str(r.get("name", ""))) for r in rows if "id" in r]
        log.info("connections_discovered", plugin=plugin, connections=len(conns))
        found.extend(sorted(conns, key=lambda c: c.id))
    return found, failures


def scope_config_name(connection: Connection) -> str:
    """Deterministic and unique per plugin: names are unique across connections (§6)."""
    return f"{SCOPE_CONFIG_PREFIX}-{connection.plugin}-{connection.id}"


def desired_scope_config(connection: Connection, settings: Settings) -> dict:
    plugin = plugin_of(connection.plugin)
    body = {
        "name": scope_config_name(connection),
        "entities": list(settings.scope_config_entities or plugin.entities),
    }
    if plugin.patterns:
        body["deploymentPattern"] = settings.deployment_pattern or DEFAULT_DEPLOYMENT_PATTERN
        body["productionPattern"] = settings.production_pattern or DEFAULT_PRODUCTION_PATTERN
    return body


def find_by_name(configs: list[dict], name: str) -> dict | None:
    return next((c for c in configs if c.get("name") == name and "id" in c), None)
