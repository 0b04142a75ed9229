"""End-to-end: the monitor polls the fake DevLake; its status page over real HTTP lists trouble first, with reasons."""
from __future__ import annotations

import gzip
from datetime import timedelta
from html.parser import HTMLParser

import requests

from tests.e2e.conftest import HOSTILE_NAME, STATUS_ORDER


class Rows(HTMLParser):
    """(project cell text, row class) of every project row, in document order; and every tag seen."""

    def __init__(self, html: str):
        super().__init__()
        self.rows: list[list] = []
        self.tags: list[str] = []
        self._cells: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "tr" and dict(attrs).get("class"):
            self.rows.append([dict(attrs)["class"]])
        elif tag == "td" and self.rows:
            self._cells = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cells is not None:
            self.rows[-1].append("".join(self._cells))
            self._cells = None

    def handle_data(self, data):
        if self._cells is not None:
            self._cells.append(data)


def test_page_lists_trouble_first_with_reasons_and_escapes_names(monitor_status_world):
    url, _ = monitor_status_world
    response = requests.get(f"{url}/", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "script-src 'sha256-" in response.headers["Content-Security-Policy"]
    page = Rows(response.text)
    assert [(r[1], r[0]) for r in page.rows] == STATUS_ORDER
    by_name = {r[1]: r for r in page.rows}
    assert by_name["github/acme/failing"][5:8] == ["rate_limitedError 403: API rate limit exceeded for installation",
                                                   "collectApiPullRequests", "1"]
    # a subtask name that is not a Go identifier is not shown (it is also a metric label)
    assert by_name[HOSTILE_NAME][5:7] == ["unauthorizedauthentication failed, please check your AccessToken",
                                          "unknown"]
    assert by_name["github/acme/new"][2] == "scheduledfirst run 2025-08-09 07:00"  # 00:00 UTC in TIMEZONE
    assert by_name["gitlab/acme/stuck"][2] == "stuckrunning for 8h"
    assert by_name["github/acme/stale"][2] == "staleno success for 3d"
    assert by_name["github/acme/healthy"][3] == "2025-08-08 13:00"  # 06:00 UTC in Asia/Ho_Chi_Minh
    assert "img" not in page.tags and page.tags.count("script") == 1
    assert "&lt;img src=x onerror=&quot;document.title=&#x27;pwned&#x27;&quot;&gt;" in response.text
    assert 'href="http://devlake-ui.example:4000/projects/github%2Facme%2Ffailing"' in response.text
    assert "Monitor: <span class=\"up\">up</span>" in response.text


def test_status_json_has_the_same_order_and_gzip_is_honoured(monitor_status_world):
    url, _ = monitor_status_world
    data = requests.get(f"{url}/status.json", timeout=5).json()
    assert [(p["project"], p["state"]) for p in data["projects"]] == STATUS_ORDER
    assert data["counts"] == {"failing": 2, "stuck": 1, "never": 1, "stale": 1, "scheduled": 1, "healthy": 1, "retired": 0}
    assert data["projects"][1]["reason"] == "rate_limited"
    assert data["projects"][1]["message"] == "Error 403: API rate limit exceeded for installation"
    new = next(p for p in data["projects"] if p["project"] == "github/acme/new")
    assert (new["state"], new["next_run"]) == ("scheduled", "2025-08-09T07:00:00+07:00")
    assert data["monitor"]["up"] is True
    raw = requests.get(f"{url}/", headers={"Accept-Encoding": "gzip"}, timeout=5, stream=True).raw
    assert raw.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(raw.read()).startswith(b"<!doctype html>")


def test_page_follows_the_clock_and_the_next_poll(monitor_status_world, monitor_fake, monitor_clock):
    url, monitor = monitor_status_world
    monitor_clock.advance(hours=22)  # the healthy project's success is now 23 h old: still healthy
    states = {p["project"]: p["state"] for p in requests.get(f"{url}/status.json", timeout=5).json()["projects"]}
    assert states["github/acme/healthy"] == "healthy"
    monitor_clock.advance(hours=26)  # 49 h: stale, without any poll in between
    states = {p["project"]: p["state"] for p in requests.get(f"{url}/status.json", timeout=5).json()["projects"]}
    assert states["github/acme/healthy"] == "stale"
    bp = monitor_fake.blueprints
    failing_bp = next(b["id"] for b in bp.values() if b["projectName"] == "github/acme/failing")
    monitor_fake.add_pipeline(failing_bp, "TASK_COMPLETED", finished_at=monitor_clock.now - timedelta(minutes=1))
    assert monitor.poll_once()
    states = {p["project"]: p["state"] for p in requests.get(f"{url}/status.json", timeout=5).json()["projects"]}
    assert states["github/acme/failing"] == "healthy"


def test_unknown_path_names_the_status_page(monitor_status_world):
    url, _ = monitor_status_world
    response = requests.get(f"{url}/nope", timeout=5)
    assert response.status_code == 404 and "/status.json" in response.text


def test_a_password_in_devlake_url_is_neither_on_the_page_nor_in_the_startup_config(
        monitor_fake, monitor_factory, monitor_server, monitor_env):
    # config-ui behind nginx's basic auth: requests sends the URL's user info as credentials.
    url = monitor_env["DEVLAKE_URL"].replace("http://", "http://admin:s3cr3t-pw@")
    monitor = monitor_factory(DEVLAKE_URL=url)
    assert monitor.poll_once()
    base = monitor_server(monitor)
    for path in ("/", "/status.json"):
        body = requests.get(base + path, timeout=5).text
        assert "s3cr3t-pw" not in body and "admin:***@" in body, path
    assert "s3cr3t-pw" not in str(monitor.settings.redacted())


def test_status_json_carries_the_newest_failures_message_masked_and_cut_at_500(
        monitor_fake, monitor_clock, monitor_factory, monitor_server):
    """Issue 19 item 4: the full (masked) message is in /status.json, at most 500 characters."""
    bp = monitor_fake.add_project("github/acme/long")
    message = "Http DoAsync error calling ghp_abcdefghijklmnopqrstuvwxyz012345: 401 Bad credentials " + "x" * 2000
    monitor_fake.add_pipeline(bp, "TASK_FAILED", finished_at=monitor_clock.now - timedelta(minutes=5),
                              failure={"plugin": "github", "failedSubTask": "collectApiIssues", "message": message})
    monitor = monitor_factory()
    assert monitor.poll_once()
    (row,) = requests.get(f"{monitor_server(monitor)}/status.json", timeout=5).json()["projects"]
    assert row["reason"] == "unauthorized" and len(row["message"]) == 500
    assert row["message"].startswith("Http DoAsync error calling ***: 401 Bad credentials xxx")
    assert "ghp_" not in row["message"] and row["message"].endswith("…")
