"""What the api's Prometheus middleware costs per request (api/metrics.py), against the same trivial ASGI answer
without it, measured in the same run: ``.venv/bin/python -m bench.api.metrics [-n N] [--repeat R]``.

Two paths: a routed request (its template read from the scope) and one answered before routing (a hot-cache hit,
its template from the middleware's path memory). No network, no database: only the middleware's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from types import SimpleNamespace
from typing import Any

from heatwatch.api.metrics import ApiMetrics, Instrument

_ROUTE = SimpleNamespace(path_format="/v1/towns/{town}")


def _app(routed: bool) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if routed:
            scope["route"] = _ROUTE
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


async def _send(_message: Any) -> None:
    return None


async def _receive() -> dict[str, Any]:
    return {}


async def _per_request(app: Any, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        await app({"type": "http", "method": "GET", "path": "/v1/towns/vitre"}, _receive, _send)
    return (time.perf_counter() - t0) / n


async def main(n: int, repeat: int) -> None:
    for routed in (True, False):
        bare = _app(routed)
        instrumented = Instrument(bare, ApiMetrics(SimpleNamespace()), routes=[])
        if not routed:  # as after the first answer of a hot-cache entry, which was routed
            instrumented._paths[("GET", "/v1/towns/vitre")] = "/v1/towns/{town}"
        base = min([await _per_request(bare, n) for _ in range(repeat)])
        with_metrics = min([await _per_request(instrumented, n) for _ in range(repeat)])
        print(f"{'routed' if routed else 'before routing'}: {base * 1e6:.2f} µs bare, {with_metrics * 1e6:.2f} µs "
              f"with metrics: +{(with_metrics - base) * 1e6:.2f} µs per request (best of {repeat} × {n})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.repeat))
