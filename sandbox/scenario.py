"""Extra sandbox projects for the status page: one stuck, one stale, one never collected, one failing repeatedly.

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
    """Add the four projects and their pipeline history."""
    now = fake.now()
    stuck = fake.add_project(STUCK, description="a pipeline that hangs")
    fake.add_pipeline(stuck, "TASK_COMPLETED", finished_at=now - timedelta(hours=30))
    fake.add_pipeline(stuck, "TASK_RUNNING", began_at=now - timedelta(hours=8, minutes=20))
    stale = fake.add_project(STALE, description="its blueprint was switched to manual")
    fake.add_pipeline(stale, "TASK_COMPLETED", finished_at=now - timedelta(days=3, hours=2))
    fake.add_project(NEVER, description="created, never triggered")
    failing = fake.add_project(FAILING, description="fails three times in a row")
    fake.add_pipeline(failing, "TASK_COMPLETED", finished_at=now - timedelta(days=1, hours=20))
    for hours in (20, 9, 1):
        fake.add_pipeline(failing, "TASK_FAILED", finished_at=now - timedelta(hours=hours))
