"""Quality control: faulty sensors are caught, hot and cool places are kept (docs/science/qc.md).

Two synthetic towns: the small uniform one of conftest.py (point checks on a 10-day series) and
``qctown`` (hot spots and cool spots of several sizes among a dozen close street sensors, parks,
suburbs, a rural reference, one sensor per fault kind; ``python -m bench.qc`` runs it over seeds).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from analytics import qctown
from heatwatch.analytics.qc import (
    VALUE_FLAGS,
    QcConfig,
    QcFlag,
    Site,
    peer_sets,
    run_qc,
    spatial_thresholds,
    usable,
)
from heatwatch.analytics.robust import qn_rows, qn_scale


def _hourly_flags(q: pd.DataFrame) -> pd.Series:
    """OR of the reading flags in each (sensor, hour): what an hourly value inherits."""
    hour = q["time"].dt.floor("h")
    return q.groupby([q["sensor"], hour])["qc"].agg(lambda s: int(np.bitwise_or.reduce(s.to_numpy())))


def _has(flags: pd.Series, flag: QcFlag) -> pd.Series:
    return (flags.astype("int64") & int(flag)) != 0


# The synthetic town of conftest.py (typed loosely: conftest cannot be imported).
SyntheticTown = Any
TownFactory = Callable[..., Any]


@pytest.fixture(scope="module")
def checked(make_town: TownFactory) -> tuple[SyntheticTown, pd.DataFrame]:
    town = make_town()
    return town, run_qc(town.readings, sites=town.sites, cool_sites=town.cool_sites, position=(48.12, -1.21))


def test_rows_are_kept_in_order_with_flags(checked: tuple[SyntheticTown, pd.DataFrame]) -> None:
    town, q = checked
    assert len(q) == len(town.readings)
    assert q.index.equals(town.readings.index)
    assert q[["sensor", "time", "temperature"]].equals(town.readings[["sensor", "time", "temperature"]])
    assert q["qc"].dtype == np.int64


def test_range(checked: tuple[SyntheticTown, pd.DataFrame]) -> None:
    town, q = checked
    bad = town.readings.attrs["range"]
    assert _has(q.loc[bad, "qc"], QcFlag.RANGE).all()
    assert _has(q["qc"], QcFlag.RANGE).sum() == len(bad)


def test_range_is_seasonal_and_can_fire_inside_ingest_limits() -> None:
    # Ingest accepts −40…60 °C; QC's range is the month's plausible envelope for the town.
    july = _tiny({"a": [25.0, 47.0, 25.0, -2.0, 25.0]}, start="2025-07-01T12:00Z", freq="1h")
    january = _tiny({"a": [8.0, 28.0, 8.0, -24.0, 8.0]}, start="2025-01-10T12:00Z", freq="1h")
    assert [bool(f & QcFlag.RANGE) for f in run_qc(july)["qc"]] == [False, True, False, True, False]
    assert [bool(f & QcFlag.RANGE) for f in run_qc(january)["qc"]] == [False, True, False, False, False]
    tight = QcConfig(monthly_range_c=tuple((-5.0, 30.0) for _ in range(12)))
    assert [bool(f & QcFlag.RANGE) for f in run_qc(july, tight)["qc"]] == [False, True, False, False, False]
    with pytest.raises(ValueError, match="12"):
        run_qc(july, QcConfig(monthly_range_c=((0.0, 1.0),)))


def test_spikes_are_caught_and_their_neighbours_spared(checked: tuple[SyntheticTown, pd.DataFrame]) -> None:
    town, q = checked
    spikes = town.readings.attrs["spikes"]
    assert len(spikes) >= 20
    assert _has(q.loc[spikes, "qc"], QcFlag.SPIKE).all()
    after = [i + 1 for i in spikes]
    # The reading after a spike is the sensor coming back, not a step.
    assert not _has(q.loc[after, "qc"], QcFlag.STEP | QcFlag.SPIKE).any()


def test_stuck_sensor_is_persistence(checked: tuple[SyntheticTown, pd.DataFrame]) -> None:
    town, q = checked
    stuck = next(s for s, kind in town.faults.items() if kind == "stuck")
    rows = q[q["sensor"] == stuck]
    stuck_from = rows["time"].iloc[0] + pd.Timedelta(days=3)
    assert _has(rows.loc[rows["time"] >= stuck_from, "qc"], QcFlag.PERSISTENCE).all()
    assert not _has(rows.loc[rows["time"] < stuck_from - pd.Timedelta(minutes=10), "qc"],
                    QcFlag.PERSISTENCE).any()


def test_drifting_sensor_is_caught_against_its_peers(checked: tuple[SyntheticTown, pd.DataFrame]) -> None:
    town, q = checked
    drifting = next(s for s, kind in town.faults.items() if kind == "drift")
    hourly = _hourly_flags(q).loc[drifting]
    hours = hourly.index
    drift = np.clip(((hours - hours[0]) / pd.Timedelta(days=1) - 3) / 7, 0, None) * 4.0
    caught = _has(hourly, QcFlag.DRIFT)
    # Judged once a week of days is in view (a 10-day series here: the last 3 days).
    judged = (hours - hours[0]) >= pd.Timedelta(days=7)
    assert caught[judged & (drift >= 2.0)].mean() >= 0.95
    assert caught[drift < 0.3].mean() == 0


def test_offline_sensor_fails_availability_that_day_only(checked: tuple[SyntheticTown, pd.DataFrame]) -> None:
    town, q = checked
    offline = next(s for s, kind in town.faults.items() if kind == "offline")
    rows = q[q["sensor"] == offline]
    day = rows["time"].dt.tz_convert("Europe/Paris").dt.date
    short_days = set(day[_has(rows["qc"], QcFlag.AVAILABILITY)])
    assert short_days == {pd.Timestamp("2025-07-05").date()}
    assert not _has(q.loc[q["sensor"] != offline, "qc"], QcFlag.AVAILABILITY).any()


def test_false_positive_rate_on_healthy_sensors(checked: tuple[SyntheticTown, pd.DataFrame]) -> None:
    town, q = checked
    hourly = _hourly_flags(q)
    healthy = hourly[hourly.index.get_level_values(0).isin(town.healthy)]
    rate = float(_has(healthy, VALUE_FLAGS).mean())
    print(f"\nQC false-positive rate on {len(town.healthy)} healthy sensors: {rate:.3%} of "
          f"{len(healthy)} sensor-hours")
    assert len(town.healthy) == 16
    assert rate < 0.005


def test_runs_on_hourly_means(make_town: TownFactory) -> None:
    town = make_town(days=6)
    r = town.readings
    hourly = (
        r.assign(time=r["time"].dt.floor("h"))
        .groupby(["town", "sensor", "time"], as_index=False)
        .agg(t_mean=("temperature", "median"), rh_mean=("humidity", "mean"))
    )
    q = run_qc(hourly, sites=town.sites, cool_sites=town.cool_sites, temperature="t_mean", humidity="rh_mean")
    stuck = next(s for s, kind in town.faults.items() if kind == "stuck")
    late = (q["sensor"] == stuck) & (q["time"] >= q["time"].min() + pd.Timedelta(days=3, hours=1))
    assert _has(q.loc[late, "qc"], QcFlag.PERSISTENCE).all()
    offline = next(s for s, kind in town.faults.items() if kind == "offline")
    assert _has(q.loc[q["sensor"] == offline, "qc"], QcFlag.AVAILABILITY).any()


def _tiny(values: dict[str, list[float]], start: str = "2025-07-01T00:00Z", freq: str = "10min") -> pd.DataFrame:
    rows = []
    for sensor, temps in values.items():
        times = pd.date_range(start, periods=len(temps), freq=freq)
        rows.append(pd.DataFrame({"town": "vitre", "sensor": sensor, "time": times, "temperature": temps,
                                  "humidity": 50.0}))
    return pd.concat(rows, ignore_index=True)


def test_a_lasting_shift_is_held_then_accepted() -> None:
    # A jump that never comes back stays flagged for ``step_hold_h``, then the new level is accepted
    # (a relocated or recalibrated sensor); the checks against peers judge it from there.
    t = [20.0, 20.1, 20.0, *([27.0, 27.1] * 12)]  # every 10 minutes; held 2 hours here
    q = run_qc(_tiny({"a": t}), QcConfig(step_hold_h=2.0))
    step = [bool(f & QcFlag.STEP) for f in q["qc"]]
    assert step == [False] * 3 + [True] * 12 + [False] * 12


def test_step_threshold_scales_with_the_gap() -> None:
    # 6 °C in 10 min is a step; 6 °C over 2 h (limit 4 + 12) is weather.
    fast = run_qc(_tiny({"a": [20.0, 20.0, 26.0, 26.0]}))
    slow = run_qc(_tiny({"a": [20.0, 20.0, 26.0, 26.0]}, freq="2h"))
    assert fast["qc"].iloc[2] & QcFlag.STEP
    assert not slow["qc"].iloc[2] & QcFlag.STEP


def test_nan_and_missing_rows_do_not_break_checks() -> None:
    df = _tiny({"a": [20.0, np.nan, 20.2, 29.0, 20.3, 20.1]})
    q = run_qc(df)
    assert q["qc"].iloc[3] & QcFlag.SPIKE
    assert not q["qc"].iloc[1] & (QcFlag.SPIKE | QcFlag.STEP | QcFlag.RANGE)


def test_persistence_needs_hours_and_allows_tiny_wobble() -> None:
    two_h = [18.0] * 13 + [18.5]  # 2 h flat: not yet
    four_h = [18.0, 18.003] * 12 + [18.5]  # 4 h within the tolerance
    q = run_qc(_tiny({"a": two_h, "b": four_h}))
    assert not _has(q.loc[q.sensor == "a", "qc"], QcFlag.PERSISTENCE).any()
    b = q.loc[q.sensor == "b", "qc"].to_numpy()
    assert all(f & QcFlag.PERSISTENCE for f in b[:-1]) and not b[-1] & QcFlag.PERSISTENCE


def test_level_shift_stays_flagged_until_it_returns() -> None:
    # A −15 °C excursion of 50 minutes at night (5-minute readings): every reading of it is a step,
    # not only the first, and the reading that comes back is not.
    base = [18.0 - 0.02 * i for i in range(36)]
    t = [v - 15.0 if 12 <= i < 22 else v for i, v in enumerate(base)]
    q = run_qc(_tiny({"a": t}, freq="5min"))
    step = [bool(f & QcFlag.STEP) for f in q["qc"]]
    assert step == [12 <= i < 22 for i in range(36)]


def test_level_shift_does_not_reach_tn() -> None:
    from heatwatch.analytics.aggregate import TownContext, aggregate_town

    times = pd.date_range("2025-07-01T12:00Z", "2025-07-03T12:00Z", freq="5min", inclusive="left")
    t = 20.0 + 5.0 * np.sin(2 * np.pi * np.asarray(times.hour + times.minute / 60 - 9) / 24)
    shifted = t.copy()
    at = (times >= pd.Timestamp("2025-07-02T02:00Z")) & (times < pd.Timestamp("2025-07-02T02:50Z"))
    shifted[at] -= 15.0
    df = pd.DataFrame({"town": "vitre", "sensor": "a", "time": times, "temperature": shifted, "humidity": 60.0})
    daily = aggregate_town(df, TownContext(id="vitre")).daily
    tn = daily.loc[daily["time"] == pd.Timestamp("2025-07-01T22:00Z"), "tn"].iloc[0]
    assert tn == pytest.approx(t[(times >= pd.Timestamp("2025-07-01T18:00Z"))
                                 & (times < pd.Timestamp("2025-07-02T18:00Z"))].min(), abs=0.01)


def test_a_storm_front_every_sensor_feels_is_weather_not_a_step() -> None:
    # −7 °C within ten minutes on five sensors at once (each on its own clock): no step anywhere.
    values = {}
    for k in range(5):
        values[f"s{k}"] = [25.0 + 0.1 * k] * 6 + [18.0 + 0.1 * k] * 12
    df = pd.concat([_tiny({s: v}, start=f"2025-07-01T12:0{k}Z") for k, (s, v) in enumerate(values.items())])
    q = run_qc(df.reset_index(drop=True))
    assert not _has(q["qc"], QcFlag.STEP).any()
    alone = run_qc(_tiny({"a": values["s0"]}))
    assert _has(alone["qc"], QcFlag.STEP).any()  # the same jump on one sensor alone is one


def test_a_data_gap_is_not_persistence() -> None:
    # Equal readings on either side of a 4-hour outage; and a real 3-hour freeze is still caught.
    times = [*pd.date_range("2025-07-01T08:00Z", periods=6, freq="10min"),
             *pd.date_range("2025-07-01T13:00Z", periods=6, freq="10min")]
    values = [20.0, 20.3, 20.6, 20.9, 21.2, 21.5, 21.5, 21.8, 22.1, 22.4, 22.7, 23.0]
    df = pd.DataFrame({"town": "vitre", "sensor": "a", "time": times, "temperature": values, "humidity": 50.0})
    assert not _has(run_qc(df)["qc"], QcFlag.PERSISTENCE).any()
    frozen = _tiny({"b": [19.0] * 20 + [19.4, 19.8]})
    assert _has(run_qc(frozen)["qc"], QcFlag.PERSISTENCE).sum() == 20


def _town_hour(values: list[float], sensors: list[str] | None = None) -> pd.DataFrame:
    sensors = sensors or [f"s{i:02d}" for i in range(len(values))]
    return pd.DataFrame({"town": "vitre", "sensor": sensors,
                         "time": pd.Timestamp("2025-07-01T12:00Z"), "t_mean": values, "rh_mean": 50.0})


# The crowd profile: CrowdQC+'s town-wide z-score, for citizen stations only -----------------------


def _crowd(names: list[str]) -> dict[str, Site]:
    return {n: Site(site_class="urban", crowd=True) for n in names}


CROWD13 = _crowd([f"s{i:02d}" for i in range(13)])


def test_crowd_stations_get_the_town_wide_test_and_town_sensors_do_not() -> None:
    cfg = QcConfig(expected_interval=timedelta(hours=1), availability_min=0.0)
    base = [20.0, 20.5, 21.0, 21.5, 22.0, 20.2, 20.7, 21.2, 21.7, 21.1, 20.9, 21.3, 22.9]
    names = [f"s{i:02d}" for i in range(len(base))]
    town = run_qc(_town_hour(base, names), cfg, sites={n: Site(site_class="urban") for n in names},
                  temperature="t_mean", humidity="rh_mean")
    assert (town["qc"] == 0).all()  # 1.8 °C above the town is a warm street, not a fault
    crowd = run_qc(_town_hour(base, names), cfg, sites=_crowd(names), temperature="t_mean", humidity="rh_mean")
    assert crowd["qc"].iloc[-1] == QcFlag.SPATIAL_HIGH


def test_spatial_is_asymmetric_and_skipped_below_five() -> None:
    cfg = QcConfig(expected_interval=timedelta(hours=1), availability_min=0.0)
    base = [20.0, 20.5, 21.0, 21.5, 22.0, 20.2, 20.7, 21.2, 21.7, 21.1, 20.9, 21.3]
    # Median 21.1/21.0 °C, Qn 0.80 °C, 13 sensors: bounds t(12) = −2.68 and +1.78.
    hot = run_qc(_town_hour([*base, 22.9]), cfg, sites=CROWD13, temperature="t_mean", humidity="rh_mean")
    cold = run_qc(_town_hour([*base, 19.0]), cfg, sites=CROWD13, temperature="t_mean", humidity="rh_mean")
    assert hot["qc"].iloc[-1] == QcFlag.SPATIAL_HIGH
    # 2.0 °C below is not flagged while 1.8 °C above is: the low bound is the farther one.
    assert cold["qc"].iloc[-1] == 0
    colder = run_qc(_town_hour([*base, 18.5]), cfg, sites=CROWD13, temperature="t_mean", humidity="rh_mean")
    assert colder["qc"].iloc[-1] == QcFlag.SPATIAL_LOW
    few = run_qc(_town_hour([20.0, 20.1, 20.2, 35.0]), cfg,
               sites=_crowd([f"s{i:02d}" for i in range(4)]), temperature="t_mean", humidity="rh_mean")
    assert (few["qc"] == 0).all()


def test_cool_sites_are_exempt_from_spatial_low_only() -> None:
    cfg = QcConfig(expected_interval=timedelta(hours=1), availability_min=0.0)
    values = [21.0, 21.2, 21.4, 21.1, 20.9, 21.3, 21.5, 16.0]
    names = [f"s{i}" for i in range(7)] + ["ref"]
    q = run_qc(_town_hour(values, names), cfg, sites=_crowd(names), cool_sites=["ref"], temperature="t_mean",
               humidity="rh_mean")
    assert q["qc"].iloc[-1] == 0
    q = run_qc(_town_hour(values, names), cfg, sites=_crowd(names), temperature="t_mean", humidity="rh_mean")
    assert q["qc"].iloc[-1] == QcFlag.SPATIAL_LOW
    hot = run_qc(_town_hour([*values[:-1], 26.0], names), cfg, sites=_crowd(names), cool_sites=["ref"],
                 temperature="t_mean", humidity="rh_mean")
    assert hot["qc"].iloc[-1] == QcFlag.SPATIAL_HIGH


def test_unplaced_sensors_are_flagged_and_left_out_of_the_town() -> None:
    cfg = QcConfig(expected_interval=timedelta(hours=1), availability_min=0.0)
    values = [21.0, 21.2, 21.4, 21.1, 30.0, 30.0, 30.0, 30.0]
    names = ["a", "b", "c", "d", "u1", "u2", "u3", "u4"]
    q = run_qc(_town_hour(values, names), cfg, sites=_crowd(names), unplaced=["u1", "u2", "u3", "u4"],
               temperature="t_mean", humidity="rh_mean")
    # Four placed sensors are below the minimum once the unplaced are left out: no spatial test.
    assert list(q["qc"]) == [0] * 4 + [int(QcFlag.UNPLACED)] * 4


def test_spatial_thresholds_tend_to_normal_quantiles() -> None:
    lo, hi = spatial_thresholds(np.array([5, 20, 10_000]), QcConfig())
    assert lo[-1] == pytest.approx(-2.326, abs=2e-3) and hi[-1] == pytest.approx(1.645, abs=2e-3)
    assert lo[0] < lo[1] < lo[2] and hi[0] > hi[1] > hi[2]


def test_usable_mask() -> None:
    qc = pd.Series([0, int(QcFlag.AVAILABILITY), int(QcFlag.SPIKE), int(QcFlag.SPIKE | QcFlag.AVAILABILITY)])
    assert list(usable(qc)) == [True, False, False, False]
    assert list(usable(qc, ignore=QcFlag.AVAILABILITY)) == [True, True, False, False]
    assert list(usable(pd.DataFrame({"qc": qc}))) == [True, False, False, False]


def test_naive_times_are_refused() -> None:
    df = _tiny({"a": [20.0, 20.1]})
    df["time"] = df["time"].dt.tz_localize(None)
    with pytest.raises(ValueError, match="timezone"):
        run_qc(df)


def test_deterministic_and_order_independent(checked: tuple[SyntheticTown, pd.DataFrame]) -> None:
    town, q = checked
    shuffled = town.readings.sample(frac=1.0, random_state=3)
    q2 = run_qc(shuffled, sites=town.sites, cool_sites=town.cool_sites, position=(48.12, -1.21))
    assert q2["qc"].reindex(q.index).equals(q["qc"])


# Qn ---------------------------------------------------------------------------------------

def _qn_naive(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    n = len(x)
    h = n // 2 + 1
    k = h * (h - 1) // 2
    i, j = np.triu_indices(n, k=1)
    return float(np.sort(np.abs(x[i] - x[j]))[k - 1] * 2.219144465985076)


def test_qn_matches_the_definition_and_statsmodels() -> None:
    # Reference values from statsmodels.robust.scale.qn_scale 0.15 (no finite-sample factor).
    assert qn_scale([3.1, 1.2, 5.5, 2.2, 9.9, 4.4, 0.3], finite_correction=False) == pytest.approx(
        4.216374485371644, rel=1e-12)
    assert qn_scale(np.arange(10.0) ** 1.5, finite_correction=False) == pytest.approx(
        14.861473915226373, rel=1e-12)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 25))
    a[rng.random(a.shape) < 0.2] = np.nan
    expected = [_qn_naive(row) for row in a]
    assert np.allclose(qn_rows(a, finite_correction=False), expected)


def test_qn_is_unbiased_for_small_normal_samples() -> None:
    rng = np.random.default_rng(1)
    for n in (5, 8, 13, 24):
        est = qn_rows(rng.normal(0, 2.0, size=(4000, n)))
        assert est.mean() == pytest.approx(2.0, rel=0.03), n


def test_qn_resists_outliers_and_handles_degenerate_rows() -> None:
    clean = np.array([20.0, 20.5, 21.0, 21.5, 22.0, 20.7, 21.2, 21.8, 20.3, 21.1])
    dirty = clean.copy()
    dirty[:4] = 60.0
    assert qn_scale(dirty) < 3 * qn_scale(clean)
    out = qn_rows(np.array([[1.0, np.nan, np.nan], [np.nan, np.nan, np.nan], [1.0, 2.0, np.nan]]))
    assert np.isnan(out[0]) and np.isnan(out[1]) and np.isfinite(out[2])


# Hot places and faulty sensors: the qctown simulated town ----------------------------------------


@pytest.fixture(scope="module")
def qtown() -> tuple[qctown.QcTown, pd.DataFrame, pd.DataFrame]:
    town = qctown.build(seed=3)
    q = run_qc(town.readings, sites=town.sites, cool_sites=town.cool_sites, position=qctown.CENTRE)
    hour = q["time"].dt.floor("h")
    g = q.assign(bad=town.truth, error=town.error).groupby([q["sensor"], hour])
    hourly = pd.DataFrame({"qc": g["qc"].agg(lambda s: int(np.bitwise_or.reduce(s.to_numpy()))),
                           "bad": g["bad"].any(), "error": g["error"].mean()})
    return town, q, hourly


def test_hot_and_cool_spots_are_kept(qtown: tuple[qctown.QcTown, pd.DataFrame, pd.DataFrame]) -> None:
    town, _, hourly = qtown
    spots = hourly[hourly.index.get_level_values(0).isin(town.hot_and_cool_spots)]
    assert len(town.hot_and_cool_spots) == 6
    assert (spots["qc"] == 0).all(), spots[spots["qc"] != 0]
    healthy = hourly[hourly.index.get_level_values(0).isin(town.healthy)]
    assert _has(healthy["qc"], VALUE_FLAGS).mean() < 0.002


@pytest.mark.parametrize("sensor", sorted(qctown.FAULTS))
def test_each_fault_is_caught(qtown: tuple[qctown.QcTown, pd.DataFrame, pd.DataFrame], sensor: str) -> None:
    town, _, hourly = qtown
    kind = town.kinds[sensor]
    h = hourly.loc[sensor]
    expected = sum(int(QcFlag[name]) for name in qctown.EXPECTED[kind])
    faulty = h["bad"]
    if kind == "radiation":
        faulty = h["error"] > QcConfig().radiation_c  # what the radiation check is built to catch
        # (hours whose mean error is above its threshold; sunny hours below it pass, by design)
        assert not _has(h.loc[h["error"] == 0, "qc"], VALUE_FLAGS).any()  # nights and dull hours kept
    rate = float(_has(h.loc[faulty, "qc"], QcFlag(expected)).mean())
    minimum = {"drift": 0.7, "correlation": 0.7, "radiation": 0.9}.get(kind, 0.95)
    assert rate >= minimum, (sensor, rate)


def test_dense_streets_warmer_than_parks_and_suburbs_are_not_flagged() -> None:
    # Four dense streets at 1.5 times the nocturnal UHI of two parks and two suburbs, five weeks.
    town = qctown.build(seed=5, days=35, faults=False, layout=qctown.DENSE_STREETS)
    q = run_qc(town.readings, sites=town.sites, cool_sites=town.cool_sites, position=qctown.CENTRE)
    assert (q["qc"] == 0).all(), q[q["qc"] != 0].groupby("sensor")["qc"].agg(lambda s: sorted(set(s)))


def test_drift_and_monthly_checks_see_the_stored_history() -> None:
    # The last week as the window, the two weeks before it as stored hourly rows.
    town = qctown.build(seed=2)
    r = town.readings
    cut = r["time"].min() + pd.Timedelta(days=14)
    past = r[r["time"] < cut]
    history = (past.assign(time=past["time"].dt.floor("h")).groupby(["sensor", "time"], as_index=False)
               .agg(t_mean=("temperature", "mean"), n=("temperature", "size")))
    history["qc"] = 0
    window = r[r["time"] >= cut - pd.Timedelta(hours=6)]
    with_history = run_qc(window, sites=town.sites, cool_sites=town.cool_sites, position=qctown.CENTRE,
                          history=history)
    alone = run_qc(window, sites=town.sites, cool_sites=town.cool_sites, position=qctown.CENTRE)
    slow = window["sensor"] == "f-drift-slow"
    assert _has(with_history.loc[slow, "qc"], QcFlag.DRIFT).all()
    assert not _has(alone.loc[slow, "qc"], QcFlag.DRIFT).any()  # a week alone is too short to judge
    indoor = window["sensor"] == "f-indoor"
    assert _has(with_history.loc[indoor, "qc"], QcFlag.MONTH_CORRELATION).all()


def test_month_sparse_is_information_only() -> None:
    town = qctown.build(seed=4, days=14, faults=False)
    r = town.readings
    hour = r["time"].dt.hour
    sparse = r[~((r["sensor"] == "street-05") & (hour % 3 != 0))].reset_index(drop=True)  # one hour in three
    q = run_qc(sparse, sites=town.sites, cool_sites=town.cool_sites, position=qctown.CENTRE)
    s = q[q["sensor"] == "street-05"]
    late = s["time"] >= s["time"].min() + pd.Timedelta(days=8)
    assert _has(s.loc[late, "qc"], QcFlag.MONTH_SPARSE).all()
    assert not QcFlag.MONTH_SPARSE & VALUE_FLAGS


def test_peers_are_found_by_class_lcz_and_distance() -> None:
    town = qctown.build(seed=1, days=1, faults=False)
    names = sorted(town.sites)
    eligible = np.ones(len(names), dtype=bool)
    peers = dict(zip(names, peer_sets(names, town.sites, eligible, QcConfig()), strict=True))
    cols, tier = peers["hot-spot"]
    assert tier == "lcz-near" and all(town.sites[names[c]].site_class == "urban" for c in cols)
    assert "hot-spot" not in {names[c] for c in cols}
    assert peers["park-0"][1] in ("lcz-near", "lcz") and len(peers["park-0"][0]) == 3
    assert peers["rural-ref"] == (peers["rural-ref"][0], "none") and len(peers["rural-ref"][0]) == 0
