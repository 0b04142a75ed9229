"""The fake's whole in-memory state, shared by the HTTP layer and the Python API."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

from .common import to_utc
from .pipelines import PipelineStore
from .projects import ProjectStore
from .store import PluginStore


class State:
    """Every read or write of the stores happens under `lock` (one request at a time inside it)."""

    def __init__(self, clock: Callable[[], datetime] | None = None, remote_page_size: int = 100):
        self.clock = clock or (lambda: datetime.now(UTC))
        self.remote_page_size = remote_page_size
        self.lock = threading.RLock()
        self.plugins = PluginStore(self)
        self.projects = ProjectStore(self)
        self.pipelines = PipelineStore(self)
        self.notifier = None  # a sandbox.notifier.Notifier when NOTIFICATION_ENDPOINT is "set"

    def pipeline_changed(self, pipeline: dict) -> None:
        """NotifyExternal: tell the notification endpoint, if one is configured."""
        if self.notifier is not None:
            blueprint = self.projects.blueprints.get(pipeline["blueprintId"]) or {}
            self.notifier.pipeline_changed(pipeline, blueprint.get("projectName") or "")

    def now(self) -> datetime:
        """The fake's clock as an aware UTC datetime, without sub-millisecond noise."""
        now = to_utc(self.clock())
        return now.replace(microsecond=now.microsecond // 1000 * 1000)
