"""The exit codes of both daemons and their entry points (`docs/automation.md`)."""
from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    PARTIAL = 1    # some items failed (automation), or the --once poll failed (monitor)
    UNUSABLE = 2   # invalid configuration, DevLake unreachable, or credentials rejected
