"""Small JSON state files in STATE_DIR, written atomically."""
from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn, TypeAlias

# What a state file holds, so a datetime, a set or a Path handed in by mistake is a type error,
# not a TypeError at save time. Mapping and Sequence rather than dict and list because those are
# invariant (a dict[str, int] is no dict[str, JSON]); json.dumps itself takes only dicts, lists and tuples.
JSON: TypeAlias = Mapping[str, "JSON"] | Sequence["JSON"] | str | int | float | bool | None


def atomic_write_json(path: Path, data: JSON) -> None:
    """Write via a temp file in the same directory, fsync, then rename: never a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            # dumps, not dump: json.dump streams through the pure-Python encoder,
            # several times slower on the monitor's state with thousands of rows.
            handle.write(json.dumps(data, separators=(",", ":"), sort_keys=True))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class CorruptStateFile(Exception):
    """The file existed but could not be read; it has been moved aside."""

    def __init__(self, path: Path, moved_to: Path, reason: str):
        self.path, self.moved_to, self.reason = path, moved_to, reason
        super().__init__(f"{path} was unreadable ({reason}); moved to {moved_to}")


def _no_constant(name: str) -> NoReturn:
    """NaN and Infinity are not JSON (RFC 8259); Python's parser accepts them unless told not to."""
    raise ValueError(f"{name} is not a JSON number")


def read_json(path: Path, default: object) -> object:
    """Read a state file; a missing file gives `default`. Its shape is the reader's to check
    (modules/monitoring/state.py, modules/rerun_ledger.py).

    A corrupt one is renamed to `<name>.corrupt-<epoch>` and CorruptStateFile is
    raised, so the caller can warn and go on with fresh state.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle, parse_constant=_no_constant)
    except FileNotFoundError:
        return default
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise CorruptStateFile(path, move_aside(path), str(exc)) from exc


def move_aside(path: Path) -> Path:
    """Rename an unusable state file to `<name>.corrupt-<epoch>` and return where it went (`path`
    itself if it could not be moved): torn, or parsable JSON of the wrong shape, it is kept for a
    human instead of being overwritten by the next save."""
    moved = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
    try:
        os.replace(path, moved)
    except OSError:
        return path
    return moved
