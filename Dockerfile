# syntax=docker/dockerfile:1
# One image for both daemons:
#   blueprint_monitor.py (default command; Prometheus exporter on :9100)
#   manage_projects.py   (docker-compose.yml overrides the command and the healthcheck)
# Build: docker build -t devlake-automation:local .

ARG PYTHON_VERSION=3.11
# The project's version, as pyproject.toml says (a test keeps them equal).
ARG VERSION=1.0.0

# --- build stage: the pinned runtime dependencies, installed into one directory ---
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
WORKDIR /build
COPY requirements.txt .
RUN pip install --no-cache-dir --target=/opt/devlake-deps -r requirements.txt

# --- runtime stage: no compiler, no pip cache, no wheels left behind ------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ARG VERSION

LABEL org.opencontainers.image.title="devlake-automation" \
      org.opencontainers.image.description="Apache DevLake project automation and blueprint failure exporter" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STATE_DIR=/var/lib/devlake-automation \
    METRICS_PORT=9100

# Fixed numeric ids so a bind-mounted state directory can be chown'ed to match
# and Kubernetes' runAsNonRoot can verify the user.
RUN groupadd --system --gid 10001 devlake \
 && useradd --system --uid 10001 --gid devlake --no-create-home \
            --home-dir /nonexistent --shell /usr/sbin/nologin devlake \
 && mkdir -p /var/lib/devlake-automation \
 && chown devlake:devlake /var/lib/devlake-automation

# Only the installed packages come over: no wheel, no pip cache, no compiler. (Not a
# `RUN --mount=type=bind,from=build` of wheels: podman before 4.4, e.g. Debian bookworm's,
# cannot see a cached stage's files through it, so a second build fails: podman#16281.)
COPY --from=build /opt/devlake-deps /opt/devlake-deps
ENV PYTHONPATH=/opt/devlake-deps

WORKDIR /app
# Only what the daemons import; the code stays root-owned and read-only for the app user.
COPY pyproject.toml config.py manage_projects.py blueprint_monitor.py ./
COPY modules/ ./modules/
COPY utils/ ./utils/

USER 10001:10001
VOLUME ["/var/lib/devlake-automation"]
EXPOSE 9100

# The monitor's /healthz: 200 while its last successful DevLake poll is recent. Asked by
# the monitor itself (python, not curl: the slim image has no curl), over HTTPS when
# WEB_CONFIG_FILE turns TLS on; /healthz needs no basic auth. The automation service
# overrides this with `python manage_projects.py --healthcheck` (see docker-compose.yml).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "blueprint_monitor.py", "--healthcheck"]

# Exec form: python is PID 1 and receives SIGTERM itself (both daemons handle it).
ENTRYPOINT ["python"]
CMD ["blueprint_monitor.py"]
