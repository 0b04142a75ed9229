"""The version of both daemons, read from pyproject.toml's [project] table: the one place it is written."""
from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
UNKNOWN = "unknown"


@cache
def version(pyproject: Path = PYPROJECT) -> str:
    """`[project] version`, or "unknown" when the file is missing (an image built without it)."""
    try:
        with open(pyproject, "rb") as handle:
            value = tomllib.load(handle).get("project", {}).get("version")
    except (OSError, tomllib.TOMLDecodeError):
        return UNKNOWN
    return value if isinstance(value, str) and value else UNKNOWN
