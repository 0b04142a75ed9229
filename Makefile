# Everything runs from a local virtualenv that the targets create on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: demo demo-monitor test test-containers bench install clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11 or newer is needed: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

## demo: run both daemons once against the bundled DevLake sandbox (no DevLake needed)
demo: $(VENV)/.installed
	$(PY) scripts/demo.py

## demo-monitor: the sandbox and the monitor keep running; prints the status page's URL; Ctrl-C stops both
demo-monitor: $(VENV)/.installed
	$(PY) scripts/demo_monitor.py

## test: lint (ruff), types (mypy), then the whole test suite (installs promtool/hadolint when it can)
test: $(VENV)/.installed
	-@bash tests/deploy/install_tools.sh >/dev/null 2>&1 || true
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q $(PYTEST_ARGS)

## test-containers: only the container test: the image and docker-compose.yml in podman (root; installs podman)
test-containers: $(VENV)/.installed
	bash tests/deploy/install_tools.sh
	$(PY) -m pytest -q tests/deploy/test_containers.py

## bench: API-call counts and wall time against the fake DevLake with 20 ms latency; notifications/s;
##        the spread of 5,000 blueprints' collection minutes and the writes of a window change;
##        the status page at 5,000 projects
bench: $(VENV)/.installed
	$(PY) bench/bench_automation.py
	$(PY) bench/bench_monitor.py
	$(PY) bench/bench_notifications.py
	$(PY) bench/bench_schedule.py
	$(PY) bench/bench_status_page.py

clean:
	rm -rf $(VENV) .pytest_cache
