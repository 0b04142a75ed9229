#!/usr/bin/env python3
"""The out-of-the-box demo: both daemons, run for real, against the bundled DevLake sandbox.

Starts the sandbox (an in-process fake of DevLake's REST API with sample
connections, repositories and pipelines) on a free loopback port, then runs
the real entry points as subprocesses over HTTP:
  1. manage_projects.py --once --dry-run  (the plan)
  2. manage_projects.py --once            (creates scopes, scope configs, projects, blueprints)
  3. the sandbox "collects": pipelines finish; repos named *flaky* fail
  4. manage_projects.py --once            (converges: nothing new; reruns the failed pipelines once)
  5. blueprint_monitor.py --once          (counts the failures; prints the Prometheus metrics)
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.fake_devlake import FakeDevLake  # noqa: E402
from sandbox.sample import load_sample_data  # noqa: E402


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def run(args: list[str], env: dict, show_logs: bool = False) -> int:
    """Run an entry point; show stdout, and the JSON log lines only when asked."""
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, text=True, capture_output=True)
    if proc.stdout.strip():
        print(proc.stdout.rstrip())
    lines = proc.stderr.strip().splitlines()
    shown = lines if show_logs else [l for l in lines if '"run_completed"' in l or '"poll_completed"' in l
                                     or '"level": "error"' in l]
    for line in shown:
        print("  log:", line)
    print(f"  -> exit code {proc.returncode}")
    return proc.returncode


def fail_flaky(pipeline: dict, fake: FakeDevLake) -> str:
    bp = fake.blueprints.get(pipeline.get("blueprintId")) or {}
    return "TASK_FAILED" if "flaky" in (bp.get("projectName") or "") else "TASK_COMPLETED"


def main() -> int:
    state = tempfile.mkdtemp(prefix="devlake-demo-state-")
    with FakeDevLake() as fake:
        load_sample_data(fake)
        env = dict(os.environ, DEVLAKE_URL=fake.url, STATE_DIR=state, LOG_FORMAT="json",
                   DEVLAKE_RETRY_BACKOFF_SECONDS="0", POLL_INTERVAL_SECONDS="300")
        env.pop("DEVLAKE_API_KEY", None)
        print(f"DevLake sandbox at {fake.url}; state in {state}")
        banner("1. manage_projects.py --once --dry-run: what would change")
        run(["manage_projects.py", "--once", "--dry-run"], env)
        banner("2. manage_projects.py --once: first run creates everything")
        run(["manage_projects.py", "--once"], env, show_logs=True)
        banner("3. the sandbox collects data: pipelines of *flaky* repos fail")
        fake.run_pending(lambda p: fail_flaky(p, fake))
        for p in sorted(fake.pipelines.values(), key=lambda p: p["id"]):
            name = (fake.blueprints.get(p.get("blueprintId")) or {}).get("projectName", "(ad-hoc)")
            print(f"  pipeline {p['id']:>3} {p['status']:<15} {name}")
        banner("4. manage_projects.py --once again: nothing new to create; failed pipelines rerun once")
        run(["manage_projects.py", "--once"], env)
        fake.run_pending(lambda p: fail_flaky(p, fake))
        if (ROOT / "blueprint_monitor.py").exists():
            banner("5. blueprint_monitor.py --once: failures as Prometheus metrics")
            run(["blueprint_monitor.py", "--once"], env)
    print("\nDone. Next: point DEVLAKE_URL at your DevLake, then `python manage_projects.py --doctor`.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
