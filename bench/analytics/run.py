"""Analytics benchmark: full backfill and one hourly run over a year × 200 sensors.

    .venv/bin/python -m bench.analytics                        # 365 days × 200 sensors (~21 M readings)
    .venv/bin/python -m bench.analytics --days 30 --sensors 50 # quick look
    .venv/bin/python -m bench.analytics --data /tmp/hwbench    # keep the loaded influxd for a rerun

Steps, each timed:

1. load: a fresh embedded influxd; the simulator's readings (5-min step, both towns, heat wave in
   July, its faults) generated one local day per task by ``--writers`` processes that each write
   their line protocol straight to ``/write`` in batches of 10 000 lines. Skipped when ``--data``
   holds a database loaded with the same parameters.
2. backfill: ``heatwatch backfill`` logic in a child process over every day (peak RSS = that
   child's ``ru_maxrss`` from ``wait4``), with the time split into read / compute / write.
3. hourly: one hourly job in a child process, at 14:05 UTC on the last day (reads 3.5 days of raw
   context, writes the day so far); job time excludes interpreter start-up and imports.

Results: a table on stdout and JSON in ``bench/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from heatwatch.core.model import Sensor
from heatwatch.simulate.options import Fault, HeatWave, SimOptions
from heatwatch.simulate.schedule import prepare
from heatwatch.stack.embedded import Influxd

DB = "bench"
YEAR_START = date(2024, 1, 1)
RESULTS = Path(__file__).resolve().parent.parent / "results"
BATCH = 10_000

# Load ------------------------------------------------------------------------------------------

_worker: dict[str, Any] = {}


def _init(url: str, sensors: list[Sensor], faults: list[Fault], heatwave: HeatWave) -> None:
    _worker.update(url=url, sensors=sensors, faults=faults, heatwave=heatwave,
                   http=httpx.Client(base_url=url, timeout=120))


def _load_day(day: date) -> int:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    opts = SimOptions(start=start, end=start + timedelta(days=1), faults=_worker["faults"],
                      heatwave=_worker["heatwave"])
    sim = prepare(opts, _worker["sensors"])
    lines = [r.to_line() for r in sim.readings()]
    http: httpx.Client = _worker["http"]
    for i in range(0, len(lines), BATCH):
        body = "\n".join(lines[i:i + BATCH]).encode()
        r = http.post("/write", params={"db": DB, "rp": "raw", "precision": "ms"}, content=body)
        r.raise_for_status()
    return len(lines)


def plan(days: int, sensors: int) -> tuple[list[Sensor], list[Fault], HeatWave, datetime, datetime]:
    start = datetime(YEAR_START.year, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=days)
    wave = HeatWave(start=YEAR_START + timedelta(days=min(196, max(0, days - 8))))  # mid-July on a year
    sim = prepare(SimOptions(start=start, end=end, sensors=sensors, heatwave=wave))
    return sim.sensors, sim.faults, wave, start, end


def load(url: str, days: int, sensors: list[Sensor], faults: list[Fault], wave: HeatWave, writers: int) -> int:
    httpx.post(f"{url}/query", data={"q": f"CREATE DATABASE {DB}"}).raise_for_status()
    httpx.post(f"{url}/query", data={"q": f'CREATE RETENTION POLICY "raw" ON {DB} DURATION INF REPLICATION 1 '
                                           "DEFAULT"}).raise_for_status()
    httpx.post(f"{url}/query", data={"q": f'CREATE RETENTION POLICY "agg" ON {DB} DURATION INF REPLICATION 1'}
               ).raise_for_status()
    todo = [YEAR_START + timedelta(days=i) for i in range(days)]
    total = 0
    with mp.get_context("spawn").Pool(writers, _init, (url, sensors, faults, wave)) as pool:
        for i, n in enumerate(pool.imap_unordered(_load_day, todo), 1):
            total += n
            if i % 10 == 0 or i == len(todo):
                print(f"\r  load: {i}/{len(todo)} days, {total:,} readings", end="", flush=True)
    print()
    return total


# Children --------------------------------------------------------------------------------------


def _settings(url: str, data: Path) -> Any:
    from heatwatch.core.settings import Settings

    return Settings.load(influx_url=url, influx_db=DB, data_dir=data, influx_timeout_s=600)


def child_backfill(url: str, data: Path, days: int, chunk_days: int) -> dict[str, Any]:
    from heatwatch.analytics.backfill_cli import run_backfill

    t0 = time.perf_counter()
    stats = asyncio.run(run_backfill(_settings(url, data), YEAR_START, YEAR_START + timedelta(days=days - 1), None,
                                     chunk_days, show=False))
    wall = time.perf_counter() - t0
    split = {k: round(sum(s.seconds.get(k, 0.0) for s in stats), 2) for k in ("read", "compute", "write")}
    return {"seconds": round(wall, 2), "stage_seconds_summed_over_towns": split,
            "readings": sum(s.readings for s in stats),
            "points": sum(sum(s.points.values()) for s in stats)}


def child_hourly(url: str, data: Path, days: int) -> dict[str, Any]:
    from heatwatch.analytics.jobs import Analytics
    from heatwatch.core.influx import InfluxClient
    from heatwatch.core.registry import Registry

    settings = _settings(url, data)
    now = datetime(YEAR_START.year, 1, 1, 14, 5, tzinfo=UTC) + timedelta(days=days - 1)

    async def go() -> dict[str, Any]:
        async with InfluxClient.from_settings(settings) as client:
            analytics = Analytics(client, settings.towns, Registry.from_settings(settings))
            t0 = time.perf_counter()
            stats = await analytics.hourly_run(now, settings.analytics_recompute_hours)
            wall = time.perf_counter() - t0
        return {"seconds": round(wall, 3), "now": now.isoformat(),
                "towns": [s.as_log() for s in stats]}

    return asyncio.run(go())


def run_child(kind: str, url: str, data: Path, days: int, chunk_days: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.analytics", "--child", kind, "--url", url, "--data", str(data),
           "--days", str(days), "--chunk-days", str(chunk_days)]
    out_path = data / f"{kind}.json"
    proc = subprocess.Popen([*cmd, "--out", str(out_path)], cwd=Path(__file__).resolve().parents[2])
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} child failed with {proc.returncode}")
    result = json.loads(out_path.read_text())
    result["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
    result["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 1)
    return result


def influxd_peak_mb(db: Influxd) -> float | None:
    try:
        status = Path(f"/proc/{db.proc.pid}/status").read_text()  # type: ignore[union-attr]
    except (OSError, AttributeError):
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


# Main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.analytics", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--sensors", type=int, default=200)
    p.add_argument("--writers", type=int, default=2, help="load processes")
    p.add_argument("--chunk-days", type=int, default=14)
    p.add_argument("--data", type=Path, default=None, help="keep influxd data here (reused when already loaded)")
    p.add_argument("--child", choices=["backfill", "hourly"], help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        fn = child_backfill if args.child == "backfill" else child_hourly
        extra = (args.chunk_days,) if args.child == "backfill" else ()
        result = fn(args.url, args.data, args.days, *extra)  # type: ignore[operator]
        args.out.write_text(json.dumps(result))
        return 0

    data = args.data or Path(tempfile.mkdtemp(prefix="hw-bench-analytics-"))
    data.mkdir(parents=True, exist_ok=True)
    marker = data / "loaded.json"
    params = {"days": args.days, "sensors": args.sensors, "start": YEAR_START.isoformat()}
    sensors, faults, wave, _, _ = plan(args.days, args.sensors)
    # The analytics read positions and site classes from the registry, like in production.
    from heatwatch.core.registry import Registry

    with Registry(data / "registry.sqlite") as reg:
        reg.upsert_many(sensors)

    # A year of shards takes influxd longer than the default 30 s to open when reused.
    db = Influxd(data / "influxd").start(timeout=600)
    machine = {"cpus": os.cpu_count(), "python": platform.python_version()}
    result: dict[str, Any] = {"params": params, "machine": machine}
    try:
        if marker.exists() and json.loads(marker.read_text()) == params:
            print(f"reusing loaded data in {data}")
            result["load"] = {"reused": True}
        else:
            print(f"loading {args.days} days × {len(sensors)} sensors into {db.url} ({data})")
            t0 = time.perf_counter()
            n = load(db.url, args.days, sensors, faults, wave, args.writers)
            sec = time.perf_counter() - t0
            result["load"] = {"readings": n, "seconds": round(sec, 1), "readings_per_s": round(n / sec)}
            marker.write_text(json.dumps(params))
        # A full backfill starts from no aggregates (a rerun over existing ones skips the deletes).
        for m in ("hourly", "daily", "town_daily", "alert"):
            httpx.post(f"{db.url}/query", data={"db": DB, "q": f'DROP MEASUREMENT "{m}"'}, timeout=600)
        print("backfill ...", flush=True)
        result["backfill"] = run_child("backfill", db.url, data, args.days, args.chunk_days)
        print("hourly run ...", flush=True)
        result["hourly"] = run_child("hourly", db.url, data, args.days, args.chunk_days)
        result["influxd_peak_rss_mb"] = influxd_peak_mb(db)
    finally:
        db.stop()

    b, h = result["backfill"], result["hourly"]
    print()
    print(f"{'step':<10}{'seconds':>10}{'peak RSS MB':>14}  notes")
    if "seconds" in result["load"]:
        ld = result["load"]
        print(f"{'load':<10}{ld['seconds']:>10}{'':>14}  {ld['readings']:,} readings, {ld['readings_per_s']:,}/s")
    print(f"{'backfill':<10}{b['seconds']:>10}{b['peak_rss_mb']:>14}  target < 300 s; {b['readings']:,} readings "
          f"read, {b['points']:,} points written; stages summed over towns {b['stage_seconds_summed_over_towns']}")
    print(f"{'hourly':<10}{h['seconds']:>10}{h['peak_rss_mb']:>14}  target < 2 s")
    print(f"influxd peak RSS {result['influxd_peak_rss_mb']} MB")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"analytics-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"results: {out}")
    return 0

