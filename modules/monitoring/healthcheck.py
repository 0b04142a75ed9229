"""`blueprint_monitor.py --healthcheck`: the Docker HEALTHCHECK, asking the running monitor's /healthz.

It reads only METRICS_ADDR, METRICS_PORT and WEB_CONFIG_FILE (HTTPS when the web config
has tls_server_config), so a probe works without the rest of the configuration.
"""
from __future__ import annotations

import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from config import default_of
from utils.webconfig import WebConfigError, load_web_config

WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def healthz_url(environ: Mapping[str, str]) -> tuple[str, bool]:
    """(URL of the local /healthz, whether it is HTTPS). Raises WebConfigError."""
    addr = (environ.get("METRICS_ADDR") or "").strip()
    host = WILDCARDS.get(addr, addr)
    port = (environ.get("METRICS_PORT") or "").strip() or str(default_of("METRICS_PORT"))
    web_file = (environ.get("WEB_CONFIG_FILE") or "").strip()
    tls = bool(web_file) and load_web_config(Path(web_file)).tls is not None
    host = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{host}:{port}/healthz", tls


def check_health(environ: Mapping[str, str], timeout: float = 4.0) -> int:
    """0 if the local monitor answers /healthz with 200, else 1 (with the reason on stderr)."""
    try:
        url, tls = healthz_url(environ)
    except WebConfigError as exc:
        print(f"WEB_CONFIG_FILE: {exc}", file=sys.stderr)
        return 1
    context = None
    if tls:
        # Our own process on loopback: what matters is its answer, not the name in its
        # certificate (which names the Service, not 127.0.0.1).
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:  # noqa: S310 (local URL)
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as exc:
        print(f"{url}: {exc.code} {exc.read(200).decode('utf-8', 'replace').strip()}", file=sys.stderr)
    except (OSError, ValueError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
    return 1
