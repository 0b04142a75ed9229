"""`make demo-monitor` (scripts/demo_monitor.py): prints the status page's URL, serves it, stops on Ctrl-C."""
from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def test_demo_monitor_serves_the_page_and_stops_on_ctrl_c():
    proc = subprocess.Popen([sys.executable, "scripts/demo_monitor.py"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True)
    reader.start()
    try:
        url = None
        while url is None:
            line = lines.get(timeout=60)
            if line.startswith("Status page:"):
                url = line.split(":", 1)[1].strip()
        deadline, states = time.monotonic() + 30, {}
        while time.monotonic() < deadline and not states:  # the first poll runs beside the server
            states = {p["project"]: p["state"] for p in requests.get(f"{url}status.json", timeout=5).json()["projects"]}
            time.sleep(0.2)
        assert states["gitlab/billing-sync"] == "stuck" and states["jenkins/nightly-reports"] == "never"
        assert states["github/search-indexer"] == "stale" and states["github/flaky-integration-tests"] == "failing"
        assert "healthy" in states.values()
        assert requests.get(url, timeout=5).text.startswith("<!doctype html>")
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(5)  # the last lines, up to end of file
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    assert any("stopped: the monitor and the sandbox" in line for line in rest)
