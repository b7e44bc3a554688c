"""Hourly, daily and town-daily aggregates on inputs small enough to check by hand."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest

from heatwatch.analytics.aggregate import (
    DAILY_COLUMNS,
    HOURLY_COLUMNS,
    TOWN_DAILY_COLUMNS,
    TownContext,
    aggregate_town,
    daily_usable,
)
from heatwatch.analytics.indices import dew_point, heat_index, humidex
from heatwatch.analytics.qc import QcConfig
from heatwatch.core.measurements import QcFlag
from heatwatch.core.model import CaniculeThresholds, Sensor, SiteClass, Town
from heatwatch.core.settings import load_towns

THRESHOLDS = CaniculeThresholds(ibmn=18.0, ibmx=33.0, source="test")
# The hand-made series jump 16 °C at 06:00 UTC and sit flat for 12 h: switch those checks off
# here (they have their own tests) so that every number below follows from the table.
NO_POINT_CHECKS = QcConfig(step_base_c=1e9, spike_c=1e9, persistence_h=1e9)
DAYS = [date(2025, 7, d) for d in (1, 2, 3, 4)]

# Reference temperature (°C) by UTC block: night A_D covers 18:00 D−1 → 06:00 D,
# day B_D covers 06:00 D → 18:00 D. So the climatological Tn of D is A_D and Tx of D is B_D.
NIGHT = {date(2025, 7, 1): 15.0, date(2025, 7, 2): 17.0, date(2025, 7, 3): 19.0,
         date(2025, 7, 4): 20.0, date(2025, 7, 5): 18.0}
DAY = {date(2025, 7, 1): 30.0, date(2025, 7, 2): 32.0, date(2025, 7, 3): 35.0, date(2025, 7, 4): 34.0}
# UHI of the urban sensors: u1 +3 at night, +1 by day, u2 +2 and +0.5; u1 has a +4 hour at
# 01:00 UTC on 2 July (03:00 local, a night hour) and a +2 hour at 12:00 UTC (a day hour).
PEAKS = {pd.Timestamp("2025-07-02T01:00Z"): 4.0, pd.Timestamp("2025-07-02T12:00Z"): 2.0}


def _ref_at(hour: pd.Timestamp) -> float:
    d = hour.date()
    if 6 <= hour.hour < 18:
        return DAY[d]
    return NIGHT[d + pd.Timedelta(days=1) if hour.hour >= 18 else d]


def _hand_town(drop: Callable[[str, pd.Timestamp], bool] | None = None) -> pd.DataFrame:
    """Readings at :15 and :45 of each hour, v−0.1 and v+0.1: hourly mean v, min v−0.1, max v+0.1."""
    hours = pd.date_range("2025-06-30T18:00Z", "2025-07-05T05:00Z", freq="h")
    rows = []
    for hour in hours:
        ref = _ref_at(hour)
        night = not 6 <= hour.hour < 18
        values = {
            "ref": ref,
            "u1": ref + PEAKS.get(hour, 3.0 if night else 1.0),
            "u2": ref + (2.0 if night else 0.5),
        }
        for sensor, v in values.items():
            if drop and drop(sensor, hour):
                continue
            for minute, dv in ((15, -0.1), (45, 0.1)):
                rows.append(("vitre", sensor, hour + pd.Timedelta(minutes=minute), v + dv, 50.0))
    return pd.DataFrame(rows, columns=["town", "sensor", "time", "temperature", "humidity"])


def _context(**kw: Any) -> TownContext:
    base: dict[str, Any] = {"id": "vitre", "references": frozenset({"ref"}),
                            "urban": frozenset({"u1", "u2"}), "thresholds": THRESHOLDS,
                            "qc": NO_POINT_CHECKS}
    base.update(kw)
    return TownContext(**base)


@pytest.fixture(scope="module")
def hand() -> Any:
    return aggregate_town(_hand_town(), _context(), days=DAYS)


def _row(frame: pd.DataFrame, day: date, sensor: str | None = None) -> pd.Series:
    local = frame["time"].dt.tz_convert("Europe/Paris").dt.date
    m = local == day
    if sensor is not None:
        m &= frame["sensor"] == sensor
    assert m.sum() == 1
    return frame[m].iloc[0]


def test_columns_are_the_schema(hand: Any) -> None:
    assert list(hand.hourly.columns) == HOURLY_COLUMNS
    assert list(hand.daily.columns) == DAILY_COLUMNS
    assert list(hand.town_daily.columns) == TOWN_DAILY_COLUMNS
    for frame in (hand.hourly, hand.daily, hand.town_daily):
        assert str(frame["time"].dt.tz) == "UTC"


def test_hourly_means_extremes_and_uhi(hand: Any) -> None:
    h = hand.hourly.set_index(["sensor", "time"])
    at = pd.Timestamp("2025-07-02T01:00Z")
    assert h.loc[("ref", at), "t_mean"] == pytest.approx(17.0)
    assert h.loc[("ref", at), "t_min"] == pytest.approx(16.9)
    assert h.loc[("ref", at), "t_max"] == pytest.approx(17.1)
    assert h.loc[("ref", at), "n"] == 2
    assert h.loc[("u1", at), "uhi"] == pytest.approx(4.0)
    assert h.loc[("u2", at), "uhi"] == pytest.approx(2.0)
    assert h.loc[("ref", at), "uhi"] == pytest.approx(0.0)
    assert h.loc[("u1", at), "dewpoint"] == pytest.approx(dew_point(21.0, 50.0))
    assert h.loc[("u1", at), "humidex"] == pytest.approx(humidex(21.0, dew_point(21.0, 50.0)))
    assert h.loc[("u1", at), "heat_index"] == pytest.approx(heat_index(21.0, 50.0))
    assert (hand.hourly["qc"] == 0).all()
    assert len(hand.hourly) == 3 * 4 * 24  # edge hours outside DAYS are not emitted


def test_daily_on_the_local_day(hand: Any) -> None:
    # Local 2 July = 22:00 UTC 1 July … 22:00 UTC 2 July: 8 h of night A=17, 12 h of day B=32,
    # then 4 h of the next night A=19.
    ref = _row(hand.daily, date(2025, 7, 2), "ref")
    assert ref["time"] == pd.Timestamp("2025-07-01T22:00Z")
    assert ref["tn"] == pytest.approx(16.9)
    assert ref["tx"] == pytest.approx(32.1)
    assert ref["t_mean"] == pytest.approx((8 * 17 + 12 * 32 + 4 * 19) / 24)
    assert ref["hours_ge_30"] == 12
    assert not ref["tropical_night"]
    assert ref["coverage"] == 1.0 and ref["qc"] == 0

    u1 = _row(hand.daily, date(2025, 7, 2), "u1")
    assert u1["tn"] == pytest.approx(19.9)  # 17 + 3 − 0.1
    assert u1["tx"] == pytest.approx(34.1)  # the +2 hour: 32 + 2 + 0.1
    assert u1["uhi_mean"] == pytest.approx((11 * 3 + 4 + 11 * 1 + 2) / 24)
    # Night ending on the morning of 2 July: 18:00 local 1 July (16:00 UTC) → 06:00 local.
    assert u1["uhi_night_max"] == pytest.approx(4.0)
    assert not u1["tropical_night"]  # 19.9 < 20
    u1_3 = _row(hand.daily, date(2025, 7, 3), "u1")
    assert u1_3["uhi_night_max"] == pytest.approx(3.0)  # the +2 day hour does not count
    assert u1_3["tn"] == pytest.approx(21.9) and u1_3["tropical_night"]


def test_town_ibm_and_canicule(hand: Any) -> None:
    c = hand.town_daily.assign(date=hand.town_daily["time"].dt.tz_convert("Europe/Paris").dt.date)
    c = c.set_index("date")
    assert list(c.index) == DAYS
    # Climatological Tn = A − 0.1, Tx = B + 0.1 from the reference; 3-day trailing means.
    assert np.isnan(c.loc[date(2025, 7, 2), "ibmn"])
    assert c.loc[date(2025, 7, 3), "ibmn"] == pytest.approx((15 + 17 + 19) / 3 - 0.1)
    assert c.loc[date(2025, 7, 3), "ibmx"] == pytest.approx((30 + 32 + 35) / 3 + 0.1)
    assert c.loc[date(2025, 7, 4), "ibmn"] == pytest.approx((17 + 19 + 20) / 3 - 0.1)
    assert c.loc[date(2025, 7, 4), "ibmx"] == pytest.approx((32 + 35 + 34) / 3 + 0.1)
    assert c["canicule"].isna().tolist() == [True, True, False, False]
    assert not c.loc[date(2025, 7, 3), "canicule"]  # IBMn 16.9 < 18
    assert c.loc[date(2025, 7, 4), "canicule"]  # 18.57 ≥ 18 and 33.77 ≥ 33


def test_town_uhi_hottest_and_count(hand: Any) -> None:
    c = _row(hand.town_daily, date(2025, 7, 2))
    u1 = (11 * 3 + 4 + 11 * 1 + 2) / 24
    u2 = (12 * 2 + 12 * 0.5) / 24
    assert c["uhi_mean"] == pytest.approx((u1 + u2) / 2)
    assert c["uhi_max"] == pytest.approx(4.0)
    assert c["hottest_sensor"] == "u1"
    assert c["sensors_ok"] == 3


def test_missing_reference_leaves_ibm_and_uhi_empty_and_says_why() -> None:
    # The reference is silent from 18:00 UTC 2 July to 18:00 UTC 3 July: the whole Tn window of 3 July.
    gap = (pd.Timestamp("2025-07-02T18:00Z"), pd.Timestamp("2025-07-03T18:00Z"))
    res = aggregate_town(_hand_town(lambda s, h: s == "ref" and gap[0] <= h < gap[1]), _context(), days=DAYS)
    h = res.hourly.set_index(["sensor", "time"])
    assert np.isnan(h.loc[("u1", pd.Timestamp("2025-07-03T01:00Z")), "uhi"])
    c = res.town_daily.set_index(res.town_daily["time"].dt.tz_convert("Europe/Paris").dt.date)
    # No silent fallback to the urban sensors (their Tn is warm by the heat island): every IBM whose
    # three days include 3 July is empty, and says which source lacked what.
    # (The gap also takes half of the Tx window of 2 July, 06:00 UTC 2 July → 06:00 UTC 3 July.)
    for day in (date(2025, 7, 3), date(2025, 7, 4)):
        assert np.isnan(c.loc[day, "ibmn"]) and np.isnan(c.loc[day, "ibmx"]) and pd.isna(c.loc[day, "canicule"])
        assert pd.isna(c.loc[day, "ibm_source"])
        assert c.loc[day, "ibm_reason"] == ("station: no reference station configured; "
                                            "sensors:ref: no Tx for 2025-07-02 (less than 80 % of its window)")
    assert pd.isna(c.loc[date(2025, 7, 3), "tn_ref"])
    ref3 = _row(res.daily, date(2025, 7, 3), "ref")
    assert ref3["qc"] & QcFlag.AVAILABILITY and not daily_usable(pd.DataFrame([ref3])).iloc[0]


def test_ibm_from_the_station_first_then_the_sensors_and_forward() -> None:
    # An official station 1 °C cooler than the reference sensor, hourly rows stamped at the end of
    # their hour, missing on 4 July: IBM from the station while it covers D−2…D, then from the sensors.
    rows = []
    for stamp in pd.date_range("2025-06-30T19:00Z", "2025-07-04T06:00Z", freq="h"):
        v = _ref_at(stamp - pd.Timedelta(hours=1)) - 1.0
        rows.append({"time": stamp, "t": v, "tn": v - 0.2, "tx": v + 0.2, "u": 60.0})
    station = pd.DataFrame(rows)
    ctx = _context(station="35281001", uhi_sources=("station", "sensors"))
    res = aggregate_town(_hand_town(), ctx, days=DAYS, station=station)
    c = res.town_daily.set_index(res.town_daily["time"].dt.tz_convert("Europe/Paris").dt.date)
    assert c.loc[date(2025, 7, 3), "ibm_source"] == "station:35281001"
    assert c.loc[date(2025, 7, 3), "ibmn"] == pytest.approx((15 + 17 + 19) / 3 - 1.2)
    assert c.loc[date(2025, 7, 3), "ibmx"] == pytest.approx((30 + 32 + 35) / 3 - 0.8)
    assert c.loc[date(2025, 7, 3), "tn_ref"] == pytest.approx(19 - 1.2)
    # 4 July: the station's Tx window (to 06:00 UTC 5 July) is not covered: the sensors take over.
    assert c.loc[date(2025, 7, 4), "ibm_source"] == "sensors:ref"
    assert c.loc[date(2025, 7, 4), "ibmn"] == pytest.approx((17 + 19 + 20) / 3 - 0.1)
    # Forward (D…D+2): 2 July from 2, 3 and 4 July, from the sensors (the station lacks Tx of 4 July).
    assert c.loc[date(2025, 7, 2), "ibmn_forward"] == pytest.approx((17 + 19 + 20) / 3 - 0.1)
    assert c.loc[date(2025, 7, 2), "ibmx_forward"] == pytest.approx((32 + 35 + 34) / 3 + 0.1)
    assert c.loc[date(2025, 7, 2), "canicule_forward"] and c.loc[date(2025, 7, 2), "canicule"] is not True
    assert np.isnan(c.loc[date(2025, 7, 3), "ibmn_forward"])  # 5 July has no Tx
    # UHI against the station where it has the hour (its T at both ends of the hour), else the sensors.
    h = res.hourly.set_index(["sensor", "time"])
    assert h.loc[("u1", pd.Timestamp("2025-07-02T01:00Z")), "uhi"] == pytest.approx(5.0)
    assert c.loc[date(2025, 7, 2), "uhi_source"] == "station:35281001"
    assert c.loc[date(2025, 7, 4), "uhi_source"] == "sensors+station:35281001"


def test_spatial_flags_do_not_count_against_coverage() -> None:
    ctx = _context()
    hourly = aggregate_town(_hand_town(), ctx, days=DAYS).hourly.copy()
    # Mark every night hour of u1 as gross SPATIAL_HIGH and every day hour as RADIATION.
    night = ~hourly["time"].dt.hour.between(6, 17)
    u1 = hourly["sensor"] == "u1"
    hourly.loc[u1 & night, "qc"] |= int(QcFlag.SPATIAL_HIGH)
    hourly.loc[u1 & ~night, "qc"] |= int(QcFlag.RADIATION)
    from heatwatch.analytics.aggregate import daily_aggregates

    d = daily_aggregates(hourly, ctx, DAYS)
    row = _row(d, date(2025, 7, 2), "u1")
    assert row["coverage"] == 1.0 and not row["qc"] & QcFlag.AVAILABILITY
    assert np.isnan(row["t_mean"]) and np.isnan(row["tn"]) and np.isnan(row["tx"])
    assert pd.isna(row["tropical_night"])


def test_partial_day_is_flagged_when_not_filtered_out() -> None:
    res = aggregate_town(_hand_town(), _context())
    edge = _row(res.daily, date(2025, 6, 30), "ref")  # only 20:00–24:00 local
    assert edge["coverage"] == pytest.approx(4 / 24)
    assert edge["qc"] & QcFlag.AVAILABILITY


def test_deterministic_whatever_the_input_order() -> None:
    readings = _hand_town()
    a = aggregate_town(readings, _context(), days=DAYS)
    b = aggregate_town(readings.sample(frac=1.0, random_state=7).reset_index(drop=True), _context(), days=DAYS)
    for x, y in ((a.hourly, b.hourly), (a.daily, b.daily), (a.town_daily, b.town_daily)):
        pd.testing.assert_frame_equal(x, y)


def test_dst_day_has_25_hours() -> None:
    times = pd.date_range("2025-10-25T22:00Z", "2025-10-26T23:00Z", freq="h", inclusive="left")
    df = pd.DataFrame({"town": "vitre", "sensor": "ref", "time": times,
                       "temperature": 12.0 + np.arange(len(times)) % 3, "humidity": 80.0})
    res = aggregate_town(df, _context())
    day = _row(res.daily, date(2025, 10, 26), "ref")
    assert len(times) == 25 and day["coverage"] == 1.0


def test_other_towns_are_refused() -> None:
    df = _hand_town()
    df.loc[0, "town"] = "saint-omer"
    with pytest.raises(ValueError, match="towns"):
        aggregate_town(df, _context())


def test_context_from_registry() -> None:
    town: Town = load_towns()["vitre"]
    sensors = [
        Sensor(id="vitre-rural-01", town="vitre", site_class=SiteClass.rural_reference, latitude=48.1,
               longitude=-1.2),
        Sensor(id="v-urb-1", town="vitre", site_class=SiteClass.urban, latitude=48.1, longitude=-1.2),
        Sensor(id="v-park", town="vitre", site_class=SiteClass.park, latitude=48.1, longitude=-1.2),
        Sensor(id="v-new", town="vitre"),
        Sensor(id="v-old", town="vitre", site_class=SiteClass.urban, latitude=48.1, longitude=-1.2,
               retired=True),
        Sensor(id="so-x", town="saint-omer", site_class=SiteClass.urban, latitude=50.7, longitude=2.2),
    ]
    ctx = TownContext.from_registry(town, sensors)
    assert ctx.references == {"vitre-rural-01"}
    assert ctx.urban == {"v-urb-1"}
    assert ctx.cool_sites == {"v-park"}
    assert ctx.unplaced == {"v-new"}
    assert ctx.thresholds == town.canicule and ctx.timezone == "Europe/Paris"


def test_synthetic_town_end_to_end(make_town: Callable[..., Any]) -> None:
    town = make_town(days=8)
    ctx = TownContext(id="vitre", references=frozenset(town.references), urban=frozenset(town.urban),
                      cool_sites=frozenset(town.parks), thresholds=THRESHOLDS, sites=town.sites,
                      position=(48.12, -1.21))
    res = aggregate_town(town.readings, ctx)
    h = res.hourly
    stuck = next(s for s, k in town.faults.items() if k == "stuck")
    late = h[(h["sensor"] == stuck) & (h["time"] >= h["time"].min() + pd.Timedelta(days=3, hours=1))]
    assert (late["qc"] & int(QcFlag.PERSISTENCE)).all()
    # Healthy urban sensors show the UHI the generator built in: 1.5–3 °C around 03:00 local.
    night = h[h["sensor"].isin(set(town.urban) - set(town.faults))
              & (h["time"].dt.tz_convert("Europe/Paris").dt.hour == 3) & (h["qc"] == 0)]
    assert 1.2 < night["uhi"].median() < 3.3
    d = res.daily
    assert (d.loc[d["sensor"] == stuck, "coverage"].iloc[4:] == 0).all()
    assert res.town_daily["sensors_ok"].between(14, 20).all()
    drifting = next(s for s, k in town.faults.items() if k == "drift")
    # (drift needs a week of days to be judged: the last two days here)
    assert drifting not in set(res.town_daily["hottest_sensor"].iloc[-2:])
