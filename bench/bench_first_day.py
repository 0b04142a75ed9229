#!/usr/bin/env python3
"""The first day at 2,000 repositories, as an operator sees it: how many lines each command prints.

Starts the fake DevLake (in this process, no latency) with 2,000 repositories over 4 plugins
(sandbox/sample.py add_scale) and runs `manage_projects.py` as a subprocess, from this tree or from
`--tree` (another checkout, for a before/after), counting what it prints:
  --once --dry-run           stdout lines (the plan), and the stderr log lines
  --once --dry-run --full    stdout lines (every change)            [if the tree has it]
  --once --dry-run --json    bytes, and whether it parses           [if the tree has it]
  --once                     stderr log lines of the real first run, and apply_progress lines
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.fake_devlake import FakeDevLake  # noqa: E402
from sandbox.sample import add_scale  # noqa: E402


def run(tree: Path, url: str, state: str, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEVLAKE_", "PLUGINS", "STATE_DIR"))}
    env.update(DEVLAKE_URL=url, STATE_DIR=state, DEVLAKE_RETRY_BACKOFF_SECONDS="0",
               PLUGINS="github,gitlab,jira,jenkins")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "manage_projects.py", *args], cwd=tree, env=env, capture_output=True,
                          text=True, timeout=900)
    return proc, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout to run (default: this one)")
    parser.add_argument("--repos", type=int, default=2000)
    args = parser.parse_args()
    help_text = subprocess.run([sys.executable, "manage_projects.py", "--help"], cwd=args.tree,
                               capture_output=True, text=True).stdout
    with FakeDevLake() as fake, tempfile.TemporaryDirectory() as state:
        add_scale(fake, args.repos)
        proc, seconds = run(args.tree, fake.url, state, "--once", "--dry-run")
        print(f"--once --dry-run: exit {proc.returncode}, {len(proc.stdout.splitlines())} lines on stdout, "
              f"{len(proc.stderr.splitlines())} log lines, {seconds:.1f} s")
        if "--full" in help_text:
            proc, _ = run(args.tree, fake.url, state, "--once", "--dry-run", "--full")
            print(f"--once --dry-run --full: {len(proc.stdout.splitlines())} lines on stdout")
        if "--json" in help_text:
            proc, _ = run(args.tree, fake.url, state, "--once", "--dry-run", "--json")
            plan = json.loads(proc.stdout)
            print(f"--once --dry-run --json: {len(proc.stdout)} bytes, parses, {len(plan['changes'])} changes")
        proc, seconds = run(args.tree, fake.url, state, "--once")
        events = [json.loads(line).get("event") for line in proc.stderr.splitlines() if line.startswith("{")]
        print(f"--once (first run): exit {proc.returncode}, {len(proc.stderr.splitlines())} log lines, "
              f"{events.count('apply_progress')} apply_progress, {seconds:.1f} s")


if __name__ == "__main__":
    main()
