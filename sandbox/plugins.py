"""Per-plugin facts: scope id fields, realistic scope `data`, connection and scope-config shapes.

Section numbers (§) refer to `docs/devlake-api.md`.
"""

from __future__ import annotations

import hashlib
import uuid

from .common import ZERO_TIME, sanitize_string

# §5 table: the field whose value is the scope id.
SCOPE_ID_FIELD = {
    "github": "githubId", "gitlab": "gitlabId", "bitbucket": "bitbucketId", "azuredevops_go": "id",
    "jira": "boardId", "jenkins": "fullName", "circleci": "id", "bamboo": "planKey",
}
INT_ID_PLUGINS = {"github", "gitlab", "jira"}
# §5: searchTerm column per plugin (azuredevops_go has none).
SEARCH_FIELD = {"github": "fullName", "gitlab": "name", "bitbucket": "name", "jira": "name",
                "jenkins": "fullName", "circleci": "name", "bamboo": "name"}
# §5: these routes use `*scopeId`, so a raw `/` inside the scope id still routes.
WILDCARD_SCOPE_PLUGINS = {"jenkins", "bitbucket"}
# §8.1: blueprint connections of these plugins may have no scopes.
SCOPELESS_OK = {"webhook", "jenkins"}
# §0 #12: no search-remote-scopes route for these; azuredevops_go's panics (500, empty body).
NO_SEARCH_ROUTE = {"jenkins", "circleci"}

# Metric and helper plugins listed by GET /plugins (§2). Only webhook registers a connection API
# among them; the others answer gin's plain 404 on /plugins/{p}/connections.
HELPER_PLUGINS = {"dora": False, "org": False, "gitextractor": False, "refdiff": False, "webhook": True}
METRIC_INFO = {
    "dora": {"requiredDataEntities": [{"model": "cicd_tasks", "requiredFields": {"id": True}}],
             "runAfter": None, "isProjectMetric": True},
}
DEFAULT_METRIC = {"requiredDataEntities": None, "runAfter": None, "isProjectMetric": False}

_REST = {"proxy": "", "rateLimitPerHour": 0}
CONNECTION_DEFAULTS = {
    "github": {"endpoint": "https://api.github.com/", **_REST, "authMethod": "AccessToken", "token": "",
               "appId": "", "secretKey": "", "installationId": 0, "enableGraphql": True,
               "refreshToken": "", "tokenExpiresAt": None, "refreshTokenExpiresAt": None},
    "gitlab": {"endpoint": "https://gitlab.com/api/v4/", **_REST, "token": ""},
    "bitbucket": {"endpoint": "https://api.bitbucket.org/2.0/", **_REST, "username": "",
                  "password": "", "usesApiToken": False},
    "azuredevops_go": {**_REST, "token": "", "organization": ""},
    "jira": {"endpoint": "https://example.atlassian.net/rest/", **_REST, "authMethod": "BasicAuth",
             "username": "", "password": "", "token": ""},
    "jenkins": {"endpoint": "https://jenkins.example.com/", **_REST, "username": "", "password": ""},
    "circleci": {"endpoint": "https://circleci.com/api/", **_REST, "token": ""},
    "bamboo": {"endpoint": "https://bamboo.example.com/", **_REST, "username": "", "password": ""},
    "webhook": {"postIssuesEndpoint": "", "closeIssuesEndpoint": "", "postPipelineDeployTaskEndpoint": ""},
}
_MASKED = ("token", "secretKey")  # §3: masked with SanitizeString; `password` becomes "".


def sanitize_connection(plugin: str, row: dict) -> dict:
    """A connection as DevLake answers it (§3). GitHub's refreshToken is NOT masked (quirk #19)."""
    out = dict(row)
    for key in _MASKED:
        if out.get(key):
            out[key] = ",".join(sanitize_string(t) for t in out[key].split(",")) \
                if plugin == "github" and key == "token" else sanitize_string(out[key])
    if "password" in out:
        out["password"] = ""
    return out


_GIT_SC = {**{k: "" for k in ("prType", "prComponent", "prBodyClosePattern", "issueSeverity",
                              "issuePriority", "issueComponent", "issueTypeBug", "issueTypeIncident",
                              "issueTypeRequirement", "deploymentPattern", "productionPattern",
                              "envNamePattern")},
           "refdiff": None, "prSizeExcludedFileExtensions": None}
_CICD_SC = {"deploymentPattern": "", "productionPattern": ""}
SCOPE_CONFIG_DEFAULTS = {  # §6 per-plugin fields, zero-valued
    "github": _GIT_SC, "gitlab": _GIT_SC,
    "bitbucket": {**_CICD_SC, "refdiff": None, "issueStatusTodo": "", "issueStatusInProgress": "",
                  "issueStatusDone": "", "issueStatusOther": ""},
    "azuredevops_go": {**_CICD_SC, "refdiff": None},
    "jira": {"epicKeyField": "", "storyPointField": "", "remotelinkCommitShaPattern": "",
             "remotelinkRepoPattern": None, "typeMappings": None, "applicationType": "", "dueDateField": ""},
    "jenkins": _CICD_SC, "circleci": _CICD_SC,
    "bamboo": {**_CICD_SC, "repoMap": None, "envNamePattern": ""},
}

_SCOPE_BASE = {"createdAt": ZERO_TIME, "updatedAt": ZERO_TIME, "_raw_data_params": "",
               "_raw_data_table": "", "_raw_data_id": 0, "_raw_data_remark": "", "connectionId": 0}
_DATE = "2023-04-12T08:15:30Z"


def _num(text: str, modulo: int = 900_000) -> int:
    return 100_000 + int(hashlib.sha1(text.encode()).hexdigest(), 16) % modulo


def _uuid(text: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, text))


def scope_id_of(plugin: str, data: dict) -> str:
    value = data.get(SCOPE_ID_FIELD.get(plugin, "id"))
    return "" if value is None else str(value)


def build_scope_data(plugin: str, *, scope_id, name: str, full_name: str, parent: dict | None,
                     external: bool = False) -> dict:
    """The plugin's scope model as remote-scopes returns it (§4.1/§5): ready to PUT, connectionId 0."""
    parent_id = parent["id"] if parent else ""
    builder = _BUILDERS.get(plugin)
    data = builder(scope_id, name, full_name, parent_id, external) if builder else {"id": scope_id, "name": name}
    return {**_SCOPE_BASE, **data}


def _github(sid, name, full, _p, _e):
    url = f"https://github.com/{full}"
    return {"githubId": sid, "name": name, "fullName": full, "HTMLUrl": url,
            "description": f"{name} service", "ownerId": _num(full.split("/")[0]), "language": "Go",
            "parentId": 0, "parentHtmlUrl": "", "cloneUrl": url + ".git",
            "createdDate": _DATE, "updatedDate": _DATE}


def _gitlab(sid, name, full, _p, _e):
    url = f"https://gitlab.com/{full}"
    return {"gitlabId": sid, "name": name, "description": "", "defaultBranch": "main",
            "pathWithNamespace": full, "webUrl": url, "creatorId": _num(full), "visibility": "private",
            "openIssuesCount": 0, "starCount": 0, "forkedFromProjectId": 0,
            "forkedFromProjectWebUrl": "", "httpUrlToRepo": url + ".git",
            "createdDate": _DATE, "updatedDate": _DATE, "archived": False}


def _bitbucket(sid, name, full, parent_id, _e):
    url = f"https://bitbucket.org/{full}"
    return {"bitbucketId": sid, "name": name, "HTMLUrl": url, "description": "",
            "owner": parent_id, "language": "python", "cloneUrl": f"https://bitbucket.org/{full}.git",
            "createdDate": _DATE, "updatedDate": _DATE}


def _azure(sid, name, full, parent_id, external):
    org, _, project = parent_id.partition("/")
    if external:  # a repo behind a service connection (§4.2): type is the provider name
        return {"id": sid, "type": "github", "name": f"github/{full}",
                "url": f"https://github.com/{full}", "remoteUrl": f"https://github.com/{full}.git",
                "OrganizationId": org, "ProjectId": project, "ExternalId": full,
                "IsFork": False, "IsPrivate": False}
    return {"id": sid, "type": "TfsGit", "name": name,
            "url": f"https://dev.azure.com/{org}/{_uuid(project)}/_apis/git/repositories/{sid}",
            "remoteUrl": f"https://{org}@dev.azure.com/{org}/{project}/_git/{name}",
            "OrganizationId": org, "ProjectId": project, "ExternalId": "", "IsFork": False,
            "IsPrivate": False}


def _jira(sid, name, _f, _p, _e):
    return {"boardId": sid, "projectId": 10000 + int(sid) % 1000, "name": name,
            "self": f"https://example.atlassian.net/rest/agile/1.0/board/{sid}", "type": "scrum", "jql": ""}


def _jenkins(sid, name, full, _p, _e):
    path = "".join(f"job/{part}/" for part in full.split("/"))
    return {"fullName": full, "name": name, "class": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
            "color": "blue", "base": "", "url": f"https://jenkins.example.com/{path}",
            "description": "", "primaryView": ""}


def _circleci(sid, name, full, _p, _e):
    org = full.split("/")[1] if full.count("/") >= 2 else "org"
    return {"id": sid, "slug": full, "name": name, "organizationId": _uuid("circleci-org/" + org)}


def _bamboo(sid, name, _f, _p, _e):
    project_key, _, short_key = str(sid).partition("-")
    return {"planKey": sid, "name": f"{project_key.title()} - {name}", "expand": "", "projectKey": project_key,
            "projectName": project_key.title(), "description": "", "shortName": name, "buildName": name,
            "shortKey": short_key, "type": "chain", "enabled": True,
            "href": f"https://bamboo.example.com/rest/api/latest/plan/{sid}", "rel": "self",
            "isFavourite": False, "isActive": False, "isBuilding": False, "averageBuildTimeInSeconds": 0}


_BUILDERS = {"github": _github, "gitlab": _gitlab, "bitbucket": _bitbucket, "azuredevops_go": _azure,
             "jira": _jira, "jenkins": _jenkins, "circleci": _circleci, "bamboo": _bamboo}


def default_full_name(plugin: str, name: str, parent: dict | None) -> str:
    """The upstream full name of a new scope given its parent group."""
    if parent is None:
        return {"circleci": f"gh/example-org/{name}"}.get(plugin, name)
    base = parent.get("fullName") or parent["id"]
    if plugin == "bitbucket":  # group id = workspace slug, fullName = display name
        base = parent["id"]
    if plugin == "jenkins":  # group ids look like /job/a/job/b
        base = "/".join(p for p in parent["id"].split("/") if p and p != "job")
    if plugin == "azuredevops_go":
        return name
    return f"{base}/{name}"


def default_scope_id(plugin: str, full_name: str, seq: int, external: bool):
    """Auto-assigned scope id: ints where the plugin uses ints (§5), natural keys elsewhere."""
    if plugin == "github":
        return 200_000 + seq
    if plugin == "gitlab":
        return 40_000 + seq
    if plugin == "jira":
        return seq
    if plugin in ("bitbucket", "jenkins"):
        return full_name
    if plugin == "azuredevops_go":
        # external repos get "<serviceConnectionId>-<externalId>", no slash
        # (backend/plugins/azuredevops_go/api/remote_helper.go)
        return f"{_uuid('svc/' + full_name)}-{_num(full_name)}" if external else _uuid("ado/" + full_name)
    if plugin == "circleci":
        return _uuid("circleci/" + full_name)
    if plugin == "bamboo":
        key = "".join(ch for ch in full_name.upper() if ch.isalnum())[:8] or "PLAN"
        return f"PROJ-{key}{seq}"
    return str(seq)
