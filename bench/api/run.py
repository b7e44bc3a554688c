"""API benchmark (issue 6 item 7): a year of aggregates for 200 sensors, then load.

    .venv/bin/python -m bench.api                    # full run: 200 sensors x 365 days
    .venv/bin/python -m bench.api --days 30 -d 5     # quick look

Starts its own influxd (heatwatch.stack.embedded), loads one year of ``hourly`` and ``daily`` for
200 sensors in Vitré (plus 20 in Saint-Omer), ``town_daily`` for both towns and ``--reading-days`` (60) of
10-minute readings (1.7 M; before issue 13 the bench loaded two days, which hid what an unbounded latest
query costs as the history grows), then runs the API under uvicorn in a separate process (rate limit off; the default
server-side cache on: 5 s for latest, 60 s for aggregates) and measures:

* ``wrk -c 100`` (Debian's wrk, 2 threads) against ``/v1/latest?town=vitre`` and
  ``/v1/indices?town=vitre``: req/s, p50, p99;
* the same with the server cache off: what InfluxDB round trips cost;
* a streamed CSV export of a year of hourly data for 200 sensors (1.75 M rows): rows/s, and the API
  process's RSS sampled every 50 ms through the export (it must stay flat: bounded memory);
* the same export for one month, for comparison of peak RSS;
* fairness (``bench/api/fairness.py``): an ordinary client's latency and success alone and while a greedy
  client hammers uncacheable CSV exports, with the protections at their defaults and off.

Results: a table on stdout and JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from heatwatch.core.influx import AGG_RP, RAW_RP, InfluxClient
from heatwatch.stack.embedded import Influxd, Mosquitto, free_port

try:  # the code before the last-value store (a before/after run from an older checkout) has none
    from heatwatch.analytics.last import LastReadings
except ImportError:  # pragma: no cover
    LastReadings = None  # type: ignore[assignment,misc]

RESULTS = Path(__file__).resolve().parents[1] / "results"
DB = "heatwatch"


# --- data --------------------------------------------------------------------------------------------


def _hourly_lines(town: str, sensors: list[str], start_ms: int, hours: int):
    for h in range(hours):
        ts = start_ms + h * 3600_000
        base = 15.0 + 8.0 * ((h % 24) / 24) + ((h // 24) % 365) / 40
        for k, s in enumerate(sensors):
            t = round(base + (k % 7) * 0.3, 2)
            yield (f"hourly,town={town},sensor={s} t_mean={t},t_min={t - 0.5},t_max={t + 0.5},rh_mean=55.0,"
                   f"dewpoint=10.5,heat_index={t},humidex={t + 1.0},uhi={(k % 7) * 0.3},n=6i,qc=0i {ts}")


def _daily_lines(town: str, sensors: list[str], start_ms: int, days: int):
    for d in range(days):
        ts = start_ms + d * 86_400_000
        for k, s in enumerate(sensors):
            hot = d % 50 < 5 and k % 3 == 0  # a few tropical nights, so the town's count is not always 0
            yield (f"daily,town={town},sensor={s} tn={(20.5 if hot else 12.0) + k % 5},tx={24.0 + k % 5},"
                   f"t_mean=18.0,rh_mean=55.0,heat_index_max=25.0,humidex_max=27.0,uhi_mean=1.1,uhi_night_max=2.2,"
                   f"hours_ge_30=0i,tropical_night={'true' if hot else 'false'},coverage=0.98,qc=0i {ts}")
        # The day's tropical nights as analytics stores them with the town's indices (code before that stored
        # none and counted them from daily at every request; it ignores these fields).
        nights = sum(1 for k in range(len(sensors)) if d % 50 < 5 and k % 3 == 0)
        yield (f'town_daily,town={town} ibmn=15.0,ibmx=26.0,canicule={"true" if d % 50 < 3 else "false"},'
               f'uhi_mean=1.1,uhi_max=2.9,hottest_sensor="{sensors[0]}",sensors_ok={len(sensors)}i,'
               f'tropical_nights={nights}i,tropical_nights_town={nights}i {ts}')


def _readings(town: str, sensors: list[str], end_ms: int, days: int = 2):
    for i in range(days * 144):  # every 10 minutes
        ts = end_ms - i * 600_000
        for s in sensors:
            yield f"reading,town={town},sensor={s} temperature=21.5,humidity=50.0,battery_v=3.1 {ts}"


async def _write_all(url: str, gen, rp: str, batch: int = 10000, writers: int = 2) -> int:
    queue: asyncio.Queue[list[str] | None] = asyncio.Queue(maxsize=writers * 2)
    total = 0

    async def writer() -> None:
        async with InfluxClient(url, DB, timeout=120) as c:
            while (lines := await queue.get()) is not None:
                await c.write_lines(lines, rp=rp)

    tasks = [asyncio.create_task(writer()) for _ in range(writers)]
    chunk: list[str] = []
    for line in gen:
        chunk.append(line)
        if len(chunk) == batch:
            await queue.put(chunk)
            total += len(chunk)
            chunk = []
    if chunk:
        await queue.put(chunk)
        total += len(chunk)
    for _ in tasks:
        await queue.put(None)
    await asyncio.gather(*tasks)
    return total


async def load(url: str, n_sensors: int, days: int, reading_days: int = 2) -> dict[str, int]:
    async with InfluxClient(url, DB) as c:
        await c.setup()
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = int((today - timedelta(days=days)).timestamp() * 1000)
    vitre = [f"v{k:03d}" for k in range(n_sensors)]
    so = [f"so{k:02d}" for k in range(20)]
    counts = {}
    t0 = time.perf_counter()
    counts["hourly"] = await _write_all(url, _hourly_lines("vitre", vitre, start, days * 24), AGG_RP)
    counts["hourly"] += await _write_all(url, _hourly_lines("saint-omer", so, start, days * 24), AGG_RP)
    counts["daily+town_daily"] = await _write_all(url, _daily_lines("vitre", vitre, start - 7200_000, days), AGG_RP)
    counts["daily+town_daily"] += await _write_all(url, _daily_lines("saint-omer", so, start - 7200_000, days),
                                                   AGG_RP)
    now = int(time.time() * 1000) // 60_000 * 60_000
    counts["reading"] = await _write_all(url, _readings("vitre", vitre, now, reading_days), RAW_RP)
    if LastReadings is not None:  # the last-value store /v1/latest reads, as analytics keeps it
        async with InfluxClient(url, DB, timeout=120) as c:
            counts["last_reading"] = await LastReadings(c).refresh(now - 3 * 86_400_000, now)
    counts["load_s"] = round(time.perf_counter() - t0, 1)
    return counts


def register(data_dir: Path, n_sensors: int) -> int:
    """Every loaded sensor in the registry with a position, as a town's network is: the api reads the registry for
    each uncached answer (network, trust, licence of every row), so an empty one hides that cost."""
    from heatwatch.core.model import Sensor
    from heatwatch.core.registry import Registry

    sensors = [Sensor(id=f"v{k:03d}", town="vitre", name=f"Vitré {k}", latitude=48.12 + k * 1e-4,
                      longitude=-1.21 + k * 1e-4) for k in range(n_sensors)]
    sensors += [Sensor(id=f"so{k:02d}", town="saint-omer", name=f"Saint-Omer {k}", latitude=50.75 + k * 1e-4,
                       longitude=2.25 + k * 1e-4) for k in range(20)]
    with Registry(data_dir / "registry.sqlite", towns=["vitre", "saint-omer"]) as registry:
        return registry.upsert_many(sensors)


# --- the API process --------------------------------------------------------------------------------


#: The broker the api's live feed subscribes to (main() starts one; a quiet network: nothing is published).
MQTT_URL: str | None = None


def start_api(influx_url: str, port: int, data_dir: Path, cache: bool,
              extra: dict[str, str] | None = None) -> subprocess.Popen:
    env = dict(os.environ, HEATWATCH_INFLUX_URL=influx_url, HEATWATCH_INFLUX_DB=DB,
               HEATWATCH_DATA_DIR=str(data_dir), HEATWATCH_API_RATE_LIMIT_PER_S="0",
               HEATWATCH_DASHBOARD_ENABLED="false", HEATWATCH_LOG_LEVEL="WARNING",
               # without a broker the live hub just waits (and latest scans the recent readings every time)
               HEATWATCH_MQTT_URL=MQTT_URL or f"mqtt://127.0.0.1:{free_port()}")
    if not cache:
        env |= {"HEATWATCH_API_CACHE_TTL_LATEST_S": "0", "HEATWATCH_API_CACHE_TTL_AGG_S": "0"}
    env |= extra or {}
    code = ("from heatwatch.core.settings import ApiSettings; from heatwatch.api.server import serve; "
            f"serve(ApiSettings.load(), '127.0.0.1', {port})")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                if MQTT_URL:
                    time.sleep(3)  # the live feed connects and seeds latest's recent readings
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the API did not become ready")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# --- measurements -----------------------------------------------------------------------------------

_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    assert m, text
    return float(m.group(1)) * _UNIT[m.group(2)]


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(pid: int, *, quiet_share: float = 0.1, window_s: float = 2.0, limit_s: float = 180.0) -> float:
    """Wait until influxd uses under ``quiet_share`` of a core: right after a bulk load it compacts
    its shards for a minute or more, and on two cores that CPU shows up as the API's tail latency. The api too:
    it reads its resident aggregates once started."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        before = _cpu_s(pid)
        time.sleep(window_s)
        if (_cpu_s(pid) - before) / window_s < quiet_share:
            break
    return round(time.monotonic() - t0, 1)


def wrk(url: str, seconds: int, connections: int = 100, threads: int = 2, script: str | None = None
        ) -> dict[str, float]:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    path = None
    if script is not None:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write(script)
            path = f.name
        cmd += ["-s", path]
    try:
        out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    finally:
        if path is not None:
            os.unlink(path)
    res = {"req_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    res["requests"] = int(re.search(r"(\d+) requests in", out).group(1))
    for pct in ("50", "99"):
        res[f"p{pct}_ms"] = round(_ms(re.search(rf"\s{pct}(?:\.000)?%\s+(\S+)", out).group(1)), 2)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    res["non_2xx"] = int(non2xx.group(1)) if non2xx else 0
    errors = re.search(r"Socket errors:.*", out)
    res["socket_errors"] = errors.group(0) if errors else ""
    return res


# --- uncached requests -----------------------------------------------------------------------------


def _lua_list(values: list[str]) -> str:
    return "{" + ", ".join(f'"{v}"' for v in values) + "}"


def uncached_script(kind: str, sensors: int, days: int) -> str:
    """A wrk script drawing every request's parameters at random, as open-data consumers send them: for a sensor's
    daily rows one of the ``sensors`` sensors and a range (from within the first two months of the loaded year, to
    within its last month: ~1 800 ranges x 200 sensors x 2 time styles); for the town's indices a range and a
    format (json, csv); for latest a format (json, csv, geojson) and a time style. With the api's cache off too,
    no answer is served from a cache: each request is the database round trips and the rendering of a new one."""
    today = datetime.now(UTC).date()
    froms = [(today - timedelta(days=days - k)).isoformat() for k in range(0, max(1, min(60, days // 3)))]
    tos = [(today - timedelta(days=k - 1)).isoformat() for k in range(0, max(1, min(30, days // 3)))]
    if kind == "daily_sensor":
        path = ('"/v1/daily?town=vitre&sensor=" .. string.format("v%03d", math.random(0, ' + str(sensors - 1) + ')) '
                '.. "&from=" .. pick(froms) .. "&to=" .. pick(tos) .. "&times=" .. pick(times)')
    elif kind == "indices":
        path = '"/v1/indices?town=vitre&from=" .. pick(froms) .. "&to=" .. pick(tos) .. "&format=" .. pick(fmts)'
    elif kind == "latest":
        path = '"/v1/latest?town=vitre&format=" .. pick(lfmts) .. "&times=" .. pick(times)'
    else:
        raise ValueError(kind)
    return f"""
local n = 0
function setup(thread)
  n = n + 1
  thread:set("seed", n)
end
function init(args)
  math.randomseed(os.time() * 100 + seed)
end
local froms = {_lua_list(froms)}
local tos = {_lua_list(tos)}
local times = {{"utc", "local"}}
local fmts = {{"json", "json", "csv"}}
local lfmts = {{"json", "csv", "geojson"}}
local function pick(t) return t[math.random(#t)] end
request = function()
  return wrk.format("GET", {path})
end
"""


def export(url: str, pid: int) -> dict[str, float]:
    samples: list[float] = []
    stop_flag = threading.Event()

    def sample() -> None:
        while not stop_flag.is_set():
            samples.append(rss_mb(pid))
            time.sleep(0.05)

    before = rss_mb(pid)
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    rows = 0
    size = 0
    t0 = time.perf_counter()
    with httpx.stream("GET", url, timeout=600, headers={"Accept-Encoding": "identity"}) as r:
        r.raise_for_status()
        for chunk in r.iter_bytes():
            rows += chunk.count(b"\n")
            size += len(chunk)
    elapsed = time.perf_counter() - t0
    stop_flag.set()
    th.join()
    rows -= 1  # header
    n = len(samples)
    quart = [round(samples[int(n * q)], 1) for q in (0.1, 0.5, 0.9)] if n else []
    return {"rows": rows, "seconds": round(elapsed, 2), "rows_s": round(rows / elapsed), "mb": round(size / 1e6, 1),
            "rss_before_mb": round(before, 1), "rss_peak_mb": round(max(samples, default=before), 1),
            "rss_at_10_50_90pct_mb": quart}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sensors", type=int, default=200)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("-d", "--duration", type=int, default=15, help="seconds of wrk per endpoint")
    ap.add_argument("-c", "--connections", type=int, default=100)
    ap.add_argument("--reading-days", type=int, default=60,
                    help="days of 10-minute raw readings (what an unbounded latest query scanned)")
    ap.add_argument("--no-fairness", action="store_true", help="skip the greedy-client scenario")
    ap.add_argument("--broker", action=argparse.BooleanOptionalAction, default=True,
                    help="a broker for the api's live feed (default), as deployed; --no-broker: none")
    ap.add_argument("--registered", action=argparse.BooleanOptionalAction, default=True,
                    help="every sensor in the registry (default), as deployed; --no-registered: an empty registry "
                         "(what this bench had before issue 15's last round)")
    ap.add_argument("--only", choices=["throughput", "latency", "fairness"],
                    help="one part only (latency: the cached and uncached request rates, without the exports)")
    args = ap.parse_args(argv)
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    influxd = Influxd(tmp / "influxd").start()
    global MQTT_URL
    broker = None
    if args.broker:
        broker = Mosquitto(tmp / "mosquitto").start()
        MQTT_URL = broker.url
    result: dict = {"when": datetime.now(UTC).isoformat(), "host": platform.node(), "cpus": os.cpu_count(),
                    "sensors": args.sensors, "days": args.days, "connections": args.connections}
    try:
        print(f"loading {args.days} days x {args.sensors} sensors ...", flush=True)
        result["reading_days"] = args.reading_days
        result["loaded"] = asyncio.run(load(influxd.url, args.sensors, args.days, args.reading_days))
        print(f"  {result['loaded']}", flush=True)
        if args.registered:
            result["registered"] = register(tmp / "var", args.sensors)
        result["settle_s"] = settle(influxd.proc.pid)
        print(f"  influxd compactions settled after {result['settle_s']} s", flush=True)
        today = datetime.now(UTC).date()
        year_from = (today - timedelta(days=args.days)).isoformat()
        month_from = (today - timedelta(days=30)).isoformat()
        to = (today + timedelta(days=1)).isoformat()
        for cache in ((True, False) if args.only != "fairness" else ()):
            port = free_port()
            api = start_api(influxd.url, port, tmp / "var", cache)
            # The api reads its resident aggregates (api/resident.py) once started: measured once they are in.
            settle(api.pid, quiet_share=0.2, window_s=1.0, limit_s=60)
            base = f"http://127.0.0.1:{port}"
            try:
                label = "cached" if cache else "uncached"
                endpoints = {
                    "latest": f"{base}/v1/latest?town=vitre",
                    "indices": f"{base}/v1/indices?town=vitre",
                    "daily_sensor": f"{base}/v1/daily?town=vitre&sensor=v007",
                }
                for name, url in endpoints.items():
                    httpx.get(url, timeout=60).raise_for_status()  # warm up (connections, the registry, imports)
                    # Cached: one URL, as a dashboard asks it. Uncached: the cache off and every request's
                    # parameters drawn anew (uncached_script), so none is answered from anything but InfluxDB.
                    script = None if cache else uncached_script(name, args.sensors, args.days)
                    cpu0 = (_cpu_s(api.pid), _cpu_s(influxd.proc.pid), os.getloadavg()[0])
                    res = wrk(url, args.duration, args.connections, script=script)
                    # CPU per answer, of the api process and of influxd: far steadier than req/s on a machine
                    # others share, which only changes how much of the CPU the run gets.
                    n = max(1, res["requests"])
                    res["api_cpu_ms_per_req"] = round((_cpu_s(api.pid) - cpu0[0]) * 1000 / n, 2)
                    res["influxd_cpu_ms_per_req"] = round((_cpu_s(influxd.proc.pid) - cpu0[1]) * 1000 / n, 2)
                    res["load_before"] = round(cpu0[2], 1)
                    result[f"{name}_{label}"] = res
                    print(f"  {name:13s} {label:8s} {res['req_s']:8.0f} req/s  p50 {res['p50_ms']:7.2f} ms  "
                          f"p99 {res['p99_ms']:7.2f} ms  CPU/req api {res['api_cpu_ms_per_req']:6.2f} ms influxd "
                          f"{res['influxd_cpu_ms_per_req']:6.2f} ms  load {res['load_before']}  non-2xx "
                          f"{res['non_2xx']} {res['socket_errors']}", flush=True)
                if cache and args.only != "latency":
                    for span, frm in (("month", month_from), ("year", year_from)):
                        url = f"{base}/v1/hourly?town=vitre&format=csv&from={frm}&to={to}&tz=UTC"
                        res = export(url, api.pid)
                        result[f"csv_export_{span}"] = res
                        print(f"  csv export {span}: {res['rows']} rows in {res['seconds']} s = {res['rows_s']} "
                              f"rows/s ({res['mb']} MB); API RSS {res['rss_before_mb']} MB before, peak "
                              f"{res['rss_peak_mb']} MB, at 10/50/90%: {res['rss_at_10_50_90pct_mb']}", flush=True)
            finally:
                stop(api)
        if not args.no_fairness and args.only not in ("throughput", "latency"):
            from .fairness import run as fairness

            result["fairness"] = fairness(start_api, stop, influxd.url, tmp / "var", free_port, args.duration,
                                          args.sensors, args.days)
    finally:
        influxd.stop()
        if broker is not None:
            broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"api-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"results: {out}")
    return 0
