"""Projects and blueprints: what DevLake has, project names, and the fields of a managed blueprint.

Everything here is pure: it reads what was observed and returns decisions.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from config import Settings
from modules.scopes import ScopeRef
from utils.blueprints import previous_saturday
from utils.datetime import format_devlake_time

MANAGED_LABEL = "managed-by/devlake-automation"
MARKER_PREFIX = "Managed by devlake-automation: "
# DevLake compares Go `len(name)`, i.e. UTF-8 bytes, with 100 and answers
# 400 "Project name is too long." (backend/server/api/project/project.go; `docs/devlake-api.md` §7).
MAX_PROJECT_NAME_BYTES = 100


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
    def build(cls, projects: list[dict], blueprints: list[dict]) -> ProjectIndex:
        index = cls()
        for project in projects:
            if isinstance(project.get("name"), str):
                index.projects[project["name"]] = project
        for bp in blueprints:
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


def fits(name: str) -> bool:
    return 0 < len(name.encode("utf-8")) <= MAX_PROJECT_NAME_BYTES


def shortened_name(name: str, scope: ScopeRef) -> str:
    """`name` cut at a character boundary to fit 100 bytes with a stable suffix from the scope key,
    so a long CJK or accented name still gets a project, unique and the same on every run."""
    suffix = "~" + hashlib.sha256("/".join(map(str, scope.key)).encode()).hexdigest()[:8]
    room = MAX_PROJECT_NAME_BYTES - len(suffix.encode("utf-8"))
    head = name.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    return head + suffix


def candidate_names(template: str, scope: ScopeRef) -> list[str]:
    """The template's name first; then the scope's full name, then one made unique by ids;
    when none fits in 100 bytes, the first shortened with a stable suffix."""
    plugin, cid, sid = scope.key
    fields = dict(plugin=plugin, name=scope.name, full_name=scope.full_name, connection_id=cid,
                  connection_name=scope.connection.name, scope_id=sid)
    names = [template.format(**fields), f"{plugin}/{scope.full_name}", f"{plugin}/{cid}/{scope.full_name}#{sid}"]
    fitting = [n for n in dict.fromkeys(names) if fits(n)]
    return fitting + [shortened_name(names[0], scope)]


def assign_names(template: str, index: ProjectIndex,
                 untracked: list[ScopeRef]) -> tuple[dict[ScopeRef, str], list[ScopeRef]]:
    """Pick each untracked scope's project name before any write, deterministically.

    Scopes are taken in a stable order and each takes its first candidate that
    is free (or already its own, from an earlier interrupted run), so two repos
    both called `api` do not race for `github/api`. Returns the names and the
    scopes left without one.
    """
    taken = set(index.projects)
    names: dict[ScopeRef, str] = {}
    unnamed: list[ScopeRef] = []
    for scope in sorted(untracked, key=lambda s: (s.key[0], s.key[1], s.full_name, s.scope_id)):
        name = next((n for n in candidate_names(template, scope)
                     if n not in taken or index.is_ours(n, scope)), None)
        if name is None:
            unnamed.append(scope)
            continue
        names[scope] = name
        taken.add(name)
    return names, unnamed


def time_after_target(settings: Settings, now: datetime) -> str:
    return format_devlake_time(previous_saturday(now, settings.timezone))


def new_blueprint_fields(scope: ScopeRef, settings: Settings, now: datetime) -> dict:
    """Absolute values for the blueprint DevLake created with a managed project.

    The cron and its ownership label are added by the planner (modules/cron_slots.py), which
    needs every managed blueprint to give each its slot.
    """
    plugin, cid, sid = scope.key
    return {
        "connections": [{"pluginName": plugin, "connectionId": cid, "scopes": [{"scopeId": sid}]}],
        "labels": [MANAGED_LABEL],
        "timeAfter": time_after_target(settings, now),
        "enable": True,
    }


def project_metrics(names: tuple[str, ...]) -> list[dict]:
    """The body of POST /projects `metrics` (`docs/devlake-api.md` §7)."""
    return [{"pluginName": m, "pluginOption": {}, "enable": True} for m in names]
