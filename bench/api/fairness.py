"""One client cannot starve the others (issue 13): a greedy client against an ordinary one.

The api runs behind a trusted proxy (``HEATWATCH_API_TRUSTED_PROXIES=127.0.0.1``), so each client is the address
its ``X-Forwarded-For`` names, as behind nginx. Two clients:

* **greedy** (198.51.100.66): ``wrk -c 100`` asking for CSV exports of one sensor-month of hourly data, a random
  sensor and month each time, so that none is in the cache: the costliest thing an anonymous client can ask
  over and over;
* **ordinary** (198.51.100.10): a dashboard-like user, five requests a second, cycling through latest, the
  town's indices, a sensor's daily rows and a one-week CSV export.

The ordinary client's latency and success are measured alone, then during the greedy client's load, with the
protections at their defaults (rate limit 20/s with bursts of 200, 4 shared slots for maps/models/exports,
of which one client runs at most 2, a queue of 16) and with them off (no rate limit, unlimited slots), as a
contrast.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

GREEDY = "198.51.100.66"
ORDINARY = "198.51.100.10"


def _lua(sensors: int, days: int) -> str:
    today = datetime.now(UTC).date()
    months = [(today - timedelta(days=30 * k + 31)).isoformat() for k in range(max(1, days // 30 - 1))]
    ends = [(datetime.fromisoformat(m) + timedelta(days=30)).date().isoformat() for m in months]
    pairs = ", ".join(f'{{"{a}", "{b}"}}' for a, b in zip(months, ends, strict=True))
    return f"""
math.randomseed(os.time())
local spans = {{{pairs}}}
request = function()
  local s = string.format("v%03d", math.random(0, {sensors - 1}))
  local p = spans[math.random(#spans)]
  local path = "/v1/hourly?town=vitre&format=csv&tz=UTC&sensor=" .. s .. "&from=" .. p[1] .. "&to=" .. p[2]
  return wrk.format("GET", path, {{["X-Forwarded-For"] = "{GREEDY}", ["Accept-Encoding"] = "identity"}})
end
"""


def _greedy(base: str, seconds: int, sensors: int, days: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(_lua(sensors, days))
        script = f.name
    try:
        out = subprocess.run(["wrk", "-t2", "-c100", f"-d{seconds}s", "--timeout", "10s", "-s", script,
                              f"{base}/v1/hourly"], capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script)
    import re

    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    refused = int(non2xx.group(1)) if non2xx else 0
    return {"requests": total, "answered_200": total - refused, "refused_429_503": refused,
            "req_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}


def _ordinary(base: str, seconds: float, rate: float) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    week = {"from": (today - timedelta(days=8)).isoformat(), "to": (today - timedelta(days=1)).isoformat()}
    cycle = [("/v1/latest", {"town": "vitre"}), ("/v1/indices", {"town": "vitre"}),
             ("/v1/daily", {"town": "vitre", "sensor": "v007"}),
             ("/v1/hourly", {"town": "vitre", "sensor": "v011", "format": "csv", "tz": "UTC", **week})]
    latencies: list[float] = []
    codes: Counter[int] = Counter()
    headers = {"X-Forwarded-For": ORDINARY}
    t_end = time.monotonic() + seconds
    i = 0
    with httpx.Client(base_url=base, timeout=30, headers=headers) as http:
        while time.monotonic() < t_end:
            t0 = time.perf_counter()
            path, params = cycle[i % len(cycle)]
            try:
                r = http.get(path, params=params)
                codes[r.status_code] += 1
            except httpx.HTTPError:
                codes[0] += 1
            latencies.append((time.perf_counter() - t0) * 1000)
            i += 1
            time.sleep(max(0.0, 1 / rate - (time.perf_counter() - t0)))
    lat = sorted(latencies)
    return {"requests": len(lat), "ok_share": round(codes.get(200, 0) / max(1, len(lat)), 4),
            "statuses": dict(codes), "p50_ms": round(statistics.median(lat), 1) if lat else None,
            "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1) if lat else None,
            "max_ms": round(lat[-1], 1) if lat else None}


def run(start_api: Any, stop_api: Any, influx_url: str, data_dir: Path, port_of: Any, seconds: int,
        sensors: int, days: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    protections = {
        "defaults": {"HEATWATCH_API_TRUSTED_PROXIES": "127.0.0.1"},
        "off": {"HEATWATCH_API_TRUSTED_PROXIES": "127.0.0.1", "HEATWATCH_API_RATE_LIMIT_PER_S": "0",
                "HEATWATCH_API_MAX_EXPENSIVE": "10000", "HEATWATCH_API_MAX_EXPENSIVE_PER_CLIENT": "10000"},
    }
    for label, env in protections.items():
        port = port_of()
        api = start_api(influx_url, port, data_dir, True, env)
        base = f"http://127.0.0.1:{port}"
        try:
            _ordinary(base, 3, 5)  # warm the caches the ordinary client uses
            alone = _ordinary(base, seconds, 5)
            result: dict[str, Any] = {}
            thread = threading.Thread(target=lambda out=result, url=base: out.update(_greedy(url, seconds, sensors,
                                                                                              days)))
            thread.start()
            time.sleep(1)  # the greedy load is up
            during = _ordinary(base, seconds - 2, 5)
            thread.join()
            out[label] = {"ordinary_alone": alone, "ordinary_during_greedy": during, "greedy": result}
            print(f"  fairness, protections {label}: ordinary alone {alone['requests']} requests, p50 "
                  f"{alone['p50_ms']} ms p99 {alone['p99_ms']} ms ok {alone['ok_share']:.0%}; during greedy "
                  f"{during['requests']} requests, p50 {during['p50_ms']} ms p99 {during['p99_ms']} ms ok "
                  f"{during['ok_share']:.0%} {during['statuses']}; greedy {result.get('req_s')} req/s, "
                  f"{result.get('answered_200')} answered, {result.get('refused_429_503')} refused", flush=True)
        finally:
            stop_api(api)
    return out
