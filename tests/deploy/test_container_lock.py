"""The container test's machine lock: a second run on the same machine waits, then gives up clearly."""
from __future__ import annotations

import pytest

from tests.deploy import containers


def test_a_second_container_test_waits_for_the_first_and_gives_up_clearly(tmp_path, monkeypatch):
    monkeypatch.setattr(containers, "WORK", tmp_path)
    with containers.machine_lock():
        with pytest.raises(containers.EngineUnavailable, match="another container test held"):
            with containers.machine_lock(wait_seconds=0.2):
                pass
    with containers.machine_lock(wait_seconds=0.2):  # released when the first run ends
        pass
