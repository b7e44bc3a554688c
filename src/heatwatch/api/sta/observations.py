"""Observations: pages read from InfluxDB through the api's store (``api/store.py``), bounded like ``/v1``.

A page is read window by window in time order. Each window starts where the next stored row is (one ``LIMIT 1``
statement finds it, so years without data cost nothing) and spans at most the ``/v1`` cap of its measurement
(``HEATWATCH_API_MAX_RAW_DAYS`` for raw readings, ``…_MAX_HOURLY_DAYS`` for hourly means), with a row cap; a
request reads at most :data:`MAX_WINDOWS` windows. The ``$filter`` decides on each observation; the time range it
allows (:func:`.odata.time_hull`) is what the database is asked for.

Paging is by position, never by OFFSET: ``@iot.nextLink`` carries ``$skiptoken=<time>.<k>.<skip>`` — resume at
the observations of that time (in id order) after the first ``k``, still skipping ``skip``. Rows sharing a time
(every sensor at the top of the hour) are read whole, so none is lost or repeated between pages.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from heatwatch.core.measurements import HOURLY, Measurement, QcFlag
from heatwatch.core.tabular import iso_z

from ..errors import ApiError
from ..store import MAX_SERIES, Store
from .model import KINDS, Model, StreamKind, datastream_id, split_datastream
from .odata import ODataError, evaluate, properties_of, time_hull

#: Windows one request may read before answering with what it found and a next link.
MAX_WINDOWS = 12
#: Readings are accepted up to 5 minutes ahead (ingest's validation): the newest possible time.
FUTURE_MS = 5 * 60_000
EPOCH_FLOOR_MS = 0
_TOKEN = re.compile(r"^(\d{1,15})\.(\d{1,6})\.(\d{1,6})$")


@dataclass(slots=True)
class Source:
    """The rows of one measurement a page reads: its fields, and the sensors (one tag filter or a set)."""

    m: Measurement
    kinds: list[StreamKind]
    sensors: set[str]
    sensor: str | None  # a single sensor: a tag filter; else rows of every sensor, kept if in ``sensors``
    town: str | None
    window_ms: int

    @property
    def fields(self) -> list[str]:
        fs = list(dict.fromkeys(k.field for k in self.kinds))
        return fs + (["qc", "n"] if self.m is HOURLY else [])


def parse_token(token: str) -> tuple[int, int, int]:
    m = _TOKEN.match(token)
    if m is None:
        raise ODataError(f"invalid $skiptoken {token[:40]!r}: use the @iot.nextLink of the previous page")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def qc_quality(qc: Any) -> dict[str, Any] | None:
    if qc is None:
        return None
    flags = [f.name for f in QcFlag if int(qc) & int(f)]
    return {"qc": int(qc), "flags": flags, "passed": int(qc) == 0}


class Observations:
    def __init__(self, store: Store, model: Model, base: str, *, raw_days: int, hourly_days: int) -> None:
        self.store = store
        self.model = model
        self.base = base
        self.windows = {"reading": raw_days * 86_400_000, "hourly": hourly_days * 86_400_000}

    # one observation --------------------------------------------------------------------------------------------

    def entity(self, sensor: str, kind: StreamKind, t: int, row: dict[str, Any]) -> dict[str, Any] | None:
        value = row.get(kind.field)
        if value is None:
            return None
        ds = datastream_id(sensor, kind.code)
        out: dict[str, Any] = {"@iot.id": f"{ds}:{t}"}
        if kind.interval_ms:
            end = t + kind.interval_ms
            out["phenomenonTime"] = f"{iso_z(t)}/{iso_z(end)}"
            out["resultTime"] = iso_z(end)
            out["result"] = float(value)
            out["resultQuality"] = qc_quality(row.get("qc"))
            out["parameters"] = {"n": row.get("n"), "qc": row.get("qc")}
        else:
            out["phenomenonTime"] = iso_z(t)
            out["resultTime"] = iso_z(t)
            out["result"] = float(value)
        out["_t"], out["_ds"], out["_sensor"] = t, ds, sensor
        return out

    def getter(self, obs: dict[str, Any]) -> Any:
        def get(path: tuple[str, ...]) -> Any:
            head = path[0]
            if len(path) == 1:
                if head in ("phenomenonTime", "resultTime"):
                    t = obs["_t"] + (0 if head == "phenomenonTime" else (obs["resultTime"] != obs["phenomenonTime"])
                                     * _interval(obs))
                    return datetime.fromtimestamp(t / 1000, UTC)
                if head == "id":
                    return obs["@iot.id"]
                return obs.get(head)
            if head == "Datastream":
                if path[1] == "id":
                    return obs["_ds"]
                return _dig(self.model.body("Datastreams", obs["_ds"]), path[1:])
            if head == "FeatureOfInterest":
                if path[1] == "id":
                    return obs["_sensor"] if self.model.exists("FeaturesOfInterest", obs["_sensor"]) else None
                if not self.model.exists("FeaturesOfInterest", obs["_sensor"]):
                    return None
                return _dig(self.model.body("FeaturesOfInterest", obs["_sensor"]), path[1:])
            return _dig(obs, path)
        return get

    # sources ----------------------------------------------------------------------------------------------------

    def sources(self, streams: list[str]) -> list[Source]:
        by_m: dict[str, Source] = {}
        for ds in streams:
            found = split_datastream(ds)
            if found is None:
                continue
            sensor, kind = found
            src = by_m.get(kind.measurement.name)
            if src is None:
                src = by_m[kind.measurement.name] = Source(kind.measurement, [], set(), None, None,
                                                           self.windows[kind.measurement.name])
            if kind not in src.kinds:
                src.kinds.append(kind)
            src.sensors.add(sensor)
        for src in by_m.values():
            if len(src.sensors) == 1:
                src.sensor = next(iter(src.sensors))
            towns = {self.model.sensors[s].town for s in src.sensors if s in self.model.sensors}
            src.town = next(iter(towns)) if len(towns) == 1 else None
        return list(by_m.values())

    def _expand(self, src: Source, rows: list[list[Any]], wanted: set[str], flt: Any) -> list[dict[str, Any]]:
        names = ["time", "sensor", *src.fields]
        out = []
        for r in rows:
            rec = dict(zip(names, r, strict=True))
            sensor = rec["sensor"]
            if sensor not in src.sensors:
                continue
            t = int(rec["time"])
            for kind in src.kinds:
                if datastream_id(sensor, kind.code) not in wanted:
                    continue
                obs = self.entity(sensor, kind, t, rec)
                if obs is not None and (flt is None or evaluate(flt, self.getter(obs)) is True):
                    out.append(obs)
        return out

    # one observation by id ----------------------------------------------------------------------------------------

    async def one(self, sensor: str, kind: StreamKind, t: int) -> dict[str, Any] | None:
        src = Source(kind.measurement, [kind], {sensor}, sensor, None, 0)
        rows = await self.store.observation_rows(src.m, src.fields, t, t + 1, sensor=sensor, limit=1)
        found = self._expand(src, rows, {datastream_id(sensor, kind.code)}, None)
        return found[0] if found else None

    # a page -----------------------------------------------------------------------------------------------------

    def bounds(self, flt: Any) -> tuple[int, int]:
        now = int(datetime.now(UTC).timestamp() * 1000)
        lo_ms, hi_ms = EPOCH_FLOOR_MS, now + FUTURE_MS
        if flt is not None:
            lo, hi, lo_x, hi_x = time_hull(flt)
            if lo is not None:
                lo_ms = max(lo_ms, int(lo.timestamp() * 1000) + (1 if lo_x else 0))
            if hi is not None:
                hi_ms = min(hi_ms, int(hi.timestamp() * 1000) + (0 if hi_x else 1))
        return lo_ms, hi_ms

    async def page(self, streams: list[str], flt: Any, desc: bool, top: int, skip: int, token: str | None
                   ) -> tuple[list[dict[str, Any]], str | None]:
        """``top`` observations after ``skip`` (and the ``$skiptoken`` position), and the next token if more."""
        sources = self.sources(streams)
        wanted = set(streams)
        lo, hi = self.bounds(flt)
        items: list[dict[str, Any]] = []
        start_t: int | None = None
        k0 = 0
        if token is not None:
            start_t, k0, skip = parse_token(token)
            group = await self._at(sources, start_t, wanted, flt)
            items += group[k0:]
            if desc:
                hi = min(hi, start_t)
            else:
                lo = max(lo, start_t + 1)
        need = skip + top + 1
        windows = 0
        exhausted = False
        while len(items) < need:
            if windows >= MAX_WINDOWS or lo >= hi:
                exhausted = lo >= hi
                break
            edges = await asyncio.gather(*(self.store.observation_edge(
                s.m, s.fields, lo, hi, sensor=s.sensor, town=s.town, desc=desc) for s in sources))
            found = [e for e in edges if e is not None]
            if not found:
                exhausted = True
                break
            edge = max(found) if desc else min(found)
            width = min(s.window_ms for s in sources)
            a, b = (max(lo, edge + 1 - width), edge + 1) if desc else (edge, min(hi, edge + width))
            cap = need - len(items) + MAX_SERIES // 50
            chunks = await asyncio.gather(*(self.store.observation_rows(
                s.m, s.fields, a, b, sensor=s.sensor, town=s.town, desc=desc, limit=cap) for s in sources))
            cut: int | None = None  # a source that hit its cap was read only up to its last time (exclusive)
            for rows in chunks:
                if len(rows) >= cap:
                    last = int(rows[-1][0])
                    cut = last if cut is None else (max(cut, last) if desc else min(cut, last))
            got: list[dict[str, Any]] = []
            for s, rows in zip(sources, chunks, strict=True):
                if cut is not None:
                    rows = [r for r in rows if (int(r[0]) > cut if desc else int(r[0]) < cut)]
                got += self._expand(s, rows, wanted, flt)
            got.sort(key=lambda o: ((-o["_t"]) if desc else o["_t"], o["@iot.id"]))
            items += got
            if desc:
                hi = (cut + 1) if cut is not None else a
            else:
                lo = cut if cut is not None else b
            windows += 1
        page = items[skip:skip + top]
        if len(items) > skip + top:
            last = page[-1] if page else items[skip - 1]
            rank = sum(1 for o in items[:items.index(last) + 1] if o["_t"] == last["_t"])
            if start_t is not None and last["_t"] == start_t:
                rank += k0
            return page, f"{last['_t']}.{rank}.0"
        if not exhausted and lo < hi:
            remaining_skip = max(0, skip - len(items))
            resume = (hi - 1) if desc else lo
            return page, f"{resume}.0.{remaining_skip}"
        return page, None

    async def _at(self, sources: list[Source], t: int, wanted: set[str], flt: Any) -> list[dict[str, Any]]:
        chunks = await asyncio.gather(*(self.store.observation_rows(
            s.m, s.fields, t, t + 1, sensor=s.sensor, town=s.town, limit=MAX_SERIES) for s in sources))
        out: list[dict[str, Any]] = []
        for s, rows in zip(sources, chunks, strict=True):
            out += self._expand(s, rows, wanted, flt)
        out.sort(key=lambda o: o["@iot.id"])
        return out

    async def count(self, streams: list[str], flt: Any) -> int:
        """``@iot.count``: counted by the database, so only for filters on time (any other condition would need
        every observation read); several sensors at once only within the ``/v1`` cap of a request's span."""
        if flt is not None and not properties_of(flt) <= {("phenomenonTime",), ("resultTime",)}:
            raise ApiError(400, "count_unsupported", "$count on Observations takes a $filter on phenomenonTime "
                                                     "only; drop $count or the other conditions")
        lo, hi = self.bounds(flt)
        total = 0
        for s in self.sources(streams):
            if s.sensor is None:
                if hi - lo > s.window_ms:
                    raise ApiError(400, "count_unsupported", "$count over several sensors needs a phenomenonTime "
                                   f"range of at most {s.window_ms // 86_400_000} days (the /v1 cap); narrow the "
                                   "$filter")
                if s.sensors != set(self.model.sensors):
                    raise ApiError(400, "count_unsupported", "$count on Observations is for one sensor or all")
            counts = await self.store.observation_count(s.m, [k.field for k in s.kinds], lo, hi,
                                                        sensor=s.sensor, town=s.town)
            total += sum(counts.values())
        return total


def _interval(obs: dict[str, Any]) -> int:
    ds = split_datastream(obs["_ds"])
    return ds[1].interval_ms or 0 if ds else 0


def _dig(value: Any, path: tuple[str, ...]) -> Any:
    for p in path:
        if not isinstance(value, dict):
            return None
        value = value.get(p)
    return value


__all__ = ["KINDS", "Observations", "parse_token"]
