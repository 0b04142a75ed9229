"""How often this daemon reran each failed pipeline, kept in STATE_DIR so MAX_RERUNS holds across runs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from utils.statefile import CorruptStateFile, atomic_write_json, move_aside, read_json

RERUN_STATE_FILE = "automation_reruns.json"


class RerunLedger:
    """How often this daemon reran each pipeline, persisted so MAX_RERUNS holds across runs.

    A rerun keeps the pipeline id (§9.1), so the count is per id.
    """

    def __init__(self, state_dir: Path, log: Any) -> None:
        self.path = Path(state_dir) / RERUN_STATE_FILE
        try:
            self.counts: dict[str, int] = _counts(read_json(self.path, {}))
        except CorruptStateFile as exc:
            log.warning("rerun_state_unreadable", error=exc.reason, moved_to=str(exc.moved_to))
            self.counts = {}
        except ValueError as exc:  # parsable, wrong shape: kept aside like a torn file
            log.warning("rerun_state_unreadable", error=str(exc), moved_to=str(move_aside(self.path)))
            self.counts = {}

    def count(self, pipeline_id: int) -> int:
        return int(self.counts.get(str(pipeline_id), 0))

    def add(self, pipeline_id: int) -> None:
        self.counts[str(pipeline_id)] = self.count(pipeline_id) + 1

    def keep_only(self, pipeline_ids: set[int]) -> None:
        """Forget pipelines that are no longer any project's latest, so the file stays small."""
        self.counts = {k: v for k, v in self.counts.items() if int(k) in pipeline_ids}

    def save(self) -> None:
        atomic_write_json(self.path, self.counts)


def _counts(data: object) -> dict[str, int]:
    """The file's {pipeline id: reruns}; ValueError for any other shape (a hand-edited or foreign
    file), which every run would otherwise trip over: a count that is no number at planning, a key
    that is no id in `keep_only`."""
    if not isinstance(data, dict) or not all(
            isinstance(k, str) and k.isascii() and k.isdigit() and type(v) is int and v >= 0
            for k, v in data.items()):
        raise ValueError(f"{RERUN_STATE_FILE} is not a mapping of pipeline id to rerun count")
    return dict(data)
