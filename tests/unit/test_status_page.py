"""The status page renderer: escaping of every DevLake value, order, collapse, refresh, JSON, CSP."""
from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from html.parser import HTMLParser

import pytz

from modules.monitoring.state import InFlight, MonitorState, ProjectStats
from modules.monitoring.status_model import ConnectionRow, StatusModel, Thresholds, build_rows, snapshot
from modules.monitoring.status_page import HEADERS, HEALTHY_OPEN_MAX, age, render_html, render_json, respond
from tests.unit.test_status_model import fake_monitor

NOW = 1_754_636_400.0  # 2025-08-08 07:00 UTC = 14:00 in Asia/Ho_Chi_Minh
HOUR = 3600.0
HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"
TZ = pytz.timezone("Asia/Ho_Chi_Minh")


class Tags(HTMLParser):
    """Collects start tags and the text of each table row."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.rows: list[list[str]] = []
        self.scripts: list[str] = []
        self._cell: list[str] | None = None
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self._cell = []
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None
        self._in_script = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._in_script:
            self.scripts.append(data)


def model(projects: dict[str, ProjectStats], *, flights=None, ui_url=None, refresh=60.0, pending=None,
          connections=None, last_error=None) -> StatusModel:
    state = MonitorState()
    state.projects.update(projects)
    for pid, (name, hours) in enumerate((flights or {}).items(), start=1):
        state.in_flight[pid] = InFlight(name, NOW - hours * HOUR, "TASK_RUNNING")
    th = Thresholds(6 * HOUR, 48 * HOUR)
    return StatusModel(now=NOW, devlake_url="http://devlake:8080", ui_url=ui_url, up=last_error is None,
                       last_poll_success=NOW - 120, last_error=last_error, pending=pending,
                       connections=connections, thresholds=th, refresh_seconds=refresh, tz=TZ,
                       rows=build_rows(state, NOW, th, ui_url))


def hostile_failure() -> ProjectStats:
    return ProjectStats(last_status="TASK_FAILED", consecutive_failures=2, last_failure=NOW - HOUR,
                        last_reason="</td><script>document.title='pwned'</script>", last_failed_subtask=HOSTILE,
                        last_plugin="github")


def test_every_devlake_value_shows_as_text_never_as_markup():
    page = render_html(model(
        {HOSTILE: hostile_failure(), "ok": ProjectStats(last_success=NOW - HOUR, last_status="TASK_COMPLETED")},
        ui_url="http://ui:4000", pending={"<b>TASK_CREATED</b>": 1}, last_error="<i>unreachable</i>",
        connections=[ConnectionRow("github", 1, HOSTILE, False, NOW, "<script>x()</script>", NOW - HOUR)]))
    parsed = Tags(page)
    assert not any(t in ("img", "i") for t, _ in parsed.tags)
    assert len(parsed.scripts) == 1 and "pwned" not in parsed.scripts[0] and "x()" not in parsed.scripts[0]
    assert HOSTILE not in page and "<script>x()" not in page and "<i>unreachable" not in page
    assert "&lt;img src=x onerror=&quot;document.title=&#x27;pwned&#x27;&quot;&gt;" in page
    cells = [row for row in parsed.rows if row and row[0] == HOSTILE]
    assert len(cells) == 1  # the name is one cell's text: the </td> in the reason closed nothing
    assert cells[0][4] == "</td><script>document.title='pwned'</script>" and cells[0][5] == HOSTILE
    links = [a["href"] for t, a in parsed.tags if t == "a" and "/projects/" in a.get("href", "")]
    assert links == ["http://ui:4000/projects/%3Cimg%20src%3Dx%20onerror%3D%22document.title%3D%27pwned%27%22%3E",
                     "http://ui:4000/projects/ok"]


def test_rows_in_model_order_with_state_details_and_times_in_timezone():
    page = render_html(model({
        "healthy": ProjectStats(last_success=NOW - HOUR, last_status="TASK_COMPLETED"),
        "stale": ProjectStats(last_success=NOW - 72 * HOUR, last_status="TASK_COMPLETED"),
        "stuck": ProjectStats(last_success=NOW - HOUR, last_status="TASK_RUNNING"),
        "never": ProjectStats(),
        "failing": ProjectStats(last_status="TASK_FAILED", last_failure=NOW - 2 * HOUR, consecutive_failures=3,
                                last_success=NOW - 30 * HOUR, last_reason="boom", last_failed_subtask="collectX"),
    }, flights={"stuck": 7.5}))
    rows = [r for r in Tags(page).rows if r]
    assert [r[0] for r in rows] == ["failing", "stuck", "never", "stale", "healthy"]
    assert rows[0] == ["failing", "failing3 in a row", "2025-08-07 08:00", "2025-08-08 12:00", "boom", "collectX", "3"]
    assert rows[1][1] == "stuckrunning for 7h 30m"
    assert rows[2][1] == "never collected"
    assert rows[3][1] == "staleno success for 3d"
    assert "<title>DevLake status: 1 failing, 1 stuck, 1 never collected, 1 stale</title>" in page
    assert '<meta http-equiv="refresh" content="60">' in page
    assert "times in Asia/Ho_Chi_Minh" in page and "2025-08-08 13:58 (2m ago)" in page


def test_healthy_rows_collapse_when_there_are_many_and_refresh_can_be_off():
    few = {f"p{i}": ProjectStats(last_success=NOW - 60, last_status="TASK_COMPLETED") for i in range(HEALTHY_OPEN_MAX)}
    assert '<details id="healthy" open>' in render_html(model(few))
    many = {**few, "one-more": ProjectStats(last_success=NOW - 60, last_status="TASK_COMPLETED")}
    page = render_html(model(many, refresh=0))
    assert '<details id="healthy">' in page and f"Healthy projects ({HEALTHY_OPEN_MAX + 1})" in page
    assert "http-equiv" not in page and "<title>DevLake status: all healthy</title>" in page


def test_page_is_readable_without_javascript():
    page = render_html(model({"p": ProjectStats()}))
    assert re.search(r'<input id="q"[^>]* hidden>', page)  # the filter box appears only when the script runs
    assert "<td class=\"p\">p</td>" in page


def test_only_the_inline_script_and_style_are_allowed_by_the_policy():
    page = render_html(model({"p": ProjectStats()}))
    csp = HEADERS["Content-Security-Policy"]
    for tag in ("script", "style"):
        body = re.search(rf"<{tag}>(.*?)</{tag}>", page, re.S).group(1)
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"{tag}-src 'sha256-{digest}'" in csp
    assert "unsafe-inline" not in csp and "default-src 'none'" in csp
    for loads in ("src=", "<link", "url(", "@import"):  # nothing loaded from anywhere
        assert loads not in page


def test_json_has_the_same_rows_and_full_values():
    long_reason = "x" * 1000
    stats = hostile_failure()
    stats.last_reason = long_reason
    m = model({HOSTILE: stats, "never": ProjectStats()}, pending={"TASK_RUNNING": 2},
              connections=[ConnectionRow("gitlab", 3, "gl", None, None, None, None)])
    data = json.loads(render_json(m))
    assert [(p["project"], p["state"]) for p in data["projects"]] == [(HOSTILE, "failing"), ("never", "never")]
    first = data["projects"][0]
    assert first["reason"] == long_reason and first["last_failure"] == "2025-08-08T13:00:00+07:00"
    assert first["since"] is None and first["url"] is None and first["plugin"] == "github"
    assert data["counts"] == {"failing": 1, "stuck": 0, "never": 1, "stale": 0, "scheduled": 0, "healthy": 0, "retired": 0}
    assert data["monitor"] == {"up": True, "last_poll_success": "2025-08-08T13:58:00+07:00", "last_error": None}
    assert data["pending"] == {"TASK_RUNNING": 2}
    assert data["connections"] == [{"plugin": "gitlab", "connection_id": 3, "name": "gl", "up": None,
                                    "since": None, "checked_at": None, "error": None}]
    assert data["thresholds"] == {"stuck_after_minutes": 360.0, "stale_after_hours": 48.0}
    page = render_html(m)
    assert "x" * 240 + "…" in page and "x" * 241 + "…" not in page  # the page shortens, the title has it all


def test_respond_gzips_when_asked():
    model = snapshot(fake_monitor(MonitorState()))
    body, content_type, gzipped = respond(model, "/", "gzip, deflate")
    assert gzipped and content_type == "text/html; charset=utf-8"
    assert gzip.decompress(body).startswith(b"<!doctype html>")
    body, content_type, gzipped = respond(model, "/status.json", "")
    assert not gzipped and content_type == "application/json" and json.loads(body)["projects"] == []


def test_age():
    assert [age(s) for s in (0, 59, 60, 3600, 3660, 86400, 90000, -5)] == [
        "<1m", "<1m", "1m", "1h", "1h 1m", "1d", "1d 1h", "<1m"]


def test_scheduled_projects_show_their_first_run_in_timezone_apart_from_trouble():
    m = model({"service-10": ProjectStats(first_run=NOW + 4.5 * HOUR), "service-9": ProjectStats(first_run=NOW),
               "broken": ProjectStats()})
    page = render_html(m)
    rows = [r for r in Tags(page).rows if r]
    assert [(r[0], r[1]) for r in rows] == [
        ("broken", "never collected"),
        ("service-9", "scheduledfirst run 2025-08-08 14:00"), ("service-10", "scheduledfirst run 2025-08-08 18:30")]
    assert "<title>DevLake status: 1 never collected</title>" in page  # scheduled is not trouble
    assert "Projects in trouble (1)" in page and "Scheduled, first collection not due yet (2)" in page
    data = json.loads(render_json(m))
    assert [(p["project"], p["state"], p["next_run"]) for p in data["projects"]] == [
        ("broken", "never", None), ("service-9", "scheduled", "2025-08-08T14:00:00+07:00"),
        ("service-10", "scheduled", "2025-08-08T18:30:00+07:00")]
    assert data["counts"]["scheduled"] == 2


def test_json_rows_carry_the_newest_failures_masked_message_and_the_page_a_shortened_one():
    stats = hostile_failure()
    stats.last_message = "401 Bad credentials <b>" + "y" * 400  # masked and cut when it was explained
    data = json.loads(render_json(model({"p": stats, "ok": ProjectStats(last_success=NOW, runs=1)})))
    by_name = {p["project"]: p for p in data["projects"]}
    assert by_name["p"]["message"] == stats.last_message and by_name["ok"]["message"] is None
    page = render_html(model({"p": stats}))
    shown = "y" * (240 - len("401 Bad credentials <b>"))
    assert "401 Bad credentials &lt;b&gt;" + shown + "…<" in page and "<b>y" not in page
