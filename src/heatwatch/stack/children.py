"""heatwatch services as child processes: used by ``heatwatch up``, the fault tests and the benchmarks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from .embedded import terminate


class ServiceProcess:
    """One ``heatwatch <command>`` child with its own environment and log file."""

    def __init__(self, command: list[str], env: Mapping[str, str], log_path: Path, name: str | None = None) -> None:
        self.command = command
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.name = name or command[0]
        self.proc: subprocess.Popen | None = None

    def start(self, ready_marker: str | None = None, timeout: float = 30.0) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "heatwatch", *self.command],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if ready_marker:
            try:
                self.wait_for(ready_marker, timeout, offset)
            except BaseException:
                self.stop()  # a child that never became ready is not left running behind the caller
                raise
        return self

    def wait_for(self, marker: str, timeout: float = 30.0, offset: int = 0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.log_text(offset):
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}:\n{self.log_text(offset)[-3000:]}")
            time.sleep(0.05)
        raise TimeoutError(f"{self.name}: no {marker!r} in {timeout}s:\n{self.log_text(offset)[-3000:]}")

    def log_text(self, offset: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def wait(self, timeout: float | None = None, stopping: object = None) -> int | None:
        """The exit code once the child exits (a one-shot command); None if ``timeout`` passes first or
        ``stopping()`` becomes true (the caller is being stopped)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.proc is not None:
            code = self.proc.poll()
            if code is not None:
                return code
            if (deadline is not None and time.monotonic() > deadline) or (callable(stopping) and stopping()):
                return None
            time.sleep(0.2)
        return None

    def stop(self, timeout: float = 30.0) -> int | None:
        return None if self.proc is None else terminate(self.proc, timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
