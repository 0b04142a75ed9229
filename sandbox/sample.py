"""Realistic sample data for the sandbox: eight data-source plugins, one hand-made project."""

from __future__ import annotations

from datetime import timedelta

from .fake_devlake import FakeDevLake

GITHUB_ORGS = {
    "acme-platform": ["api-gateway", "billing-service", "web-frontend", "auth-service",
                      "flaky-integration-tests", "infra-terraform"],
    "acme-data": ["etl-pipelines", "ml-models", "data-warehouse", "reporting-api", "feature-store",
                  "notebooks"],
}
HAND_MADE_PROJECT = "team-alpha-dashboard"
# add_scale: how many of the repositories each plugin gets (the benchmarks' and --scale's mix)
SCALE_SPLIT = {"github": 0.4, "gitlab": 0.3, "jira": 0.2, "jenkins": 0.1}


def load_sample_data(fake: FakeDevLake) -> None:
    """Populate `fake` with connections, remote scopes and one hand-created project."""
    for loader in (_github, _gitlab, _jira, _jenkins, _bitbucket, _azure, _circleci, _bamboo):
        loader(fake)


def add_scale(fake: FakeDevLake, total: int) -> None:
    """`total` more remote scopes in one new connection per plugin of SCALE_SPLIT (`<plugin>-bench`),
    250 to a group where the plugin has groups: an installation of the size our users run."""
    for plugin, share in SCALE_SPLIT.items():
        cid = fake.add_connection(plugin, f"{plugin}-bench")
        count = int(total * share)
        groups = max(1, count // 250) if plugin in ("github", "gitlab", "jenkins") else 0
        for g in range(groups):
            fake.add_remote_group(plugin, cid, f"group{g}", f"group{g}")
        for i in range(count):
            parent = f"group{i % groups}" if groups else None
            fake.add_remote_scope(plugin, cid, f"repo-{i}", parent_id=parent)


def _github(fake: FakeDevLake) -> None:
    cid = fake.add_connection("github", "github-cloud", token="ghp_sandboxTokenForDemo0000000000000001",
                              rateLimitPerHour=4500)
    # the token user's own group comes first and repeats org repos it can see (quirk #21)
    fake.add_remote_group("github", cid, "devlake-bot", "devlake-bot")
    ids = {}
    for org, repos in GITHUB_ORGS.items():
        fake.add_remote_group("github", cid, org, org)
        for repo in repos:
            ids[f"{org}/{repo}"] = fake.add_remote_scope("github", cid, repo, parent_id=org)
    fake.add_remote_scope("github", cid, "dotfiles", parent_id="devlake-bot")
    for full in ("acme-platform/api-gateway", "acme-data/etl-pipelines"):
        fake.add_remote_scope("github", cid, full.split("/")[1], parent_id="devlake-bot",
                              scope_id=ids[full], full_name=full)
    _hand_made_project(fake, cid, ids["acme-platform/api-gateway"])


def _hand_made_project(fake: FakeDevLake, cid: int, scope_id: str) -> None:
    """A project someone clicked together in config-ui: not managed, description empty."""
    config_id = fake.add_scope_config("github", cid, "alpha-manual", entities=["CODE", "CICD"],
                                      deploymentPattern="(?i)deploy", productionPattern="(?i)prod")
    fake.add_scope("github", cid, {
        "githubId": int(scope_id), "name": "api-gateway", "fullName": "acme-platform/api-gateway",
        "HTMLUrl": "https://github.com/acme-platform/api-gateway",
        "cloneUrl": "https://github.com/acme-platform/api-gateway.git"}, scope_config_id=config_id)
    bp_id = fake.add_project(HAND_MADE_PROJECT, scopes=[("github", cid, scope_id)])
    now = fake.now()
    fake.add_pipeline(bp_id, "TASK_COMPLETED", began_at=now - timedelta(hours=26, minutes=12),
                      finished_at=now - timedelta(hours=26))
    fake.add_pipeline(bp_id, "TASK_FAILED", began_at=now - timedelta(hours=2, minutes=9),
                      finished_at=now - timedelta(hours=2), failure={
                          "failedSubTask": "collectApiCommits",
                          "message": "You have exceeded a secondary rate limit. Please wait a few minutes "
                                     "before you try again. (403)"})


def _gitlab(fake: FakeDevLake) -> None:
    cid = fake.add_connection("gitlab", "gitlab-com", token="glpat-sandboxTokenForDemo01")
    fake.add_remote_group("gitlab", cid, "user:4242", "devlake-bot")  # own namespace, empty
    fake.add_remote_group("gitlab", cid, "101", "acme", full_name="acme")
    fake.add_remote_group("gitlab", cid, "102", "backend", parent_id="101")
    fake.add_remote_group("gitlab", cid, "103", "payments", parent_id="102")
    fake.add_remote_scope("gitlab", cid, "handbook", parent_id="101")
    fake.add_remote_scope("gitlab", cid, "orders", parent_id="102")
    fake.add_remote_scope("gitlab", cid, "inventory", parent_id="102")
    fake.add_remote_scope("gitlab", cid, "ledger", parent_id="103")
    fake.add_remote_scope("gitlab", cid, "flaky-reconciler", parent_id="103")


def _jira(fake: FakeDevLake) -> None:
    cid = fake.add_connection("jira", "acme-jira", endpoint="https://acme.atlassian.net/rest/",
                              username="bot@acme.example", password="sandbox-password")
    for board in ("PLAT board", "DATA board", "MOBILE board"):
        fake.add_remote_scope("jira", cid, board)


def _jenkins(fake: FakeDevLake) -> None:
    cid = fake.add_connection("jenkins", "ci-jenkins", username="bot", password="sandbox-password")
    fake.add_remote_group("jenkins", cid, "/job/platform", "platform", full_name="")
    fake.add_remote_group("jenkins", cid, "/job/platform/job/release", "release", parent_id="/job/platform",
                          full_name="")
    fake.add_remote_group("jenkins", cid, "/job/data", "data", full_name="")
    fake.add_remote_scope("jenkins", cid, "build-api", parent_id="/job/platform")
    fake.add_remote_scope("jenkins", cid, "deploy-prod", parent_id="/job/platform/job/release")
    fake.add_remote_scope("jenkins", cid, "deploy-staging", parent_id="/job/platform/job/release")
    fake.add_remote_scope("jenkins", cid, "nightly-etl", parent_id="/job/data")


def _bitbucket(fake: FakeDevLake) -> None:
    cid = fake.add_connection("bitbucket", "acme-bitbucket", username="bot", password="sandbox-app-password")
    fake.add_remote_group("bitbucket", cid, "acme-legacy", "Acme Legacy")
    for repo in ("monolith", "scripts", "docs-site"):
        fake.add_remote_scope("bitbucket", cid, repo, parent_id="acme-legacy")


def _azure(fake: FakeDevLake) -> None:
    cid = fake.add_connection("azuredevops_go", "acme-ado", token="ado-sandbox-pat-000000", organization="acme-corp")
    fake.add_remote_group("azuredevops_go", cid, "acme-corp/Payments", "Payments", full_name="")
    fake.add_remote_scope("azuredevops_go", cid, "payments-core", parent_id="acme-corp/Payments")
    fake.add_remote_scope("azuredevops_go", cid, "payments-ui", parent_id="acme-corp/Payments")
    fake.add_remote_scope("azuredevops_go", cid, "shared-lib", parent_id="acme-corp/Payments",
                          full_name="acme-platform/shared-lib", external=True)


def _circleci(fake: FakeDevLake) -> None:
    cid = fake.add_connection("circleci", "acme-circleci", token="circle-sandbox-token-000")
    fake.add_remote_scope("circleci", cid, "web-frontend", full_name="gh/acme-platform/web-frontend")
    fake.add_remote_scope("circleci", cid, "ml-models", full_name="gh/acme-data/ml-models")


def _bamboo(fake: FakeDevLake) -> None:
    cid = fake.add_connection("bamboo", "acme-bamboo", username="bot", password="sandbox-password")
    fake.add_remote_scope("bamboo", cid, "iOS build", scope_id="MOB-IOS")
    fake.add_remote_scope("bamboo", cid, "Android build", scope_id="MOB-ANDROID")
