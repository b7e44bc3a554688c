"""Weather model: diurnal shape, night-time heat island, humidity, battery, determinism."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from heatwatch.core.model import SiteClass
from heatwatch.simulate import SimOptions, generate, prepare
from heatwatch.simulate.options import LOCAL_TZ

START = datetime(2025, 7, 14, tzinfo=LOCAL_TZ)  # a plain summer week, no heat wave
CLEAN = SimOptions(start=START, duration=timedelta(days=7), heatwave=None, faults=False)


@pytest.fixture(scope="module")
def week() -> tuple[pd.DataFrame, dict[str, SiteClass]]:
    sim = prepare(CLEAN)
    df = pd.DataFrame([(r.town, r.sensor, r.ts_ms, r.temperature, r.humidity, r.battery_v) for r in sim.readings()],
                      columns=["town", "sensor", "ts_ms", "t", "rh", "bat"])
    df["local"] = pd.to_datetime(df.ts_ms, unit="ms", utc=True).dt.tz_convert("Europe/Paris")
    df["hour"] = df.local.dt.hour
    return df, {s.id: s.site_class for s in sim.sensors}


def test_every_sensor_samples_on_its_own_fixed_step(week: tuple[pd.DataFrame, dict[str, SiteClass]]) -> None:
    df, classes = week
    assert set(df.sensor) == set(classes)
    for _, g in df.groupby("sensor"):
        steps = np.diff(g.ts_ms.to_numpy())
        assert (steps == 300_000).all()
        assert (g.ts_ms % 1000 == 0).all()
        assert len(g) == 7 * 288


def test_diurnal_cycle_min_near_sunrise_max_mid_afternoon(week: tuple[pd.DataFrame, dict[str, SiteClass]]) -> None:
    df, _ = week
    for ref in ("vitre-rural-01", "so-rural-01"):
        g = df[df.sensor == ref]
        hourly = g.groupby("hour").t.mean()
        assert hourly.idxmin() in (4, 5, 6, 7)
        assert hourly.idxmax() in (14, 15, 16, 17)
        assert hourly.max() - hourly.min() > 7
        by_day = g.groupby(g.local.dt.date)
        min_hours = by_day.apply(lambda d: d.loc[d.t.idxmin(), "hour"], include_groups=False)
        max_hours = by_day.apply(lambda d: d.loc[d.t.idxmax(), "hour"], include_groups=False)
        assert min_hours.isin([4, 5, 6, 7]).all(), min_hours
        assert max_hours.isin([14, 15, 16, 17]).all(), max_hours


def test_urban_sites_warmer_than_rural_mostly_at_night(week: tuple[pd.DataFrame, dict[str, SiteClass]]) -> None:
    df, classes = week
    night = df[df.hour.isin([0, 1, 2, 3, 4])]
    day = df[df.hour.isin([13, 14, 15])]
    for town, ref in (("vitre", "vitre-rural-01"), ("saint-omer", "so-rural-01")):
        n_ref = night[night.sensor == ref].t.mean()
        d_ref = day[day.sensor == ref].t.mean()
        n_uhi = night[night.town == town].groupby("sensor").t.mean() - n_ref
        d_uhi = day[day.town == town].groupby("sensor").t.mean() - d_ref
        urban = [s for s in n_uhi.index if classes[s] is SiteClass.urban]
        assert len(urban) >= 4
        for s in urban:
            assert 1.0 <= n_uhi[s] <= 4.0, (s, n_uhi[s])
            assert -1.0 <= d_uhi[s] <= 1.5, (s, d_uhi[s])
            assert n_uhi[s] > d_uhi[s] + 1.0
        cool = [s for s in n_uhi.index if classes[s] in (SiteClass.park, SiteClass.water)]
        assert cool and max(n_uhi[s] for s in cool) < n_uhi[urban].mean()
        assert abs(n_uhi[ref]) < 1e-9


def test_humidity_falls_when_temperature_rises(week: tuple[pd.DataFrame, dict[str, SiteClass]]) -> None:
    df, _ = week
    assert df.rh.between(5, 100).all()
    for sensor, g in df.groupby("sensor"):
        assert np.corrcoef(g.t, g.rh)[0, 1] < -0.7, sensor
    ref = df[df.sensor == "vitre-rural-01"]
    assert ref[ref.hour == 5].rh.mean() > 80
    assert ref[ref.hour == 15].rh.mean() < 65


def test_battery_voltage_slowly_decreases(week: tuple[pd.DataFrame, dict[str, SiteClass]]) -> None:
    df, _ = week
    for sensor, g in df.groupby("sensor"):
        slope_per_day = np.polyfit((g.ts_ms - g.ts_ms.iloc[0]) / 86_400_000, g.bat, 1)[0]
        assert -0.002 < slope_per_day < 0, sensor
        assert g.bat.between(2.4, 3.7).all()


def test_same_seed_same_readings_other_seed_other_readings() -> None:
    opts = SimOptions(start=START, duration=timedelta(hours=6), faults=False)
    a = list(generate(options=opts))
    b = list(generate(options=opts))
    c = list(generate(options=SimOptions(start=START, duration=timedelta(hours=6), faults=False, seed=7)))
    assert a == b
    assert [r.temperature for r in a[:50]] != [r.temperature for r in c[:50]]


def test_a_reading_does_not_depend_on_where_the_run_starts(week: tuple[pd.DataFrame, dict[str, SiteClass]]) -> None:
    df, _ = week
    day_start = START + timedelta(days=3, hours=5)
    part = list(generate(options=SimOptions(start=day_start, duration=timedelta(hours=10), heatwave=None,
                                            faults=False)))
    full = df.set_index(["sensor", "ts_ms"])
    assert part
    for r in part:
        row = full.loc[(r.sensor, r.ts_ms)]
        assert (row.t, row.rh, row.bat) == (r.temperature, r.humidity, r.battery_v)
