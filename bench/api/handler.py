"""The api's own CPU per uncached answer, in process: no network, no database.

``python -m bench.api.handler`` drives the FastAPI app directly over ASGI (a minimal scope, receive and send),
with the store replaced by rows held in memory (the shape the database returns, a year of daily rows of 200
sensors and of the town's indices) and a registry of 200 sensors; latest goes through each tree's own
``Store.latest`` over the newest reading of 200 sensors held as the resident store holds them, with the live feed's
newer readings of 20 of them (:func:`latest_store`), as a deployed api answers it. Every answer
is uncached (cache TTLs 0) and every request's parameters are drawn anew (sensor, range, times style), as in
``python -m bench.api --only latency``. What is measured is what the api process spends besides the database
round trip: middlewares, FastAPI's dependencies and validation, the route, and the rendering (time formatting,
rows, JSON/CSV/GeoJSON, ETag).

The rendering steps are also timed alone (a daily page of 330 rows in JSON utc/local and CSV ``,``/``;``, the
town's indices, the dependencies and parameter validation of ``/v1/daily``), so a ratio can be read per step.

Before/after in one run: ``--baseline REF`` (default: the commit before the rendering work) extracts ``src/`` of
that git revision into a temporary folder and runs the same cases there in a subprocess (``PYTHONPATH``), rounds
interleaved with the current tree's, and prints µs per call of both and their ratio. It also checks that both trees
answered every request with the same bytes (status, headers, body): the optimisation must not change an answer.

    .venv/bin/python -m bench.api.handler                 # current tree vs the baseline revision
    .venv/bin/python -m bench.api.handler --baseline none # current tree only
    .venv/bin/python -m bench.api.handler --registered 0  # an empty registry, as bench/api runs (every sensor
                                                          # unregistered): without the registry read per answer
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

#: The revision before the rendering work of issue 15 (item 5): the default baseline.
BASELINE = "2b75af8"
ROOT = Path(__file__).resolve().parents[2]

DAY_MS = 86_400_000
SENSORS = [f"v{k:03d}" for k in range(200)]
DAYS = 365


# --- data in the shapes the database returns ---------------------------------------------------------


def _day0() -> int:
    """Local midnight (Europe/Paris) of a fixed day, as analytics stamps daily rows: the same in every run."""
    from datetime import datetime
    from zoneinfo import ZoneInfo
    return int(datetime(2025, 1, 1, tzinfo=ZoneInfo("Europe/Paris")).timestamp() * 1000)


def _midnights(n: int) -> list[int]:
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo
    paris = ZoneInfo("Europe/Paris")
    d0 = datetime(2025, 1, 1)
    return [int((d0 + timedelta(days=i)).replace(tzinfo=paris).timestamp() * 1000) for i in range(n)]


def daily_rows(sensor: str, k: int) -> list[list[Any]]:
    """[time, town, sensor, *DAILY.fields] as InfluxDB's JSON gives them (24.0 arrives as 24; some gaps)."""
    rows = []
    for d, t in enumerate(_midnights(DAYS)):
        hot = d % 50 < 5 and k % 3 == 0
        tn = (20.5 if hot else 12.0) + (k % 5) + (d % 7) / 10
        rows.append([t, "vitre", sensor, round(tn, 1), 24 + k % 5, 18.25, 55 if d % 3 else 54.7, 25.1, 27,
                     1.1 if d % 11 else None, 2.2, d % 4, hot, 0.98 if d % 13 else 1, 0 if d % 17 else 4])
    return rows


def town_rows() -> list[list[Any]]:
    """[time, town, *TOWN_DAILY.fields]."""
    from heatwatch.core.datasets import TOWN_DAILY
    rows = []
    for d, t in enumerate(_midnights(DAYS)):
        values: dict[str, Any] = {
            "ibmn": 15.0 + (d % 9) / 10, "ibmx": 26 + d % 4, "canicule": d % 50 < 3, "ibm_source": "network",
            "ibm_reason": None, "tn_ref": 14.2, "tx_ref": 25.8, "ibmn_forward": 15.3, "ibmx_forward": 26.1,
            "canicule_forward": d % 50 < 2, "uhi_mean": 1.1, "uhi_max": 2.9, "uhi_source": "network",
            "hottest_sensor": "v000", "sensors_ok": 200, "uhi_mean_town": 1.0, "uhi_max_town": 2.7,
            "hottest_sensor_town": "v000", "sensors_ok_town": 180, "tropical_nights": 67 if d % 50 < 5 else 0,
            "tropical_nights_town": 60 if d % 50 < 5 else 0}
        rows.append([t, "vitre", *(values.get(f) for f in TOWN_DAILY.fields)])
    return rows


def latest_records(now_ms: int) -> list[dict[str, Any]]:
    out = []
    for k, s in enumerate(SENSORS):
        t = now_ms - (k % 7) * 60_000 - (k % 3) * 17  # some with milliseconds
        r: dict[str, Any] = {"time": t, "town": "vitre", "sensor": s, "temperature": 21.5 + k / 100, "humidity": 50,
                             "battery_v": 3.1, "battery_pct": None, "rssi": -97 - k % 20, "source": "json",
                             "snr": 7.25}
        out.append(r)
    return out


class HeldLast:
    """What :meth:`heatwatch.api.store.Store.latest` asks of the resident store (``Resident.latest``): the last-value
    store's rows, held, in a new mapping each time (the rows shared)."""

    def __init__(self, rows: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.towns: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        for k, r in rows.items():
            self.towns.setdefault(k[0], {})[k] = r

    def latest(self, town: str | None) -> dict[tuple[str, str], dict[str, Any]]:
        if town is None:
            return {k: r for rows in self.towns.values() for k, r in rows.items()}
        return dict(self.towns.get(town, {}))


def latest_store(at_ms: int) -> Any:
    """A real :class:`heatwatch.api.store.Store` answering latest as a deployed api does, without a database: the
    last-value store's rows held (as the resident store holds them) and the live feed connected, its recent
    readings seeded with a newer reading of every tenth sensor. Each tree runs its own ``Store.latest``."""
    from heatwatch.api.store import Store, stored_rows

    class NoDatabase:  # names tables in statements, answers none: the feed is connected and the last values held
        def table(self, m: Any) -> str:
            return m.name

        async def query(self, *a: Any, **kw: Any) -> Any:
            raise RuntimeError("the bench's latest reads no database")

        query_records = query

    store = Store(NoDatabase())  # type: ignore[arg-type]
    store.resident = HeldLast(stored_rows([{**r, "ts": r["time"]} for r in latest_records(at_ms)]))
    epoch = store.recent.connected(True)
    store.recent.seeded(epoch, [{**r, "time": r["time"] + 30_000, "temperature": r["temperature"] + 0.5}
                                for r in latest_records(at_ms)[::10]])
    return store


class MemStore:
    """What the routes ask of :class:`heatwatch.api.store.Store`, answered from memory (fresh lists each time:
    routes finish rows in place); latest by a real Store (:func:`latest_store`)."""

    def __init__(self) -> None:
        self.daily = {s: daily_rows(s, k) for k, s in enumerate(SENSORS)}
        self.town = town_rows()
        self.last = _midnights(DAYS)[-1]
        self.latest_at = _day0() + 200 * DAY_MS  # fixed: every run renders the same statuses
        self.latest_of = latest_store(self.latest_at)
        self.texts: dict[str, list[bytes]] | None = None
        self.town_texts: list[bytes] | None = None

    async def page(self, ds: Any, flt: Any, limit: int, cursor: Any = None) -> tuple[list[list[Any]], Any]:
        rows = self.daily[flt.sensor]
        return [r[:] for r in rows if flt.start_ms <= r[0] < flt.end_ms][:limit], None

    def held_page(self, ds: Any, flt: Any, limit: int, cursor: Any = None) -> Any:
        """As the resident aggregates answer a JSON page (``api/resident.py``): the held rows, with their tags and
        fields written as JSON once (not per answer). Trees from before that have no such method."""
        from heatwatch.api.formats import stored_json, stored_names

        if self.texts is None:
            names = stored_names(ds)
            self.texts = {s: [stored_json(names, r) for r in rows] for s, rows in self.daily.items()}
        rows, texts = self.daily[flt.sensor], self.texts[flt.sensor]
        picked = [k for k, r in enumerate(rows) if flt.start_ms <= r[0] < flt.end_ms][:limit]
        return [rows[k] for k in picked], [texts[k] for k in picked], [rows[k][0] for k in picked], None

    async def iter_pages(self, ds: Any, flt: Any, page_rows: int) -> Any:
        rows, _ = await self.page(ds, flt, 10**9)
        for i in range(0, len(rows), page_rows):
            yield rows[i:i + page_rows]

    async def last_update(self, ds: Any, town: str | None) -> int | None:
        return self.last

    async def count(self, ds: Any, flt: Any) -> int:
        return len(self.daily[flt.sensor])

    def held_rows(self, ds: Any, flt: Any) -> Any:
        """The town's held rows with their JSON members, as the resident aggregates give them (see held_page)."""
        from heatwatch.api.formats import stored_json, stored_names

        if self.town_texts is None:
            self.town_texts = [stored_json(stored_names(ds), r) for r in self.town]
        picked = [k for k, r in enumerate(self.town) if flt.start_ms <= r[0] < flt.end_ms]
        return [self.town[k] for k in picked], [self.town_texts[k] for k in picked], [self.town[k][0] for k in picked]

    async def all_rows(self, ds: Any, flt: Any, page_rows: int, cap: int = 20_000) -> list[list[Any]]:
        return [r[:] for r in self.town if flt.start_ms <= r[0] < flt.end_ms]

    async def latest(self, town: str | None) -> list[dict[str, Any]]:
        return await self.latest_of.latest(town)

    async def latest_view(self, town: str | None) -> Any:
        return await self.latest_of.latest_view(town)


# --- the app over ASGI --------------------------------------------------------------------------------


def make_app(tmp: Path, registered: int = len(SENSORS)) -> Any:
    from heatwatch.api.app import create_app
    from heatwatch.core.model import Sensor
    from heatwatch.core.registry import Registry
    from heatwatch.core.settings import Settings

    settings = Settings.load(influx_url="http://127.0.0.1:9", data_dir=tmp / "var", mqtt_url="mqtt://127.0.0.1:9",
                             log_level="WARNING")
    api = settings.api.model_validate(settings.api.model_dump() | {
        "rate_limit_per_s": 0, "cache_ttl_latest_s": 0, "cache_ttl_agg_s": 0})
    settings = settings.model_copy(update={"api": api})
    app = create_app(settings)
    reg = Registry.from_settings(settings)
    reg.upsert_many(Sensor(id=s, town="vitre", latitude=48.12 + k / 1000, longitude=-1.21 + k / 1000,
                           site_class="urban" if k % 2 else "park") for k, s in enumerate(SENSORS[:registered]))
    app.state.registry = reg
    app.state.store = MemStore()
    app.state.influx = None
    return app


async def call(app: Any, path: str, query: str, scope: dict[str, Any] | None = None
               ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    scope = scope if scope is not None else {}
    scope |= {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
             "query_string": query.encode(), "headers": [(b"host", b"bench"), (b"accept", b"*/*")],
             "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000), "state": {}}
    out: dict[str, Any] = {"body": []}
    asked = False

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if asked:  # as uvicorn: nothing more until the client goes (streamed answers listen for it)
            await asyncio.Event().wait()
        asked = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"], out["headers"] = message["status"], list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            out["body"].append(message.get("body", b""))

    await app(scope, receive, send)
    return out["status"], out["headers"], b"".join(out["body"])


def _ranges(rng: random.Random) -> tuple[str, str]:
    """A range as bench/api's uncached script draws them: from within the first two months, to within the last."""
    from datetime import date, timedelta
    d0 = date(2025, 1, 1)
    return (d0 + timedelta(days=rng.randrange(60))).isoformat(), (d0 + timedelta(days=DAYS - rng.randrange(30))
                                                                   ).isoformat()


def http_cases() -> dict[str, Callable[[random.Random], tuple[str, str]]]:
    def daily(extra: str) -> Callable[[random.Random], tuple[str, str]]:
        def q(rng: random.Random) -> tuple[str, str]:
            f, t = _ranges(rng)
            return "/v1/daily", f"town=vitre&sensor={rng.choice(SENSORS)}&from={f}&to={t}{extra}"
        return q

    def indices(extra: str) -> Callable[[random.Random], tuple[str, str]]:
        def q(rng: random.Random) -> tuple[str, str]:
            f, t = _ranges(rng)
            return "/v1/indices", f"town=vitre&from={f}&to={t}{extra}"
        return q

    def latest(fmt: str) -> Callable[[random.Random], tuple[str, str]]:
        return lambda rng: ("/v1/latest", f"town=vitre&format={fmt}&times={rng.choice(['utc', 'local'])}")

    return {
        "GET /healthz (the floor: middlewares + routing)": lambda rng: ("/healthz", ""),
        "GET daily json times=utc": daily("&times=utc"),
        "GET daily json times=local": daily("&times=local"),
        "GET daily csv sep=,": daily("&format=csv"),
        "GET daily csv sep=;": daily("&format=csv&sep=%3B"),
        "GET indices json": indices(""),
        "GET indices csv": indices("&format=csv"),
        "GET latest json": latest("json"),
        "GET latest csv": latest("csv"),
        "GET latest geojson": latest("geojson"),
    }


# --- rendering steps alone -------------------------------------------------------------------------------


def render_cases(app: Any) -> dict[str, Callable[[], Any]]:
    """Each step as the api runs it, on a daily page of 330 rows / 365 rows of indices (fresh copies per call)."""
    from zoneinfo import ZoneInfo

    from heatwatch.api import formats, timeutil
    from heatwatch.api.cache import etag_of
    from heatwatch.core.datasets import DAILY, TOWN_DAILY
    from heatwatch.core.public import append_network_trust
    from heatwatch.core.tabular import Style, dataset_csv_renderer

    paris = ZoneInfo("Europe/Paris")
    raw = app.state.store.daily["v007"][:330]
    sensors: dict[str, Any] = {}

    def finished() -> list[list[Any]]:
        rows = [r[:] for r in raw]
        append_network_trust(rows, 2, sensors)
        for row in rows:
            row.insert(1, timeutil.local_date(row[0], paris))
        return rows

    base = finished()
    town = [r[:] for r in app.state.store.town]
    for r in town:
        r.insert(1, timeutil.local_date(r[0], paris))
    meta = {"licence": formats.LICENCE, "producer": "x", "query": {"path": "/v1/daily", "params": {}}}
    utc, local = Style(), Style(tz=paris)
    body = formats.dumps(formats.envelope(meta, formats.json_rows(DAILY, [r[:] for r in base], utc)))

    def csv(ds: Any, rows: list[list[Any]], style: Style) -> bytes:
        r = dataset_csv_renderer(ds, style)
        return r.head() + r.batch([x[:] for x in rows])

    fr = Style(";", ",")
    times = [r[0] for r in raw]
    return {
        "daily 330 rows: time utc (Style.time)": lambda: [utc.time(t) for t in times],
        "daily 330 rows: time local (Style.time)": lambda: [local.time(t) for t in times],
        "daily 330 rows: local_date": lambda: [timeutil.local_date(t, paris) for t in times],
        "daily 330 rows: finish (network, trust, date)": finished,
        "daily 330 rows: json_rows+dumps utc": lambda: formats.dumps(formats.envelope(
            meta, formats.json_rows(DAILY, [r[:] for r in base], utc))),
        "daily 330 rows: json_rows+dumps local": lambda: formats.dumps(formats.envelope(
            meta, formats.json_rows(DAILY, [r[:] for r in base], local))),
        "daily 330 rows: csv sep=,": lambda: csv(DAILY, base, Style()),
        "daily 330 rows: csv sep=; decimal=,": lambda: csv(DAILY, base, fr),
        "daily 330 rows: etag": lambda: etag_of(body),
        "indices 365 rows: json_rows+dumps": lambda: formats.dumps(formats.envelope(
            meta, formats.json_rows(TOWN_DAILY, [r[:] for r in town], utc))),
        "indices 365 rows: csv sep=,": lambda: csv(TOWN_DAILY, town, Style()),
    }


async def deps_case(app: Any) -> Callable[[random.Random], Any]:
    """The dependencies and parameter validation of /v1/daily alone (what is solved before the route runs: the query
    guard, town, tz, style, ctx, the declared parameters): FastAPI's ``solve_dependencies``, or the compiled plan of
    a route that has one (``heatwatch.api.solve.FastRoute``)."""
    from fastapi.dependencies.utils import solve_dependencies
    from fastapi.routing import APIRoute
    from starlette.requests import Request

    seen: dict[str, Any] = {}
    await call(app, "/v1/daily", "town=vitre&sensor=v000", seen)
    route = seen["route"]  # the route as the router matched it (with the app's dependencies)
    assert isinstance(route, APIRoute)
    plan = route.plan_for(app) if hasattr(route, "plan_for") else None

    async def solve(rng: random.Random) -> Any:
        f, t = _ranges(rng)
        qs = f"town=vitre&sensor={rng.choice(SENSORS)}&from={f}&to={t}&times={rng.choice(['utc', 'local'])}"
        async with AsyncExitStack() as stack:
            scope = {"type": "http", "method": "GET", "path": "/v1/daily", "root_path": "", "query_string": qs.encode(),
                     "headers": [(b"host", b"bench")], "app": app, "route": route, "fastapi_inner_astack": stack,
                     "fastapi_function_astack": stack, "fastapi_astack": stack}
            if plan is not None:
                values = await route.solve(Request(scope), plan)
            else:
                solved = await solve_dependencies(request=Request(scope), dependant=route.dependant,
                                                  async_exit_stack=stack, embed_body_fields=False)
                assert not solved.errors, solved.errors
                values = solved.values
            return sorted(str(v) for k, v in values.items() if k in ("sensor", "from_", "to"))

    return solve


# --- running ---------------------------------------------------------------------------------------------


def _time(fn: Callable[[], Any], min_s: float) -> float:
    """µs per call: the best of 5 rounds of at least ``min_s`` each (the least disturbed by other processes)."""
    best = float("inf")
    n = 1
    t0 = time.perf_counter()
    fn()
    one = time.perf_counter() - t0
    n = max(1, int(min_s / max(one, 1e-7)))
    for _ in range(5):
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def _etag_checked(headers: list[tuple[bytes, bytes]], body: bytes) -> list[tuple[bytes, bytes]]:
    """The headers with the ETag's value checked against this tree's own hash of the body and then left out of the
    comparison: trees that hash differently (blake2b, then XXH3-128) still answer alike."""
    from heatwatch.api.cache import etag_of

    out = []
    for k, v in headers:
        if k.lower() == b"etag":
            if v.decode() != etag_of(body):
                raise SystemExit(f"ETag {v!r} is not the body's")
            v = b"<the body's>"
        out.append((k, v))
    return out


def measure(min_s: float, registered: int) -> dict[str, Any]:
    """One tree's figures (µs per call) and a digest of every answer it gave."""
    logging_quiet()
    out: dict[str, Any] = {"us": {}, "digest": {}}
    with tempfile.TemporaryDirectory(prefix="bench-handler-") as tmp:
        app = make_app(Path(tmp), registered)
        loop = asyncio.new_event_loop()
        try:
            for name, draw in http_cases().items():
                rng = random.Random(name)
                h = hashlib.sha256()
                for _ in range(30):  # the answers compared between trees
                    status, headers, body = loop.run_until_complete(call(app, *draw(rng)))
                    if status != 200:
                        raise SystemExit(f"{name}: {status} {body[:300]!r}")
                    h.update(repr((status, sorted(_etag_checked(headers, body)))).encode() + body)
                out["digest"][name] = h.hexdigest()[:16]
                rng = random.Random(name)
                out["us"][name] = _time(lambda rng=rng, draw=draw: loop.run_until_complete(call(app, *draw(rng))),
                                        min_s)
            solve = loop.run_until_complete(deps_case(app))
            rng = random.Random(1)
            out["us"]["dependencies of /v1/daily (parameters solved, validated)"] = _time(
                lambda: loop.run_until_complete(solve(rng)), min_s)
            for name, fn in render_cases(app).items():
                # An ETag's value is the hash's own (blake2b, then XXH3-128): timed, not compared.
                h = hashlib.sha256(b"" if name.endswith(": etag") else repr(fn()).encode())
                out["digest"][name] = h.hexdigest()[:16]
                out["us"][name] = _time(fn, min_s)
        finally:
            loop.close()
    return out


def logging_quiet() -> None:
    import logging
    logging.disable(logging.WARNING)


def baseline_tree(ref: str, into: Path) -> Path:
    """``src/`` of git revision ``ref``, extracted under ``into``."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref, "src"], check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=__import__("io").BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def run_tree(src: Path | None, min_s: float, registered: int) -> dict[str, Any]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = f"{src}{os.pathsep}{env.get('PYTHONPATH', '')}"
    cmd = [sys.executable, "-m", "bench.api.handler", "--child", "--min-s", str(min_s), "--registered", str(registered)]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"{' '.join(cmd)} ({src or 'current tree'}) failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", default=BASELINE, help="git revision to compare with ('none': no comparison)")
    p.add_argument("--rounds", type=int, default=2, help="runs of each tree, interleaved (best kept)")
    p.add_argument("--min-s", type=float, default=0.2, help="seconds per timing round")
    p.add_argument("--registered", type=int, default=len(SENSORS),
                   help="sensors in the registry (200: every sensor, as deployed; 0: as bench/api runs)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        import heatwatch
        res = measure(a.min_s, a.registered)
        res["tree"] = str(Path(heatwatch.__file__).parents[1])
        print(json.dumps(res))
        return
    with tempfile.TemporaryDirectory(prefix="bench-handler-base-") as tmp:
        base_src = None if a.baseline == "none" else baseline_tree(a.baseline, Path(tmp))
        cur: list[dict[str, Any]] = []
        base: list[dict[str, Any]] = []
        for _ in range(a.rounds):
            cur.append(run_tree(None, a.min_s, a.registered))
            if base_src is not None:
                base.append(run_tree(base_src, a.min_s, a.registered))

    def best(runs: list[dict[str, Any]], name: str) -> float | None:
        vals = [r["us"][name] for r in runs if name in r["us"]]
        return min(vals) if vals else None

    names = list(cur[0]["us"])
    print(f"µs per call, best of {a.rounds} interleaved runs, {a.registered} sensors registered; current tree vs "
          f"{a.baseline} (ratio = baseline / current; 'same bytes': both trees answered alike)")
    width = max(len(n) for n in names)
    print(f"{'case':<{width}}  {'baseline':>9}  {'current':>9}  {'ratio':>6}  same bytes")
    mismatched = []
    for name in names:
        c = best(cur, name)
        b = best(base, name) if base else None
        same = "" if not base else ("yes" if base[0]["digest"].get(name) == cur[0]["digest"].get(name) else "NO")
        if same == "NO":
            mismatched.append(name)
        bs = f"{b:9.1f}" if b is not None else f"{'-':>9}"
        ratio = f"{b / c:6.2f}" if b is not None and c else f"{'-':>6}"
        print(f"{name:<{width}}  {bs}  {c:9.1f}  {ratio}  {same}")
    if mismatched:
        raise SystemExit(f"answers differ between the trees: {mismatched}")


if __name__ == "__main__":
    main()
