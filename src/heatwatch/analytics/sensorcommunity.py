"""sensor.community (formerly luftdaten.info) stations as citizen sensors: archive files and the data API.

sensor.community is a citizen network of DIY stations (an ESP8266 with a PM sensor and, often, a DHT22, BME280 or
SHT3x for temperature and humidity) publishing open data under the **Open Database License 1.0** (© sensor.community
contributors). heatwatch takes the temperature/humidity sensors of a town's bounding box as citizen sensors
(docs/citizens.md, "sensor.community"):

* registry: one sensor per sensor.community *sensor* id, ``sc-<id>``, owner ``citizen`` (a private site: published
  on the privacy grid only, docs/privacy.md), trust ``provisional`` (the crowd QC profile decides, like residents'
  sensors), licence ``ODbL-1.0``, provenance ``sensor.community:<id>``, site class ``urban`` (a town may correct it
  in the registry), name ``sensor.community <type> <id>``;
* readings: measurement ``reading`` as ingest stores them (``temperature``, ``humidity``, ``source =
  "sensor.community"``), written in batches by this importer — a documented batch write rather than MQTT, because
  archive files are older than ingest's backlog window; the same limits as ingest (core/model.py) apply.

What is refused, counted by reason in the :class:`ImportReport`: rows outside every town's box, without position,
of another sensor type, indoor stations (the API's ``location.indoor``; the archive already leaves them out),
values out of the physical limits (a bad humidity only drops the humidity), times in the future, a station whose
registry entry is retired (the town's way to honour an objection: docs/citizens.md), points older than the raw
retention policy.

Inputs, with their real shapes:

* archive files (https://archive.sensor.community/<day>/<day>_<type>_sensor_<id>.csv, also the monthly
  ``csv_per_month`` files, zipped or gzipped): ``;``-separated with a header; columns by sensor type, e.g.
  DHT22/SHT3x/HTU21D ``sensor_id;sensor_type;location;lat;lon;timestamp;temperature;humidity``, BME280
  ``…;timestamp;pressure;altitude;pressure_sealevel;temperature;humidity``; ``timestamp`` in UTC, naive
  (``2023-06-01T00:01:31``) or with an offset in older files; empty values and positions happen;
* the data API (https://data.sensor.community/airrohr/v1/filter/box=<lat1>,<lon1>,<lat2>,<lon2>&type=<types>: every
  measurement of the last 5 minutes): a JSON array of ``{id, timestamp ("2024-06-15 10:21:42", UTC), location {id,
  latitude, longitude, altitude, country, exact_location, indoor} (strings and 0/1), sensor {id, pin, sensor_type
  {id, name, manufacturer}}, sensordatavalues [{id, value_type, value (a string)}]}``.
"""

from __future__ import annotations

import gzip
import io
import math
import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from heatwatch.core.errors import InfluxWriteError
from heatwatch.core.influx import InfluxClient
from heatwatch.core.logging import get_logger
from heatwatch.core.model import RH_MAX, RH_MIN, T_MAX, T_MIN, Reading, Sensor, SiteClass, Town
from heatwatch.core.registry import Registry

log = get_logger("heatwatch.sensor_community")

SOURCE = "sensor.community"
LICENCE = "ODbL-1.0"
ATTRIBUTION = "© sensor.community contributors, ODbL 1.0 (https://opendatacommons.org/licenses/odbl/1-0/)"
#: Sensor types measuring air temperature and humidity that heatwatch takes (the API's ``type`` names).
TYPES = ("DHT22", "BME280", "SHT30", "SHT31", "SHT35", "SHT85", "HTU21D")
FUTURE_TOLERANCE_MS = 5 * 60 * 1000
BATCH_LINES = 5000
CHUNK_ROWS = 200_000
#: A station seen this far from its registered position has moved: its registry position follows it.
MOVED_M = 100.0
_DROPPED = re.compile(r"dropped=(\d+)")


def sensor_id(sc_id: int | str) -> str:
    return f"sc-{int(sc_id)}"


@dataclass(frozen=True, slots=True)
class Box:
    """A town's bounding box (degrees): where its sensor.community stations are taken from."""

    town: str
    south: float
    west: float
    north: float
    east: float

    @classmethod
    def around(cls, town: Town, radius_km: float) -> Box:
        dlat = radius_km / 111.195
        dlon = radius_km / (111.195 * math.cos(math.radians(town.latitude)))
        return cls(town.id, round(town.latitude - dlat, 4), round(town.longitude - dlon, 4),
                   round(town.latitude + dlat, 4), round(town.longitude + dlon, 4))

    def contains(self, lat: float, lon: float) -> bool:
        return self.south <= lat <= self.north and self.west <= lon <= self.east

    @property
    def query(self) -> str:
        """The API's ``box=`` filter: lat1,lon1,lat2,lon2."""
        return f"box={self.south},{self.west},{self.north},{self.east}"


@dataclass
class ImportReport:
    rows: int = 0
    written: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    new_sensors: list[str] = field(default_factory=list)
    moved_sensors: list[str] = field(default_factory=list)
    #: town → (first, last) reading time (ms) written
    span: dict[str, tuple[int, int]] = field(default_factory=dict)

    def as_log(self) -> dict[str, Any]:
        return {"rows": self.rows, "written": self.written, "skipped": dict(self.skipped),
                "new_sensors": len(self.new_sensors), "moved_sensors": len(self.moved_sensors)}

    def days(self, town: str, tz: str) -> tuple[date, date] | None:
        """The local days of ``town`` the written readings fall on (what to recompute)."""
        if town not in self.span:
            return None
        lo, hi = self.span[town]
        f = [pd.Timestamp(ms, unit="ms", tz="UTC").tz_convert(tz).date() for ms in (lo, hi)]
        return f[0], f[1]


@dataclass(frozen=True, slots=True)
class Row:
    """One measurement of one sensor.community sensor, as both inputs give it."""

    sc_id: int
    sensor_type: str
    lat: float | None
    lon: float | None
    ts_ms: int | None
    temperature: float | None
    humidity: float | None
    indoor: bool = False


# Inputs --------------------------------------------------------------------------------------


def _number(v: Any) -> float | None:
    if v is None:
        return None
    try:
        x = float(str(v).strip())
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def _api_time(v: Any) -> int | None:
    """``2024-06-15 10:21:42`` (UTC, the API's form) or an ISO 8601 time with an offset → epoch ms."""
    try:
        t = pd.Timestamp(str(v).strip().replace(" ", "T", 1))
    except (ValueError, TypeError):
        return None
    if t is pd.NaT:
        return None
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return int(t.value // 1_000_000)


def parse_api(doc: Any) -> Iterator[Row]:
    """The rows of a data-API answer (a JSON array); malformed entries give rows with what is missing as None
    (they are then refused with a reason), never an exception."""
    if not isinstance(doc, list):
        raise ValueError("a sensor.community API answer is a JSON array of measurements")
    for m in doc:
        if not isinstance(m, dict):
            continue
        sensor = m.get("sensor") or {}
        loc = m.get("location") or {}
        stype = str(((sensor.get("sensor_type") or {}).get("name")) or "")
        values = {str(v.get("value_type")): v.get("value") for v in m.get("sensordatavalues") or []
                  if isinstance(v, dict)}
        try:
            sc_id = int(sensor.get("id"))
        except (TypeError, ValueError):
            continue
        yield Row(sc_id, stype, _number(loc.get("latitude")), _number(loc.get("longitude")),
                  _api_time(m.get("timestamp")), _number(values.get("temperature")), _number(values.get("humidity")),
                  indoor=str(loc.get("indoor", "0")).strip() not in ("0", "", "false", "False", "None"))


def _open_text(path: Path) -> io.TextIOBase:
    head = path.read_bytes()[:4] if path.stat().st_size else b""
    if head[:2] == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    if head[:4] == b"PK\x03\x04":
        z = zipfile.ZipFile(path)
        names = [n for n in z.namelist() if n.lower().endswith(".csv")]
        if not names:
            raise ValueError(f"{path.name}: a zip file without a .csv inside")
        return io.TextIOWrapper(z.open(names[0]), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")  # closed by the caller


REQUIRED = ("sensor_id", "sensor_type", "lat", "lon", "timestamp")


def parse_archive(path: Path | str, boxes: Iterable[Box] | None = None,
                  skipped: Counter[str] | None = None) -> Iterator[Row]:
    """The rows of an archive file (``.csv``, ``.csv.gz`` or a ``.zip`` holding one), read in chunks: the monthly
    files hold every sensor of a type worldwide, so with ``boxes`` only the rows inside one are yielded (the others
    counted ``outside_box`` in ``skipped``). Raises ``ValueError`` for a file that is not one."""
    path = Path(path)
    boxes = list(boxes) if boxes is not None else None
    with _open_text(path) as text:
        header = text.readline().strip().lstrip("\ufeff")
        names = [c.strip() for c in header.split(";")]
        missing = [c for c in (*REQUIRED, "temperature") if c not in names]
        if missing:
            raise ValueError(f"{path.name}: not a sensor.community archive file of a temperature sensor (missing "
                             f"{', '.join(missing)}; expected a ';'-separated header such as "
                             "sensor_id;sensor_type;location;lat;lon;timestamp;temperature;humidity)")
        keep = [c for c in (*REQUIRED, "temperature", "humidity") if c in names]
        reader = pd.read_csv(text, sep=";", names=names, usecols=keep, dtype=str, chunksize=CHUNK_ROWS,
                             keep_default_na=False, na_values=["", "nan", "NaN", "NULL", "null"], on_bad_lines="skip")
        for chunk in reader:
            lat = pd.to_numeric(chunk["lat"], errors="coerce")
            lon = pd.to_numeric(chunk["lon"], errors="coerce")
            if boxes is not None:
                inside = pd.Series(False, index=chunk.index)
                for b in boxes:
                    inside |= lat.between(b.south, b.north) & lon.between(b.west, b.east)
                # Rows without a position are kept: they are refused for that reason, not as outside.
                inside |= lat.isna() | lon.isna()
                if skipped is not None:
                    skipped["outside_box"] += int((~inside).sum())
                chunk, lat, lon = chunk[inside], lat[inside], lon[inside]
                if chunk.empty:
                    continue
            ids = pd.to_numeric(chunk["sensor_id"], errors="coerce")
            ts = pd.to_datetime(chunk["timestamp"].str.strip(), utc=True, errors="coerce", format="ISO8601")
            ms = ((ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)).astype("Float64")
            t = pd.to_numeric(chunk["temperature"], errors="coerce")
            h = (pd.to_numeric(chunk["humidity"], errors="coerce") if "humidity" in chunk
                 else pd.Series(float("nan"), index=chunk.index))
            for sid, stype, la, lo, m, tv, hv in zip(ids, chunk["sensor_type"], lat, lon, ms, t, h, strict=True):
                if pd.isna(sid):
                    continue
                yield Row(int(sid), str(stype), _nan(la), _nan(lo), None if pd.isna(m) else int(m), _nan(tv), _nan(hv))


def _nan(v: Any) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


# Storing -------------------------------------------------------------------------------------


def _distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    dy = (lat2 - lat1) * 111_195.0
    dx = (lon2 - lon1) * 111_195.0 * math.cos(math.radians((lat1 + lat2) / 2))
    return math.hypot(dx, dy)


class Importer:
    """Rows → the registry (new stations) and ``reading`` points, in batches; one report per run."""

    def __init__(self, client: InfluxClient, registry: Registry, boxes: Iterable[Box], *,
                 types: Iterable[str] = TYPES, now_ms: int | None = None, today: date | None = None) -> None:
        self.client = client
        self.registry = registry
        self.boxes = list(boxes)
        self.types = {t.upper() for t in types}
        self.now_ms = now_ms if now_ms is not None else int(datetime.now(UTC).timestamp() * 1000)
        self.today = today or datetime.now(UTC).date()
        self.report = ImportReport()
        self._lines: list[str] = []
        self._known: dict[str, Sensor | None] = {}

    def _town(self, lat: float, lon: float) -> str | None:
        return next((b.town for b in self.boxes if b.contains(lat, lon)), None)

    def _station(self, row: Row, town: str) -> Sensor | None:
        """The registry entry of the row's sensor, registered on first sight; None when it may not be imported."""
        sid = sensor_id(row.sc_id)
        if sid not in self._known:
            self._known[sid] = self.registry.get(sid)
        s = self._known[sid]
        assert row.lat is not None and row.lon is not None
        if s is None:
            s = Sensor(id=sid, town=town, name=f"sensor.community {row.sensor_type} {row.sc_id}", latitude=row.lat,
                       longitude=row.lon, site_class=SiteClass.urban, owner="citizen",
                       installed=pd.Timestamp(row.ts_ms, unit="ms", tz="UTC").date() if row.ts_ms else self.today,
                       trust="provisional", trust_since=self.today, licence=LICENCE,
                       provenance=f"{SOURCE}:{row.sc_id}")
            self.registry.upsert(s)
            self.report.new_sensors.append(sid)
            log.info("sensor_community.registered", sensor=sid, town=town, type=row.sensor_type)
        elif s.retired:
            return None
        elif s.town != town:
            return None  # a station keeps the town it was registered in
        elif s.latitude is not None and s.longitude is not None and _distance_m(
                s.latitude, s.longitude, row.lat, row.lon) > MOVED_M:
            s = s.model_copy(update={"latitude": row.lat, "longitude": row.lon})
            self.registry.upsert(s)
            self.report.moved_sensors.append(sid)
            log.info("sensor_community.moved", sensor=sid, town=town)
        self._known[sid] = s
        return s

    def _refuse(self, reason: str) -> None:
        self.report.skipped[reason] += 1

    async def add(self, rows: Iterable[Row]) -> None:
        for row in rows:
            self.report.rows += 1
            if row.sensor_type.upper() not in self.types:
                self._refuse("sensor_type")
                continue
            if row.indoor:
                self._refuse("indoor")
                continue
            if row.lat is None or row.lon is None:
                self._refuse("no_position")
                continue
            town = self._town(row.lat, row.lon)
            if town is None:
                self._refuse("outside_box")
                continue
            if row.ts_ms is None:
                self._refuse("no_time")
                continue
            if row.ts_ms > self.now_ms + FUTURE_TOLERANCE_MS:
                self._refuse("future_timestamp")
                continue
            t = row.temperature
            h = row.humidity
            if t is not None and not T_MIN <= t <= T_MAX:
                self._refuse("temperature_range")
                continue
            if h is not None and not RH_MIN <= h <= RH_MAX:
                self.report.skipped["humidity_range"] += 1  # the temperature is still good
                h = None
            if t is None and h is None:
                self._refuse("no_measurement")
                continue
            station = self._station(row, town)
            if station is None:
                self._refuse("retired_or_other_town")
                continue
            self._lines.append(Reading(town, station.id, row.ts_ms, temperature=t, humidity=h,
                                       source=SOURCE).to_line())
            lo, hi = self.report.span.get(town, (row.ts_ms, row.ts_ms))
            self.report.span[town] = (min(lo, row.ts_ms), max(hi, row.ts_ms))
            if len(self._lines) >= BATCH_LINES:
                await self.flush()

    async def flush(self) -> None:
        lines, self._lines = self._lines, []
        if not lines:
            return
        try:
            await self.client.write_lines(lines)
            self.report.written += len(lines)
        except InfluxWriteError as exc:
            # A partial write: InfluxDB stored the others and names how many were beyond the raw retention.
            m = _DROPPED.search(str(exc))
            if m is None or "retention" not in str(exc):
                raise
            dropped = int(m.group(1))
            self.report.skipped["beyond_retention"] += dropped
            self.report.written += len(lines) - dropped


async def import_files(client: InfluxClient, registry: Registry, paths: Iterable[Path], boxes: Iterable[Box],
                       **kw: Any) -> ImportReport:
    boxes = list(boxes)
    imp = Importer(client, registry, boxes, **kw)
    for p in paths:
        await imp.add(parse_archive(p, boxes, imp.report.skipped))
    await imp.flush()
    return imp.report


def api_url(base: str, box: Box, types: Iterable[str] = TYPES) -> str:
    """The data API's filter URL for a town's box and the temperature sensor types."""
    return f"{base.rstrip('/')}/airrohr/v1/filter/{box.query}&type={','.join(types)}"


async def pull(client: InfluxClient, registry: Registry, base: str, boxes: Iterable[Box], *,
               http: httpx.AsyncClient | None = None, types: Iterable[str] = TYPES, timeout_s: float = 60.0,
               **kw: Any) -> ImportReport:
    """One pull of the data API per town's box (the measurements of the last 5 minutes), stored as above. An API
    that fails or answers something else is logged and counted (``api_error``), never raised: the next pull
    retries."""
    boxes = list(boxes)
    imp = Importer(client, registry, boxes, types=types, **kw)
    own = http is None
    http = http or httpx.AsyncClient(timeout=timeout_s, headers={"User-Agent": "heatwatch (urban heat island)"},
                                     follow_redirects=True)
    try:
        for box in boxes:
            url = api_url(base, box, types)
            try:
                r = await http.get(url)
                r.raise_for_status()
                rows = list(parse_api(r.json()))
            except (httpx.HTTPError, ValueError) as exc:
                imp.report.skipped["api_error"] += 1
                log.error("sensor_community.api_failed", town=box.town, url=url, error=str(exc)[:300])
                continue
            await imp.add(rows)
        await imp.flush()
    finally:
        if own:
            await http.aclose()
    return imp.report


def boxes_for(towns: Mapping[str, Town], radius_km: float, only: str | None = None) -> list[Box]:
    return [Box.around(t, radius_km) for t in towns.values() if only is None or t.id == only]
