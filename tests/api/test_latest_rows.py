"""/v1/latest renders each sensor's row once per style and keeps it with the merged rows (routes/latest.py,
store.LatestView): every answer must be, byte for byte, the answer rendered as a whole (as the route did before,
:func:`whole_answer` below), and a kept row must be rendered again when its reading, its registry entry or its
status (offline once silent for ``stale_after_s``) changes, and dropped when the sensor leaves the answer."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest

from heatwatch.api.formats import envelope, feature_collection, point_feature
from heatwatch.api.respond import csv_bytes
from heatwatch.api.responses import dumps
from heatwatch.api.routes.latest import LATEST_COLUMNS, MAX_STYLES, answer, rendered_rows
from heatwatch.api.sensorinfo import public_fields, status_of
from heatwatch.api.store import LatestView, RecentReadings
from heatwatch.core.datasets import READING
from heatwatch.core.model import Sensor
from heatwatch.core.tabular import Style
from heatwatch.core.trust import network_of, trust_of

NOW = 1_751_400_000_000  # 2025-07-01, summer time in Paris
STALE_S = 3600
META = {"licence": {"id": "Etalab-2.0"}, "producer": "test", "last_update": "x", "query": {"path": "/v1/latest"}}
STYLES = [Style(), Style(tz=ZoneInfo("Europe/Paris")), Style(tz=ZoneInfo("America/Sao_Paulo")), Style(";", ","),
          Style(";", "."), Style("\t"), Style(";", ",", ZoneInfo("Europe/Paris"))]


def whole_answer(fmt: str, style: Style, rows_in: list[dict[str, Any]], index: dict[str, Sensor], town: str | None,
                 now: int) -> bytes:
    """The answer rendered as a whole, as the route did before it kept rendered rows."""
    rows = []
    for r in rows_in:
        row: dict[str, Any] = {"town": r.get("town", town), "sensor": r.get("sensor"), "time": r["time"]}
        for f in READING.fields:
            row[f] = r.get(f)
        s = index.get(row["sensor"])
        row["status"] = status_of(s, row["time"], now, STALE_S)
        row["network"], row["trust"] = network_of(s), trust_of(s)
        rows.append(row)
    for row in rows:
        row["time"] = style.time(row["time"])
    if fmt == "csv":
        return csv_bytes(LATEST_COLUMNS, rows, style.sep, style.decimal)
    if fmt == "geojson":
        feats = []
        for row in rows:
            pub = public_fields(index.get(row["sensor"]))
            feats.append(point_feature(pub["longitude"], pub["latitude"],
                                       {**row, "position_blurred": pub["position_blurred"]},
                                       f"{row['town']}/{row['sensor']}"))
        return dumps(feature_collection(feats, META))
    return dumps(envelope(META, rows))


def _reading(sensor: str, t: int, k: int, town: str = "vitre", **more: Any) -> dict[str, Any]:
    """A row as the merge gives it: values as InfluxDB answers them (24.0 arrives as 24), some missing."""
    row: dict[str, Any] = {"town": town, "sensor": sensor, "time": t, "temperature": [21.5, 24, -0.0, 33.25][k % 4],
                           "humidity": None if k % 3 == 0 else 50 + k / 10, "battery_v": 3.1, "rssi": -97 - k,
                           "source": ['json', 'senml', 'tts;"uplink"', "a,b"][k % 4]}
    row.update(more)
    return row


@pytest.fixture
def index() -> dict[str, Sensor]:
    sensors = [Sensor(id="v-ok", town="vitre", latitude=48.1234, longitude=-1.2087, site_class="urban"),
               Sensor(id="v-retired", town="vitre", latitude=48.12, longitude=-1.21, retired=True),
               Sensor(id="v-citizen", town="vitre", owner="citizen", latitude=48.1257, longitude=-1.2013,
                      name="Chez Anne", trust="confirmed"),
               Sensor(id="v-nopos", town="vitre")]
    return {s.id: s for s in sensors}


def _view(rows: list[dict[str, Any]], memo: dict[Any, Any] | None = None) -> LatestView:
    rows = sorted(rows, key=lambda r: (r["town"], r["sensor"]))
    return LatestView([(r["town"], r["sensor"]) for r in rows], rows, max((r["time"] for r in rows), default=None),
                      memo=memo if memo is not None else {})


def _rows() -> list[dict[str, Any]]:
    return [_reading("v-ok", NOW - 60_000, 0), _reading("v-retired", NOW - 30 * 86_400_000, 1),
            _reading("v-citizen", NOW - 120_017, 2), _reading("v-nopos", NOW - 2 * 3600_000, 3),
            _reading("v-unregistered", NOW - 1_234, 5), _reading("s-other", NOW - 1, 6, town="saint-omer"),
            _reading("v-nofields", NOW - 3600_000, 7, temperature=None, humidity=None, source=None)]


def _check(view: LatestView, index: dict[str, Sensor], now: int, town: str | None = "vitre") -> None:
    for fmt in ("json", "csv", "geojson"):
        for style in STYLES:
            got = answer(fmt, style, META, rendered_rows(view, fmt, style, town, index, now, STALE_S))
            assert got == whole_answer(fmt, style, view.rows, index, town, now), (fmt, style)


def test_every_answer_is_the_whole_answer_byte_for_byte(index) -> None:
    """ok, offline (silent 2 h, exactly at the limit and just past it), retired, unregistered, a citizen sensor
    (blurred, named neutrally), no position, missing fields, quotes and separators, every style, a town's rows
    and every town's; asked twice (the second time from the kept rows)."""
    rows = _rows()
    rows.append(_reading("v-limit", NOW - STALE_S * 1000, 8))
    rows.append(_reading("v-past", NOW - STALE_S * 1000 - 1, 9))
    view = _view(rows)
    for _ in range(2):
        _check(view, index, NOW, None)
    assert _view([]).last_ms is None
    _check(_view([]), index, NOW)


def test_a_kept_row_follows_its_reading_its_sensor_and_its_status(index) -> None:
    rows = _rows()
    view = _view(rows)
    _check(view, index, NOW)
    kept = {k: v for k, v in view.memo.items()}
    json_utc = next(v for k, v in kept.items() if k[0] == "json" and k[1] is None)
    before = dict(json_utc)

    # A new reading of v-ok (a new row object): its row changes, the others' kept rows are reused as they are.
    rows = [r if r["sensor"] != "v-ok" else _reading("v-ok", NOW - 1000, 1, temperature=30.5) for r in rows]
    view = _view(rows, view.memo)
    _check(view, index, NOW)
    assert json_utc[("vitre", "v-ok")] is not before[("vitre", "v-ok")]
    assert json_utc[("vitre", "v-citizen")] is before[("vitre", "v-citizen")]

    # The registry changes: v-ok retired, v-unregistered registered (new sensor objects, as Registry.list makes).
    index = {**index, "v-ok": index["v-ok"].model_copy(update={"retired": True}),
             "v-unregistered": Sensor(id="v-unregistered", town="vitre", latitude=48.1, longitude=-1.2)}
    _check(view, index, NOW)
    answer_now = answer("json", Style(), META, rendered_rows(view, "json", Style(), "vitre", index, NOW, STALE_S))
    assert b'"sensor":"v-ok"' in answer_now and b'"status":"retired"' in answer_now

    # Time passes: v-citizen (heard 2 min ago) goes offline once silent for stale_after_s, and not a ms before.
    heard = NOW - 120_017
    _check(view, index, heard + STALE_S * 1000)
    _check(view, index, heard + STALE_S * 1000 + 1)

    # A sensor erased leaves the answer (the merge drops its row; what was kept for it goes with the next merge).
    _check(_view([r for r in rows if r["sensor"] != "v-nopos"], view.memo), index, NOW)


def test_styles_kept_are_bounded(index) -> None:
    view = _view(_rows())
    for k in range(MAX_STYLES + 5):
        style = Style(tz=ZoneInfo(["Europe/Paris", "Asia/Tokyo", "UTC", "America/Lima", "Africa/Dakar", "Europe/Oslo",
                                   "Asia/Kolkata", "Pacific/Noumea", "America/Cayenne", "Indian/Reunion",
                                   "Europe/Lisbon", "Asia/Dubai", "America/Martinique", "Pacific/Tahiti",
                                   "Europe/Berlin", "Australia/Perth", "America/Montreal", "Europe/Madrid",
                                   "Asia/Seoul", "Africa/Cairo", "America/Denver"][k]))
        got = answer("json", style, META, rendered_rows(view, "json", style, "vitre", index, NOW, STALE_S))
        assert got == whole_answer("json", style, view.rows, index, "vitre", NOW)
    assert len(view.memo) == MAX_STYLES


def test_recent_readings_move_their_version_only_when_they_keep_a_row() -> None:
    recent = RecentReadings()
    v = recent.version
    recent.add("vitre", "a", {"town": "vitre", "sensor": "a", "time": 10})
    assert recent.version == v + 1
    recent.add("vitre", "a", {"town": "vitre", "sensor": "a", "time": 5})  # older: not kept
    recent.add("vitre", "a", {"town": "vitre", "sensor": "a", "time": 10})  # not newer
    assert recent.version == v + 1
    recent.add("vitre", "a", {"town": "vitre", "sensor": "a", "time": 11})
    assert recent.version == v + 2
