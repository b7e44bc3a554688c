"""Session-wide real services: one mosquitto and one influxd on free loopback ports.

Tests that need their own (to restart or kill them) build them with the same classes.
Each test gets its own InfluxDB database name so tests never see each other's points.
"""

from __future__ import annotations

import itertools
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from hypothesis import settings as hypothesis_settings

from heatwatch.stack.embedded import Influxd, Mosquitto

# Tests assert behaviour, never wall-clock speed: Hypothesis' default 200 ms deadline per example fails
# at random on a shared two-core machine.
hypothesis_settings.register_profile("heatwatch", deadline=None)
hypothesis_settings.load_profile("heatwatch")

_db_counter = itertools.count()


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def mosquitto(services_dir: Path) -> Iterator[Mosquitto]:
    if not shutil.which("mosquitto") and not Path("/usr/sbin/mosquitto").exists():
        pytest.fail("mosquitto is not installed: run scripts/install.sh")
    broker = Mosquitto(services_dir / "mosquitto").start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def influxd(services_dir: Path) -> Iterator[Influxd]:
    if not shutil.which("influxd") and not Path("/usr/bin/influxd").exists():
        pytest.fail("influxd is not installed: run scripts/install.sh")
    db = Influxd(services_dir / "influxd").start()
    yield db
    db.stop()


@pytest.fixture
def db_name(request: pytest.FixtureRequest) -> str:
    """A database name unique to this test."""
    return f"t{next(_db_counter)}_{abs(hash(request.node.nodeid)) % 10**8}"


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """A test that runs a command in-process configures logging for the process: put it back, or later
    tests' log lines land on the terminal, outside pytest's capture."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
