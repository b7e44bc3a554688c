"""Prometheus metrics of the api (docs/operations.md, "Monitoring"), in a registry of the app's own.

* :class:`Instrument` — ASGI middleware timing every request under its **route template** (``/v1/sensors/{id}``,
  never the raw path: a made-up id must not create a time series), counting responses by status class. Requests
  that a middleware answers before routing (the hot cache, the rate limit) are matched to their route the way the
  router would, once per path (bounded).
* :class:`_StateCollector` — read at scrape time from what the app keeps anyway (the live hub and its open streams,
  the response cache, the expensive slots): nothing is counted twice, nothing costs a lock per request.
* :func:`serve_metrics` — ``/metrics`` on a listener of its own (``HEATWATCH_API_METRICS_HOST``/``_PORT``, loopback
  by default), never on the public port: the public reaches the api through the reverse proxy, and route
  timings and refusal counts are for operators (SECURITY.md).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator
from threading import Thread
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from heatwatch.core.logging import get_logger

from .ratelimit import RATE_LIMITED

log = get_logger("heatwatch.api")

#: Seconds; from a hot-cache hit (sub-millisecond) to a large export.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Label of a request no route matches (404s of made-up paths share it).
UNMATCHED = "unmatched"
#: Endless streams: their duration is how long a browser stayed, not latency; counted by the live-clients gauge.
UNTIMED = frozenset({"/v1/live"})
#: Methods kept as label values; any other (a client may send any token) is "other", so labels stay bounded.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def status_class(status: int) -> str:
    return f"{status // 100}xx"


def template_of(route: Any) -> str:
    """The path template of a Starlette/FastAPI route (``/static/{path}`` for a mount)."""
    if isinstance(route, Mount):
        return (route.path or "") + "/{path}"
    return getattr(route, "path_format", None) or getattr(route, "path", None) or UNMATCHED


class ApiMetrics:
    """The api's metrics; ``app.state.metrics``. ``state``: the app's state, read at scrape time."""

    def __init__(self, state: Any) -> None:
        self.registry = r = CollectorRegistry()
        self.duration = Histogram("heatwatch_api_request_duration_seconds",
                                  "time to answer a request (the whole body), by route template", ["method", "route"],
                                  buckets=BUCKETS, registry=r)
        self.responses = Counter("heatwatch_api_responses", "responses by route template and status class (2xx…5xx)",
                                 ["method", "route", "status"], registry=r)
        self.in_flight = Gauge("heatwatch_api_requests_in_flight", "requests being answered", registry=r)
        self.rate_limited = Counter("heatwatch_api_rate_limited",
                                    "requests refused by the per-client rate limit (429)", registry=r)
        r.register(_StateCollector(state))


class _StateCollector(Collector):
    def __init__(self, state: Any) -> None:
        self.state = state

    def collect(self) -> Iterator[Any]:
        st = self.state
        streams = getattr(st, "streams", None)
        if streams is not None:
            yield GaugeMetricFamily("heatwatch_api_live_clients", "open /v1/live (server-sent events) streams",
                                    value=streams.open)
            refused = CounterMetricFamily("heatwatch_api_live_refused", "/v1/live streams refused, by reason",
                                          labels=["reason"])
            refused.add_metric(["per_client"], streams.refused_per_client)
            refused.add_metric(["capacity"], streams.refused_capacity)
            yield refused
        hub = getattr(st, "live", None)
        if hub is not None:
            yield GaugeMetricFamily("heatwatch_api_live_mqtt_connected",
                                    "1 while the live hub's MQTT subscription is up", value=int(bool(hub.connected)))
            s = hub.stats
            events = CounterMetricFamily("heatwatch_api_live_messages",
                                         "MQTT messages the live hub received, by outcome",
                                         labels=["outcome"])
            events.add_metric(["accepted"], s.messages - s.rejected)
            events.add_metric(["rejected"], s.rejected)
            yield events
            yield CounterMetricFamily("heatwatch_api_live_clients_cut", "live clients cut off for reading too slowly",
                                      value=s.clients_cut)
        cache = getattr(st, "cache", None)
        if cache is not None:
            lookups = CounterMetricFamily(
                "heatwatch_api_cache_lookups",
                "server cache lookups: layer hot (finished answers, before routing) or response (built answers); "
                "result hit, stale (served while one refresh runs), wait (joined a build in flight) or miss",
                labels=["layer", "result"])
            lookups.add_metric(["hot", "hit"], cache.hot_hits)
            lookups.add_metric(["hot", "miss"], cache.hot_misses)
            for result in ("hit", "stale", "wait", "miss"):
                lookups.add_metric(["response", result], cache.counts[result])
            yield lookups
            yield GaugeMetricFamily("heatwatch_api_cache_entries", "answers held by the response cache",
                                    value=len(cache))
        slots = getattr(st, "slots", None)
        if slots is not None:
            yield GaugeMetricFamily("heatwatch_api_expensive_active",
                                    "maps, models, effects, rankings and exports running", value=slots.active)
            yield GaugeMetricFamily("heatwatch_api_expensive_waiting", "expensive requests waiting for a slot",
                                    value=slots.waiting)
            yield CounterMetricFamily("heatwatch_api_expensive_waits",
                                      "expensive requests that had to wait for a slot", value=slots.waits)
            yield CounterMetricFamily("heatwatch_api_expensive_wait_seconds",
                                      "time expensive requests spent waiting for a slot", value=slots.wait_seconds)
            refused = CounterMetricFamily("heatwatch_api_expensive_refused",
                                          "expensive requests refused: per_client (429) or busy (503)",
                                          labels=["reason"])
            refused.add_metric(["per_client"], slots.refused_per_client)
            refused.add_metric(["busy"], slots.refused_busy)
            yield refused


class Instrument:
    """Times and counts every HTTP request under its route template (see the module doc)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics, routes: Any, max_paths: int = 8192) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes  # the app's router.routes: read at request time, so routers added later count
        self.max_paths = max_paths
        self._paths: OrderedDict[tuple[str, str], str] = OrderedDict()
        # (method, route, status class) -> the label children it counts into: ``labels()`` builds and checks its
        # label tuple and takes a lock on each call; the children are the same objects every time. Bounded as the
        # routes are (templates, not paths).
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def _counted(self, method: str, route: str, status: str) -> tuple[Any, Any]:
        key = (method, route, status)
        hit = self._children.get(key)
        if hit is None:
            m = self.metrics
            # No duration series for an untimed route (not even an empty one).
            hit = (m.responses.labels(method, route, status),
                   None if route in UNTIMED else m.duration.labels(method, route))
            if len(self._children) < 4 * self.max_paths:
                self._children[key] = hit
        return hit

    def _route(self, method: str, scope: Scope) -> str:
        key = (method, scope["path"])
        route = scope.get("route")
        if route is not None:
            hit = template_of(route)
        else:
            # Answered before routing (hot cache, rate limit, CORS preflight), or no route matched. A hot-cache hit
            # was routed when it was first answered, so it is found here; anything else is matched once.
            hit = self._paths.get(key)
            if hit is None:
                hit = _match(self.routes, scope)
        self._paths[key] = hit
        self._paths.move_to_end(key)
        while len(self._paths) > self.max_paths:
            self._paths.popitem(last=False)
        return hit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        m = self.metrics
        method = scope["method"] if scope["method"] in METHODS else "other"
        status = 500  # what the client gets if the app fails before answering
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        m.in_flight.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            m.in_flight.dec()
            route = self._route(method, scope)
            responses, duration = self._counted(method, route, status_class(status))
            responses.inc()
            if scope.get(RATE_LIMITED):
                m.rate_limited.inc()
            if duration is not None:
                duration.observe(time.perf_counter() - started)


def _match(routes: Any, scope: Scope) -> str:
    """The template of the route the router would pick for ``scope`` (a route of the wrong method if no other)."""
    partial = UNMATCHED
    for candidate in routes:
        inner = getattr(candidate, "original_router", None)  # FastAPI's included router: look at its routes
        if inner is not None:
            found = _match(inner.routes, scope)
            if found != UNMATCHED:
                return found
            continue
        match, _ = candidate.matches(scope)
        if match == Match.FULL:
            return template_of(candidate)
        if match == Match.PARTIAL and partial == UNMATCHED:
            partial = template_of(candidate)
    return partial


def install(app: Any) -> ApiMetrics:
    """Metrics for ``app``: its registry on ``app.state.metrics``, the timing middleware added (outermost of those
    added so far: call it last, so rate-limited and cached answers are counted too)."""
    metrics = app.state.metrics = ApiMetrics(app.state)
    app.add_middleware(Instrument, metrics=metrics, routes=app.router.routes)
    return metrics


def serve_metrics(metrics: ApiMetrics, host: str, port: int) -> tuple[WSGIServer, Thread]:
    """``/metrics`` on its own listener (a thread: it answers even when the event loop is busy, which is when
    one wants to look)."""
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    log.info("api.metrics_listening", host=host, port=server.server_port)
    return server, thread
