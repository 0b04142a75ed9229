"""WEB_CONFIG_FILE end to end: real HTTPS with certificates made here, basic auth, open probes,
DevLake's signed notifications still accepted, and bad web configs refused at start (exit 2)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from blueprint_monitor import build_receiver
from modules.monitoring.http import MetricsServer
from sandbox.notifier import sign
from tests.tls_support import Certs, bcrypt_hash, make_certs

pytest.importorskip("cryptography")
ROOT = Path(__file__).resolve().parents[2]
USER, PASSWORD = "prometheus", "correct horse battery staple"
SECRET = "n" * 32


@pytest.fixture
def certs(tmp_path) -> Certs:
    return make_certs(tmp_path / "tls")


def write_web_config(path: Path, certs: Certs | None, *, users: bool = True, client_auth: str | None = None) -> Path:
    lines = []
    if certs is not None:
        lines += ["tls_server_config:", f"  cert_file: {certs.server_cert}", f"  key_file: {certs.server_key}"]
        if client_auth:
            lines += [f"  client_auth_type: {client_auth}", f"  client_ca_file: {certs.ca}"]
    if users:
        lines += ["basic_auth_users:", f"  {USER}: {bcrypt_hash(PASSWORD)}"]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def serve(monitor_factory, tmp_path):
    """serve(web config path, **env) -> (base URL, monitor, receiver); everything stopped afterwards."""
    started = []

    def start(web_config: Path, **env):
        monitor = monitor_factory(WEB_CONFIG_FILE=str(web_config), **env)
        receiver = build_receiver(monitor.settings, monitor)
        if receiver:
            receiver.start()
        server = MetricsServer(monitor, "127.0.0.1", 0, receiver, web=monitor.settings.web_config).start()
        started.append((server, receiver))
        scheme = "https" if monitor.settings.web_config.tls else "http"
        return f"{scheme}://localhost:{server.port}", monitor, receiver

    yield start
    for server, receiver in started:
        server.stop()
        if receiver:
            receiver.stop()


def test_https_with_basic_auth(serve, certs, tmp_path, monitor_fake):
    monitor_fake.add_project("github/my-repo")
    url, monitor, _ = serve(write_web_config(tmp_path / "web.yml", certs))
    monitor.poll_once()
    tls = {"verify": str(certs.ca), "timeout": 5}

    anonymous = requests.get(f"{url}/metrics", **tls)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith('Basic realm="devlake-monitor"')
    assert requests.get(f"{url}/metrics", auth=(USER, "wrong"), **tls).status_code == 401
    assert requests.get(f"{url}/metrics", auth=("nobody", PASSWORD), **tls).status_code == 401
    good = requests.get(f"{url}/metrics", auth=(USER, PASSWORD), **tls)
    assert good.status_code == 200 and "devlake_up 1.0" in good.text
    # Default deny: every other path too, also ones that do not exist (a later status page).
    for path in ("/", "/status", "/metrics/", "/healthz/../metrics"):
        assert requests.get(f"{url}{path}", **tls).status_code == 401, path
    # Probes need no credentials and learn only up/down.
    assert requests.get(f"{url}/healthz", **tls).json()["status"] == "ok"
    assert requests.get(f"{url}/livez", **tls).status_code == 200


def test_the_status_page_and_its_json_are_behind_basic_auth(serve, tmp_path, monitor_fake):
    monitor_fake.add_project("github/<b>secret-repo</b>")
    url, monitor, _ = serve(write_web_config(tmp_path / "web.yml", None))
    monitor.poll_once()
    for path in ("/", "/status.json", "/?x=1", "/status.json?x=1"):
        anonymous = requests.get(f"{url}{path}", timeout=5)
        assert anonymous.status_code == 401, path
        assert "secret-repo" not in anonymous.text and "WWW-Authenticate" in anonymous.headers
        assert requests.get(f"{url}{path}", auth=(USER, "wrong"), timeout=5).status_code == 401, path
    page = requests.get(f"{url}/", auth=(USER, PASSWORD), timeout=5)
    assert page.status_code == 200 and "&lt;b&gt;secret-repo&lt;/b&gt;" in page.text
    data = requests.get(f"{url}/status.json", auth=(USER, PASSWORD), timeout=5).json()
    assert [p["project"] for p in data["projects"]] == ["github/<b>secret-repo</b>"]


def test_https_only(serve, certs, tmp_path):
    url, _, _ = serve(write_web_config(tmp_path / "web.yml", certs, users=False))
    assert requests.get(f"{url}/metrics", verify=str(certs.ca), timeout=5).status_code == 200  # TLS, no auth
    with pytest.raises(requests.ConnectionError):
        requests.get(url.replace("https://", "http://") + "/metrics", timeout=5)
    with pytest.raises(requests.exceptions.SSLError):  # a certificate from an unknown CA is refused
        requests.get(f"{url}/metrics", timeout=5)


def test_basic_auth_without_tls(serve, tmp_path):
    url, _, _ = serve(write_web_config(tmp_path / "web.yml", None))
    assert url.startswith("http://")
    assert requests.get(f"{url}/metrics", timeout=5).status_code == 401
    assert requests.get(f"{url}/metrics", auth=(USER, PASSWORD), timeout=5).status_code == 200


def test_notifications_keep_their_signature_check_and_skip_basic_auth(serve, certs, tmp_path, monitor_fake,
                                                                        monitor_clock):
    blueprint = monitor_fake.add_project("github/my-repo")
    url, monitor, receiver = serve(write_web_config(tmp_path / "web.yml", certs), NOTIFICATION_SECRET=SECRET)
    assert monitor.poll_once()
    monitor_clock.advance(minutes=1)
    finished = monitor_clock.now - timedelta(seconds=2)
    pipeline_id = monitor_fake.add_pipeline(blueprint, "TASK_FAILED", finished_at=finished)
    body = json.dumps({"ProjectName": "github/my-repo", "PipelineID": pipeline_id, "Status": "TASK_FAILED"}).encode()
    nouce = "77-AbCdEfGhIjKlMnOp"
    endpoint = f"{url}/notifications"
    bad = requests.post(endpoint, params={"nouce": nouce, "sign": "0" * 64}, data=body, verify=str(certs.ca), timeout=5)
    assert bad.status_code == 401 and "WWW-Authenticate" not in bad.headers  # DevLake's check, not basic auth
    good = requests.post(endpoint, params={"nouce": nouce, "sign": sign(body, SECRET, nouce)}, data=body,
                         verify=str(certs.ca), timeout=5)
    assert good.status_code == 200
    assert receiver.wait_idle(5)
    metrics = requests.get(f"{url}/metrics", auth=(USER, PASSWORD), verify=str(certs.ca), timeout=5).text
    assert 'devlake_project_failures_total{project_name="github/my-repo"} 1.0' in metrics


@pytest.mark.parametrize("client_auth", ["RequireAndVerifyClientCert", "VerifyClientCertIfGiven"])
def test_client_certificates(serve, certs, tmp_path, client_auth):
    url, _, _ = serve(write_web_config(tmp_path / "web.yml", certs, users=False, client_auth=client_auth))
    mine = (str(certs.client_cert), str(certs.client_key))
    assert requests.get(f"{url}/metrics", cert=mine, verify=str(certs.ca), timeout=5).status_code == 200
    # The server's own certificate is not a client certificate (no clientAuth usage).
    if client_auth == "RequireAndVerifyClientCert":
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/metrics", verify=str(certs.ca), timeout=5)
    else:
        assert requests.get(f"{url}/healthz", verify=str(certs.ca), timeout=5).status_code in (200, 503)


def test_healthcheck_command_speaks_https(serve, certs, tmp_path, monitor_fake):
    web = write_web_config(tmp_path / "web.yml", certs)
    url, monitor, _ = serve(web)
    port = url.rsplit(":", 1)[1]
    env = dict(os.environ, METRICS_ADDR="127.0.0.1", METRICS_PORT=port, WEB_CONFIG_FILE=str(web))
    command = [sys.executable, "blueprint_monitor.py", "--healthcheck"]
    before = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert before.returncode == 1 and "503" in before.stderr  # reached over HTTPS: no successful poll yet
    assert monitor.poll_once()
    after = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert after.returncode == 0, after.stderr


def _bad_configs(tmp_path: Path, certs: Certs) -> dict[str, tuple[Path, str]]:
    good_hash = bcrypt_hash("x")
    files = {
        "unreadable": ("missing.yml", None, "cannot be read"),
        "bad yaml": ("bad.yml", "basic_auth_users: [unclosed\n", "not valid YAML"),
        "bad hash": ("hash.yml", "basic_auth_users:\n  prometheus: plaintext\n", "not a bcrypt hash"),
        "missing cert": ("cert.yml", f"tls_server_config:\n  cert_file: {tmp_path}/nope.crt\n"
                                     f"  key_file: {certs.server_key}\n", "nope.crt' does not exist"),
        "key of another cert": ("key.yml", f"tls_server_config:\n  cert_file: {certs.server_cert}\n"
                                           f"  key_file: {certs.client_key}\n", "cannot be loaded"),
        "unknown key": ("typo.yml", f"basic_auth_user:\n  prometheus: {good_hash}\n", "unknown key 'basic_auth_user'"),
    }
    out = {}
    for name, (file_name, text, message) in files.items():
        path = tmp_path / file_name
        if text is not None:
            path.write_text(text)
        out[name] = (path, message)
    return out


@pytest.mark.parametrize("case", ["unreadable", "bad yaml", "bad hash", "missing cert", "key of another cert",
                                  "unknown key"])
def test_a_bad_web_config_exits_2_naming_the_problem(case, tmp_path, certs, monitor_env):
    path, message = _bad_configs(tmp_path, certs)[case]
    env = {**os.environ, **monitor_env, "WEB_CONFIG_FILE": str(path), "METRICS_PORT": "0"}
    result = subprocess.run([sys.executable, "blueprint_monitor.py"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2
    assert "WEB_CONFIG_FILE=" in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
