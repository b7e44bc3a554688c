"""The heat-wave episode crosses the canicule thresholds exactly on the documented days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from heatwatch.core.settings import load_towns
from heatwatch.simulate import HeatWave, SimOptions, load_example_sensors, prepare
from heatwatch.simulate.options import LOCAL_TZ


def _daily_extremes(readings: pd.DataFrame) -> pd.DataFrame:
    """Tn and Tx per climatological day (docs/science/canicule.md): Tn 18 UTC D-1 to 18 UTC D, Tx 06 UTC D
    to 06 UTC D+1."""
    utc = pd.to_datetime(readings.ts_ms, unit="ms", utc=True)
    tn_day = (utc + pd.Timedelta(hours=6)).dt.date
    tx_day = (utc - pd.Timedelta(hours=6)).dt.date
    tn = readings.groupby(tn_day.to_numpy()).t.min()
    tx = readings.groupby(tx_day.to_numpy()).t.max()
    return pd.DataFrame({"tn": tn, "tx": tx}).dropna()


def _run(sensor_id: str, hw: HeatWave, seed: int) -> pd.DataFrame:
    sensors = [s for s in load_example_sensors() if s.id == sensor_id]
    start = datetime.combine(hw.start - timedelta(days=6), datetime.min.time(), UTC)  # type: ignore[operator]
    sim = prepare(SimOptions(start=start, duration=timedelta(days=18), heatwave=hw, faults=False, seed=seed),
                  sensors)
    df = pd.DataFrame([(r.ts_ms, r.temperature) for r in sim.readings()], columns=["ts_ms", "t"])
    # Drop the partial first and last climatological days.
    return _daily_extremes(df).iloc[1:-1]


@pytest.mark.parametrize("seed", [1, 42, 2025])
@pytest.mark.parametrize("hw_start", [date(2025, 7, 3), date(2025, 8, 12)])
@pytest.mark.parametrize("reference", ["vitre-rural-01", "so-rural-01"])
def test_canicule_days_are_exactly_the_documented_ones(seed: int, hw_start: date, reference: str) -> None:
    towns = load_towns()
    town = next(t for t in towns.values() if reference in t.reference_sensors)
    n_thr, x_thr = town.canicule.ibmn, town.canicule.ibmx
    hw = HeatWave(start=hw_start)
    daily = _run(reference, hw, seed)
    for alignment, shift in (("trailing", 0), ("centered", -1), ("forward", -2)):
        ibm = daily.rolling(3).mean().shift(shift).dropna()
        canicule = ibm[(ibm.tn >= n_thr) & (ibm.tx >= x_thr)]
        assert sorted(canicule.index) == hw.canicule_days(alignment), alignment  # type: ignore[arg-type]
        # "Clearly": at least 0.5 °C from the thresholds on either side.
        assert (canicule.tn >= n_thr + 0.5).all() and (canicule.tx >= x_thr + 0.5).all()
        others = ibm.drop(canicule.index)
        assert ((others.tn <= n_thr - 0.5) | (others.tx <= x_thr - 0.5)).all(), others
    # Every episode day is hot and the days around it are ordinary summer days.
    assert (daily.loc[hw.dates()].tx >= 33.5).all()
    assert (daily.drop(hw.dates()).tx <= 27.5).all()


def test_documented_days_for_the_defaults() -> None:
    hw = HeatWave(start=date(2025, 7, 3))
    assert hw.dates() == [date(2025, 7, d) for d in range(3, 8)]
    assert hw.canicule_days() == [date(2025, 7, 5), date(2025, 7, 6), date(2025, 7, 7)]
    assert hw.canicule_days("forward") == [date(2025, 7, 3), date(2025, 7, 4), date(2025, 7, 5)]
    assert hw.canicule_days("centered") == [date(2025, 7, 4), date(2025, 7, 5), date(2025, 7, 6)]


def test_default_episode_starts_on_the_third_local_day_of_the_run() -> None:
    start = datetime(2025, 7, 1, 0, 30, tzinfo=LOCAL_TZ)  # still 30 June in UTC
    assert HeatWave().resolved(start.astimezone(UTC)).start == date(2025, 7, 3)
    sim = prepare(SimOptions(start=start, duration=timedelta(days=7)))
    assert sim.heatwave is not None and sim.heatwave.start == date(2025, 7, 3)
    assert prepare(SimOptions(start=start, duration=timedelta(days=1), heatwave=None)).heatwave is None
