"""The OpenAPI document: what FastAPI infers from the routes, completed with what it cannot infer.

Routes answer pre-rendered bytes, so FastAPI knows neither their bodies nor the error envelope of
:mod:`.errors`. :func:`document` adds the response schemas generated from the models of :mod:`.schemas`,
the error envelope on every operation (in place of FastAPI's default 422 body), and an example of each
public 200 answer in every format it offers (:mod:`.examples`).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from . import examples, schemas
from .formats import XLSX_MEDIA
from .routes.aggregates import EPISODES

DESCRIPTION = """
Open data on urban heat islands measured by low-cost sensor networks in Vitré (35) and
Saint-Omer (62): latest readings, raw readings, hourly and daily aggregates per sensor, town daily
indices (UHI, IBMn/IBMx, canicule days, tropical nights), canicule episodes, alerts and UHI maps.

* Data under the **Licence Ouverte / Open Licence 2.0 (Etalab-2.0)**: every answer names the licence,
  the producer and the last update (in the `meta` envelope for JSON/GeoJSON, in `Link` and
  `Last-Modified` headers for CSV and Parquet).
* Times are UTC with `Z`. `tz` (default `Europe/Paris`) sets how naive `from`/`to` and local days are read.
* Formats by `format=` or `Accept`: JSON, CSV (RFC 4180; `sep=;` for French spreadsheets), GeoJSON, Parquet.
* Live: `GET /v1/live?town=` is a server-sent events stream (`text/event-stream`) of the latest readings
  (at most one event per sensor every few seconds) and of alerts, with `Last-Event-ID` replay of missed
  alerts. It never ends, so it is not listed among the operations below. The dashboard at `/` uses it.
* Errors are `{"error": {"status", "code", "message"}}`; 429 comes with `Retry-After`, 503 when the
  database is unreachable.
"""

# Answers any endpoint may give (errors.py): documented everywhere so clients and schema checks expect them.
COMMON_ERRORS = {
    "400": "a query parameter this endpoint does not take (unknown_parameter) or given twice, an invalid parameter "
           "combination, range or page size above a cap, unsupported format",
    "404": "unknown town or resource",
    "422": "a parameter does not match its documented type or pattern",
    "429": "rate limit exceeded, or this client's share of maps/models/exports or live streams taken; see Retry-After",
    "503": "InfluxDB unavailable, or the shared slots for maps, models and exports busy; see Retry-After",
}
JSON, GEOJSON, CSV, PARQUET, JSONLD = examples.JSON, examples.GEOJSON, examples.CSV, examples.PARQUET, examples.JSONLD
# Which generated schema each public 200 answer follows, per media type.
SCHEMA_OF = {
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
_SAMPLE_QUERY = {"/v1/readings": "?town=vitre&sensor=vitre-centre-01", "/v1/hourly": "?town=vitre",
                 "/v1/daily": "?town=vitre", "/v1/indices": "?town=vitre", "/v1/canicule-episodes": "?town=vitre",
                 "/v1/alerts": "?town=vitre"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(schema: dict[str, Any]) -> None:
    """The error envelope on every operation, in place of FastAPI's 422 body."""
    components = schema["components"]["schemas"]
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    for path, item in schema.get("paths", {}).items():
        for op in item.values():
            responses = op.setdefault("responses", {})
            # Routes return pre-rendered bytes (orjson), so FastAPI cannot infer their body: say JSON object.
            for code in ("200", "201", "202"):
                for media, content in responses.get(code, {}).get("content", {}).items():
                    if media in (JSON, GEOJSON, JSONLD) and content.get("schema", {}).get("type") in (None, "string"):
                        content["schema"] = {"type": "object"}
            extra = dict(COMMON_ERRORS)
            if path.startswith("/v1/admin"):
                extra |= {"401": "no bearer token", "403": "wrong token or admin disabled", "409": "conflict"}
            if path in ("/healthz", "/readyz"):
                extra.pop("429")  # probes are never rate limited
            for code, text in extra.items():
                entry = responses.setdefault(code, {"description": text})
                entry["content"] = {JSON: {"schema": _ref("Error")}}


def _answers(schema: dict[str, Any]) -> None:
    """What the 200 answers of the public endpoints look like, in each format: schema and example."""
    for path, by_media in examples.examples().items():
        op = schema.get("paths", {}).get(path, {}).get("get")
        if op is None:
            continue
        content = op.setdefault("responses", {}).setdefault("200", {"description": "OK"}).setdefault("content", {})
        for media, example in by_media.items():
            entry = content.setdefault(media, {})
            name = SCHEMA_OF.get(path, {}).get(media)
            if name:
                entry["schema"] = _ref(name)
            elif media == CSV:
                entry["schema"] = {"type": "string", "description": "RFC 4180, UTF-8, header row, CRLF; "
                                   "sep=; adds a byte-order mark for spreadsheets"}
            entry["example"] = example
        if PARQUET in content:
            content[PARQUET] = {"schema": {"type": "string", "contentMediaType": PARQUET},
                                "examples": examples.parquet_sample(path + _SAMPLE_QUERY.get(path, "?town=vitre"))}
        if XLSX_MEDIA in content:
            content[XLSX_MEDIA] = {"schema": {"type": "string", "contentMediaType": XLSX_MEDIA},
                                   "examples": examples.xlsx_sample(path + _SAMPLE_QUERY.get(path, "?town=vitre"))}


def document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, built once."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                         license_info=app.license_info, contact=app.contact)
    schema.setdefault("components", {}).setdefault("schemas", {}).update(schemas.components(EPISODES))
    _errors(schema)
    _answers(schema)
    app.openapi_schema = schema
    return schema


def install(app: FastAPI) -> None:
    app.openapi = lambda: document(app)  # type: ignore[method-assign]
