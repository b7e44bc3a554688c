"""``heatwatch up`` interrupted while it starts (issue 2, item 5): the real command, as a user runs it.

The demo itself, its Ctrl-C and a second ``up`` on the same folder are ``test_demo.py``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from heatwatch.stack.embedded import free_port
from stack.upstack import alive, children_of, stack_processes


def assert_all_gone(data_dir: Path, children: dict[int, str]) -> None:
    left = {pid: cmd for pid, cmd in children.items() if alive(pid, cmd)}
    assert left == {}, f"children of heatwatch up still running: {left}"
    others = stack_processes(data_dir)
    assert others == {}, f"processes still using {data_dir}: {others}"


def test_ctrl_c_during_start_up_leaves_nothing_running(heatwatch_up, tmp_path):
    """Interrupted while it waits for the ingester, ``up`` still stops what it had started.

    A broker that never answers keeps the start-up waiting for the ingester's subscription, with the
    embedded influxd and the ingester already running: that is when the Ctrl-C comes.
    """
    data = (tmp_path / "var").resolve()
    nobody = free_port()  # nothing listens there
    up = heatwatch_up(data, [], {"HEATWATCH_MQTT_URL": f"mqtt://127.0.0.1:{nobody}",
                                 "HEATWATCH_API_PORT": str(free_port())})
    deadline = time.monotonic() + 60
    children: dict[int, str] = {}
    while time.monotonic() < deadline:
        children = children_of(up.pid)
        cmds = " ".join(children.values())
        if "influxd" in cmds and "heatwatch ingest" in cmds:
            break
        assert up.proc.poll() is None, up.output()
        time.sleep(0.1)
    else:
        pytest.fail(f"influxd and the ingester never both ran under up: {children}\n{up.output()}")
    assert "heatwatch is up" not in up.stdout  # still starting

    code = up.interrupt()
    assert_all_gone(data, children)
    assert code == 130, up.output()  # interrupted, as any command stopped by Ctrl-C
    assert "up.stopped" in up.stderr
