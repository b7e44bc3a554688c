"""Examples of the public endpoints' 200 answers, in every format an operation offers, for the OpenAPI
document (:mod:`.openapi`; their schemas are generated from :mod:`.schemas`): the JSON envelope with its
``meta`` (licence, producer, last update, query), GeoJSON feature collections, CSV as served (RFC 4180,
CRLF), and a link to a sample for Parquet, which is binary.

The examples are one July 2024 night in Vitré, written once per endpoint as rows and rendered into
each format by the same helpers as the answers (``csv_bytes``, the dataset columns, the catalogue
builders), so formats cannot disagree with each other or with the code. ``tests/api/test_openapi.py``
checks that every documented format has an example and that JSON examples match their schema;
schemathesis checks live answers against the same schemas.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from heatwatch.core.datasets import ALERT, DAILY, HOURLY, READING, TOWN_DAILY, Dataset
from heatwatch.core.settings import ApiOptions, load_towns

from .catalogue import datapackage, dcat_catalogue
from .formats import LICENCE
from .respond import csv_bytes
from .routes.aggregates import EPISODES, UHI_COLUMNS
from .routes.latest import LATEST_COLUMNS
from .routes.sensors import CSV_COLUMNS as SENSOR_CSV_COLUMNS
from .routes.sensors import META_FIELDS
from .routes.towns import town_json

BASE = "https://heatwatch.example.fr"  # the catalogue's links use HEATWATCH_API_PUBLIC_URL when set
JSON, GEOJSON, CSV, PARQUET, JSONLD = ("application/json", "application/geo+json", "text/csv",
                                       "application/vnd.apache.parquet", "application/ld+json")



_PRODUCER = ApiOptions().producer
_T = "2024-07-20T23:50:00Z"


def meta(path: str, params: Mapping[str, str], last_update: str | None, **extra: Any) -> dict[str, Any]:
    return {"licence": LICENCE, "producer": _PRODUCER, "last_update": last_update,
            "query": {"path": path, "params": dict(params)}, **extra}


def _csv(columns: list[str], rows: list[dict[str, Any]]) -> str:
    return csv_bytes(columns, rows, ",").decode("utf-8")


def _rows(ds: Dataset, values: list[list[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(ds.names, v, strict=True)) for v in values]


# Registry entries of the three sensors the examples show (src/heatwatch/data/sensors/vitre.csv).
_SITES = {
    "vitre-centre-01": {"name": "EXAMPLE (illustrative site) - Place du Château", "latitude": 48.12445,
                        "longitude": -1.21045, "site_class": "urban", "lcz": "LCZ 2", "height_m": 3.5,
                        "owner": "town", "installed": "2024-05-14", "device_profile": "native", "retired": False},
    "vitre-parc-01": {"name": "EXAMPLE (illustrative site) - Jardin du Parc", "latitude": 48.1195,
                      "longitude": -1.2012, "site_class": "park", "lcz": "LCZ B", "height_m": 3.0,
                      "owner": "town", "installed": "2024-05-21", "device_profile": "dragino-lht65",
                      "retired": False},
    "vitre-rural-01": {"name": "EXAMPLE (illustrative site) - Référence rurale (prairie à l'ouest de la ville)",
                       "latitude": 48.1135, "longitude": -1.252, "site_class": "rural_reference",
                       "lcz": "LCZ D", "height_m": 2.0, "owner": "town", "installed": "2024-04-30",
                       "device_profile": "native", "retired": False},
}
_LATEST_ROWS = [
    {"town": "vitre", "sensor": "vitre-centre-01", "time": _T, "temperature": 24.6, "humidity": 58.2,
     "battery_v": 3.02, "battery_pct": None, "rssi": None, "source": "json", "snr": None, "status": "ok",
     "network": "town", "trust": "official"},
    {"town": "vitre", "sensor": "vitre-parc-01", "time": "2024-07-20T23:45:00Z", "temperature": 22.1,
     "humidity": 66.5, "battery_v": 3.05, "battery_pct": None, "rssi": -97.0, "source": "tts", "snr": 7.25,
     "status": "ok", "network": "town", "trust": "official"},
    {"town": "vitre", "sensor": "vitre-rural-01", "time": _T, "temperature": 20.3, "humidity": 71.0,
     "battery_v": 2.98, "battery_pct": None, "rssi": None, "source": "json", "snr": None, "status": "ok",
     "network": "town", "trust": "official"},
]
#: What every public row about one of the example (town) sites adds (core/public.py).
_PUBLIC = {"position_blurred": False, "network": "town", "trust": "official"}


def _point(row: Mapping[str, Any], fid: str, props: dict[str, Any]) -> dict[str, Any]:
    lon, lat = row.get("longitude"), row.get("latitude")
    geometry = {"type": "Point", "coordinates": [lon, lat]} if lon is not None and lat is not None else None
    return {"type": "Feature", "id": fid, "geometry": geometry, "properties": props}


def _towns() -> dict[str, Any]:
    towns = [town_json(t) for t in load_towns().values()]
    m = meta("/v1/towns", {}, None)
    return {JSON: {"meta": m, "data": towns},
            GEOJSON: {"type": "FeatureCollection", "meta": m | {"query": {"path": "/v1/towns",
                                                                          "params": {"format": "geojson"}}},
                      "features": [_point(t, t["id"], t) for t in towns]}}


def _latest() -> dict[str, Any]:
    m = meta("/v1/latest", {"town": "vitre"}, _T, count=len(_LATEST_ROWS))
    return {JSON: {"meta": m, "data": _LATEST_ROWS},
            CSV: _csv(LATEST_COLUMNS, _LATEST_ROWS),
            GEOJSON: {"type": "FeatureCollection", "meta": m,
                      "features": [_point(_SITES[r["sensor"]], f"vitre/{r['sensor']}", r) for r in _LATEST_ROWS]}}


def _sensors() -> dict[str, Any]:
    items = []
    for r in _LATEST_ROWS:
        site = _SITES[r["sensor"]]
        # In the order the route builds them: the registry's published fields, then the public columns.
        items.append({"town": "vitre", "id": r["sensor"], **{f: site.get(f) for f in META_FIELDS}, **_PUBLIC,
                      "status": r["status"],
                      "reference": site["site_class"] == "rural_reference",
                      "latest": {"time": r["time"], **{f: r[f] for f in READING.fields}}})
    m = meta("/v1/sensors", {"town": "vitre"}, _T, returned=len(items), registry=True)
    flat = []
    for i in items:
        row = {k: v for k, v in i.items() if k != "latest"}
        row["last_time"] = i["latest"]["time"]
        row |= {f"last_{f}": i["latest"][f] for f in READING.fields}
        flat.append(row)
    return {JSON: {"meta": m, "data": items}, CSV: _csv(SENSOR_CSV_COLUMNS, flat),
            GEOJSON: {"type": "FeatureCollection", "meta": m, "features": [_point(i, i["id"], i) for i in items]}}


def _series(ds: Dataset, path: str, params: dict[str, str], last: str, values: list[list[Any]],
            **extra: Any) -> dict[str, Any]:
    rows = _rows(ds, values)
    return {JSON: {"meta": meta(path, params, last, returned=len(rows), **extra), "data": rows},
            CSV: _csv(ds.names, rows)}


#: network and trust of a town sensor's row
_TOWN_NET = ("town", "official")


def _readings() -> dict[str, Any]:
    t = ["2024-07-20T02:00:00Z", "2024-07-20T02:05:00Z", "2024-07-20T02:10:00Z"]
    return _series(READING, "/v1/readings", {"town": "vitre", "sensor": "vitre-centre-01",
                                             "from": "2024-07-20T02:00:00Z", "to": "2024-07-20T02:15:00Z"}, _T,
                   [[t[0], "vitre", "vitre-centre-01", 25.4, 55.1, 3.02, None, None, "json", None, *_TOWN_NET],
                    [t[1], "vitre", "vitre-centre-01", 25.3, 55.4, 3.02, None, None, "json", None, *_TOWN_NET],
                    [t[2], "vitre", "vitre-centre-01", 25.25, 55.6, 3.02, None, None, "json", None, *_TOWN_NET]],
                   next=None)


def _hourly() -> dict[str, Any]:
    return _series(HOURLY, "/v1/hourly", {"town": "vitre", "sensor": "vitre-centre-01",
                                          "from": "2024-07-20T02:00:00Z", "to": "2024-07-20T04:00:00Z"},
                   "2024-07-20T23:00:00Z",
                   [["2024-07-20T02:00:00Z", "vitre", "vitre-centre-01", 25.3, 25.1, 25.6, 55.5, 15.6, 25.3,
                     30.1, 4.6, 12, 0, "town", "official"],
                    ["2024-07-20T03:00:00Z", "vitre", "vitre-centre-01", 24.9, 24.6, 25.2, 57.0, 15.7, 24.9,
                     29.7, 4.8, 12, 0, "town", "official"]], next=None)


def _daily() -> dict[str, Any]:
    return _series(DAILY, "/v1/daily", {"town": "vitre", "sensor": "vitre-centre-01", "from": "2024-07-19",
                                        "to": "2024-07-21"}, "2024-07-19T22:00:00Z",
                   [["2024-07-18T22:00:00Z", "2024-07-19", "vitre", "vitre-centre-01", 21.4, 33.8, 27.2, 52.0,
                     35.1, 38.4, 2.1, 4.4, 5, True, 1.0, 0, "town", "official"],
                    ["2024-07-19T22:00:00Z", "2024-07-20", "vitre", "vitre-centre-01", 22.0, 34.6, 27.9, 50.5,
                     35.9, 39.0, 2.3, 4.8, 6, True, 0.96, 0, "town", "official"]], next=None)


def _indices(thresholds: dict[str, Any]) -> dict[str, Any]:
    return _series(TOWN_DAILY, "/v1/indices", {"town": "vitre", "from": "2024-07-19", "to": "2024-07-21"},
                   "2024-07-19T22:00:00Z",
                   [["2024-07-18T22:00:00Z", "2024-07-19", "vitre", 18.6, 33.4, True, "station:35281001", None,
                     19.3, 34.9, 19.2, 34.1, True, 1.7, 4.4, "sensors", "vitre-centre-01", 14, 1.7, 4.4,
                     "vitre-centre-01", 14, 9, 9],
                    ["2024-07-19T22:00:00Z", "2024-07-20", "vitre", 19.2, 34.1, True, "station:35281001", None,
                     19.6, 35.0, 19.0, 33.5, True, 1.9, 4.8, "sensors", "vitre-centre-01", 14, 1.9, 4.8,
                     "vitre-centre-01", 14, 11, 11]],
                   canicule_thresholds=thresholds)


def _episodes(thresholds: dict[str, Any]) -> dict[str, Any]:
    return _series(EPISODES, "/v1/canicule-episodes", {"town": "vitre", "from": "2024-06-01", "to": "2024-09-01"},
                   "2024-08-31T22:00:00Z",
                   [["2024-07-17T22:00:00Z", "vitre", "2024-07-18", "2024-07-21", 4, 19.4, 34.6, 4.8, False],
                    ["2024-08-10T22:00:00Z", "vitre", "2024-08-11", "2024-08-13", 3, 18.9, 33.9, 4.1, False]],
                   canicule_thresholds=thresholds)


def _alerts() -> dict[str, Any]:
    return _series(ALERT, "/v1/alerts", {"town": "vitre", "from": "2024-07-18", "to": "2024-07-22"},
                   "2024-07-21T08:00:00Z",
                   [["2024-07-18T14:00:00Z", "vitre", "vitre-centre-01", "temperature", 35.4, 35.0,
                     "vitre-centre-01: 35.4 °C (median of the last 30 min), threshold 35 °C", "closed",
                     1721311200000, 1721322000000],
                    ["2024-07-20T09:00:00Z", "vitre", "vitre-parc-01", "offline", 121.0, 60.0,
                     "vitre-parc-01: no reading for 121 min (last at 2024-07-20T07:59:00+00:00)", "open",
                     1721466000000, None]], next=None)


def _uhi() -> dict[str, Any]:
    rows = []
    for sensor, uhi, t in (("vitre-centre-01", 4.6, 25.3), ("vitre-parc-01", 1.9, 22.6), ("vitre-rural-01", 0.0, 20.7)):
        s = _SITES[sensor]
        rows.append({"sensor": sensor, "name": s["name"], "latitude": s["latitude"], "longitude": s["longitude"],
                     **_PUBLIC, "site_class": s["site_class"], "uhi": uhi, "t": t, "time": "2024-07-20T02:00:00Z"})
    m = meta("/v1/uhi", {"town": "vitre", "at": "2024-07-20T02:30:00Z"}, "2024-07-20T23:00:00Z",
             hour="2024-07-20T02:00:00Z", value="uhi", returned=len(rows))
    return {GEOJSON: {"type": "FeatureCollection", "meta": m, "features": [_point(r, r["sensor"], r) for r in rows]},
            JSON: {"meta": m, "data": rows}, CSV: _csv([*UHI_COLUMNS, "time"], rows)}


def _catalogue() -> tuple[dict[str, Any], dict[str, Any]]:
    """The real builders on the packaged towns, cut to one dataset (the catalogue lists ten)."""
    config = ApiOptions()
    towns = {k: v for k, v in load_towns().items() if k == "vitre"}
    coverage = {("indices", "vitre"): ("2024-05-14T22:00:00Z", "2024-09-14T22:00:00Z")}
    catalog = dcat_catalogue(BASE, towns, config, coverage)
    catalog["dcat:dataset"] = [d for d in catalog["dcat:dataset"] if d["dct:identifier"].endswith("-indices")]
    package = datapackage(BASE, towns, config)
    package["resources"] = [r for r in package["resources"] if r["name"] == "indices-vitre"]
    return catalog, package


def parquet_sample(path: str) -> dict[str, Any]:
    """Parquet is binary: its example is a link to a sample."""
    return {"sample": {"summary": "Apache Parquet (zstd): one row group per page read, column units and "
                                  "descriptions in the field metadata, the licence in the file metadata",
                       "externalValue": f"{BASE}{path}&format=parquet"}}


def xlsx_sample(path: str) -> dict[str, Any]:
    """XLSX is binary: its example is a link to a sample."""
    return {"sample": {"summary": "Office Open XML spreadsheet: the rows on a 'data' sheet (times as spreadsheet "
                                  "date-times, numbers as numbers), the licence, producer, source and each column's "
                                  "meaning and unit on an 'about' sheet",
                       "externalValue": f"{BASE}{path}&format=xlsx"}}


@cache
def examples() -> dict[str, dict[str, Any]]:
    """Path → media type → example, for the 200 answer of each public GET."""
    thresholds = load_towns()["vitre"].canicule.model_dump()
    catalog, package = _catalogue()
    return {
        "/v1/towns": _towns(), "/v1/latest": _latest(), "/v1/sensors": _sensors(),
        "/v1/readings": _readings(), "/v1/hourly": _hourly(), "/v1/daily": _daily(),
        "/v1/indices": _indices(thresholds), "/v1/canicule-episodes": _episodes(thresholds),
        "/v1/alerts": _alerts(), "/v1/uhi": _uhi(), "/v1/catalog": {JSONLD: catalog},
        "/v1/datapackage.json": {JSON: package},
    }
