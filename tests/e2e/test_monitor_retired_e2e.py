"""End-to-end: a project whose blueprint the automation retired is `retired` on /status.json, the page and the gauge."""
from __future__ import annotations

from datetime import timedelta

import requests

from modules.lifecycle import RETIRED_LABEL, missing_label
from modules.projects import MANAGED_LABEL
from tests.e2e.test_monitor_e2e import scrape
from tests.e2e.test_status_page_e2e import Rows

RETIRED = "github/acme/gone"
DISABLED = "github/acme/paused"  # disabled by hand: not retired


def test_retired_project_is_shown_apart_and_gauged(monitor_fake, monitor_clock, monitor_factory, monitor_server):
    now = monitor_clock.now
    labels = [MANAGED_LABEL, missing_label(now.date() - timedelta(days=8)), RETIRED_LABEL]
    gone = monitor_fake.add_project(RETIRED, labels=labels, enable=False)
    monitor_fake.add_pipeline(gone, "TASK_FAILED", finished_at=now - timedelta(hours=2))
    paused = monitor_fake.add_project(DISABLED, labels=[MANAGED_LABEL], enable=False)
    monitor_fake.add_pipeline(paused, "TASK_FAILED", finished_at=now - timedelta(hours=2))
    monitor = monitor_factory()
    assert monitor.poll_once()
    url = monitor_server(monitor)

    data = requests.get(f"{url}/status.json", timeout=5).json()
    states = {p["project"]: p["state"] for p in data["projects"]}
    assert states == {RETIRED: "retired", DISABLED: "failing"}
    assert data["counts"]["retired"] == 1 and data["projects"][-1]["project"] == RETIRED

    html = requests.get(f"{url}/", timeout=5).text
    assert '<details id="retired"><summary>Retired projects (1)</summary>' in html
    assert html.index('id="healthy"') < html.index('id="retired"')
    assert [r[1] for r in Rows(html.split('id="retired"', 1)[1]).rows] == [RETIRED]
    assert "1 failing" in html.split("<title>", 1)[1].split("</title>", 1)[0]

    samples = scrape(url)
    assert samples[("devlake_project_retired", ("project_name", RETIRED))] == 1
    assert not [k for k in samples if k[0] == "devlake_project_retired" and k != (
        "devlake_project_retired", ("project_name", RETIRED))]

    # restored in config-ui (labels removed, enabled): the next project-list refresh follows
    requests.patch(f"{monitor_fake.url}/blueprints/{gone}", json={"labels": [MANAGED_LABEL], "enable": True},
                   timeout=5).raise_for_status()
    monitor_clock.advance(hours=1, minutes=1)
    assert monitor.poll_once()
    assert "devlake_project_retired" not in {k[0] for k in scrape(url)}
    states = {p["project"]: p["state"] for p in requests.get(f"{url}/status.json", timeout=5).json()["projects"]}
    assert states[RETIRED] == "failing"
