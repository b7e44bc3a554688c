"""``heatwatch up --demo``: a past summer with a heat wave for both towns, analysed, then live readings.

A newcomer should see a summer's heat island within two minutes, whatever the date. So the demo does what a
town does when it imports its sensors' archive before going live (docs/operations.md, "The demo"):

1. the simulator publishes the last complete vigilance season (1 June – 15 September, the newest one that has
   ended) for every example site, as their data loggers would upload it: one native JSON message per sensor and
   day, a reading every 10 minutes, with a six-day heat wave in the second half of July and the usual faulty
   sensors (stuck, spiking, drifting). The ingester's backlog window is widened to admit it
   (``HEATWATCH_BACKLOG_WINDOW``);
2. live readings start (the last day first, then one every 5 minutes per sensor, in each device's format);
3. once the summer is stored (counted in InfluxDB), ``heatwatch backfill`` computes its aggregates, indices,
   canicule days and QC, the same code path as any recompute;
4. once the live day is stored too, the analytics service starts; its grace rule (docs/alerts.md) keeps the
   loading itself from opening alerts;
5. the demo prints where to look.

A second ``up --demo`` on the same data folder finds the summer loaded (``<data>/demo/summer-<year>.json``) and
goes straight to live readings.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from zoneinfo import ZoneInfo

from ..core.influx import InfluxClient
from ..core.logging import get_logger
from ..core.measurements import READING
from ..core.thresholds import VIGILANCE_SEASON_FIRST, VIGILANCE_SEASON_LAST

log = get_logger("heatwatch.up.demo")

LOCAL = ZoneInfo("Europe/Paris")
#: The vigilance season of Météo-France's heat-wave warnings (docs/science/canicule.md).
SEASON_FIRST = VIGILANCE_SEASON_FIRST
SEASON_LAST = VIGILANCE_SEASON_LAST
SUMMER_STEP = "10m"  # a logger's archive interval: half the readings of the live 5 minutes, as good for the indices
LIVE_BACKFILL = "1d"  # the dashboard's 24-hour chart, filled at once
STORED_TIMEOUT_S = 300.0
LIVE_TIMEOUT_S = 180.0


@dataclass(frozen=True, slots=True)
class DemoSummer:
    """The summer the demo loads: the newest vigilance season that has ended, and its heat wave."""

    season: int
    heatwave_start: date
    heatwave_days: int = 6

    @classmethod
    def before(cls, today: date) -> DemoSummer:
        season = today.year if today > date(today.year, *SEASON_LAST) else today.year - 1
        # In the second half of July, when the climatology peaks: the simulator's heat wave then clears the
        # canicule thresholds by more than a degree on every three-day window inside it.
        return cls(season, date(season, 7, 16))

    @property
    def first(self) -> date:
        return date(self.season, *SEASON_FIRST)

    @property
    def last(self) -> date:
        return date(self.season, *SEASON_LAST)

    @property
    def utc_range(self) -> tuple[datetime, datetime]:
        """[first local midnight, the day after the last local midnight), in UTC."""
        start = datetime.combine(self.first, dtime.min, LOCAL).astimezone(UTC)
        end = datetime.combine(self.last + timedelta(days=1), dtime.min, LOCAL).astimezone(UTC)
        return start, end

    @property
    def canicule_night(self) -> date:
        """A night inside the heat wave (the third day of it), for the map the demo points to."""
        return self.heatwave_start + timedelta(days=min(2, self.heatwave_days - 1))

    def backlog_window(self, today: date) -> timedelta:
        """What the ingester must accept for the summer's first reading, with a margin of a few days."""
        return (today - self.first) + timedelta(days=3)

    def marker(self, data: Path) -> Path:
        return data / "demo" / f"summer-{self.season}.json"

    def simulate_args(self, result: Path) -> list[str]:
        return ["simulate", "--start", self.first.isoformat(), "--end", (self.last + timedelta(days=1)).isoformat(),
                "--format", "json", "--batch", "1d", "--step", SUMMER_STEP,
                "--heatwave-start", self.heatwave_start.isoformat(), "--heatwave-days", str(self.heatwave_days),
                "--client-id", f"heatwatch-demo-summer-{self.season}", "--result", str(result)]

    def backfill_args(self) -> list[str]:
        return ["backfill", "--from", self.first.isoformat(), "--to", self.last.isoformat()]


def today_local() -> date:
    return datetime.now(LOCAL).date()


def load_marker(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def save_marker(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    tmp.replace(path)


async def count_readings(client: InfluxClient, start: datetime, end: datetime) -> int:
    c = READING.col
    q = (f"SELECT COUNT({c('temperature')}) AS n FROM {client.table(READING)} "
         f"WHERE time >= $start AND time < $end")
    rows = await client.query_records(q, {"start": _ns(start), "end": _ns(end)})
    return int(rows[0]["n"]) if rows else 0


async def towns_reporting(client: InfluxClient, since: datetime) -> set[str]:
    c = READING.col
    q = (f"SELECT LAST({c('temperature')}) FROM {client.table(READING)} WHERE time >= $since "
         f"GROUP BY {c('town')}")
    rows = await client.query_records(q, {"since": _ns(since)})
    return {str(r["town"]) for r in rows if r.get("town")}


def _ns(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000_000)


def wait_until(check: Callable[[], bool], timeout: float, stopping: Callable[[], bool] = lambda: False,
               interval: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stopping():
        if check():
            return True
        time.sleep(interval)
    return False


def wait_stored(open_client: Callable[[], InfluxClient], start: datetime, end: datetime, expected: int,
                timeout: float = STORED_TIMEOUT_S) -> int:
    """Readings of [start, end) stored, once they reach ``expected`` or ``timeout`` passes (then what is there)."""
    seen = 0

    async def count() -> int:
        async with open_client() as client:
            return await count_readings(client, start, end)

    def done() -> bool:
        nonlocal seen
        seen = asyncio.run(count())
        return seen >= expected

    wait_until(done, timeout, interval=1.0)
    return seen


def wait_live(open_client: Callable[[], InfluxClient], towns: set[str], timeout: float = LIVE_TIMEOUT_S) -> bool:
    """Whether every town has a reading of the last ten minutes: the live simulator's catch-up day is stored."""

    async def reporting() -> set[str]:
        async with open_client() as client:
            return await towns_reporting(client, datetime.now(UTC) - timedelta(minutes=10))

    return wait_until(lambda: towns <= asyncio.run(reporting()), timeout, interval=1.0)


def heatwatch_command() -> str:
    """How the user runs heatwatch from this environment (the virtual environment's script when there is one)."""
    script = Path(sys.executable).parent / "heatwatch"
    return str(script) if script.exists() else (shutil.which("heatwatch") or "heatwatch")


def where_to_look(base: str, summer: DemoSummer, loaded: dict, report_env: dict[str, str]) -> str:
    """The lines the demo prints once the summer is analysed."""
    hw = loaded.get("heatwave") or {}
    canicule = hw.get("canicule_days") or []
    first, last = summer.first, summer.last
    span = f"{first.day} {first:%B} – {last.day} {last:%B}"
    head = (f"demo: the summer of {summer.season} is loaded and analysed: {loaded.get('readings', 0):,} readings of "
            f"{loaded.get('sensors', 0)} sensors, {span}, heat wave from {summer.heatwave_start} "
            f"({summer.heatwave_days} days; canicule days {', '.join(canicule) or 'none'}); live readings go on.")
    env = " ".join(f"{k}={v}" for k, v in report_env.items())
    rows = [
        ("dashboard", f"{base}/#vitre  (and {base}/#saint-omer): map, sensors, alerts, the summer's indices, "
                      "heat-island map and ranking"),
        ("canicule episodes", f"{base}/v1/canicule-episodes?town=vitre"),
        ("heat-island map", f"{base}/v1/towns/vitre/uhi-map?kind=night&date={summer.canicule_night}&format=png"),
        ("rankings", f"{base}/v1/towns/vitre/rankings?season={summer.season}"),
        ("seasonal report", f"{env} {heatwatch_command()} report --town vitre --season {summer.season} "
                            f"--out reports/"),
    ]
    return "\n".join([head, *(f"  {name:<18} {what}" for name, what in rows)])
