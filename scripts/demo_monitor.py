#!/usr/bin/env python3
"""`make demo-monitor`: the sandbox and the monitor keep running; open the status page; Ctrl-C stops both.

1. starts the DevLake sandbox (sample data; queued pipelines finish after 2 s, those
   of *flaky* projects fail) on a free loopback port;
2. runs manage_projects.py --once against it (creates the projects, triggers them);
3. adds a stuck, a stale, a never-collected and a repeatedly failing project;
4. starts blueprint_monitor.py (polling every 10 s) and prints the status page's URL.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.autorun import AutoRunner, flaky_outcome  # noqa: E402
from sandbox.fake_devlake import FakeDevLake  # noqa: E402
from sandbox.sample import load_sample_data  # noqa: E402
from sandbox.scenario import add_status_scenario  # noqa: E402

STARTUP_SECONDS = 30


def prepare(fake: FakeDevLake, env: dict) -> None:
    """Sample data, one automation run, every queued pipeline finished, the status scenario."""
    load_sample_data(fake)
    # Every sample project collected once, so the page shows each state: the demo lifts the queue
    # budget (MAX_PENDING_PIPELINES, default 10, would leave the rest to their cron minute).
    proc = subprocess.run([sys.executable, "manage_projects.py", "--once"], cwd=ROOT,
                          env={**env, "MAX_PENDING_PIPELINES": "1000"}, capture_output=True, text=True)
    print(f"manage_projects.py --once: exit code {proc.returncode}", flush=True)
    fake.run_pending(flaky_outcome)
    add_status_scenario(fake)


def sandbox_env(fake: FakeDevLake, state_dir: str, **extra: str) -> dict:
    env = dict(os.environ, DEVLAKE_URL=fake.url, STATE_DIR=state_dir, LOG_FORMAT="json",
               DEVLAKE_RETRY_BACKOFF_SECONDS="0", **extra)
    env.pop("DEVLAKE_API_KEY", None)
    return env


def monitor_port(proc: subprocess.Popen) -> int | None:
    """The port from the monitor's `metrics_server_started` log line (it binds port 0)."""
    assert proc.stderr is not None
    for line in proc.stderr:
        if '"metrics_server_started"' in line:
            return int(json.loads(line)["port"])
    return None


def drain(stream) -> None:
    """Read and drop the monitor's logs, so a full pipe never blocks it."""
    for _ in stream:
        pass


def main() -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with FakeDevLake() as fake, tempfile.TemporaryDirectory(prefix="devlake-demo-monitor-") as state_dir:
        print(f"DevLake sandbox at {fake.url}; state in {state_dir}", flush=True)
        env = sandbox_env(fake, state_dir, POLL_INTERVAL_SECONDS="10", METRICS_ADDR="127.0.0.1", METRICS_PORT="0",
                          LOG_LEVEL="WARNING")
        prepare(fake, env)
        runner = AutoRunner(fake, 2.0).start()
        env["LOG_LEVEL"] = "INFO"  # for the port's log line; the rest is discarded
        monitor = subprocess.Popen([sys.executable, "blueprint_monitor.py"], cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            port = monitor_port(monitor)
            if port is None:
                print(f"the monitor did not start (exit code {monitor.wait(STARTUP_SECONDS)})", file=sys.stderr)
                return 1
            threading.Thread(target=drain, args=(monitor.stderr,), daemon=True).start()
            print(f"\nStatus page:  http://127.0.0.1:{port}/\nAs JSON:      http://127.0.0.1:{port}/status.json\n"
                  f"Metrics:      http://127.0.0.1:{port}/metrics\n\nPress Ctrl-C to stop.", flush=True)
            while not stop.wait(0.5) and monitor.poll() is None:
                pass
        finally:
            monitor.send_signal(signal.SIGTERM)
            try:
                monitor.wait(15)
            except subprocess.TimeoutExpired:
                monitor.kill()
            runner.stop()
    print("stopped: the monitor and the sandbox", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
