"""A wrong DEVLAKE_URL, as new users write it: each form is told apart in one line, within about one
request timeout plus one retry, by `manage_projects.py --once` / `--doctor` and `blueprint_monitor.py --once`.

DEVLAKE_HTTP_RETRIES and the backoff keep their defaults (5, 1 s): the bound must come from the
quick probe, not from a test setting.
"""
from __future__ import annotations

import json
import socket
import time

import pytest
import structlog

import blueprint_monitor
import manage_projects
from sandbox.config_ui import FakeConfigUi
from sandbox.fake_devlake import FakeDevLake

TIMEOUT = 1.0
# one request timeout plus one retry, and a margin for a slow, shared test machine
BOUND_SECONDS = 2 * TIMEOUT + 1.5
TYPO_HOST = "devlkae"
REPRS = ("Traceback", "HTTPConnectionPool", "urllib3", "Error(", "MaxRetryError", "object at 0x")


@pytest.fixture(autouse=True)
def reset_structlog():
    yield
    structlog.reset_defaults()


@pytest.fixture
def unresolvable(monkeypatch):
    """TYPO_HOST does not resolve, without asking a real DNS server (offline, deterministic)."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host == TYPO_HOST:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent_port():
    """A port that accepts connections and never answers: each request waits out its timeout."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.fixture(params=["refused", "dns", "config_ui_html", "api_on_backend", "tls", "timeout"])
def wrong_url(request, unresolvable, silent_port):
    """(kind, DEVLAKE_URL, words the line must hold) for each way of writing DEVLAKE_URL wrong."""
    if request.param == "refused":
        port = closed_port()
        yield "refused", f"http://127.0.0.1:{port}", [f"127.0.0.1:{port} refused the connection"]
    elif request.param == "dns":
        yield "dns", f"http://{TYPO_HOST}:8080", [f"host name '{TYPO_HOST}' does not resolve"]
    elif request.param == "config_ui_html":
        with FakeConfigUi() as ui:
            yield "not_devlake", ui.url, ["HTML page", "looks like config-ui: add /api", f"DEVLAKE_URL={ui.url}/api"]
    elif request.param == "api_on_backend":
        with FakeDevLake() as fake:
            yield "api_prefix", fake.url + "/api", ["backend has no /api prefix", f"use DEVLAKE_URL={fake.url}"]
    elif request.param == "timeout":
        yield "timeout", f"http://127.0.0.1:{silent_port}", [f"did not answer within DEVLAKE_TIMEOUT_SECONDS ({TIMEOUT:g} s)"]
    else:
        with FakeDevLake() as fake:  # plain HTTP spoken to with https://
            https = fake.url.replace("http://", "https://")
            yield "tls", https, ["TLS with 127.0.0.1:", "use http://"]


def run_timed(daemon, args, env) -> tuple[int, float]:
    started = time.monotonic()
    code = daemon.main(args, environ=env)
    return code, time.monotonic() - started


def plain_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.startswith("{")]


@pytest.mark.parametrize("daemon, args", [(manage_projects, ["--once"]), (manage_projects, ["--once", "--dry-run"]),
                                          (manage_projects, ["--doctor"]), (blueprint_monitor, ["--once"])],
                         ids=["once", "dry-run", "doctor", "monitor-once"])
def test_a_wrong_url_is_told_in_one_line_within_one_timeout_and_one_retry(daemon, args, wrong_url, tmp_path,
                                                                          capsys):
    kind, url, words = wrong_url
    env = {"DEVLAKE_URL": url, "STATE_DIR": str(tmp_path), "DEVLAKE_TIMEOUT_SECONDS": str(TIMEOUT)}
    code, seconds = run_timed(daemon, args, env)
    out = capsys.readouterr()
    assert code == 2
    assert seconds < BOUND_SECONDS, f"{seconds:.2f} s"
    lines = plain_lines(out.out) + plain_lines(out.err)
    assert len(lines) == 1, lines
    assert lines[0].removeprefix("[FAIL] ").startswith(f"DEVLAKE_URL={url}")
    for word in words:
        assert word in lines[0]
    for text in REPRS:
        assert text not in out.out + out.err, text
    events = [json.loads(line) for line in out.err.splitlines() if line.startswith("{")]
    if args != ["--doctor"]:
        said = next(e for e in events if e["event"] in ("devlake_unusable", "devlake_unreachable"))
        assert said["kind"] == kind and said["hint"] == lines[0]


def test_the_monitor_once_against_a_closed_port_checks_no_connection(tmp_path, capsys):
    port = closed_port()
    env = {"DEVLAKE_URL": f"http://127.0.0.1:{port}", "STATE_DIR": str(tmp_path),
           "DEVLAKE_TIMEOUT_SECONDS": str(TIMEOUT)}
    code, seconds = run_timed(blueprint_monitor, ["--once"], env)
    out = capsys.readouterr()
    assert code == 2 and seconds < BOUND_SECONDS
    assert out.out == ""  # not ~280 lines of exposition saying devlake_up 0
    events = [json.loads(line)["event"] for line in out.err.splitlines() if line.startswith("{")]
    assert events == ["monitor_started", "state_file_missing", "devlake_unreachable"]  # no poll, no checks


def test_a_right_url_still_runs(tmp_path, capsys):
    with FakeDevLake() as fake:
        env = {"DEVLAKE_URL": fake.url, "STATE_DIR": str(tmp_path), "DEVLAKE_TIMEOUT_SECONDS": str(TIMEOUT),
               "PLUGINS": "github"}
        assert manage_projects.main(["--doctor"], environ=env) == 0
        assert manage_projects.main(["--once"], environ=env) == 0
    assert "DEVLAKE_URL=" not in capsys.readouterr().err
