"""Reading back what ingest stored, synchronously, for assertions."""

from __future__ import annotations

import httpx


def stored_keys(influx_url: str, db: str) -> list[tuple[str, str, int]]:
    """(town, sensor, ts_ms) of every stored reading, duplicates impossible by construction of InfluxDB keys."""
    r = httpx.post(
        f"{influx_url}/query",
        data={"db": db, "epoch": "ms",
              "q": 'SELECT "temperature", "humidity" FROM "raw"."reading" GROUP BY "town", "sensor"'},
        timeout=60,
    )
    r.raise_for_status()
    out: list[tuple[str, str, int]] = []
    for result in r.json().get("results", []):
        for s in result.get("series", []) or []:
            town, sensor = s["tags"]["town"], s["tags"]["sensor"]
            out.extend((town, sensor, row[0]) for row in s["values"])
    return out


def count_readings(influx_url: str, db: str) -> int:
    r = httpx.post(f"{influx_url}/query", data={"db": db, "q": 'SELECT COUNT("temperature") FROM "raw"."reading"'},
                   timeout=60)
    r.raise_for_status()
    series = r.json()["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0
