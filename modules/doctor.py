"""`manage_projects.py --doctor`: a readable check of everything the daily run needs."""
from __future__ import annotations

from dataclasses import dataclass

from config import Settings
from modules.api import DevLakeAuthError, DevLakeClient, DevLakeError, DevLakeNotFound, enc
from modules.monitoring.connections import check_connection
from modules.operator_hints import unusable_hint
from modules.plugins import plugin_of
from modules.reachability import quick_probe
from utils.urls import without_password


@dataclass
class Check:
    ok: bool
    text: str

    def render(self) -> str:
        return f"[{' ok ' if self.ok else 'FAIL'}] {self.text}"


def run_doctor(settings: Settings, client: DevLakeClient) -> tuple[int, list[Check]]:
    """Exit code 0 when DevLake is usable and every listed connection answers, else 2."""
    checks: list[Check] = []
    problem = quick_probe(settings)  # a wrong DEVLAKE_URL is told at once, in words
    if problem is not None:
        return 2, [Check(False, problem.message)]
    try:
        version = client.version()
        where = without_password(settings.api_base_url)
        checks.append(Check(True, f"DevLake reachable at {where} (version {version})"))
        plugins = set(client.list_plugins())
        auth = "with API key (/rest)" if settings.api_key else "without API key"
        checks.append(Check(True, f"credentials accepted {auth}"))
    except DevLakeAuthError as exc:
        checks.append(Check(False, f"credentials rejected: {exc.message} — {unusable_hint(exc, settings)}"))
        return 2, checks
    except DevLakeError as exc:
        checks.append(Check(False, f"DevLake not usable at {without_password(settings.api_base_url)}: {exc}"))
        return 2, checks
    for plugin in settings.plugins:
        if plugin not in plugins:
            checks.append(Check(True, f"plugin {plugin}: not installed in DevLake (skipped)"))
            continue
        checks.extend(_check_plugin(client, plugin))
    return (0 if all(c.ok for c in checks) else 2), checks


def _check_plugin(client: DevLakeClient, plugin: str) -> list[Check]:
    try:
        conns = client.list_connections(plugin)
    except DevLakeNotFound:
        return [Check(True, f"plugin {plugin}: no connection API (skipped)")]
    except DevLakeError as exc:
        return [Check(False, f"plugin {plugin}: listing connections failed: {exc}")]
    if not conns:
        return [Check(True, f"plugin {plugin}: no connections")]
    out = []
    # limits of what DevLake can list upstream: a connection may hold more than the automation sees
    limit = plugin_of(plugin).listing_limit
    if limit:
        out.append(Check(True, f"plugin {plugin}: note: {limit}"))
    for conn in conns:
        label = f"plugin {plugin} connection {conn.get('id')} ({conn.get('name')!r})"
        out.append(_credentials(client, plugin, conn.get("id"), label))
        try:
            entries = _first_page(client, plugin, conn["id"])
            out.append(Check(True, f"{label}: remote-scopes answered ({len(entries)} top-level entries)"))
        except (DevLakeError, KeyError) as exc:
            out.append(Check(False, f"{label}: remote-scopes failed: {exc}"))
    return out


def _credentials(client: DevLakeClient, plugin: str, connection_id: object, label: str) -> Check:
    """DevLake's own test of the stored credentials, read as the monitor reads it."""
    if not isinstance(connection_id, int):
        return Check(False, f"{label}: connection has no numeric id")
    outcome = check_connection(client, plugin, connection_id)
    if outcome.up:
        return Check(True, f"{label}: credentials test passed")
    if outcome.up is False:
        return Check(False, f"{label}: credentials test failed: {outcome.error}")
    return Check(False, f"{label}: DevLake could not test the credentials: {outcome.error}")


def _first_page(client: DevLakeClient, plugin: str, connection_id: int) -> list[dict]:
    body = client.get(f"/plugins/{enc(plugin)}/connections/{int(connection_id)}/remote-scopes")
    if not isinstance(body, dict) or not isinstance(body.get("children"), list):
        raise DevLakeError("remote-scopes answer has no 'children' array")
    return body["children"]
