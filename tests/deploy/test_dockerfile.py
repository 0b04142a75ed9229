"""The Dockerfile and .dockerignore: hadolint, the image's shape, and its HEALTHCHECK command run for real."""
from __future__ import annotations

import json
import os
import re
import shlex
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from deploy_support import ROOT, free_port, python, require_tool, run

DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    lines, current = [], ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        lines.append(current)
        current = ""
    out = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, args in instructions():
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, args))
    return result


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def test_hadolint_passes():
    hadolint = require_tool("hadolint")
    result = run([hadolint, "--no-color", str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_slim_pinned_python():
    froms = [args for keyword, args in instructions() if keyword == "FROM"]
    assert len(froms) >= 2, "install dependencies in one stage, run in another"
    args = {k: v for k, v in (a.split("=", 1) for kw, a in instructions() if kw == "ARG" and "=" in a)}
    for image in froms:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), image.split()[0])
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", image), image


def test_runtime_stage_has_no_build_tools_and_no_secrets():
    runtime = stages()[-1]
    text = "\n".join(f"{k} {a}" for k, a in runtime)
    assert not re.search(r"apt-get install|build-essential|gcc", text), "no compiler in the final stage"
    # installed packages only: no wheels, no pip cache; and no RUN --mount from a stage (podman#16281)
    assert re.search(r"^COPY --from=build /opt/devlake-deps ", text, re.M), "dependencies from the build stage"
    assert "pip " not in text and "--mount" not in text, "nothing installed or mounted in the final stage"
    for keyword, args in instructions():
        if keyword in ("ENV", "ARG"):
            assert not re.search(r"(API_KEY|PASSWORD|SECRET|TOKEN)", args, re.I), f"secret in image: {args}"


def test_runtime_stage_layout():
    runtime = dict()
    for keyword, args in stages()[-1]:
        runtime.setdefault(keyword, []).append(args)
    user = runtime["USER"][-1]
    assert user.split(":")[0] not in ("root", "0"), "run as a non-root user"
    assert any("/var/lib/devlake-automation" in v for v in runtime["VOLUME"])
    assert any("STATE_DIR=/var/lib/devlake-automation" in v for v in runtime["ENV"])
    assert runtime["EXPOSE"] == ["9100"]
    assert exec_form(runtime["ENTRYPOINT"][-1]) == ["python"], "exec form, so SIGTERM reaches python"
    assert exec_form(runtime["CMD"][-1]) == ["blueprint_monitor.py"]


def test_copies_only_what_the_app_needs_and_it_exists():
    copied = []
    for keyword, args in stages()[-1]:
        if keyword == "COPY" and "--from" not in args:
            parts = [p for p in shlex.split(args) if not p.startswith("--")]
            copied += [p.rstrip("/") for p in parts[:-1]]
    assert sorted(copied) == sorted(["config.py", "manage_projects.py", "blueprint_monitor.py", "modules", "utils",
                                             "pyproject.toml"])  # the version (modules/version.py)
    for path in copied + ["requirements.txt"]:
        assert (ROOT / path).exists(), f"Dockerfile copies {path}, which does not exist"


def test_requirements_are_pinned():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.]+", line), f"not pinned: {line}"


# --- HEALTHCHECK --------------------------------------------------------------------------

def healthcheck_command() -> list[str]:
    (args,) = [a for k, a in stages()[-1] if k == "HEALTHCHECK"]
    options, _, command = args.partition("CMD ")
    assert re.search(r"--interval=\S+", options) and re.search(r"--timeout=\S+", options)
    return exec_form(command.strip())


class _Healthz(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}' if code == 200 else b'{"status": "stale"}')

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("status, expected", [(200, 0), (503, 1)])
def test_healthcheck_command_follows_healthz(status, expected):
    handler = type("Handler", (_Healthz,), {"status": status})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        cmd = healthcheck_command()
        assert cmd[0] == "python"
        env = dict(os.environ, METRICS_PORT=str(server.server_address[1]))
        result = run([python()] + cmd[1:], timeout=15, env=env, cwd=ROOT)
        assert result.returncode == expected, result.stdout + result.stderr
    finally:
        server.shutdown()
        server.server_close()


def test_healthcheck_command_fails_when_nothing_listens():
    env = dict(os.environ, METRICS_PORT=str(free_port()))
    result = run([python()] + healthcheck_command()[1:], timeout=15, env=env, cwd=ROOT)
    assert result.returncode == 1


# --- .dockerignore ---------------------------------------------------------------------------

def _pattern_matches(pattern: str, path: str) -> bool:
    """Docker's matching: a pattern excludes a path or any of its parent directories."""
    regex, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif pattern[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif pattern[i] == "?":
            regex, i = regex + "[^/]", i + 1
        elif pattern[i] == "[":
            close = pattern.index("]", i)
            regex, i = regex + pattern[i:close + 1], close + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    parts = path.split("/")
    return any(re.fullmatch(regex, "/".join(parts[:n])) for n in range(1, len(parts) + 1))


def dockerignore_excludes(path: str) -> bool:
    excluded = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        pattern = pattern.strip("/")
        if _pattern_matches(pattern, path):
            excluded = not negate
    return excluded


@pytest.mark.parametrize("path", ["requirements.txt", "config.py", "manage_projects.py", "blueprint_monitor.py",
                                  "modules/api.py", "utils/http.py"])
def test_dockerignore_keeps_what_the_image_needs(path):
    assert not dockerignore_excludes(path)


@pytest.mark.parametrize("path", [".env", ".env.example", ".git/config", "state/monitor_state.json",
                                  "tests/conftest.py", "modules/__pycache__/api.cpython-311.pyc", ".venv/bin/python",
                                  "docker-compose.yml", "sandbox/fake_devlake.py", "bench/results/x.json"])
def test_dockerignore_leaves_out_secrets_state_and_dev_files(path):
    assert dockerignore_excludes(path)


# --- what the image contains is enough to run ------------------------------------------------

@pytest.fixture(scope="module")
def image_tree(tmp_path_factory):
    """The runtime stage's /app: exactly what the Dockerfile COPYs, nothing else of the repo."""
    import shutil
    app = tmp_path_factory.mktemp("app")
    for keyword, args in stages()[-1]:
        if keyword == "COPY" and "--from" not in args:
            parts = [p for p in shlex.split(args) if not p.startswith("--")]
            for source in parts[:-1]:
                src = ROOT / source.rstrip("/")
                if src.is_dir():
                    shutil.copytree(src, app / src.name, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(src, app / src.name)
    return app


def image_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONDONTWRITEBYTECODE="1", **extra)
    return env


@pytest.mark.parametrize("entry", ["manage_projects.py", "blueprint_monitor.py"])
def test_entry_points_run_from_the_image_contents(image_tree, entry):
    result = run([python(), entry, "--help"], timeout=30, cwd=image_tree, env=image_env())
    assert result.returncode == 0, result.stderr
    result = run([python(), entry, "--once"], timeout=30, cwd=image_tree, env=image_env())
    assert result.returncode == 2 and "DEVLAKE_URL" in result.stderr, "no DEVLAKE_URL: exit 2 naming it"


def test_monitor_polls_from_the_image_contents(image_tree, tmp_path):
    from sandbox.fake_devlake import FakeDevLake
    with FakeDevLake(latency=0) as fake:
        fake.add_project("github/api")
        env = image_env(DEVLAKE_URL=fake.url, STATE_DIR=str(tmp_path), DEVLAKE_HTTP_RETRIES="0")
        result = run([python(), "blueprint_monitor.py", "--once"], timeout=60, cwd=image_tree, env=env)
    assert result.returncode == 0, result.stderr
    assert 'devlake_project_failures_total{project_name="github/api"} 0.0' in result.stdout


def test_compose_healthcheck_of_the_automation_daemon(image_tree, tmp_path):
    """docker-compose.yml's override: `manage_projects.py --healthcheck` follows the heartbeat file."""
    env = image_env(DEVLAKE_URL="http://devlake:8080", STATE_DIR=str(tmp_path))
    cmd = [python(), "manage_projects.py", "--healthcheck"]
    assert run(cmd, cwd=image_tree, env=env).returncode == 1, "no heartbeat yet: unhealthy"
    heartbeat = tmp_path / "automation_heartbeat"
    heartbeat.touch()
    assert run(cmd, cwd=image_tree, env=env).returncode == 0
    os.utime(heartbeat, (heartbeat.stat().st_atime, heartbeat.stat().st_mtime - 600))
    assert run(cmd, cwd=image_tree, env=env).returncode == 1, "a stale heartbeat: unhealthy"


def test_the_image_carries_the_projects_version():
    import re

    from modules.version import version
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^ARG VERSION=(\S+)$", text, re.M).group(1) == version() != "unknown"
    assert 'org.opencontainers.image.version="${VERSION}"' in text
    assert "pyproject.toml" in text and "!pyproject.toml" in (ROOT / ".dockerignore").read_text()
