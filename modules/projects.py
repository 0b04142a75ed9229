"""Projects and blueprints: one DevLake project per scope, and each managed blueprint's timeAfter."""
from __future__ import annotations

from dataclasses import dataclass, field

from modules.api import DevLakeClient, DevLakeError, DevLakeUnavailable
from modules.context import PlannedChange, RunContext
from modules.scopes import ScopeRef
from utils.blueprints import previous_saturday, time_after_change
from utils.datetime import format_devlake_time, parse_devlake_time

MANAGED_LABEL = "managed-by/devlake-automation"
MARKER_PREFIX = "Managed by devlake-automation: "
MAX_PROJECT_NAME = 100  # DevLake rejects longer names with 400 (§7)


def marker(scope: ScopeRef) -> str:
    """Written into the project description at POST time, so a project whose blueprint
    PATCH failed is recognised as ours on the next run and completed, never duplicated."""
    plugin, cid, sid = scope.key
    return f"{MARKER_PREFIX}{plugin} connection {cid} scope {sid}"


@dataclass
class ProjectIndex:
    """What DevLake has, read once per run from the paged lists (never by name in the path, §0 #20)."""

    projects: dict[str, dict] = field(default_factory=dict)
    blueprints: dict[int, dict] = field(default_factory=dict)
    tracked: dict[tuple, int] = field(default_factory=dict)  # scope key -> blueprint id

    @classmethod
    def load(cls, api: DevLakeClient) -> ProjectIndex:
        index = cls()
        for project in api.iter_projects():
            if isinstance(project.get("name"), str):
                index.projects[project["name"]] = project
        for bp in api.iter_blueprints():
            if not isinstance(bp.get("id"), int):
                continue
            index.blueprints[bp["id"]] = bp
            for conn in bp.get("connections") or []:
                for scope in conn.get("scopes") or []:
                    key = (conn.get("pluginName"), conn.get("connectionId"), str(scope.get("scopeId")))
                    index.tracked.setdefault(key, bp["id"])
        return index

    def managed_blueprints(self) -> list[dict]:
        return [bp for bp in self.blueprints.values() if MANAGED_LABEL in (bp.get("labels") or [])]

    def is_ours(self, name: str, scope: ScopeRef) -> bool:
        project = self.projects.get(name)
        return project is not None and (project.get("description") or "") == marker(scope)


def candidate_names(ctx: RunContext, scope: ScopeRef) -> list[str]:
    """The template's name first; then the scope's full name, then one made unique by ids."""
    plugin, cid, sid = scope.key
    fields = dict(plugin=plugin, name=scope.name, full_name=scope.full_name, connection_id=cid,
                  connection_name=scope.connection.name, scope_id=sid)
    names = [ctx.settings.project_name_template.format(**fields),
             f"{plugin}/{scope.full_name}", f"{plugin}/{cid}/{scope.full_name}#{sid}"]
    return list(dict.fromkeys(n for n in names if n))


def assign_names(ctx: RunContext, index: ProjectIndex, untracked: list[ScopeRef]) -> dict[ScopeRef, str]:
    """Pick each untracked scope's project name before any write, deterministically.

    Scopes are taken in a stable order and each takes its first candidate that
    is free (or already its own, from an earlier interrupted run), so two repos
    both called `api` do not race for `github/api`. A scope with no free name
    of at most 100 characters is left out and reported.
    """
    taken = {name for name in index.projects}
    names: dict[ScopeRef, str] = {}
    for scope in sorted(untracked, key=lambda s: (s.key[0], s.key[1], s.full_name, s.scope_id)):
        for name in candidate_names(ctx, scope):
            if len(name) <= MAX_PROJECT_NAME and (name not in taken or index.is_ours(name, scope)):
                names[scope] = name
                taken.add(name)
                break
        else:
            ctx.log.error("no_free_project_name", connection=scope.connection.label, scope_id=scope.scope_id)
            ctx.record("failed", failure=f"{scope.connection.label} scope {scope.scope_id}: no free project name")
    return names


def ensure_project(ctx: RunContext, index: ProjectIndex, scope: ScopeRef, name: str) -> int | None:
    """Give an untracked scope its own project and connected, labelled blueprint.

    Returns the blueprint id when one was created or completed (to trigger), else None.
    """
    change = PlannedChange("project", "create", name, f"{scope.connection.label} scope {scope.scope_id}")
    if ctx.dry_run:
        ctx.record("created", "project_created", change)
        return None
    project = index.projects.get(name) or _create_project(ctx, index, name, scope)
    blueprint = project.get("blueprint") or {}
    if not isinstance(blueprint.get("id"), int):
        raise DevLakeError(f"project {name!r} has no blueprint")
    ctx.api.patch_blueprint(blueprint["id"], _blueprint_body(ctx, scope))
    ctx.record("created", "project_created", change)
    ctx.log.info("project_created", project=name, blueprint_id=blueprint["id"],
                 connection=scope.connection.label, scope_id=scope.scope_id)
    return blueprint["id"]


def _create_project(ctx: RunContext, index: ProjectIndex, name: str, scope: ScopeRef) -> dict:
    body = {"name": name, "description": marker(scope),
            "metrics": [{"pluginName": m, "pluginOption": {}, "enable": True}
                        for m in ctx.settings.project_metrics]}
    try:
        return ctx.api.create_project(body)
    except DevLakeError as exc:
        # 400 "already exists" (someone raced us) or an ambiguous failure: the
        # project may exist now. Read it back; adopt it only if it carries our marker.
        ambiguous = isinstance(exc, DevLakeUnavailable) or (exc.status or 0) >= 500
        if not (ambiguous or exc.status == 400):
            raise
        found = next((p for p in ctx.api.iter_projects(keyword=name) if p.get("name") == name), None)
        if found is None or (found.get("description") or "") != marker(scope):
            raise
        ctx.log.info("project_write_reconciled", project=name)
        index.projects[name] = found
        return found


def _blueprint_body(ctx: RunContext, scope: ScopeRef) -> dict:
    plugin, cid, sid = scope.key
    body = {
        "connections": [{"pluginName": plugin, "connectionId": cid, "scopes": [{"scopeId": sid}]}],
        "labels": [MANAGED_LABEL],
        "timeAfter": format_devlake_time(previous_saturday(ctx.now, ctx.settings.timezone)),
        "enable": True,
    }
    if ctx.settings.blueprint_cron:
        body["cronConfig"] = ctx.settings.blueprint_cron
    return body


def sync_time_after(ctx: RunContext, blueprint: dict) -> None:
    """Set one managed blueprint's timeAfter to the previous Saturday, if it differs (§1.5, §0 #22)."""
    target = previous_saturday(ctx.now, ctx.settings.timezone)
    current = parse_devlake_time(blueprint.get("timeAfter"))
    decision = time_after_change(current, target)
    name = blueprint.get("projectName") or blueprint.get("name")
    if decision == "unchanged":
        ctx.record("unchanged")
        return
    if decision == "keep_later":
        ctx.log.warning("time_after_later_kept", project=name, current=blueprint.get("timeAfter"),
                        target=format_devlake_time(target))
        ctx.record("unchanged")
        return
    value = format_devlake_time(target)
    change = PlannedChange("blueprint", "set_time_after", str(name),
                           f"{blueprint.get('timeAfter')} -> {value}")
    if not ctx.dry_run:
        ctx.api.patch_blueprint(blueprint["id"], {"timeAfter": value})
        ctx.log.info("time_after_set", project=name, blueprint_id=blueprint["id"], time_after=value)
    ctx.record("updated", "time_after_set", change)
