"""The status page (GET /) and its JSON twin (GET /status.json), rendered from a StatusModel.

Every value that comes from DevLake (project names, error messages, subtask and
connection names) goes through `html.escape`: repository names are chosen by
whoever can create a repository upstream. The page is built with list joins
(5,000 rows in tens of milliseconds, bench/bench_status_page.py) and needs
nothing from the network: CSS and JavaScript are inline, allowed by hash (CSP).
"""
from __future__ import annotations

import gzip
import json
from datetime import datetime, tzinfo
from html import escape

from modules import statuses
from modules.monitoring.status_assets import CSP, CSS, JS
from modules.monitoring.status_model import STATES, TROUBLE, Row, StatusModel

TIME_FORMAT = "%Y-%m-%d %H:%M"
REASON_CHARS = 240  # the page shows this much of an error; /status.json has all of it
HEALTHY_OPEN_MAX = 100  # more healthy (or scheduled) projects than this: their section starts collapsed
QUEUED = statuses.QUEUED
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-store", "Vary": "Accept-Encoding"}
LABELS = {"failing": "failing", "stuck": "stuck", "never": "never collected", "stale": "stale",
          "scheduled": "scheduled", "healthy": "healthy", "retired": "retired"}


def age(seconds: float) -> str:
    """A short duration: 3d 4h, 5h 12m, 12m, <1m."""
    minutes = int(max(0.0, seconds) // 60)
    days, hours, mins = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {mins}m" if mins else f"{hours}h"
    return f"{mins}m" if mins else "<1m"


class _Times:
    """Epoch seconds as text in TIMEZONE."""

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz

    def __call__(self, epoch: float | None) -> str:
        return "" if epoch is None else datetime.fromtimestamp(epoch, self.tz).strftime(TIME_FORMAT)

    def iso(self, epoch: float | None) -> str | None:
        return None if epoch is None else datetime.fromtimestamp(epoch, self.tz).isoformat()


def render_html(model: StatusModel) -> str:
    """The whole page as one string."""
    when = _Times(model.tz)
    counts = model.counts
    trouble = [r for r in model.rows if r.state in TROUBLE]
    waiting = [r for r in model.rows if r.state == "scheduled"]
    healthy = [r for r in model.rows if r.state == "healthy"]
    retired = [r for r in model.rows if r.state == "retired"]
    title = ", ".join(f"{counts[s]} {LABELS[s]}" for s in TROUBLE if counts[s]) or "all healthy"
    refresh = (f'<meta http-equiv="refresh" content="{model.refresh_seconds:g}">'
               if model.refresh_seconds else "")
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">', refresh,
        f"<title>DevLake status: {escape(title)}</title><style>{CSS}</style></head><body>",
        _header(model, when, counts),
        '<input id="q" type="search" placeholder="Filter: project, state, reason…" '
        'aria-label="Filter projects" hidden>',
        f"<h2>Projects in trouble ({len(trouble)})</h2>",
        _table(trouble, model, when, "trouble") if trouble else '<p class="empty">None.</p>',
        # Not trouble: new projects waiting for their first cron run (status_model.scheduled).
        (f'<details id="scheduled"{" open" if len(waiting) <= HEALTHY_OPEN_MAX else ""}>'
         f"<summary>Scheduled, first collection not due yet ({len(waiting)})</summary>"
         + _table(waiting, model, when, "scheduled-rows") + "</details>") if waiting else "",
        f'<details id="healthy"{" open" if len(healthy) <= HEALTHY_OPEN_MAX else ""}>'
        f"<summary>Healthy projects ({len(healthy)})</summary>",
        _table(healthy, model, when, "healthy-rows") if healthy else '<p class="empty">None.</p>',
        "</details>", _retired_section(retired, model, when), f"<script>{JS}</script></body></html>",
    ]
    return "".join(parts)


def _retired_section(rows: list[Row], model: StatusModel, when: _Times) -> str:
    """Retired projects (their repository left upstream), always collapsed: nothing to act on."""
    if not rows:
        return ""
    return (f'<details id="retired"><summary>Retired projects ({len(rows)})</summary>'
            f'{_table(rows, model, when, "retired-rows")}</details>')


def _header(model: StatusModel, when: _Times, counts: dict[str, int]) -> str:
    if model.up is None:
        state = '<span class="unknown">waiting for the first poll</span>'
    else:
        state = '<span class="up">up</span>' if model.up else '<span class="down">down</span>'
    last = (f"{when(model.last_poll_success)} ({age(model.now - model.last_poll_success)} ago)"
            if model.last_poll_success is not None else "never")
    error = f" · last error: <b>{escape(model.last_error)}</b>" if model.last_error else ""
    ui = (f' · config-ui <a href="{escape(model.ui_url)}">{escape(model.ui_url)}</a>' if model.ui_url else "")
    refresh = f", reloads every {model.refresh_seconds:g} s" if model.refresh_seconds else ""
    chips = "".join(f'<li class="{s}"><b>{counts[s]}</b>{LABELS[s]}</li>' for s in STATES)
    th = model.thresholds
    return "".join([
        "<h1>DevLake collection status</h1>",
        f'<p class="meta">DevLake <a href="{escape(model.devlake_url)}">{escape(model.devlake_url)}</a>{ui}</p>',
        f'<p class="meta">Monitor: {state} · last successful poll <b>{last}</b>{error}</p>',
        f'<p class="meta">Pending pipelines: {_pending(model.pending)}</p>',
        f'<ul class="counts">{chips}</ul>',
        f'<p class="meta">stuck: queued or running over {age(th.stuck_after)}; stale: no success for over '
        f"{age(th.stale_after)}; scheduled: a new project before its first cron run (plus the stuck time); "
        f"times in {escape(str(model.tz))}; generated {when(model.now)}{refresh}</p>",
        _connections(model, when),
    ])


def _pending(pending: dict[str, int] | None) -> str:
    if pending is None:
        return "not known yet (no successful poll)"
    shown = [f"<b>{n}</b> {escape(status)}" for status, n in sorted(pending.items()) if n]
    return ", ".join(shown) or "none"


def _connections(model: StatusModel, when: _Times) -> str:
    if model.connections is None:
        return ""
    if not model.connections:
        return '<h2>Connections</h2><p class="empty">None checked yet.</p>'
    out = ["<h2>Connections</h2><table><thead><tr><th>plugin</th><th>connection</th><th>state</th>"
           "<th>since</th><th>checked</th><th>last error</th></tr></thead><tbody>"]
    for c in model.connections:
        state = ('<span class="unknown">unchecked</span>' if c.up is None else
                 '<span class="up">up</span>' if c.up else '<span class="down">down</span>')
        out.append(f"<tr><td>{escape(c.plugin)}</td><td>{escape(c.name)} <small>#{escape(str(c.connection_id))}"
                   f'</small></td><td>{state}</td><td class="t">{when(c.since)}</td>'
                   f'<td class="t">{when(c.checked_at)}</td><td class="r">{escape(c.error or "")}</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


def _table(rows: list[Row], model: StatusModel, when: _Times, body_id: str) -> str:
    link = model.ui_url is not None
    head = ('<table class="projects"><thead><tr><th>project</th><th>state</th><th>last success</th>'
            "<th>last failure</th>"
            "<th>reason</th><th>failed subtask</th><th>consecutive failures</th>"
            + ("<th>DevLake</th>" if link else "") + f'</tr></thead><tbody id="{body_id}">')
    out = [head]
    append = out.append
    for r in rows:
        append(f'<tr class="{r.state}"><td class="p">{escape(r.project)}</td>'
               f'<td class="s" data-v="{STATES.index(r.state)}">{LABELS[r.state]}{_detail(r, model.now, when)}</td>'
               f'<td class="t">{when(r.last_success)}</td><td class="t">{when(r.last_failure)}</td>'
               f'<td class="r">{_reason(r.reason)}{_message(r.message)}</td>'
               f'<td class="r">{escape(r.failed_subtask or "")}</td>'
               f'<td class="n">{r.consecutive_failures}</td>'
               + (f'<td><a href="{escape(r.link)}">open</a></td>' if link and r.link else "<td></td>" if link else "")
               + "</tr>")
    append("</tbody></table>")
    return "".join(out)


def _message(message: str | None) -> str:
    if not message:
        return ""
    cut = message if len(message) <= REASON_CHARS else message[:REASON_CHARS] + "…"
    return f'<small title="{escape(message)}">{escape(cut)}</small>'


def _detail(row: Row, now: float, when: _Times) -> str:
    flight = row.in_flight_since
    verb = "queued" if row.last_status in QUEUED else "running"
    if row.state == "failing":
        text = f"{row.consecutive_failures} in a row" if row.consecutive_failures > 1 else ""
        if flight is not None:
            text = (text + "; " if text else "") + f"rerun {verb} {age(now - flight)}"
    elif row.state == "stuck" and flight is not None:
        text = f"{verb} for {age(now - flight)}"
    elif row.state == "stale" and row.last_success is not None:
        text = f"no success for {age(now - row.last_success)}"
    elif row.state in ("never", "scheduled") and flight is not None:
        text = f"first run {verb} {age(now - flight)}"
    elif row.state == "scheduled" and row.next_run is not None:
        text = f"first run {when(row.next_run)}"
    else:
        return ""
    return f"<small>{text}</small>" if text else ""


def _reason(reason: str | None) -> str:
    if not reason:
        return ""
    if len(reason) <= REASON_CHARS:
        return escape(reason)
    return f'<span title="{escape(reason)}">{escape(reason[:REASON_CHARS])}…</span>'


def render_json(model: StatusModel) -> str:
    """/status.json: the same facts for scripts; times ISO 8601 in TIMEZONE, null when unknown."""
    when = _Times(model.tz)
    th = model.thresholds
    return json.dumps({
        "generated_at": when.iso(model.now),
        "timezone": str(model.tz),
        "devlake_url": model.devlake_url,
        "devlake_ui_url": model.ui_url,
        "monitor": {"up": model.up, "last_poll_success": when.iso(model.last_poll_success),
                    "last_error": model.last_error},
        "pending": model.pending,
        "connections": None if model.connections is None else [
            {"plugin": c.plugin, "connection_id": c.connection_id, "name": c.name, "up": c.up,
             "since": when.iso(c.since), "checked_at": when.iso(c.checked_at), "error": c.error}
            for c in model.connections],
        "thresholds": {"stuck_after_minutes": th.stuck_after / 60, "stale_after_hours": th.stale_after / 3600},
        "counts": model.counts,
        "projects": [
            {"project": r.project, "state": r.state, "since": when.iso(r.since), "last_status": r.last_status,
             "last_success": when.iso(r.last_success), "last_failure": when.iso(r.last_failure),
             "reason": r.reason, "message": r.message, "failed_subtask": r.failed_subtask, "plugin": r.plugin,
             "next_run": when.iso(r.next_run),
             "consecutive_failures": r.consecutive_failures, "in_flight_since": when.iso(r.in_flight_since),
             "url": r.link}
            for r in model.rows],
    }, indent=None, separators=(",", ":"))


PATHS = {"/": ("text/html; charset=utf-8", render_html), "/status.json": ("application/json", render_json)}


def respond(model: StatusModel, path: str, accept_encoding: str) -> tuple[bytes, str, bool]:
    """(body, content type, gzipped) of `path` in PATHS from `model`, for the monitor's HTTP handler.

    Rendered per request, not cached by poll generation like /metrics: the states
    depend on the clock too (a pipeline becomes stuck between two polls). At 5,000
    projects the page is ~1.5 MB of HTML and ~85 KB gzipped, so gzip when asked.
    """
    content_type, render = PATHS[path]
    body = render(model).encode("utf-8")
    if "gzip" in accept_encoding:
        return gzip.compress(body, compresslevel=1), content_type, True
    return body, content_type, False
