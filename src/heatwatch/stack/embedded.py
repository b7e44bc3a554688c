"""mosquitto and influxd as child processes: the local stack, the tests and the benchmarks.

Each service gets loopback ports chosen free at start, a data folder of its own and its log
in that folder. Restarting reuses the same ports and data, which is what the fault tests and
a second ``heatwatch up`` need.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

# Limits of a persistent QoS 1 subscriber's queue: far above mosquitto's defaults (20 inflight and 1000
# queued, beyond which it silently drops), yet bounded, sized for a 72-hour ingester outage of 500 sensors
# (the arithmetic is in deploy/mosquitto.conf, which has the same values).
MOSQUITTO_LIMITS = """\
max_inflight_messages 0
max_queued_messages 500000
max_queued_bytes 536870912
max_packet_size 1048576
persistent_client_expiration 14d
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}; log {log}:\n{_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} not open after {timeout}s; log {log}:\n{_tail(log)}")


def terminate(proc: subprocess.Popen, timeout: float) -> int:
    """SIGTERM, then SIGKILL if the process has not exited within ``timeout``; its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


@dataclass
class _Child:
    data_dir: Path
    proc: subprocess.Popen | None = field(default=None, init=False)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _spawn(self, argv: list[str], log_name: str) -> Path:
        log = self.data_dir / log_name
        with open(log, "ab") as out:
            # New session: Ctrl-C in the terminal reaches heatwatch, which stops the children in order.
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return log

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is not None:
            terminate(self.proc, timeout)

    def kill(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()


@dataclass
class Mosquitto(_Child):
    port: int = 0
    extra_conf: str = ""
    #: password file and ACL file: every client authenticates and is held to the ACL (``heatwatch up``)
    passwd: Path | None = None
    acl: Path | None = None

    def __post_init__(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> Mosquitto:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = self.data_dir / "mosquitto.conf"
        # Started as root, mosquitto drops to the `mosquitto` user unless told to stay the owner
        # of the data folder, and then could not write its persistence file there.
        owner = _user_name(self.data_dir)
        conf.write_text(
            f"user {owner}\n"
            f"listener {self.port} 127.0.0.1\n"
            + (f"allow_anonymous false\npassword_file {self.passwd}\nacl_file {self.acl}\n"
               if self.passwd is not None else "allow_anonymous true\n")
            +
            "persistence true\n"
            f"persistence_location {self.data_dir}/\n"
            "autosave_interval 1\n"
            "log_dest stdout\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            + MOSQUITTO_LIMITS
            + self.extra_conf
        )
        log = self._spawn([binary, "-c", str(conf)], "mosquitto.log")
        assert self.proc is not None
        _wait_port(self.port, timeout, self.proc, log)
        return self


@dataclass
class Influxd(_Child):
    port: int = 0
    rpc_port: int = 0
    #: HTTP authentication on: every request needs a user (``heatwatch up``, the least-privilege tests)
    auth: bool = False

    def __post_init__(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.rpc_port = self.rpc_port or free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Influxd:
        binary = shutil.which("influxd") or "/usr/bin/influxd"
        d = self.data_dir
        conf = d / "influxdb.conf"
        conf.write_text(
            "reporting-enabled = false\n"
            f'bind-address = "127.0.0.1:{self.rpc_port}"\n'
            f'[meta]\n  dir = "{d}/meta"\n'
            f'[data]\n  dir = "{d}/data"\n  wal-dir = "{d}/wal"\n  query-log-enabled = false\n'
            '  cache-max-memory-size = "1g"\n  max-values-per-tag = 0\n'
            "[coordinator]\n  log-queries-after = \"0s\"\n"
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
            f"  auth-enabled = {'true' if self.auth else 'false'}\n"
            "  max-body-size = 0\n"
            "[monitor]\n  store-enabled = false\n"
            "[continuous_queries]\n  enabled = false\n"
            "[logging]\n  level = \"warn\"\n"
        )
        log = self._spawn([binary, "-config", str(conf)], "influxd.log")
        assert self.proc is not None
        _wait_port(self.port, timeout, self.proc, log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/ping", timeout=1).status_code == 204:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"influxd not answering /ping; log:\n{_tail(log)}")


def _user_name(path: Path) -> str:
    import pwd

    try:
        return pwd.getpwuid(os.stat(path).st_uid).pw_name
    except KeyError:
        return "root"
