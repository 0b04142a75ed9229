#!/usr/bin/env python3
"""The out-of-the-box demo: both daemons, run for real, against the bundled DevLake sandbox.

Starts the sandbox (an in-process fake of DevLake's REST API with sample
connections, repositories and pipelines) on a free loopback port, then runs
the real entry points as subprocesses over HTTP:
  1. manage_projects.py --once --dry-run  (the plan)
  2. manage_projects.py --once            (creates scopes, scope configs, projects, blueprints)
  3. the sandbox "collects": pipelines finish; those of projects named *flaky* fail
  4. manage_projects.py --once            (converges: nothing new; reruns the failed pipelines once)
  5. blueprint_monitor.py --once          (counts the failures; prints the Prometheus metrics)
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.autorun import flaky_outcome  # noqa: E402
from sandbox.fake_devlake import FakeDevLake  # noqa: E402
from sandbox.sample import load_sample_data  # noqa: E402


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def run(args: list[str], env: dict, show_stdout: int = 40, keep=None) -> int:
    """Run an entry point as a subprocess; show a little of its stdout and its summary log line."""
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, text=True, capture_output=True)
    out = [line for line in proc.stdout.splitlines() if keep is None or keep(line)]
    for line in out[:show_stdout]:
        print("  " + line)
    if len(out) > show_stdout:
        print(f"  ... ({len(out) - show_stdout} more lines)")
    for line in proc.stderr.splitlines():
        if any(f'"{e}"' in line for e in ("run_completed", "poll_completed", "item_failed")):
            print("  log: " + line)
    print(f"  -> exit code {proc.returncode}")
    return proc.returncode


INTERESTING = ("devlake_blueprint_failure_total", "devlake_up ", "devlake_project_failures_total{project_name=\"git",
               "# HELP devlake_blueprint_failure_total", "# TYPE devlake_blueprint_failure_total",
               "devlake_pipeline_failures_by_reason_total{", "devlake_project_last_failure_info{",
               "devlake_connection_up{", "devlake_pipelines_pending{")


def main() -> int:
    with FakeDevLake() as fake, tempfile.TemporaryDirectory(prefix="devlake-demo-state-") as state:
        load_sample_data(fake)
        # The sandbox runs every queued pipeline at once, so the demo lifts the queue budget
        # (MAX_PENDING_PIPELINES, default 10) to start all first collections in one run.
        env = dict(os.environ, DEVLAKE_URL=fake.url, STATE_DIR=state, LOG_FORMAT="json",
                   DEVLAKE_RETRY_BACKOFF_SECONDS="0", POLL_INTERVAL_SECONDS="300", MAX_PENDING_PIPELINES="50")
        env.pop("DEVLAKE_API_KEY", None)
        print(f"DevLake sandbox at {fake.url}; state in {state}")
        banner("1. manage_projects.py --once --dry-run: what would change")
        run(["manage_projects.py", "--once", "--dry-run"], env, show_stdout=12)
        banner("2. manage_projects.py --once: first run creates everything")
        run(["manage_projects.py", "--once"], env)
        banner("3. the sandbox collects data: pipelines of *flaky* repos fail")
        fake.run_pending(flaky_outcome)
        statuses = Counter(p["status"] for p in fake.pipelines.values())
        print("  pipelines: " + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())))
        for p in sorted(fake.pipelines.values(), key=lambda p: p["id"]):
            if p["status"] == "TASK_FAILED":
                print(f"  pipeline {p['id']:>3} {p['status']:<12} {p['name']}")
        banner("4. manage_projects.py --once again: nothing new to create; failed pipelines rerun once")
        run(["manage_projects.py", "--once"], env)
        fake.run_pending(flaky_outcome)
        if (ROOT / "blueprint_monitor.py").exists():
            banner("5. blueprint_monitor.py --once: failures as Prometheus metrics")
            run(["blueprint_monitor.py", "--once"], env, show_stdout=60, keep=lambda line: line.startswith(INTERESTING))
            print("  (the full exposition also has per-project runs, last success/failure, status, backlog and health)")
    print("\nDone. Next: point DEVLAKE_URL at your DevLake, then `.venv/bin/python manage_projects.py --doctor`.")
    print("To see the monitor's status page (which projects are not collecting, and why): `make demo-monitor`.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
