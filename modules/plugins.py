"""Every DevLake plugin the daemons manage, and all they need to know about each one.

One frozen `Plugin` per DevLake plugin: adding a plugin is one entry in `PLUGINS` (plus its
DevLake behaviour in the fake, `sandbox/plugins.py`). `config.py` accepts exactly these names in
PLUGINS; the scopes, scope configs, reads, lifecycle and doctor read their facts here.
"""
from __future__ import annotations

from dataclasses import dataclass

# config-ui's default entities (`docs/devlake-api.md` §6, "Entities").
CODE_ENTITIES = ("CODE", "TICKET", "CODEREVIEW", "CROSS", "CICD")
DEFAULT_DEPLOYMENT_PATTERN = "(deploy|push-image)"
DEFAULT_PRODUCTION_PATTERN = "prod"


@dataclass(frozen=True)
class Plugin:
    """What the daemons know about one DevLake plugin (`docs/devlake-api.md` §2, §4-§6)."""

    name: str
    scope_id_field: str          # the field holding the scope id in scope rows (§5 table)
    entities: tuple[str, ...]    # the scope config's default entities (§6)
    patterns: bool = True        # the scope config has deploymentPattern / productionPattern (§6)
    html_url: bool = False       # PUT rows must carry lowercase htmlUrl / cloneUrl (see `scopes.py`)
    # Remote scopes DevLake lists per group at most (the group's listing is cut there, silently),
    # with the warning's hint; None: DevLake pages through every scope.
    group_listing_cap: int | None = None
    capped_hint: str = ""
    # DevLake's listing leaves out scopes that exist: absent there proves nothing (lifecycle.py).
    partial_listing: bool = False
    listing_limit: str = ""      # what `--doctor` notes about the listing's limits, if any


PLUGINS: dict[str, Plugin] = {p.name: p for p in (
    # PutScopes checks `dict["htmlUrl"]` (exact key) and otherwise calls GitHub once per row
    # (backend/plugins/github/api/scope_api.go, `docs/devlake-api.md` §0 #18).
    Plugin("github", "githubId", CODE_ENTITIES, html_url=True),
    Plugin("gitlab", "gitlabId", CODE_ENTITIES),
    # DevLake's Bitbucket listing never pages past 100 repositories per workspace and never
    # returns a page token (backend/plugins/bitbucket/api/remote_api.go; `docs/devlake-api.md` §0 #11).
    Plugin("bitbucket", "bitbucketId", CODE_ENTITIES, group_listing_cap=100,
           capped_hint="DevLake lists at most 100 repositories per Bitbucket workspace; add the others in config-ui",
           listing_limit="DevLake lists at most 100 repositories per Bitbucket workspace and 100 workspaces "
                         "(backend/plugins/bitbucket/api/remote_api.go never returns a page token)"),
    Plugin("azuredevops_go", "id", ("CODE", "CODEREVIEW", "CROSS", "CICD")),
    Plugin("jira", "boardId", ("TICKET", "CROSS"), patterns=False),
    Plugin("jenkins", "fullName", ("CICD",)),
    # DevLake's CircleCI remote scopes list only the projects the token's user follows
    # (backend/plugins/circleci/api/remote_api.go, `docs/devlake-api.md` §4).
    Plugin("circleci", "id", ("CICD",), partial_listing=True,
           listing_limit="DevLake lists only the CircleCI projects the token's user follows"),
    Plugin("bamboo", "planKey", ("CICD", "CROSS")),
)}
# The plugins the daily daemon manages by default, in this order (§2: all register a connection API).
PLUGIN_NAMES = tuple(PLUGINS)


def plugin_of(name: str) -> Plugin:
    """The entry of `name`; a plugin without one is treated as config-ui treats it (`getPluginScopeId`:
    scope id `id`), with no default entities and no patterns."""
    return PLUGINS.get(name) or Plugin(name, "id", (), patterns=False)
