"""utils/webconfig.py: the exporter-toolkit web config, and the basic auth check with its cache."""
from __future__ import annotations

import base64
import os
from pathlib import Path

import bcrypt
import pytest

from config import ConfigError, load_settings
from tests.tls_support import bcrypt_hash
from utils import webconfig
from utils.webconfig import BasicAuth, WebConfigError, load_web_config, parse_basic


def header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def counted_bcrypt(monkeypatch):
    """Counts real bcrypt checks."""
    calls = []
    real = bcrypt.checkpw

    def checkpw(password, hashed):
        calls.append(password)
        return real(password, hashed)
    monkeypatch.setattr(webconfig.bcrypt, "checkpw", checkpw)
    return calls


def test_a_good_credential_pays_bcrypt_once(counted_bcrypt):
    auth = BasicAuth({"prometheus": bcrypt_hash("s3cret").encode()})
    for _ in range(5):
        assert auth.check(header("prometheus", "s3cret"))
    assert len(counted_bcrypt) == 1
    assert not auth.check(header("prometheus", "wrong"))
    assert not auth.check(header("prometheus", "wrong"))
    assert len(counted_bcrypt) == 3, "failures are never cached"


def test_unknown_users_pay_bcrypt_too_and_fail(counted_bcrypt):
    auth = BasicAuth({"prometheus": bcrypt_hash("s3cret").encode()})
    assert not auth.check(header("someone", "s3cret"))
    assert len(counted_bcrypt) == 1, "a dummy check, so timing does not reveal which users exist"


NO_COLON = "Basic " + base64.b64encode(b"nocolon").decode()


@pytest.mark.parametrize("value", [None, "", "Bearer abc", "Basic !!!", NO_COLON])
def test_malformed_headers_fail(value):
    assert parse_basic(value) is None
    assert not BasicAuth({"u": bcrypt_hash("p").encode()}).check(value)


def test_passwords_over_72_bytes_never_match():
    auth = BasicAuth({"u": bcrypt_hash("p" * 72).encode()})
    assert auth.check(header("u", "p" * 72))
    assert not auth.check(header("u", "p" * 73))


def test_colons_belong_to_the_password():
    auth = BasicAuth({"u": bcrypt_hash("a:b").encode()})
    assert auth.check(header("u", "a:b"))


def test_every_problem_is_named(tmp_path):
    path = tmp_path / "web.yml"
    path.write_text("tls_server_config:\n  cert_file: missing.crt\n  client_auth_type: RequireAnyClientCert\n"
                    "  cipher_suites: [TLS_AES_128_GCM_SHA256]\nbasic_auth_users:\n  a: plain\n  'b:c': x\n")
    with pytest.raises(WebConfigError) as exc:
        load_web_config(path)
    text = "\n".join(exc.value.problems)
    for fragment in ("key_file is required", "missing.crt' does not exist", "RequireAnyClientCert",
                     "cipher_suites is not supported", "basic_auth_users.a is not a bcrypt hash", "'b:c'"):
        assert fragment in text


def test_an_empty_file_means_no_tls_and_no_auth(tmp_path):
    path = tmp_path / "web.yml"
    path.write_text("")
    config = load_web_config(path)
    assert config.tls is None and dict(config.users) == {}


def test_settings_report_web_config_problems_with_the_others(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_settings({"DEVLAKE_URL": "http://devlake:8080", "METRICS_PORT": "x",
                       "WEB_CONFIG_FILE": str(tmp_path / "nope.yml")})
    problems = exc.value.problems
    assert any(p.startswith("METRICS_PORT=") for p in problems)
    assert any(p.startswith("WEB_CONFIG_FILE=") and "cannot be read" in p for p in problems)


def test_the_startup_log_shows_no_hashes(tmp_path):
    path = tmp_path / "web.yml"
    hashed = bcrypt_hash("p")
    path.write_text(f"basic_auth_users:\n  prometheus: {hashed}\n")
    settings = load_settings({"DEVLAKE_URL": "http://devlake:8080", "WEB_CONFIG_FILE": str(path)})
    shown = str(settings.redacted()) + repr(settings)
    assert hashed not in shown and "basic_auth_users': 1" in shown


@pytest.mark.parametrize("make", ["device", "fifo", "directory", "huge"])
def test_a_file_that_is_no_web_config_is_refused_without_reading_it_all(tmp_path, make):
    # WEB_CONFIG_FILE=/dev/zero was read until memory ran out (issue 21); a FIFO would block the start
    if make == "device":
        path = Path("/dev/zero")
    elif make == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)
    elif make == "directory":
        path = tmp_path
    else:
        path = tmp_path / "web.yml"
        path.write_text("# " + "x" * (1024 * 1024) + "\n")
    with pytest.raises(ConfigError) as exc:
        load_settings({"DEVLAKE_URL": "http://devlake:8080", "WEB_CONFIG_FILE": str(path)})
    (problem,) = exc.value.problems
    expected = "is larger than 1024 KiB" if make == "huge" else "is not a regular file"
    assert problem == f"WEB_CONFIG_FILE={str(path)!r}: {expected}" + (": not a web config file" if make == "huge" else "")
