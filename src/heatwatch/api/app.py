"""The open-data API application: ``create_app(settings)``.

The lifespan opens one pooled InfluxDB client and the sensor registry for the life of the
process and stores them on ``app.state``; routes get them through :mod:`.deps`.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from heatwatch.core.influx import InfluxClient
from heatwatch.core.registry import Registry
from heatwatch.core.settings import ApiSettings

from . import errors, examples
from .cache import HotCache, ResponseCache
from .formats import LICENCE, JSONBytes
from .live import LiveHub
from .ratelimit import RateLimit
from .routes import (
    admin,
    aggregates,
    catalogue,
    dashboard,
    health,
    interventions,
    latest,
    live,
    maps,
    rankings,
    readings,
    sensors,
    towns,
)
from .store import Store

log = logging.getLogger("heatwatch.api")

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


def open_registry(settings: ApiSettings) -> Registry | None:
    """The sensor registry, or None if it cannot be opened: the public data endpoints still work
    from InfluxDB alone (without positions), which beats failing the whole API at start."""
    try:
        return Registry.from_settings(settings)
    except Exception as exc:  # any failure here must not take the read-only API down
        log.warning("cannot open the sensor registry at %s: %s", settings.registry_path, exc)
        return None


class LicenceHeaders:
    """Adds the licence and producer to every /v1 answer, whatever its format: a CSV or Parquet file
    has no envelope, yet Etalab-2.0 attribution must travel with it."""

    def __init__(self, app: ASGIApp, producer: str) -> None:
        self.app = app
        self.headers = [
            (b"link", f'<{LICENCE["url"]}>; rel="license"; title="{LICENCE["id"]}"'.encode()),
            (b"x-data-licence", LICENCE["id"].encode()),
            # Percent-encoded: header values are ASCII, producer names are French.
            (b"x-data-producer", quote(producer, safe=" ,.;:()'/-").encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1"):
            await self.app(scope, receive, send)
            return

        async def send_with(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + self.headers
            await send(message)

        await self.app(scope, receive, send_with)


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["status", "code", "message"], "properties": {
        "status": {"type": "integer"}, "code": {"type": "string"}, "message": {"type": "string"}}}},
}
# Answers any endpoint may give (errors.py): documented everywhere so clients and schema checks expect them.
COMMON_ERRORS = {
    "400": "invalid parameter combination, range or page size above a cap, unsupported format",
    "404": "unknown town or resource",
    "422": "a parameter does not match its documented type or pattern",
    "429": "rate limit exceeded; see Retry-After",
    "503": "InfluxDB unavailable; see Retry-After",
}


def _document_errors(app: FastAPI) -> dict[str, Any]:
    """OpenAPI with the error envelope of errors.py in place of FastAPI's default 422 body, and the
    common error statuses on every operation."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                         license_info=app.license_info, contact=app.contact)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    ref = {"$ref": "#/components/schemas/Error"}
    for path, item in schema.get("paths", {}).items():
        for op in item.values():
            responses = op.setdefault("responses", {})
            # Routes return pre-rendered bytes (orjson), so FastAPI cannot infer their body: say JSON object.
            for code in ("200", "201", "202"):
                for media, content in responses.get(code, {}).get("content", {}).items():
                    if media in ("application/json", "application/geo+json", "application/ld+json") \
                            and content.get("schema", {}).get("type") in (None, "string"):
                        content["schema"] = {"type": "object"}
            extra = dict(COMMON_ERRORS)
            if path.startswith("/v1/admin"):
                extra |= {"401": "no bearer token", "403": "wrong token or admin disabled", "409": "conflict"}
            if path in ("/healthz", "/readyz"):
                extra.pop("429")  # probes are never rate limited
            for code, text in extra.items():
                entry = responses.setdefault(code, {"description": text})
                entry["content"] = {"application/json": {"schema": ref}}
    examples.document(schema)  # what the 200 answers of the public endpoints look like, in each format
    app.openapi_schema = schema
    return schema


def create_app(settings: ApiSettings) -> FastAPI:
    """The app of validated settings: every option it uses is read from ``settings`` here, once."""
    config = settings.api

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Enough pooled connections for concurrent requests and a few streaming exports at once.
        client = InfluxClient.from_settings(settings, max_connections=64)
        app.state.influx = client
        app.state.store = Store(client, scan_slots=config.max_concurrent_scans)
        app.state.registry = open_registry(settings)
        # Everything allocated so far lives as long as the process: keep it out of GC passes, which
        # otherwise walk it again and again (visible as p99 spikes under load).
        gc.freeze()
        # MQTT → SSE hub of /v1/live; connects in the background so a broker outage never blocks start-up.
        app.state.live = LiveHub(settings.mqtt, settings.towns, settings.live)
        await app.state.live.start()
        try:
            yield
        finally:
            await app.state.live.stop()
            await client.aclose()
            if app.state.registry is not None:
                app.state.registry.close()

    app = FastAPI(
        title="heatwatch open data API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=JSONBytes,
        license_info={"name": "Licence Ouverte / Open Licence 2.0 (data)", "identifier": "etalab-2.0"},
        contact={"name": config.producer, "email": config.contact_email},
    )
    app.state.settings = settings
    cache = app.state.cache = ResponseCache(config.cache_entries)
    app.state.registry = None

    errors.install(app)
    app.openapi = lambda: _document_errors(app)  # type: ignore[method-assign]
    for module in (health, towns, latest, sensors, readings, aggregates, catalogue, admin, live):
        app.include_router(module.router)
    for module in (maps, rankings, interventions):  # decision support: maps, rankings, intervention effects
        app.include_router(module.router)
    dashboard.install(app, settings.dashboard)  # the page at / and its static mounts

    # Added innermost first: CORS is outermost so even a 429 carries CORS headers a browser can read.
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=5)
    app.add_middleware(HotCache, cache=cache)
    app.add_middleware(LicenceHeaders, producer=config.producer)
    app.add_middleware(RateLimit, rate_per_s=config.rate_limit_per_s, burst=config.rate_limit_burst)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET", "HEAD", "OPTIONS"],
        allow_headers=["Accept", "If-None-Match", "Content-Type"],
        expose_headers=["ETag", "Link", "Last-Modified", "Retry-After", "X-Data-Licence", "X-Data-Producer",
                        "X-Total-Count"],
        max_age=3600,
    )
    return app
