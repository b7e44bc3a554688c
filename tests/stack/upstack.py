"""``heatwatch up`` as a user runs it: the real command in a child process, in a session of its own.

A module, not conftest, because test modules cannot import conftest under importlib mode.

``up`` starts mosquitto, influxd and the heatwatch services as its children, each in a session of
its own, so stopping ``up``'s process group does not reach them. Every process of a stack is found
by its data folder instead: mosquitto and influxd name it on their command line, the heatwatch
children carry it in ``HEATWATCH_DATA_DIR``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest

from support.wait import wait_until

URL_LINE = re.compile(r"heatwatch is up: API and dashboard on (http://\S+?)/ ")
MQTT_LINE = re.compile(r"MQTT (mqtt://\S+)")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def stack_processes(data_dir: Path) -> dict[int, str]:
    """Live processes (zombies aside) belonging to the stack of ``data_dir``: pid → command line."""
    data = str(data_dir)
    marker = f"HEATWATCH_DATA_DIR={data}".encode()
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_text()
            if stat[stat.rindex(")") + 2] in "ZX":
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                environ = []
        except (OSError, ValueError):
            continue  # gone meanwhile
        if data in cmdline or marker in environ:
            found[int(entry.name)] = cmdline
    return found


def children_of(pid: int) -> dict[int, str]:
    """Live direct children of ``pid``: pid → command line."""
    out: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] in "ZX" or int(fields[1]) != pid:
                continue
            out[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
    return out


def alive(pid: int, cmdline: str) -> bool:
    """Whether ``pid`` still runs the same command (not a zombie, not a reused pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat[stat.rindex(")") + 2] in "ZX":
            return False
        now = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError):
        return False
    return now.strip() == cmdline.strip()


class Up:
    """One ``heatwatch up [args]`` child on a data folder, its stdout and stderr in files."""

    def __init__(self, data_dir: Path, args: list[str], env: Mapping[str, str], out_dir: Path) -> None:
        self.data_dir = data_dir
        self.args = args
        # Nothing from the caller's HEATWATCH_* may point up at another broker or database.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HEATWATCH_")}
        self.env.update({"HEATWATCH_DATA_DIR": str(data_dir), **env})
        out_dir.mkdir(parents=True, exist_ok=True)
        n = len(list(out_dir.glob("up-*.out")))
        self.stdout_path = out_dir / f"up-{n}.out"
        self.stderr_path = out_dir / f"up-{n}.err"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Up:
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "heatwatch", "up", *self.args], env=self.env,
                                         stdout=out, stderr=err, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def stdout(self) -> str:
        return _read(self.stdout_path)

    @property
    def stderr(self) -> str:
        return _read(self.stderr_path)

    def output(self) -> str:
        return f"--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-5000:]}"

    def wait_for(self, pattern: re.Pattern[str], timeout: float, stream: str = "stdout") -> re.Match[str]:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = pattern.search(self.stdout if stream == "stdout" else self.stderr)
            if m:
                return m
            if self.proc.poll() is not None:
                pytest.fail(f"heatwatch up exited with {self.proc.returncode} before {pattern.pattern!r}:\n"
                            f"{self.output()}")
            time.sleep(0.1)
        pytest.fail(f"heatwatch up: no {pattern.pattern!r} within {timeout} s:\n{self.output()}")

    def wait_up(self, timeout: float = 90) -> tuple[str, str]:
        """The API's base URL and the broker's URL, once ``up`` printed that everything started."""
        url = self.wait_for(URL_LINE, timeout).group(1)
        mqtt = self.wait_for(MQTT_LINE, 5).group(1)
        return url, mqtt

    def interrupt(self, timeout: float = 60) -> int:
        """Ctrl-C: SIGINT to ``up`` alone (its children are in sessions of their own); its exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"heatwatch up still running {timeout} s after SIGINT:\n{self.output()}")

    def cleanup(self) -> None:
        """Teardown: whatever a failed test left running is stopped, ``up`` first so it stops the rest."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(45)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()


def stop_stacks(ups: list[Up]) -> None:
    """Teardown of several ``up``: each is stopped, then any process still holding a data folder is killed."""
    for up in reversed(ups):
        up.cleanup()
    for data_dir in {u.data_dir for u in ups}:
        for pid in stack_processes(data_dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def wait_ready(url: str, timeout: float = 60) -> httpx.Response:
    """``/readyz`` once it answers 200: the api binds its port a moment after ``up`` printed it."""

    def ready() -> httpx.Response | None:
        try:
            r = httpx.get(f"{url}/readyz", timeout=5)
        except httpx.HTTPError:
            return None
        return r if r.status_code == 200 else None

    try:
        return wait_until(ready, timeout, f"{url}/readyz", interval=0.2)
    except TimeoutError as exc:
        pytest.fail(str(exc))
