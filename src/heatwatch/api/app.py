"""The open-data API application: ``create_app(settings)``, the factory and nothing else.

The lifespan opens one pooled InfluxDB client, the sensor registry and the live hub for the life of
the process and stores them on ``app.state``; routes get them through :mod:`.deps`. The licence
middleware is :mod:`.licence`, the OpenAPI document :mod:`.openapi`.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from heatwatch.core import privacy
from heatwatch.core.logging import get_logger
from heatwatch.core.registry import Registry
from heatwatch.core.settings import ApiSettings
from heatwatch.core.trust import network_of, trust_of

from . import errors, metrics, openapi
from .cache import HotCache, ResponseCache
from .formats import XLSX_MEDIA, JSONBytes
from .licence import LicenceHeaders
from .limits import Slots, Streams
from .live import LiveHub
from .methods import HeadAndVary
from .params import query_guard
from .ratelimit import RateLimit
from .resident import Resident
from .routes import (
    admin,
    aggregates,
    archives,
    catalogue,
    codes,
    contribute,
    dashboard,
    drivers,
    governance,
    health,
    interventions,
    latest,
    layers,
    live,
    maintenance,
    maps,
    notifications,
    rankings,
    readings,
    sensors,
    towns,
)
from .sta import routes as sta
from .store import BoundedClient, Store

log = get_logger("heatwatch.api")

def open_registry(settings: ApiSettings) -> Registry | None:
    """The sensor registry, or None if it cannot be opened: the public data endpoints still work
    from InfluxDB alone (without positions), which beats failing the whole API at start."""
    try:
        return Registry.from_settings(settings)
    except Exception as exc:  # any failure here must not take the read-only API down
        log.warning("api.registry_unavailable", path=str(settings.registry_path), error=str(exc))
        return None


def _describer(registry: Callable[[], Registry | None], ttl_s: float = 30.0) -> Callable[[str], dict[str, Any]]:
    """sensor id -> its network and trust for the live events, from a copy of the registry refreshed every
    ``ttl_s`` (a live event must not wait on SQLite)."""
    state: dict[str, Any] = {"at": -ttl_s, "index": {}}

    def describe(sensor: str) -> dict[str, Any]:
        now = time.monotonic()
        if now - state["at"] >= ttl_s:
            reg = registry()
            state["index"] = {s.id: s for s in reg.list(include_retired=True)} if reg is not None else {}
            state["at"] = now
        s = state["index"].get(sensor)
        return {"network": network_of(s), "trust": trust_of(s)}

    return describe


def create_app(settings: ApiSettings) -> FastAPI:
    """The app of validated settings: every option it uses is read from ``settings`` here, once."""
    config = settings.api
    # Every public output blurs private sites on the same grid (core/privacy.py).
    privacy.configure(settings.privacy_grid_m)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A pool sized to what InfluxDB runs usefully at once (HEATWATCH_API_INFLUX_CONNECTIONS); further
        # statements wait in order. Every statement has a time bound and a row cap (BoundedClient refuses others).
        client = BoundedClient.from_settings(settings, max_connections=config.influx_connections)
        app.state.influx = client
        app.state.store = Store(client, scan_slots=config.max_concurrent_scans,
                                latest_window_s=config.latest_window_s)
        app.state.registry = open_registry(settings)
        resident = None
        if config.resident_days > 0:
            resident = Resident(app.state.store, settings.towns, days=config.resident_days,
                                check_s=config.resident_check_s, refresh_s=config.resident_refresh_s,
                                reload_s=config.resident_reload_s, latest_s=config.resident_latest_s)
            app.state.store.resident = resident
            resident.start()
        app.state.resident = resident
        # Everything allocated so far lives as long as the process: keep it out of GC passes, which
        # otherwise walk it again and again (visible as p99 spikes under load).
        gc.freeze()
        # An answer allocates thousands of short-lived objects (a row of dicts per day or sensor): with the default
        # threshold (700) the young generation was collected several times per answer.
        gc.set_threshold(50_000, 20, 20)
        # MQTT → SSE hub of /v1/live; connects in the background so a broker outage never blocks start-up.
        store: Store = app.state.store
        seeding: set[asyncio.Task[None]] = set()

        def live_connected(up: bool) -> None:
            # latest keeps the readings the feed announces; each connection starts with one scan of the window.
            epoch = store.recent.connected(up)
            if up:
                task = asyncio.get_running_loop().create_task(store.seed_recent(epoch))
                seeding.add(task)
                task.add_done_callback(seeding.discard)

        app.state.live = LiveHub(settings.mqtt, settings.towns, settings.live,
                                 describe=_describer(lambda: app.state.registry),
                                 on_reading=store.recent.live, on_connected=live_connected)
        await app.state.live.start()
        try:
            yield
        finally:
            await app.state.live.stop()
            if resident is not None:
                await resident.stop()
            for task in list(seeding):
                task.cancel()
            await client.aclose()
            if app.state.registry is not None:
                app.state.registry.close()

    app = FastAPI(
        # Every route: unknown query parameters refused, the normalised query recorded for answers and caches.
        dependencies=[Depends(query_guard)],
        title="heatwatch open data API",
        version="1.0.0",
        description=openapi.DESCRIPTION,
        lifespan=lifespan,
        default_response_class=JSONBytes,
        license_info={"name": "Licence Ouverte / Open Licence 2.0 (data)", "identifier": "etalab-2.0"},
        contact={"name": config.producer, "email": config.contact_email},
    )
    app.state.settings = settings
    app.state.base_url = settings.base_url()
    app.state.slots = Slots(config.max_expensive, config.expensive_queue, config.max_expensive_per_client,
                            config.busy_retry_after_s)
    app.state.streams = Streams(settings.live.max_clients, settings.live.max_per_client)
    cache = app.state.cache = ResponseCache(config.cache_entries)
    app.state.registry = None

    errors.install(app)
    openapi.install(app)
    for module in (health, towns, latest, sensors, readings, aggregates, archives, catalogue, codes, admin, live,
                   contribute, governance, notifications):
        app.include_router(module.router)
    for module in (maps, rankings, interventions, layers, drivers):  # decision support
        app.include_router(module.router)
    app.include_router(sta.router)  # OGC SensorThings API (docs/interop.md)
    app.include_router(maintenance.router)  # technicians' maintenance view and visit log (docs/maintenance.md)
    dashboard.install(app, settings.dashboard)  # the page at / and its static mounts

    # Added innermost first: CORS is outermost so even a 429 carries CORS headers a browser can read.
    # Files that are compressed already are sent as they are: their byte size and checksum are what the
    # catalogue says, and gzip would only cost CPU.
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=5,
                       exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, "application/vnd.apache.parquet",
                                              XLSX_MEDIA))
    app.add_middleware(HotCache, cache=cache)
    app.add_middleware(LicenceHeaders, producer=config.producer)
    app.add_middleware(HeadAndVary)  # outside the caches: a HEAD is their GET
    app.add_middleware(RateLimit, rate_per_s=config.rate_limit_per_s, burst=config.rate_limit_burst)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET", "HEAD", "OPTIONS"],
        allow_headers=["Accept", "If-None-Match", "Content-Type"],
        expose_headers=["ETag", "Link", "Last-Modified", "Retry-After", "X-Data-Licence", "X-Data-Producer",
                        "X-Total-Count", "Content-Length", "Accept-Ranges", "Content-Range"],
        max_age=3600,
    )
    metrics.install(app)  # Prometheus (api/metrics.py): outside the caches and the rate limit, so it counts them
    if config.trusted_proxies:
        # Outermost: the rate limit, the per-client caps and the logs see the client the trusted proxy names.
        # uvicorn's own middleware (what its forwarded_allow_ips configures): X-Forwarded-For read from the
        # right, up to the first address that is not a trusted proxy; X-Forwarded-Proto. Host is never used.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(config.trusted_proxies))
    return app
