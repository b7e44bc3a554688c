from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from heatwatch.stack.children import ServiceProcess
from heatwatch.stack.embedded import free_port

_ids = itertools.count()


@pytest.fixture
def ingest_env(mosquitto, influxd, db_name, tmp_path: Path) -> dict[str, str]:
    return {
        "HEATWATCH_MQTT_URL": mosquitto.url,
        "HEATWATCH_INFLUX_URL": influxd.url,
        "HEATWATCH_INFLUX_DB": db_name,
        "HEATWATCH_DATA_DIR": str(tmp_path / "var"),
        "HEATWATCH_MQTT_CLIENT_ID": f"ingest-test-{next(_ids)}-{db_name}",
        "HEATWATCH_BATCH_SIZE": "1000",
        "HEATWATCH_BATCH_INTERVAL_S": "0.2",
        "HEATWATCH_METRICS_PORT": str(free_port()),
    }


@pytest.fixture
def ingester(ingest_env: dict[str, str], tmp_path: Path) -> Iterator[ServiceProcess]:
    proc = ServiceProcess(["ingest"], ingest_env, tmp_path / "ingest.log", name="ingest")
    proc.start(ready_marker="mqtt.subscribed")
    yield proc
    proc.stop()
