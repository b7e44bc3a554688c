"""A realistic small town network with one genuine hot spot, for the rankings and maps.

Laid out as a town deploys: a dozen street sensors of one kind in the old centre (LCZ 2), about 100–150 m
apart, at +2.8…3.3 °C on the nightly maximum of UHI; one street that is steadily hotter, +4.6 °C (a narrow
mineral street that stores the day's heat); two parks below zero; a rural reference in fields 3 km west.
A summer fortnight of nights, each sensor's UHI scaled by the night's weather (calm clear nights raise
every UHI) with sensor noise, and a few realistic gaps: a street sensor silent for the two hottest nights
(battery), another missing one night. Aggregates are written as the analytics writer does (daily points
at local midnight; ``uhi_night_max`` of day D is the night ending on the morning of D), so the API tests
do not depend on quality control; :func:`readings` gives the raw readings of the same town for an
end-to-end run through analytics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from heatwatch.core.model import Sensor, SiteClass

TZ = ZoneInfo("Europe/Paris")
TOWN = "vitre"
FIRST = date(2025, 7, 1)  # first daily row: the night of 30 June → 1 July
DAYS = 14
HOTSPOT = "hs-rue-etroite"
REFERENCE = "hs-rural"
HOT_NIGHTS_MISSED = "hs-rue-07"  # silent on the two hottest nights
ONE_NIGHT_MISSED = "hs-rue-03"
#: the hottest nights of the fortnight (row days), where HOT_NIGHTS_MISSED has no data
HOT_ROWS = (date(2025, 7, 8), date(2025, 7, 9))
LAT0, LON0 = 48.1236, -1.2089
M_PER_DEG_LAT = 111_195.0


def _at(dx_m: float, dy_m: float) -> tuple[float, float]:
    return LAT0 + dy_m / M_PER_DEG_LAT, LON0 + dx_m / (M_PER_DEG_LAT * math.cos(math.radians(LAT0)))


@dataclass(frozen=True, slots=True)
class Site:
    id: str
    site_class: SiteClass
    lcz: str
    dx_m: float
    dy_m: float
    #: mean nightly maximum of UHI, °C
    night_uhi: float

    def sensor(self) -> Sensor:
        lat, lon = _at(self.dx_m, self.dy_m)
        return Sensor(id=self.id, town=TOWN, name=f"TEST hot-spot town — {self.id}", latitude=round(lat, 6),
                      longitude=round(lon, 6), site_class=self.site_class, lcz=self.lcz, height_m=3.5,
                      installed=date(2025, 5, 1))


def _streets() -> list[Site]:
    levels = np.linspace(2.8, 3.3, 12)
    # A 4 × 3 grid of streets, 130 m apart, the hot spot in the middle of the grid's east side.
    out = []
    for i, level in enumerate(levels):
        col, row = i % 4, i // 4
        out.append(Site(f"hs-rue-{i + 1:02d}", SiteClass.urban, "LCZ 2", -200 + 130 * col, -130 + 130 * row,
                        round(float(level), 3)))
    return out


SITES: tuple[Site, ...] = (
    *_streets(),
    Site(HOTSPOT, SiteClass.urban, "LCZ 2", 125, 65, 4.6),
    Site("hs-parc-01", SiteClass.park, "LCZ B", -420, 260, -0.4),
    Site("hs-parc-02", SiteClass.park, "LCZ B", 380, -330, -0.8),
    Site(REFERENCE, SiteClass.rural_reference, "LCZ D", -3000, -400, 0.0),
)
STREETS = tuple(s.id for s in SITES if s.site_class is SiteClass.urban and s.id != HOTSPOT)


def sensors() -> list[Sensor]:
    return [s.sensor() for s in SITES]


def local_midnight_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=TZ).timestamp() * 1000)


@dataclass
class Fortnight:
    lines: list[str] = field(default_factory=list)
    #: (sensor, row day) -> uhi_night_max written
    night: dict[tuple[str, date], float] = field(default_factory=dict)
    #: the weather factor of each row day (1 = an average night)
    weather: dict[date, float] = field(default_factory=dict)


def weather(seed: int = 11) -> dict[date, float]:
    """Night factors around 1: calm clear nights up to ~1.3, windy cloudy ones ~0.7; the two
    HOT_ROWS nights are the calmest."""
    rng = np.random.default_rng(seed)
    f = np.clip(1 + rng.normal(0, 0.12, DAYS), 0.7, 1.2)
    days = [FIRST + timedelta(days=i) for i in range(DAYS)]
    out = dict(zip(days, f.tolist(), strict=True))
    for d in HOT_ROWS:
        out[d] = 1.3
    return out


def missing(sensor: str, day: date) -> bool:
    return (sensor == HOT_NIGHTS_MISSED and day in HOT_ROWS) or (sensor == ONE_NIGHT_MISSED
                                                                 and day == date(2025, 7, 3))


def fortnight(seed: int = 11) -> Fortnight:
    """Daily aggregates (and one night of hourly UHI) written straight into rp ``agg``."""
    rng = np.random.default_rng(seed)
    out = Fortnight(weather=weather(seed))
    for day, factor in out.weather.items():
        ts = local_midnight_ms(day)
        for s in SITES:
            if missing(s.id, day):
                continue
            uhi_n = 0.0 if s.id == REFERENCE else s.night_uhi * factor + rng.normal(0, 0.12)
            uhi_m = 0.45 * uhi_n
            tn = 16.0 + 3.0 * (factor - 1) + 0.85 * max(uhi_n, 0.0)
            tx = 28.0 + 6.0 * (factor - 1) + 0.3 * max(uhi_n, 0.0)
            out.night[(s.id, day)] = round(uhi_n, 4)
            tropical = "true" if tn >= 20 else "false"
            out.lines.append(
                f"daily,town={TOWN},sensor={s.id} tn={tn:.4f},tx={tx:.4f},t_mean={(tn + tx) / 2:.4f},rh_mean=62.0,"
                f"heat_index_max={tx:.4f},humidex_max={tx + 2:.4f},uhi_mean={uhi_m:.4f},"
                f"uhi_night_max={round(uhi_n, 4)},hours_ge_30=0i,tropical_night={tropical},coverage=1.0,qc=0i {ts}")
    # Hourly UHI of 02:00 local on the first hot night: the hot spot is the hottest hour too.
    hour = datetime.combine(HOT_ROWS[0], datetime.min.time(), TZ).replace(hour=2).astimezone(UTC)
    h = int(hour.timestamp() * 1000)
    for s in SITES:
        if missing(s.id, HOT_ROWS[0]):
            continue
        uhi = out.night[(s.id, HOT_ROWS[0])] - 0.2 if s.id != REFERENCE else 0.0
        t = 17.0 + uhi
        out.lines.append(f"hourly,town={TOWN},sensor={s.id} t_mean={t:.3f},t_min={t - 0.3:.3f},t_max={t + 0.3:.3f},"
                         f"rh_mean=70.0,dewpoint=12.0,heat_index={t:.3f},humidex={t:.3f},uhi={uhi:.3f},n=6i,qc=0i {h}")
    return out


def load_registry(path) -> None:
    """Only this town's sensors in the registry file the app will open."""
    from heatwatch.core.registry import Registry

    path.parent.mkdir(parents=True, exist_ok=True)
    with Registry(path) as reg:
        reg.upsert_many(sensors())


def readings(seed: int = 11, step_min: int = 10) -> list:
    """Raw readings of the same fortnight, from 12:00 UTC the day before FIRST to 06:00 UTC after the last
    row day (every local day complete, the night before FIRST and the last Tx window included), for a run
    through analytics: a rural diurnal cycle, each site warmer by its UHI at night (fully from 23:00 to
    04:00 local) and by about a third of it by day, sensor noise 0.1 °C. No faults: every value is what a
    healthy sensor reads. The silent sensors send nothing on the local days of their missing rows (a dead
    battery is replaced in the morning after)."""
    from heatwatch.core.model import Reading

    rng = np.random.default_rng(seed)
    nights = weather(seed)
    start = datetime.combine(FIRST - timedelta(days=1), datetime.min.time(), UTC).replace(hour=12)
    end = datetime.combine(FIRST + timedelta(days=DAYS), datetime.min.time(), UTC).replace(hour=6)
    out = []
    t = start
    while t < end:
        local = t.astimezone(TZ)
        hour = local.hour + local.minute / 60
        # The night ending on the morning of row day D: evening of D−1 and morning of D.
        row = local.date() + timedelta(days=1) if hour >= 12 else local.date()
        factor = nights.get(row, 1.0)
        rural = 19.0 + 6.5 * math.cos((hour - 15.0) / 24 * 2 * math.pi) + 3.0 * (factor - 1)
        # Nocturnal UHI shape: full from 23:00 to 04:00, rising from 19:00, falling to a third by 09:00.
        night_w = max(0.0, min(1.0, (hour - 19) / 4 if hour >= 19 else (9 - hour) / 5 if hour <= 9 else 0.0))
        for s in SITES:
            if missing(s.id, local.date()):
                continue
            uhi = s.night_uhi * factor * (night_w + (1 - night_w) / 3)
            temp = rural + (0.0 if s.id == REFERENCE else uhi) + rng.normal(0, 0.1)
            out.append(Reading(TOWN, s.id, int(t.timestamp() * 1000), round(temp, 2), 60.0))
        t += timedelta(minutes=step_min)
    return out


def hotspot_app(influxd, tmp_path_factory, name: str):
    """Settings and a TestClient over a database seeded with :func:`fortnight` (see insights_data.season_app)."""
    from fastapi.testclient import TestClient

    from heatwatch.api.app import create_app
    from heatwatch.core.settings import Settings
    from support.apps import NO_LIMITS, with_api
    from support.insights_data import write_agg

    folder = tmp_path_factory.mktemp(name)
    settings = Settings.load(influx_url=influxd.url, influx_db=f"h_{name}", data_dir=folder / "var")
    load_registry(settings.registry_path)
    write_agg(influxd.url, settings.influx_db, fortnight().lines)
    return settings, TestClient(create_app(with_api(settings, **NO_LIMITS)))
