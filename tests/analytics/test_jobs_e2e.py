"""The aggregate jobs end to end on the real influxd: a simulated week with a heat wave, replayed into
the ``reading`` measurement, recomputed by the jobs and checked against a straightforward pandas
computation from the raw readings written here (it does not call ``aggregate.py``).

The one input the independent computation takes from the stored results is the QC verdict per
sensor-hour (``hourly.qc``): QC has its own tests; what is checked here is that everything built
on it — hourly means, local days, UHI against the rural reference, coverage, Tn/Tx and IBM windows,
the canicule flag, the town values — comes out as docs/science/indices.md and canicule.md define
it. The clean week has no injected fault, so no reading is dropped by the point checks (asserted:
``n`` equals the raw count). No official station is imported here: IBM comes from the rural
reference sensor, and says so.
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analytics.weektools import WEEK_DAYS, WEEK_END, dump, example_registry, simulate_week, write_readings
from heatwatch.analytics.backfill import backfill
from heatwatch.analytics.jobs import Analytics
from heatwatch.core.influx import AGG_RP, InfluxClient
from heatwatch.core.measurements import VALUE_FLAGS
from heatwatch.core.model import SiteClass
from heatwatch.core.settings import load_towns
from heatwatch.core.trust import weight_of

TOWNS = load_towns()


def run_backfill(url: str, db: str, registry_path: Path, first: date, last: date) -> None:
    async def go() -> None:
        async with InfluxClient(url, db, timeout=60) as c:
            reg = example_registry(registry_path)
            await backfill(Analytics(c, TOWNS, reg), first, last, chunk_days=3)
            reg.close()

    asyncio.run(go())


def frame(rows: list[dict], tz_cols: tuple[str, ...] = ("time",)) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for c in tz_cols:
        df[c] = pd.to_datetime(df[c].astype("int64"), unit="ms", utc=True)
    return df


@pytest.fixture(scope="module")
def week(influxd, module_db: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    sim = simulate_week(faults=False)
    readings = list(sim.readings())
    write_readings(influxd.url, module_db, readings)
    reg_path = tmp_path_factory.mktemp("reg") / "registry.sqlite"
    run_backfill(influxd.url, module_db, reg_path, WEEK_DAYS[0], WEEK_DAYS[-1])
    raw = pd.DataFrame([(r.town, r.sensor, r.ts_ms, r.temperature, r.humidity) for r in readings],
                       columns=["town", "sensor", "ms", "temperature", "humidity"])
    raw["time"] = pd.to_datetime(raw["ms"], unit="ms", utc=True)
    stored = dump(influxd.url, module_db)
    reg = example_registry(reg_path)
    urban = {s.id for s in reg.list() if s.site_class is SiteClass.urban}
    # A resident's sensor counts in the town's indices only once confirmed (docs/citizens.md): the example
    # registry's citizen site is still provisional.
    uncounted = {s.id for s in reg.list() if weight_of(s, 0.5) == 0}
    reg.close()
    return {"sim": sim, "raw": raw, "stored": stored, "registry": reg_path, "db": module_db, "urban": urban,
            "uncounted": uncounted}


# The independent computation -------------------------------------------------------------------


def independent(raw: pd.DataFrame, qc: pd.DataFrame, town_id: str, urban: set[str],
                uncounted: set[str] = frozenset()) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Hourly, daily and town-daily values of one town from raw readings and the per-hour QC verdict."""
    town = TOWNS[town_id]
    tz = town.timezone
    r = raw[raw["town"] == town_id].copy()
    r["hour"] = r["time"].dt.floor("h")
    h = r.groupby(["sensor", "hour"]).agg(t_mean=("temperature", "mean"), t_min=("temperature", "min"),
                                          t_max=("temperature", "max"), rh_mean=("humidity", "mean"),
                                          count=("temperature", "size")).reset_index()
    h = h.merge(qc.rename(columns={"time": "hour"})[["sensor", "hour", "qc", "n"]], on=["sensor", "hour"], how="left")
    # Hours past the last written local day carry no verdict; they only feed the last Tx window.
    h["ok"] = (h["qc"].fillna(0).astype("int64") & int(VALUE_FLAGS)) == 0
    refs = set(town.reference_sensors)
    ref_t = h[h["sensor"].isin(refs) & h["ok"]].groupby("hour")["t_mean"].min()
    h["uhi"] = h["t_mean"] - h["hour"].map(ref_t)
    local = h["hour"].dt.tz_convert(tz)
    h["day"] = local.dt.date
    shifted = local.dt.tz_localize(None) + pd.Timedelta(hours=6)  # 18:00 D−1 … 06:00 D → 00:00 … 12:00 D
    h["night_day"] = shifted.dt.date.where(shifted.dt.hour < 12)

    v = h[h["ok"]]
    d = v.groupby(["sensor", "day"]).agg(t_mean=("t_mean", "mean"), rh_mean=("rh_mean", "mean"),
                                         uhi_mean=("uhi", "mean"),
                                         hours_ge_30=("t_mean", lambda s: int((s >= 30).sum()))).reset_index()
    # Every reading of the clean week passes the point checks (asserted below: n == count), so an
    # hour is present when it has readings, also past the last written day (the last Tx window).
    present = h[h["count"] > 0].groupby(["sensor", "day"]).size()
    d["present"] = [present.get((s, day), 0) for s, day in zip(d["sensor"], d["day"], strict=True)]
    night = v.dropna(subset=["night_day"]).groupby(["sensor", "night_day"])["uhi"].max()
    d["uhi_night_max"] = [night.get((s, day), np.nan) for s, day in zip(d["sensor"], d["day"], strict=True)]
    day_len = {day: (pd.Timestamp(day + timedelta(days=1)).tz_localize(tz)
                     - pd.Timestamp(day).tz_localize(tz)) / pd.Timedelta(hours=1) for day in d["day"].unique()}
    # Coverage counts hours with data that passed the point checks, whatever the spatial flags.
    d["coverage"] = d["present"] / d["day"].map(day_len)
    # Météo-France windows per sensor: Tn of D over [18 UTC D−1, 18 UTC D), Tx of D over
    # [06 UTC D, 06 UTC D+1), from usable hours, each needing 80 % of its 24 hours present.
    utc = h["hour"].dt.tz_localize(None)
    h["tn_day"] = (utc + pd.Timedelta(hours=6)).dt.date
    h["tx_day"] = (utc - pd.Timedelta(hours=6)).dt.date
    has = h[h["count"] > 0]
    tn = h[h["ok"]].groupby(["sensor", "tn_day"])["t_min"].min().where(
        has.groupby(["sensor", "tn_day"]).size() >= 19.2)
    tx = h[h["ok"]].groupby(["sensor", "tx_day"])["t_max"].max().where(
        has.groupby(["sensor", "tx_day"]).size() >= 19.2)
    d["tn"] = [tn.get((s, day), np.nan) for s, day in zip(d["sensor"], d["day"], strict=True)]
    d["tx"] = [tx.get((s, day), np.nan) for s, day in zip(d["sensor"], d["day"], strict=True)]
    d["tropical_night"] = d["tn"] >= 20.0
    counts = r.assign(day=r["time"].dt.tz_convert(tz).dt.date).groupby(["sensor", "day"]).size()
    expected = d["day"].map(day_len) * 12  # 5-minute readings
    enough = np.array([counts.get((s, day), 0) for s, day in zip(d["sensor"], d["day"], strict=True)]) >= 0.8 * expected
    d["usable"] = enough & (d["coverage"] >= 0.8)

    good = d[d["usable"]]
    c = pd.DataFrame(index=pd.Index(sorted(d["day"].unique()), name="day"))
    c["sensors_ok"] = good[~good["sensor"].isin(uncounted)].groupby("day").size().reindex(c.index, fill_value=0)
    c["uhi_mean"] = good[good["sensor"].isin(urban)].groupby("day")["uhi_mean"].mean()
    c["uhi_max"] = v[v["sensor"].isin(urban)].groupby("day")["uhi"].max()
    hottest = good.sort_values(["day", "t_mean", "sensor"], ascending=[True, False, True]).groupby("day").first()
    c["hottest_sensor"] = hottest["sensor"]

    # IBM on the rural reference sensor: its Tn/Tx windows (median of the references), D−2…D.
    tn_d = pd.Series({day: pd.Series([tn.get((s, day), np.nan) for s in refs]).median() for day in set(h["tn_day"])})
    tx_d = pd.Series({day: pd.Series([tx.get((s, day), np.nan) for s in refs]).median() for day in set(h["tx_day"])})
    ibmn, ibmx = {}, {}
    for day in c.index:
        three = [day - timedelta(days=k) for k in (2, 1, 0)]
        vn = [tn_d.get(x, np.nan) for x in three]
        vx = [tx_d.get(x, np.nan) for x in three]
        # One source gives both means, or neither: a canicule day needs the pair.
        both = not (np.isnan(vn).any() or np.isnan(vx).any())
        ibmn[day] = float(np.mean(vn)) if both else np.nan
        ibmx[day] = float(np.mean(vx)) if both else np.nan
    c["ibmn"] = pd.Series(ibmn)
    c["ibmx"] = pd.Series(ibmx)
    thr = town.canicule
    c["canicule"] = [(n >= thr.ibmn and x >= thr.ibmx) if not (np.isnan(n) or np.isnan(x)) else None
                     for n, x in zip(c["ibmn"], c["ibmx"], strict=True)]
    return h, d, c.reset_index()


def stored_frames(week: dict, town: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    tz = TOWNS[town].timezone
    hourly = frame([r for r in week["stored"]["hourly"] if r["town"] == town])
    daily = frame([r for r in week["stored"]["daily"] if r["town"] == town])
    daily["day"] = daily["time"].dt.tz_convert(tz).dt.date
    town_daily = frame([r for r in week["stored"]["town_daily"] if r["town"] == town])
    town_daily["day"] = town_daily["time"].dt.tz_convert(tz).dt.date
    return hourly, daily, town_daily


def close(a: pd.Series, b: pd.Series) -> bool:
    a = a.astype("float64").to_numpy()
    b = b.astype("float64").to_numpy()
    return bool(np.allclose(a, b, rtol=0, atol=1e-6, equal_nan=True))


# Tests ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("town", sorted(TOWNS))
def test_hourly_and_daily_match_independent_computation(week: dict, town: str) -> None:
    hourly, daily, _ = stored_frames(week, town)
    h, d, _ = independent(week["raw"], hourly, town, week["urban"])
    h = h[h["day"].isin(WEEK_DAYS)]
    d = d[d["day"].isin(WEEK_DAYS)]
    hm = h.merge(hourly, left_on=["sensor", "hour"], right_on=["sensor", "time"], suffixes=("", "_db"))
    assert len(hm) == len(h) == len(hourly)  # one stored hour per sensor-hour with readings, no more
    # A healthy network loses no reading to the point checks, and spatial flags stay rare.
    assert (hm["n"] == hm["count"]).all()
    assert hm["ok"].mean() > 0.97
    ok = hm[hm["ok"]]
    for col in ("t_mean", "t_min", "t_max", "rh_mean", "uhi"):
        assert close(ok[col], ok[f"{col}_db"]), col

    m = d.merge(daily, on=["sensor", "day"], suffixes=("", "_db"))
    assert len(m) == len(d) == len(daily)
    for col in ("tn", "tx", "t_mean", "rh_mean", "uhi_mean", "uhi_night_max", "coverage", "hours_ge_30"):
        assert close(m[col], m[f"{col}_db"]), col
    assert (m["tropical_night"] == m["tropical_night_db"].astype(bool)).all()
    # Daily points are stamped at local midnight, expressed in UTC (the api reads them so).
    assert (daily["time"].dt.tz_convert(TOWNS[town].timezone).dt.hour == 0).all()
    assert sorted(daily["day"].unique()) == WEEK_DAYS


@pytest.mark.parametrize("town", sorted(TOWNS))
def test_town_values_match_independent_computation(week: dict, town: str) -> None:
    hourly, _, town_daily = stored_frames(week, town)
    _, _, c = independent(week["raw"], hourly, town, week["urban"], week["uncounted"])
    c = c[c["day"].isin(WEEK_DAYS)]
    m = c.merge(town_daily, on="day", suffixes=("", "_db"))
    assert len(m) == len(c) == len(town_daily) == len(WEEK_DAYS)
    for col in ("ibmn", "ibmx", "uhi_mean", "uhi_max", "sensors_ok"):
        assert close(m[col], m[f"{col}_db"]), col
    refs = ",".join(sorted(TOWNS[town].reference_sensors))
    assert set(m.loc[m["ibmn"].notna(), "ibm_source"]) == {f"sensors:{refs}"}
    assert m.loc[m["ibmn"].isna(), "ibm_reason"].str.contains("no data imported for station").all()
    assert list(m["hottest_sensor"]) == list(m["hottest_sensor_db"])
    known = m["ibmn"].notna() & m["ibmx"].notna()
    assert known.sum() == 5  # IBM needs three full Tn/Tx windows: known from the fourth day on
    assert list(m.loc[known, "canicule"]) == list(m.loc[known, "canicule_db"].astype(bool))
    assert m.loc[~known, "canicule_db"].isna().all()  # unknown, not "no canicule"


@pytest.mark.parametrize("town", sorted(TOWNS))
def test_canicule_days_are_exactly_the_episode_days(week: dict, town: str) -> None:
    _, _, town_daily = stored_frames(week, town)
    wave = week["sim"].heatwave
    found = sorted(town_daily.loc[town_daily["canicule"].astype("boolean").fillna(False), "day"])
    # Both départements (35 Vitré, 62 Saint-Omer) at their configured thresholds; trailing 3-day means.
    assert found == wave.canicule_days("trailing")
    assert TOWNS[town].canicule.ibmn == 18.0 and TOWNS[town].canicule.ibmx == 33.0


def test_rerun_is_idempotent(week: dict, influxd) -> None:
    # Same range with other chunk boundaries, then the scheduled runs over the same days: same points.
    run_backfill(influxd.url, week["db"], week["registry"], WEEK_DAYS[0], WEEK_DAYS[-1])
    assert dump(influxd.url, week["db"]) == week["stored"]

    async def scheduled() -> None:
        async with InfluxClient(influxd.url, week["db"], timeout=60) as c:
            reg = example_registry(week["registry"])
            a = Analytics(c, TOWNS, reg)
            await a.daily_run(WEEK_END + timedelta(hours=6, minutes=20), 3)
            await a.hourly_run(WEEK_END - timedelta(hours=9, minutes=55), 6)  # 23:05 local on the last day
            reg.close()

    asyncio.run(scheduled())
    assert dump(influxd.url, week["db"]) == week["stored"]


def test_stale_fields_do_not_survive_a_recompute(week: dict, influxd) -> None:
    """A field once known, now unknown, must not keep its old value next to fresh ones."""
    town = "vitre"
    target = next(r for r in week["stored"]["daily"] if r["town"] == town)
    line = f"daily,town={town},sensor={target['sensor']} stale_probe=1.5 {target['time']}"

    async def go() -> list[dict]:
        async with InfluxClient(influxd.url, week["db"]) as c:
            await c.write_lines([line], rp=AGG_RP)
            reg = example_registry(week["registry"])
            day = pd.Timestamp(target["time"], unit="ms", tz="UTC").tz_convert("Europe/Paris").date()
            await Analytics(c, TOWNS, reg).recompute(town, [day])
            reg.close()
            changes = await c.query_records(
                f'SELECT "range_start", "range_end" FROM {c.qualified("aggregate_change", AGG_RP)} '
                "WHERE town = $town", {"town": town})
            probe = await c.query_records(f'SELECT "stale_probe" FROM {c.qualified("daily", AGG_RP)} WHERE time = $t',
                                          {"t": target["time"] * 1_000_000})
            return probe, changes

    probe, changes = asyncio.run(go())
    assert probe == []
    # the recompute announced the range it rewrote, for readers holding aggregates in memory (core/changes.py)
    assert any(c["range_start"] <= target["time"] < c["range_end"] for c in changes)
