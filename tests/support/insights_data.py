"""A synthetic summer of aggregates for Vitré, in line protocol following the stored schema
(core/measurements.py, rp ``agg``),
with known answers: site-class UHI levels, a canicule episode, a −1.0 °C cooling injected on the
nocturnal UHI of one sensor after an intervention, a QC-flagged sensor-day and a sparse sensor.

Daily points are stamped at local (Europe/Paris) midnight, as the analytics writer does, and the
``uhi_night_max`` of day D is the night ending on the morning of D.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from heatwatch.simulate import load_example_sensors

TZ = ZoneInfo("Europe/Paris")
FIRST = date(2025, 6, 1)
LAST = date(2025, 8, 31)
TREATED = "vitre-centre-03"
INTERVENTION_DAY = date(2025, 7, 15)
EFFECT = -1.0
HEATWAVE = [date(2025, 7, 1) + timedelta(days=i) for i in range(5)]  # canicule days (town_daily flag)
FLAGGED = ("vitre-centre-01", date(2025, 7, 20))  # qc AVAILABILITY, absurd values: must never show
SPARSE = "vitre-za-01"  # data on the last 20 days only: listed, not ranked
BASE = {"urban": 2.6, "suburban": 1.1, "park": -0.3, "water": -0.6, "rural_reference": 0.0}
HOT_HOUR = datetime(2025, 7, 3, 14, 0, tzinfo=TZ)  # hourly rows written for this hour


def local_midnight_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=TZ).timestamp() * 1000)


@dataclass
class Season:
    lines: list[str] = field(default_factory=list)
    night: dict[tuple[str, date], float] = field(default_factory=dict)  # (sensor, row day) -> uhi_night_max
    sensors: dict[str, object] = field(default_factory=dict)


def vitre_sensors() -> list:
    return [s for s in load_example_sensors() if s.town == "vitre" and not s.retired]


def season(seed: int = 8) -> Season:
    rng = np.random.default_rng(seed)
    out = Season()
    sensors = vitre_sensors()
    out.sensors = {s.id: s for s in sensors}
    days = [FIRST + timedelta(days=i) for i in range((LAST - FIRST).days + 1)]
    # Shared weather: calm clear nights raise every UHI (AR(1), as real weather persists).
    weather = np.zeros(len(days))
    for i in range(1, len(days)):
        weather[i] = 0.6 * weather[i - 1] + rng.normal(0, 0.5)
    offsets = {s.id: rng.normal(0, 0.25) for s in sensors}
    for i, day in enumerate(days):
        ts = local_midnight_ms(day)
        hot = day in HEATWAVE
        for s in sensors:
            if s.id == SPARSE and day < LAST - timedelta(days=19):
                continue
            base = BASE[str(s.site_class)] + (offsets[s.id] if not s.is_reference else 0.0)
            if s.is_reference:
                uhi_n = uhi_m = 0.0
            else:
                uhi_n = base * (1 + 0.3 * weather[i]) + rng.normal(0, 0.3)
                uhi_m = 0.5 * uhi_n + rng.normal(0, 0.1)
                if s.id == TREATED and day > INTERVENTION_DAY:
                    uhi_n += EFFECT
            tn = 15.0 + (6.0 if hot else 0.0) + max(uhi_n, 0) * 0.8 + rng.normal(0, 0.3)
            tx = 26.0 + (9.0 if hot else 0.0) + rng.normal(0, 0.5)
            hours = (4 if str(s.site_class) == "urban" else 2) if hot else 0
            qc = 0
            if (s.id, day) == FLAGGED:
                uhi_n, uhi_m, tn, qc = 99.0, 99.0, 50.0, 64
            else:
                out.night[(s.id, day)] = round(uhi_n, 6)
            tropical = "true" if tn >= 20 else "false"
            out.lines.append(
                f"daily,town=vitre,sensor={s.id} tn={tn:.6f},tx={tx:.6f},t_mean={(tn + tx) / 2:.6f},rh_mean=60.0,"
                f"heat_index_max={tx:.6f},humidex_max={tx + 2:.6f},uhi_mean={uhi_m:.6f},"
                f"uhi_night_max={round(uhi_n, 6)},hours_ge_30={hours}i,tropical_night={tropical},"
                f"coverage={0.5 if qc else 1.0},qc={qc}i {ts}")
        canicule = "true" if hot else "false"
        out.lines.append(
            f"town_daily,town=vitre ibmn={18.5 if hot else 15.0},ibmx={34.0 if hot else 26.0},canicule={canicule},"
            f'uhi_mean={1.2 + 0.3 * weather[i]:.6f},uhi_max={3.0 + weather[i]:.6f},hottest_sensor="vitre-centre-02",'
            f"sensors_ok={len(sensors)}i {ts}")
    # One hot afternoon hour: urban sensors at 35.5 °C, the others at 31 °C; the gare sensor's
    # value is flagged SPATIAL_HIGH (32) and must not count.
    h = int(HOT_HOUR.timestamp() * 1000)
    for s in sensors:
        t = 35.5 if str(s.site_class) == "urban" else 31.0
        qc = 32 if s.id == "vitre-gare-01" else (64 if s.id == "vitre-sub-01" else 0)
        uhi = BASE[str(s.site_class)]
        out.lines.append(f"hourly,town=vitre,sensor={s.id} t_mean={t},t_min={t - 1},t_max={t + 1},rh_mean=40.0,"
                         f"dewpoint=15.0,heat_index={t},humidex={t + 3},uhi={uhi},n=6i,qc={qc}i {h}")
    return out


def load_registry(path) -> None:
    """The example Vitré/Saint-Omer sensors in the registry file the app will open."""
    from heatwatch.core.registry import Registry

    path.parent.mkdir(parents=True, exist_ok=True)
    with Registry(path) as reg:
        reg.load_examples()


def write_agg(url: str, db: str, lines: list[str]) -> None:
    """Create the database and its retention policies, then write ``lines`` into rp ``agg``."""
    import asyncio

    from heatwatch.core.influx import AGG_RP, InfluxClient

    async def go() -> None:
        async with InfluxClient(url, db) as c:
            await c.setup()
            for i in range(0, len(lines), 5000):
                await c.write_lines(lines[i:i + 5000], rp=AGG_RP)

    asyncio.run(go())


def season_app(influxd, tmp_path_factory, name: str,
               admin_token: str = "test-admin-token-0123456789-abcdefghijkl"):
    """Settings, config and a started TestClient over one seeded database: module fixtures share it, since
    each app start and stop costs about a second (the live hub's MQTT client)."""
    from fastapi.testclient import TestClient

    from heatwatch.api.app import create_app
    from heatwatch.core.settings import Settings
    from support.apps import NO_LIMITS, with_api

    folder = tmp_path_factory.mktemp(name)
    settings = Settings.load(influx_url=influxd.url, influx_db=f"m_{name}", data_dir=folder / "var",
                             admin_token=admin_token)
    load_registry(settings.registry_path)
    write_agg(influxd.url, settings.influx_db, season().lines)
    return settings, TestClient(create_app(with_api(settings, **NO_LIMITS)))
