"""A real browser: headless Chromium loads the status page from the monitor's port.

It runs the page's JavaScript under the page's Content-Security-Policy, so the
dumped DOM shows (a) the rows in order, (b) that the inline script was allowed
(the filter box it un-hides is visible), and (c) that nothing from a project
name ran (the title the hostile name tries to set is unchanged, no <img> exists).
A screenshot goes to TEST_ARTIFACTS_DIR (default tests/artifacts/, gitignored).

Chromium is the Debian package `chromium`; tests/deploy/install_tools.sh installs
it. Without it the test skips locally, and fails in CI (`CI` set).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import HOSTILE_NAME, STATUS_ORDER
from tests.e2e.test_status_page_e2e import Rows

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 90  # seconds; a cold Chromium start on a busy 2-core runner takes a few


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("chromium is missing in CI: tests/deploy/install_tools.sh installs the Debian package")
    pytest.skip("chromium is not installed (Debian package `chromium`; tests/deploy/install_tools.sh installs it)")


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--disable-extensions", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'profile'}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def artifacts_dir() -> Path:
    path = Path(os.environ.get("TEST_ARTIFACTS_DIR") or ROOT / "tests" / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_browser_shows_rows_in_order_runs_only_our_script_and_saves_a_screenshot(monitor_status_world, tmp_path):
    url, _ = monitor_status_world
    dom = run_chromium(tmp_path, "--dump-dom", f"{url}/").stdout
    page = Rows(dom)
    assert [(r[1], r[0]) for r in page.rows] == STATUS_ORDER
    assert "<title>DevLake status: 2 failing, 1 stuck, 1 never collected, 1 stale</title>" in dom
    assert "pwned" not in dom.split("</title>", 1)[0]
    assert "img" not in page.tags  # the name stayed text: no element was created from it
    assert "&lt;img src=x onerror=" in dom and HOSTILE_NAME not in dom
    assert '<input id="q"' in dom and not _filter_hidden(dom)  # our own script did run
    # The new managed project waits for its first cron run: its own section, next start in TIMEZONE.
    by_name = {r[1]: r for r in page.rows}
    assert by_name["github/acme/new"][0] == "scheduled"
    assert by_name["github/acme/new"][2] == "scheduledfirst run 2025-08-09 07:00"
    assert "Scheduled, first collection not due yet (1)" in dom

    shot = artifacts_dir() / "status-page.png"
    shot.unlink(missing_ok=True)
    run_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,900", f"{url}/")
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    print(f"status page screenshot: {shot}")


def _filter_hidden(dom: str) -> bool:
    tag = dom.split('<input id="q"', 1)[1].split(">", 1)[0]
    return " hidden" in tag
