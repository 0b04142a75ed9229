#!/usr/bin/env python3
"""Regenerate docs/status-page.png, README's picture of the status page, from the sandbox data.

The same world as `make demo-monitor` (sample data, one automation run, the status
scenario), one poll of an in-process monitor, then headless Chromium (Debian
package `chromium`) takes the picture. Usage: .venv/bin/python scripts/screenshot_status.py [PATH]
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prometheus_client import CollectorRegistry  # noqa: E402

from blueprint_monitor import build_monitor  # noqa: E402
from config import load_settings  # noqa: E402
from modules.monitoring.http import MetricsServer  # noqa: E402
from sandbox.fake_devlake import FakeDevLake  # noqa: E402
from scripts.demo_monitor import prepare, sandbox_env  # noqa: E402
from utils.logging import configure_logging  # noqa: E402

WINDOW = "1280,1180"


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else ROOT / "docs" / "status-page.png").resolve()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("chromium is not installed (Debian package `chromium`)", file=sys.stderr)
        return 1
    configure_logging("WARNING", "console")
    with FakeDevLake() as fake, tempfile.TemporaryDirectory() as tmp:
        env = sandbox_env(fake, tmp, LOG_LEVEL="WARNING", DEVLAKE_UI_URL="http://localhost:4000")
        prepare(fake, env)
        monitor = build_monitor(load_settings(env), CollectorRegistry())
        if not monitor.poll_once():
            print("the monitor's poll failed", file=sys.stderr)
            return 1
        monitor.connections.check_once()
        server = MetricsServer(monitor, "127.0.0.1", 0).start()
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                            "--hide-scrollbars", f"--user-data-dir={tmp}/profile", f"--window-size={WINDOW}",
                            f"--screenshot={out}", f"http://127.0.0.1:{server.port}/"],
                           check=True, capture_output=True, timeout=120, env=dict(os.environ))
        finally:
            server.stop()
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
