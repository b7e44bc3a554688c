"""The ``heatwatch_up`` fixture: starts ``heatwatch up`` children and stops whatever is left of them on
teardown, even when a test failed half-way (``stack/upstack.py`` has the helpers)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from stack.upstack import Up, stop_stacks


@pytest.fixture
def heatwatch_up(tmp_path: Path) -> Iterator[object]:
    """Factory: ``heatwatch_up(data_dir, args, env)`` → a started :class:`Up`; all are stopped at teardown,
    then any process still holding one of their data folders is killed."""
    started: list[Up] = []

    def start(data_dir: Path, args: list[str] | None = None, env: Mapping[str, str] | None = None) -> Up:
        up = Up(data_dir, args or [], env or {}, tmp_path / "up-output").start()
        started.append(up)
        return up

    yield start
    stop_stacks(started)
