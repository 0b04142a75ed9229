"""The monitor: polls DevLake's pipelines, counts each failure exactly once, serves /metrics.

Parts: fetch (what a poll reads), ledger (exactly-once rules), state (what survives a restart),
metrics (the exposition), http (the port), notifications (DevLake's signed pushes), monitor (the loop),
reasons and explain (why a failure happened), connections (DevLake's connection checks), backlog
(pending pipelines and durations), status_model, status_page and status_assets (GET / and /status.json),
healthcheck (`--healthcheck`).
"""
from modules.monitoring.http import MetricsServer
from modules.monitoring.monitor import Monitor, serve
from modules.monitoring.notifications import NotificationReceiver

__all__ = ["MetricsServer", "Monitor", "NotificationReceiver", "serve"]
