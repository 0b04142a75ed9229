"""Extra sandbox projects for the status page: one stuck, one stale, one never collected, one failing
repeatedly; and a connection whose stored token was revoked.

Hand-made projects (like the sample's team-alpha-dashboard), so the automation
leaves them alone. Times are relative to the fake's clock.
"""
from __future__ import annotations

from datetime import timedelta

from .fake_devlake import FakeDevLake

# Named like the automation names its projects (PROJECT_NAME_TEMPLATE "{plugin}/{name}").
STUCK = "gitlab/billing-sync"
STALE = "github/search-indexer"
NEVER = "jenkins/nightly-reports"
FAILING = "github/ingest-gateway"


def add_status_scenario(fake: FakeDevLake) -> None:
    """Add the four projects and their pipeline history, and break the circleci connection's token."""
    # circleci's check answers 401 for a bad stored token (`docs/devlake-api.md` §9.6)
    fake.fail_connection_test("circleci", 1, 401, "unexpected status code: 401")
    now = fake.now()
    stuck = fake.add_project(STUCK, description="a pipeline that hangs")
    fake.add_pipeline(stuck, "TASK_COMPLETED", finished_at=now - timedelta(hours=30))
    fake.add_pipeline(stuck, "TASK_RUNNING", began_at=now - timedelta(hours=8, minutes=20))
    stale = fake.add_project(STALE, description="its blueprint was switched to manual")
    fake.add_pipeline(stale, "TASK_COMPLETED", finished_at=now - timedelta(days=3, hours=2))
    fake.add_project(NEVER, description="created, never triggered")
    failing = fake.add_project(FAILING, description="fails three times in a row")
    fake.add_pipeline(failing, "TASK_COMPLETED", finished_at=now - timedelta(days=1, hours=20))
    for hours in (20, 9, 1):  # the repository was deleted upstream: every collection fails
        fake.add_pipeline(failing, "TASK_FAILED", finished_at=now - timedelta(hours=hours), failure={
            "failedSubTask": "collectApiIssues",
            "message": "Error waiting for async Collector execution caused by: "
                       "GET https://api.github.com/repos/acme/ingest-gateway/issues: 404 Not Found"})
