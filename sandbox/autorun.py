"""Background pipeline progression for the sandbox only (tests call `run_pending` directly)."""

from __future__ import annotations

import threading

from .fake_devlake import FakeDevLake

# What DevLake's GitHub/GitLab collectors report when an upstream API keeps timing out
# (backend/helpers/pluginhelper/api/api_async_client.go, `docs/devlake-api.md` §9.4).
FLAKY_FAILURE = {"failedSubTask": "collectApiPullRequests",
                 "message": "Retry exceeded 3 times calling repos/acme/flaky/pulls. The last error was: "
                            "Get \"https://api.github.com/repos/acme/flaky/pulls\": context deadline exceeded"}


def flaky_outcome(pipeline: dict) -> str | tuple[str, dict]:
    """Deterministic demo outcome: pipelines of projects named like "*flaky*" fail, timing out upstream."""
    return ("TASK_FAILED", FLAKY_FAILURE) if "flaky" in pipeline["name"].lower() else "TASK_COMPLETED"


class AutoRunner:
    """Finishes each queued pipeline `seconds` after it entered the queue; with the fake's
    `max_parallel` set, runs at most that many at once, each for `seconds` (DevLake's queue)."""

    def __init__(self, fake: FakeDevLake, seconds: float):
        self.fake = fake
        self.seconds = seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fake-devlake-autorun", daemon=True)

    def start(self) -> AutoRunner:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        tick = max(0.05, min(0.5, self.seconds / 4))
        while not self._stop.wait(tick):
            if self.fake.max_parallel > 0:
                # PIPELINE_MAX_PARALLEL: at most that many run, each for `seconds`
                self.fake.queue_step(flaky_outcome, min_run_seconds=self.seconds)
            else:
                self.fake.run_pending(flaky_outcome, older_than=self.seconds)
