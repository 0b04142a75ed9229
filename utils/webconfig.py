"""WEB_CONFIG_FILE: TLS and basic auth for the monitor's port, in the Prometheus exporter-toolkit format.

The file is the one Prometheus exporters take with `--web.config.file`
(prometheus/exporter-toolkit, docs/web-configuration.md):

    tls_server_config:
      cert_file: /etc/devlake-monitor/tls.crt
      key_file: /etc/devlake-monitor/tls.key
      client_ca_file: /etc/devlake-monitor/ca.crt      # optional, with client_auth_type
      client_auth_type: RequireAndVerifyClientCert
      min_version: TLS12                               # optional; TLS12 or TLS13
    basic_auth_users:
      prometheus: $2b$12$...                           # bcrypt hash

`load_web_config(path)` reads and checks all of it, building the TLS context once so a
missing or unreadable certificate is a configuration error at start (exit 2), not a
failed handshake later. Options of the toolkit this server cannot honour are refused
by name rather than ignored.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import bcrypt
import yaml

TOP_LEVEL = {"tls_server_config", "basic_auth_users", "http_server_config"}
TLS_KEYS = {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version"}
# Known to the toolkit, not implemented here: refused with a reason instead of silently ignored.
TLS_UNSUPPORTED = {"cert", "key", "client_ca", "max_version", "cipher_suites", "curve_preferences",
                   "prefer_server_cipher_suites", "client_allowed_sans"}
# Python's ssl verifies every client certificate it asks for, so the toolkit's two policies
# that accept unverified certificates cannot be honoured (and add no security).
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
CLIENT_AUTH_UNSUPPORTED = {"RequestClientCert", "RequireAnyClientCert"}
TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
BCRYPT_HASH = re.compile(r"\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}")
CACHE_LIMIT = 1024  # distinct good credentials remembered; more than any real set of scrapers
# A real web config is a few hundred bytes (a bcrypt hash per user); /dev/zero or a log file given
# by mistake was read until memory ran out (issue 21).
MAX_FILE_BYTES = 1024 * 1024


class WebConfigError(Exception):
    """Every problem found in the web config file, one per entry."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class TLSConfig:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    client_auth_type: str = "NoClientCert"
    min_version: str = "TLS12"

    def context(self) -> ssl.SSLContext:
        """A server context: TLS 1.2 or newer, the client certificate policy applied.

        Raises ssl.SSLError or OSError if a file cannot be loaded.
        """
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = TLS_VERSIONS[self.min_version]
        ctx.load_cert_chain(self.cert_file, self.key_file)
        if self.client_ca_file is not None:
            ctx.load_verify_locations(cafile=self.client_ca_file)
        ctx.verify_mode = CLIENT_AUTH[self.client_auth_type]
        return ctx


class WebConfigSummary(TypedDict):
    file: str
    tls: bool
    client_auth_type: str | None
    basic_auth_users: int


@dataclass(frozen=True)
class WebConfig:
    path: Path
    tls: TLSConfig | None = None
    users: Mapping[str, bytes] = field(default_factory=dict, repr=False)  # user -> bcrypt hash

    def summary(self) -> WebConfigSummary:
        """What the startup log shows: no hashes, no file contents."""
        return {"file": str(self.path), "tls": self.tls is not None,
                "client_auth_type": self.tls.client_auth_type if self.tls else None,
                "basic_auth_users": len(self.users)}


def load_web_config(path: Path) -> WebConfig:
    """Read and check the file; raise WebConfigError naming every problem."""
    try:
        doc = yaml.safe_load(_read_small_file(path))
    except OSError as exc:
        raise WebConfigError([f"cannot be read: {exc.strerror or exc}"]) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise WebConfigError([f"is not valid YAML: {' '.join(str(exc).split())}"]) from None
    if doc is None:
        doc = {}  # an empty file: the toolkit's "no TLS, no auth"
    if not isinstance(doc, dict):
        raise WebConfigError(["must be a YAML mapping with tls_server_config and/or basic_auth_users"])
    problems = [f"unknown key {key!r} (expected {', '.join(sorted(TOP_LEVEL))})"
                for key in doc if key not in TOP_LEVEL]
    if doc.get("http_server_config"):
        problems.append("http_server_config is not supported by this monitor")
    tls = _tls(doc.get("tls_server_config"), path.parent, problems)
    users = _users(doc.get("basic_auth_users"), problems)
    if problems:
        raise WebConfigError(problems)
    return WebConfig(path=path, tls=tls, users=users)


def _read_small_file(path: Path) -> str:
    """The file's text; a device, a pipe or a directory is refused before it is opened (a FIFO's
    open would wait for a writer), and so is a file past MAX_FILE_BYTES."""
    if not path.is_file():
        if path.exists():
            raise WebConfigError(["is not a regular file"])
        raise OSError(2, "No such file or directory")
    with path.open("rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise WebConfigError([f"is larger than {MAX_FILE_BYTES // 1024} KiB: not a web config file"])
    return data.decode("utf-8")


def _tls(section: object, base: Path, problems: list[str]) -> TLSConfig | None:
    if section is None:
        return None
    if not isinstance(section, dict):
        problems.append("tls_server_config must be a mapping")
        return None
    before = len(problems)
    for key in section:
        if key in TLS_UNSUPPORTED:
            problems.append(f"tls_server_config.{key} is not supported by this monitor")
        elif key not in TLS_KEYS:
            problems.append(f"tls_server_config: unknown key {key!r}")

    def file(key: str) -> Path | None:
        value = section.get(key)
        if value in (None, ""):
            return None
        # Relative paths are relative to the web config file, as in the exporter-toolkit.
        return base / str(value)

    cert, key, ca = file("cert_file"), file("key_file"), file("client_ca_file")
    auth = str(section.get("client_auth_type") or "NoClientCert")
    version = str(section.get("min_version") or "TLS12")
    for name, value in (("cert_file", cert), ("key_file", key)):
        if value is None:
            problems.append(f"tls_server_config.{name} is required")
    for name, value in (("cert_file", cert), ("key_file", key), ("client_ca_file", ca)):
        if value is not None and not value.is_file():
            problems.append(f"tls_server_config.{name} {str(value)!r} does not exist or is not a file")
    if auth in CLIENT_AUTH_UNSUPPORTED:
        problems.append(f"tls_server_config.client_auth_type {auth} accepts unverified client certificates "
                        "and is not supported: use RequireAndVerifyClientCert or VerifyClientCertIfGiven")
    elif auth not in CLIENT_AUTH:
        problems.append(f"tls_server_config.client_auth_type {auth!r} is not one of {', '.join(CLIENT_AUTH)}")
    elif auth != "NoClientCert" and ca is None:
        problems.append(f"tls_server_config.client_auth_type {auth} needs client_ca_file")
    elif auth == "NoClientCert" and ca is not None:
        problems.append("tls_server_config.client_ca_file is set but client_auth_type is NoClientCert")
    if version not in TLS_VERSIONS:
        problems.append(f"tls_server_config.min_version {version!r} is not one of {', '.join(TLS_VERSIONS)}")
    if len(problems) > before or cert is None or key is None:
        return None
    config = TLSConfig(cert_file=cert, key_file=key, client_ca_file=ca, client_auth_type=auth, min_version=version)
    try:
        config.context()  # load the files once now: a bad key or certificate is a configuration error
    except (ssl.SSLError, OSError, ValueError) as exc:
        problems.append(f"tls_server_config: certificate, key or client CA cannot be loaded: {exc}")
        return None
    return config


def _users(section: object, problems: list[str]) -> dict[str, bytes]:
    if section is None:
        return {}
    if not isinstance(section, dict):
        problems.append("basic_auth_users must be a mapping of user name to bcrypt hash")
        return {}
    users: dict[str, bytes] = {}
    for user, hashed in section.items():
        user = str(user)
        if not user or ":" in user:
            problems.append(f"basic_auth_users: user name {user!r} is empty or contains ':'")
        elif not isinstance(hashed, str) or not BCRYPT_HASH.fullmatch(hashed):
            problems.append(f"basic_auth_users.{user} is not a bcrypt hash ($2b$..., 60 characters)")
        else:
            users[user] = hashed.encode("ascii")
    return users


class BasicAuth:
    """Checks an Authorization header against the configured users.

    bcrypt is slow on purpose (~0.2 s at cost 12); a scrape every 15 s must not pay it each
    time, so a verified credential is remembered by the SHA-256 of user, hash and password
    (never the password itself). Unknown users still pay one bcrypt check, against a dummy
    hash, and every user name is compared in constant time, so timing reveals neither.
    """

    def __init__(self, users: Mapping[str, bytes]):
        self._users = dict(users)
        self._dummy = bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds=_cost(self._users)))
        self._verified: set[bytes] = set()
        self._lock = threading.Lock()

    def check(self, header: str | None) -> bool:
        credentials = parse_basic(header)
        if credentials is None:
            return False
        user, password = credentials
        hashed = None
        for name, candidate in self._users.items():  # no early exit: constant time over all users
            if hmac.compare_digest(name.encode("utf-8"), user):
                hashed = candidate
        key = hashlib.sha256(b"\0".join((user, hashed or b"", password))).digest()
        with self._lock:
            if hashed is not None and key in self._verified:
                return True
        try:
            ok = bcrypt.checkpw(password, hashed or self._dummy) and hashed is not None
        except ValueError:  # longer than bcrypt's 72 bytes: it can match no hash
            return False
        if ok:
            with self._lock:
                if len(self._verified) >= CACHE_LIMIT:
                    self._verified.clear()
                self._verified.add(key)
        return ok


def parse_basic(header: str | None) -> tuple[bytes, bytes] | None:
    """(user, password) from `Basic base64(user:password)`, or None if it is not that."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    return (user, password) if sep else None


def _cost(users: Mapping[str, bytes]) -> int:
    """The dummy hash costs what a real one does, so an unknown user takes as long as a known one."""
    for hashed in users.values():
        return int(hashed[4:6])
    return 10
