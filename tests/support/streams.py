"""Streams of test readings whose InfluxDB keys are known in advance."""

from __future__ import annotations

import json
import time


def native_stream(n_sensors: int, per_sensor: int, *, base_ms: int | None = None) -> list[tuple[str, bytes, tuple]]:
    """(topic, payload, key) for readings of sensors in both towns; keys are what InfluxDB identifies points by."""
    base = base_ms or (int(time.time() * 1000) - 24 * 3600 * 1000)
    out = []
    for i in range(per_sensor):
        for k in range(n_sensors):
            town = "vitre" if k % 2 == 0 else "saint-omer"
            sensor = f"s{k:04d}"
            ts = base + i * 60_000 + k
            body = {"ts": ts, "temperature": round(15 + (k % 10) + i * 0.01, 2), "humidity": 50.0 + (i % 40)}
            out.append((f"heat/{town}/{sensor}", json.dumps(body).encode(), (town, sensor, ts)))
    return out
