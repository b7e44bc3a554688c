"""Response schemas and examples of the public endpoints, for the OpenAPI document (issue 6 item 1).

Routes answer pre-rendered bytes (orjson), so FastAPI cannot infer their bodies: :func:`document`
adds to ``/openapi.json`` what each 200 answer looks like, in every format an operation offers —
the JSON envelope with its ``meta`` (licence, producer, last update, query), GeoJSON feature
collections, CSV as served (RFC 4180, CRLF), and a link to a sample for Parquet, which is binary.

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

from heatwatch.core.settings import ApiOptions, load_towns

from .catalogue import datapackage, dcat_catalogue
from .datasets import ALERT, DAILY, HOURLY, READING, TOWN_DAILY, Dataset
from .formats import LICENCE
from .respond import csv_bytes
from .routes.aggregates import EPISODES, UHI_COLUMNS
from .routes.latest import LATEST_COLUMNS
from .routes.sensors import CSV_COLUMNS as SENSOR_CSV_COLUMNS
from .routes.towns import town_json

BASE = "https://heatwatch.example.fr"  # the catalogue's links use HEATWATCH_API_PUBLIC_URL when set
JSON, GEOJSON, CSV, PARQUET, JSONLD = ("application/json", "application/geo+json", "text/csv",
                                       "application/vnd.apache.parquet", "application/ld+json")

# Schemas ---------------------------------------------------------------------------------------------

UTC_Z = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$"
_TIME = {"type": "string", "format": "date-time", "pattern": UTC_Z, "description": "UTC, ISO 8601 with Z"}
_JSON_TYPES = {"datetime": "string", "date": "string", "string": "string", "number": "number",
               "integer": "integer", "boolean": "boolean"}
_FORMATS = {"datetime": "date-time", "date": "date"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, description: str | None = None) -> dict[str, Any]:
    s: dict[str, Any] = {"type": [kind, "null"]}
    if description:
        s["description"] = description
    return s


def row_schema(ds: Dataset) -> dict[str, Any]:
    """One JSON row of a dataset: every column present, null when the value is missing."""
    props: dict[str, Any] = {}
    for c in ds.columns:
        desc = f"{c.description} ({c.unit})" if c.unit else c.description
        props[c.name] = _nullable(_JSON_TYPES[c.type], desc)
        if c.type in _FORMATS:
            props[c.name]["format"] = _FORMATS[c.type]
    props["time"] = _TIME
    return {"type": "object", "required": ds.names, "properties": props}


def _envelope(rows: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["meta", "data"],
            "properties": {"meta": _ref("Meta"), "data": {"type": "array", "items": rows}}}


def _collection(properties: dict[str, Any] | None = None) -> dict[str, Any]:
    feature = {
        "type": "object", "required": ["type", "geometry", "properties"],
        "properties": {
            "type": {"const": "Feature"},
            "id": {"type": "string"},
            "geometry": {"anyOf": [{"type": "null"}, {
                "type": "object", "required": ["type", "coordinates"],
                "properties": {"type": {"const": "Point"},
                               "coordinates": {"type": "array", "items": {"type": "number"},
                                               "minItems": 2, "maxItems": 2,
                                               "description": "longitude, latitude (WGS 84)"}}}],
                         "description": "the sensor's position; null when the registry does not place it"},
            "properties": properties or {"type": "object"},
        },
    }
    return {"type": "object", "required": ["type", "features"],
            "description": "RFC 7946 FeatureCollection; `meta` (the licence envelope) is a foreign member",
            "properties": {"type": {"const": "FeatureCollection"}, "meta": _ref("Meta"),
                           "features": {"type": "array", "items": feature}}}


_READING_VALUES = {f: _nullable("number" if f != "source" else "string") for f in READING.fields}
_TOWN = {
    "type": "object", "required": ["id", "name", "insee", "timezone", "canicule_thresholds"],
    "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "insee": {"type": "string"},
        "departement": {"type": "string"}, "timezone": {"type": "string"},
        "latitude": {"type": "number"}, "longitude": {"type": "number"},
        "canicule_thresholds": {"type": "object", "required": ["ibmn", "ibmx"],
                                "properties": {"ibmn": {"type": "number"}, "ibmx": {"type": "number"},
                                               "source": {"type": "string"}}},
        "reference_sensors": {"type": "array", "items": {"type": "string"}},
        "reference": {"type": "object", "properties": {
            "station": {"type": ["string", "null"]}, "station_name": {"type": ["string", "null"]},
            "station_source": {"type": ["string", "null"]},
            "ibm_sources": {"type": "array", "items": {"enum": ["station", "sensors"]}},
            "uhi_sources": {"type": "array", "items": {"enum": ["station", "sensors"]}}}},
    },
}
_LATEST = {
    "type": "object", "required": LATEST_COLUMNS,
    "properties": {"town": {"type": "string"}, "sensor": {"type": "string"},
                   "time": _TIME, **_READING_VALUES,
                   "status": {"enum": ["ok", "offline", "retired", "unregistered", "no_data"]}},
}
_SENSOR = {
    "type": "object", "required": ["town", "id", "status", "reference", "latest"],
    "properties": {
        "town": {"type": "string"}, "id": {"type": "string"}, "name": _nullable("string"),
        "latitude": _nullable("number"), "longitude": _nullable("number"), "site_class": _nullable("string"),
        "lcz": _nullable("string"), "height_m": _nullable("number"), "owner": _nullable("string"),
        "installed": _nullable("string"), "device_profile": _nullable("string"), "retired": _nullable("boolean"),
        "status": _LATEST["properties"]["status"], "reference": {"type": "boolean"},
        "latest": {"anyOf": [{"type": "null"}, {
            "type": "object", "required": ["time"],
            "properties": {"time": _TIME, **_READING_VALUES}}]},
    },
}
_UHI = {
    "type": "object", "required": [*UHI_COLUMNS, "time"],
    "properties": {"sensor": {"type": "string"}, "name": _nullable("string"), "site_class": _nullable("string"),
                   "latitude": _nullable("number"), "longitude": _nullable("number"),
                   "uhi": _nullable("number", "UHI intensity (°C)"),
                   "t": _nullable("number", "temperature: hourly mean, or Tn for a night (°C)"),
                   "time": _TIME},
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Meta": {
        "type": "object", "required": ["licence", "producer", "last_update", "query"],
        "description": "Etalab-2.0 attribution (licence, producer, last update) and the query that produced "
                       "the data; endpoints add their own keys (returned, next, count, thresholds...)",
        "properties": {
            "licence": {"type": "object", "required": ["id", "url"],
                        "properties": {k: {"type": "string"} for k in LICENCE}},
            "producer": {"type": "string"},
            "last_update": {"type": ["string", "null"], "format": "date-time", "pattern": UTC_Z,
                            "description": "time of the newest data point (UTC)"},
            "query": {"type": "object", "required": ["path", "params"],
                      "properties": {"path": {"type": "string"},
                                     "params": {"type": "object", "additionalProperties": {"type": "string"}}}},
            "returned": {"type": "integer", "description": "rows in this answer"},
            "next": {"type": ["string", "null"], "description": "URL of the next page; null on the last"},
            "count": {"type": "integer", "description": "all matching rows (count=true)"},
        },
    },
    "Towns": _envelope(_TOWN),
    "TownsGeoJSON": _collection(),
    "Latest": _envelope(_LATEST),
    "LatestGeoJSON": _collection(_LATEST),
    "Sensors": _envelope(_SENSOR),
    "SensorsGeoJSON": _collection(_SENSOR),
    "Readings": _envelope(row_schema(READING)),
    "Hourly": _envelope(row_schema(HOURLY)),
    "Daily": _envelope(row_schema(DAILY)),
    "Indices": _envelope(row_schema(TOWN_DAILY)),
    "CaniculeEpisodes": _envelope(row_schema(EPISODES)),
    "Alerts": _envelope(row_schema(ALERT)),
    "UhiSnapshot": _envelope(_UHI),
    "UhiGeoJSON": _collection(_UHI),
    "DcatCatalog": {"type": "object", "required": ["@context", "@type", "dcat:dataset"],
                    "properties": {"@type": {"const": "dcat:Catalog"},
                                   "dcat:dataset": {"type": "array", "items": {"type": "object"}}}},
    "DataPackage": {"type": "object", "required": ["profile", "name", "licenses", "resources"],
                    "properties": {"profile": {"const": "tabular-data-package"},
                                   "resources": {"type": "array", "items": {"type": "object"}}}},
}

# Examples --------------------------------------------------------------------------------------------

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
     "battery_v": 3.02, "battery_pct": None, "rssi": None, "source": "json", "status": "ok"},
    {"town": "vitre", "sensor": "vitre-parc-01", "time": "2024-07-20T23:45:00Z", "temperature": 22.1,
     "humidity": 66.5, "battery_v": 3.05, "battery_pct": None, "rssi": -97.0, "source": "tts", "status": "ok"},
    {"town": "vitre", "sensor": "vitre-rural-01", "time": _T, "temperature": 20.3, "humidity": 71.0,
     "battery_v": 2.98, "battery_pct": None, "rssi": None, "source": "json", "status": "ok"},
]


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
        items.append({"town": "vitre", "id": r["sensor"], **site, "status": r["status"],
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


def _readings() -> dict[str, Any]:
    t = ["2024-07-20T02:00:00Z", "2024-07-20T02:05:00Z", "2024-07-20T02:10:00Z"]
    return _series(READING, "/v1/readings", {"town": "vitre", "sensor": "vitre-centre-01",
                                             "from": "2024-07-20T02:00:00Z", "to": "2024-07-20T02:15:00Z"}, _T,
                   [[t[0], "vitre", "vitre-centre-01", 25.4, 55.1, 3.02, None, None, "json"],
                    [t[1], "vitre", "vitre-centre-01", 25.3, 55.4, 3.02, None, None, "json"],
                    [t[2], "vitre", "vitre-centre-01", 25.25, 55.6, 3.02, None, None, "json"]], next=None)


def _hourly() -> dict[str, Any]:
    return _series(HOURLY, "/v1/hourly", {"town": "vitre", "sensor": "vitre-centre-01",
                                          "from": "2024-07-20T02:00:00Z", "to": "2024-07-20T04:00:00Z"},
                   "2024-07-20T23:00:00Z",
                   [["2024-07-20T02:00:00Z", "vitre", "vitre-centre-01", 25.3, 25.1, 25.6, 55.5, 15.6, 25.3,
                     30.1, 4.6, 12, 0],
                    ["2024-07-20T03:00:00Z", "vitre", "vitre-centre-01", 24.9, 24.6, 25.2, 57.0, 15.7, 24.9,
                     29.7, 4.8, 12, 0]], next=None)


def _daily() -> dict[str, Any]:
    return _series(DAILY, "/v1/daily", {"town": "vitre", "sensor": "vitre-centre-01", "from": "2024-07-19",
                                        "to": "2024-07-21"}, "2024-07-19T22:00:00Z",
                   [["2024-07-18T22:00:00Z", "2024-07-19", "vitre", "vitre-centre-01", 21.4, 33.8, 27.2, 52.0,
                     35.1, 38.4, 2.1, 4.4, 5, True, 1.0, 0],
                    ["2024-07-19T22:00:00Z", "2024-07-20", "vitre", "vitre-centre-01", 22.0, 34.6, 27.9, 50.5,
                     35.9, 39.0, 2.3, 4.8, 6, True, 0.96, 0]], next=None)


def _indices(thresholds: dict[str, Any]) -> dict[str, Any]:
    return _series(TOWN_DAILY, "/v1/indices", {"town": "vitre", "from": "2024-07-19", "to": "2024-07-21"},
                   "2024-07-19T22:00:00Z",
                   [["2024-07-18T22:00:00Z", "2024-07-19", "vitre", 18.6, 33.4, True, "station:35281001", None,
                     19.3, 34.9, 19.2, 34.1, True, 1.7, 4.4, "sensors", "vitre-centre-01", 14, 9],
                    ["2024-07-19T22:00:00Z", "2024-07-20", "vitre", 19.2, 34.1, True, "station:35281001", None,
                     19.6, 35.0, 19.0, 33.5, True, 1.9, 4.8, "sensors", "vitre-centre-01", 14, 11]],
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
        rows.append({"sensor": sensor, "name": s["name"], "site_class": s["site_class"], "latitude": s["latitude"],
                     "longitude": s["longitude"], "uhi": uhi, "t": t, "time": "2024-07-20T02:00:00Z"})
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


def _parquet(path: str) -> dict[str, Any]:
    return {"sample": {"summary": "Apache Parquet (zstd): one row group per page read, column units and "
                                  "descriptions in the field metadata, the licence in the file metadata",
                       "externalValue": f"{BASE}{path}&format=parquet"}}


_SCHEMA_OF = {
    "/v1/towns": {JSON: "Towns", GEOJSON: "TownsGeoJSON"},
    "/v1/latest": {JSON: "Latest", GEOJSON: "LatestGeoJSON"},
    "/v1/sensors": {JSON: "Sensors", GEOJSON: "SensorsGeoJSON"},
    "/v1/readings": {JSON: "Readings"},
    "/v1/hourly": {JSON: "Hourly"},
    "/v1/daily": {JSON: "Daily"},
    "/v1/indices": {JSON: "Indices"},
    "/v1/canicule-episodes": {JSON: "CaniculeEpisodes"},
    "/v1/alerts": {JSON: "Alerts"},
    "/v1/uhi": {JSON: "UhiSnapshot", GEOJSON: "UhiGeoJSON"},
    "/v1/catalog": {JSONLD: "DcatCatalog"},
    "/v1/datapackage.json": {JSON: "DataPackage"},
}


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


_SAMPLE_QUERY = {"/v1/readings": "?town=vitre&sensor=vitre-centre-01", "/v1/hourly": "?town=vitre",
                 "/v1/daily": "?town=vitre", "/v1/indices": "?town=vitre", "/v1/canicule-episodes": "?town=vitre",
                 "/v1/alerts": "?town=vitre"}


def document(schema: dict[str, Any]) -> None:
    """Add the schemas and examples above to an OpenAPI document built by FastAPI (in place)."""
    schema.setdefault("components", {}).setdefault("schemas", {}).update(SCHEMAS)
    for path, by_media in examples().items():
        op = schema.get("paths", {}).get(path, {}).get("get")
        if op is None:
            continue
        content = op.setdefault("responses", {}).setdefault("200", {"description": "OK"}).setdefault("content", {})
        for media, example in by_media.items():
            entry = content.setdefault(media, {})
            name = _SCHEMA_OF.get(path, {}).get(media)
            if name:
                entry["schema"] = _ref(name)
            elif media == CSV:
                entry["schema"] = {"type": "string", "description": "RFC 4180, UTF-8, header row, CRLF; "
                                   "sep=; adds a byte-order mark for spreadsheets"}
            entry["example"] = example
        if PARQUET in content:
            content[PARQUET] = {"schema": {"type": "string", "contentMediaType": PARQUET},
                                "examples": _parquet(path + _SAMPLE_QUERY.get(path, "?town=vitre"))}
