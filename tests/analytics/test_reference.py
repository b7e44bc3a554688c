"""Official reference: a Météo-France hourly file imported with ``heatwatch reference import``, then
IBMn/IBMx from it, the source of each day stored and published, and no IBM (with the reason) when no
reference has the days (docs/science/canicule.md).

The file (tests/analytics/data, see its README) is in the exact layout of Météo-France's files; the
expectations are computed here from the file with plain pandas, not by ``reference.py``.
"""

from __future__ import annotations

import asyncio
import gzip
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from heatwatch.analytics.jobs import Analytics
from heatwatch.analytics.reference import ReferenceFileError, read_file, read_station
from heatwatch.api.app import create_app
from heatwatch.cli import main
from heatwatch.core.influx import AGG_RP, InfluxClient
from heatwatch.core.model import Reading
from heatwatch.core.settings import Settings, load_towns
from support.apps import NO_LIMITS, with_api

FILE = Path(__file__).parent / "data" / "H_35_extract-2025-07.csv"
STATION = "35281001"
TOWNS = {"vitre": load_towns()["vitre"]}


def expected_extremes() -> pd.DataFrame:
    """Tn/Tx per climatological day straight from the file: TN/TX of the rows stamped 19 UTC D−1 …
    18 UTC D (Tn) and 07 UTC D … 06 UTC D+1 (Tx), doubtful values (code 2) left out, 20 rows of 24."""
    raw = pd.read_csv(FILE, sep=";", dtype={"NUM_POSTE": str, "AAAAMMJJHH": str})
    raw = raw[raw["NUM_POSTE"] == STATION]
    t = pd.to_datetime(raw["AAAAMMJJHH"], format="%Y%m%d%H")
    tn = raw["TN"].where(raw["QTN"] != 2, raw["T"])
    tx = raw["TX"].where(raw["QTX"] != 2, raw["T"])
    out = {}
    for name, v, shift, how in (("tn", tn, 5, "min"), ("tx", tx, -7, "max")):
        g = pd.Series(v.to_numpy(), index=(t + pd.Timedelta(hours=shift)).dt.date).groupby(level=0)
        out[name] = g.agg(how).where(g.count() >= 20)
    return pd.DataFrame(out)


def test_the_file_is_read_as_published(tmp_path: Path) -> None:
    rows = pd.concat(read_file(FILE))
    assert set(rows["station"]) == {STATION, "35999001"}
    rennes = rows[rows["station"] == STATION]
    assert len(rennes) == 11 * 24 - 1  # 15–25 July, one hour missing
    first = rennes.iloc[0]
    assert first["time"] == pd.Timestamp("2025-07-15T00:00Z") and first["name"] == "RENNES-ST JACQUES"
    assert (first["lat"], first["lon"], first["alti"]) == (48.068833, -1.734, 36.0)
    doubtful = rennes[rennes["time"] == pd.Timestamp("2025-07-20T03:00Z")].iloc[0]
    assert doubtful["tn"] == 9.4 and doubtful["qtn"] == 2  # stored as published
    # The files are gzip'd on data.gouv.fr; the same rows come out of the .csv.gz.
    gz = tmp_path / "H_35_latest-2025.csv.gz"
    with FILE.open("rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    again = pd.concat(read_file(gz, [STATION]))
    pd.testing.assert_frame_equal(again.reset_index(drop=True), rennes.reset_index(drop=True))


def test_a_file_of_another_kind_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    daily = tmp_path / "Q_35_previous-1950-2023_RR-T-Vent.csv"
    daily.write_text("NUM_POSTE;NOM_USUEL;LAT;LON;ALTI;AAAAMMJJ;RR;QRR;TN;QTN\n35281001;RENNES;48;-1.7;36;20250701;0;1;12;1\n")
    with pytest.raises(ReferenceFileError, match="missing AAAAMMJJHH, T, QT"):
        list(read_file(daily))
    bad = tmp_path / "H_35_bad.csv"
    bad.write_text("NUM_POSTE;AAAAMMJJHH;T;QT\n35281001;2025-07-01 10:00;20.1;9\n")
    with pytest.raises(ReferenceFileError, match="not a date and hour"):
        list(read_file(bad))


@pytest.fixture(scope="module")
def imported(influxd, module_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The file imported with the CLI, sensor readings 13–27 July, analytics over 17–27 July."""
    data_dir = tmp_path_factory.mktemp("reference")
    env = {"HEATWATCH_INFLUX_URL": influxd.url, "HEATWATCH_INFLUX_DB": module_db,
           "HEATWATCH_DATA_DIR": str(data_dir)}
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)
    try:
        assert main(["reference", "import", str(FILE)]) == 0
        settings = Settings.load()
        asyncio.run(_readings_and_backfill(settings))
        yield settings
    finally:
        mp.undo()


def _sensor_readings() -> list[Reading]:
    """A rural reference sensor 0.4 °C warmer than the station, silent from 25 July on; two streets."""
    ext = expected_extremes()
    out = []
    start = datetime(2025, 7, 13, tzinfo=UTC)
    for k in range(int(timedelta(days=15) / timedelta(minutes=10))):
        when = start + timedelta(minutes=10 * k)
        h = when.hour + when.minute / 60
        day = when.date()
        tn = float(ext["tn"].get(day, 15.0)) if not np.isnan(ext["tn"].get(day, np.nan)) else 15.0
        tx = float(ext["tx"].get(day, 26.0)) if not np.isnan(ext["tx"].get(day, np.nan)) else 26.0
        t = tn + (tx - tn) * 0.5 * (1 + np.sin(2 * np.pi * (h - 9) / 24)) + 0.4
        night = 1.0 if (h >= 20 or h < 5) else 0.0
        ms = int(when.timestamp() * 1000)
        if day < date(2025, 7, 25):
            out.append(Reading("vitre", "vitre-rural-01", ms, round(float(t), 2), 60.0))
        out.append(Reading("vitre", "vitre-centre-01", ms, round(float(t + 2.5 * night + 0.3), 2), 55.0))
        out.append(Reading("vitre", "vitre-centre-02", ms, round(float(t + 2.0 * night + 0.2), 2), 55.0))
    return out


async def _readings_and_backfill(settings: Settings) -> None:
    async with InfluxClient(settings.influx_base_url, settings.influx_db, timeout=60) as c:
        lines = [r.to_line() for r in _sensor_readings()]
        for i in range(0, len(lines), 10_000):
            await c.write_lines(lines[i:i + 10_000])
        a = Analytics(c, TOWNS)
        await a.recompute_range("vitre", date(2025, 7, 17), date(2025, 7, 27), chunk_days=4)


def _town_daily(settings: Settings) -> pd.DataFrame:
    async def go() -> list[dict]:
        async with InfluxClient(settings.influx_base_url, settings.influx_db) as c:
            return await c.query_records(f'SELECT * FROM {c.qualified("town_daily", AGG_RP)}')

    df = pd.DataFrame(asyncio.run(go()))
    df["day"] = pd.to_datetime(df["time"], unit="ms", utc=True).dt.tz_convert("Europe/Paris").dt.date
    return df.set_index("day")


def test_import_stores_the_station_and_leaves_doubtful_values_out(imported: Settings) -> None:
    async def go() -> pd.DataFrame:
        async with InfluxClient(imported.influx_base_url, imported.influx_db) as c:
            return await read_station(c, STATION, datetime(2025, 7, 20, tzinfo=UTC), datetime(2025, 7, 21, tzinfo=UTC))

    st = asyncio.run(go()).set_index("time")
    assert len(st) == 24
    assert np.isnan(st.loc[pd.Timestamp("2025-07-20T03:00Z"), "tn"])  # code 2
    assert st.loc[pd.Timestamp("2025-07-20T15:00Z"), "tx"] > 35

    async def other() -> pd.DataFrame:
        async with InfluxClient(imported.influx_base_url, imported.influx_db) as c:
            return await read_station(c, "35999001", datetime(2025, 7, 1, tzinfo=UTC), datetime(2025, 8, 1, tzinfo=UTC))

    assert asyncio.run(other()).empty  # only the stations the towns use, by default


def test_ibm_comes_from_the_imported_station(imported: Settings) -> None:
    c = _town_daily(imported)
    ext = expected_extremes()
    for day in [date(2025, 7, 18) + timedelta(days=k) for k in range(7)]:  # 18–24 July
        three = [day - timedelta(days=k) for k in (2, 1, 0)]
        assert c.loc[day, "ibm_source"] == f"station:{STATION}", day
        assert c.loc[day, "ibmn"] == pytest.approx(np.mean([ext.loc[d, "tn"] for d in three]), abs=1e-6)
        assert c.loc[day, "ibmx"] == pytest.approx(np.mean([ext.loc[d, "tx"] for d in three]), abs=1e-6)
        assert c.loc[day, "tn_ref"] == pytest.approx(ext.loc[day, "tn"], abs=1e-6)
        assert "ibm_reason" not in c.columns or pd.isna(c.loc[day, "ibm_reason"])
    # 17 July: the file starts on 15 July at 00 UTC, too late for the Tn window of 15 July: the
    # next source in the town's order, its rural reference sensor, gives the day.
    assert c.loc[date(2025, 7, 17), "ibm_source"] == "sensors:vitre-rural-01"
    # Canicule at Vitré's 18/33 °C: the days whose three-day means clear both thresholds.
    canicule = {d for d in c.index if c.loc[d, "canicule"] is True}
    expected = {d for d in c.index if d >= date(2025, 7, 18) and d <= date(2025, 7, 24)
                and c.loc[d, "ibmn"] >= 18 and c.loc[d, "ibmx"] >= 33}
    assert canicule == expected and date(2025, 7, 20) in canicule
    # D…D+2, the vigilance window, reconstructed: 18 July looks at 18–20 July.
    fwd = [date(2025, 7, 18) + timedelta(days=k) for k in range(3)]
    assert c.loc[date(2025, 7, 18), "ibmn_forward"] == pytest.approx(np.mean([ext.loc[d, "tn"] for d in fwd]))
    assert c.loc[date(2025, 7, 18), "canicule_forward"] is True


def test_a_day_without_any_reference_has_no_ibm_and_says_why(imported: Settings) -> None:
    c = _town_daily(imported)
    # 27 July: the file ends on 25 July and the rural sensor is silent from 25 July.
    day = date(2025, 7, 27)
    assert pd.isna(c.loc[day, "ibmn"]) and pd.isna(c.loc[day, "canicule"]) and pd.isna(c.loc[day, "ibm_source"])
    reason = c.loc[day, "ibm_reason"]
    # The station's last Tx window (to 06:00 UTC on the 26th) is cut by the end of the file at 23:00 UTC on
    # the 25th; the sensor stops at 00:00 UTC on the 25th, in the middle of that day's Tn window.
    assert reason == (f"station:{STATION}: no Tx for 2025-07-25 (less than 80 % of its window); "
                      "sensors:vitre-rural-01: no Tn for 2025-07-25 (less than 80 % of its window)")
    # No fallback to the streets: they report all along, and are not used.
    assert not c["ibm_source"].dropna().str.contains("centre").any()


def test_the_api_publishes_the_source_and_the_reason(imported: Settings) -> None:
    with TestClient(create_app(with_api(imported, **NO_LIMITS))) as api:
        r = api.get("/v1/indices", params={"town": "vitre", "from": "2025-07-17", "to": "2025-07-28"})
        assert r.status_code == 200, r.text
        rows = {row["date"]: row for row in r.json()["data"]}
        assert rows["2025-07-20"]["ibm_source"] == f"station:{STATION}" and rows["2025-07-20"]["canicule"] is True
        assert rows["2025-07-27"]["ibmn"] is None and "no Tx for 2025-07-25" in rows["2025-07-27"]["ibm_reason"]
        assert rows["2025-07-18"]["canicule_forward"] is True
        trailing = api.get("/v1/canicule-episodes", params={"town": "vitre", "from": "2025-07-17", "to": "2025-07-28"})
        forward = api.get("/v1/canicule-episodes", params={"town": "vitre", "from": "2025-07-17", "to": "2025-07-28",
                                                           "alignment": "forward"})
        assert trailing.status_code == forward.status_code == 200, forward.text
        t_ep, f_ep = trailing.json()["data"], forward.json()["data"]
        assert len(t_ep) == len(f_ep) == 1
        # The same plateau, seen two days earlier in the forecast window.
        assert date.fromisoformat(f_ep[0]["start"]) == date.fromisoformat(t_ep[0]["start"]) - timedelta(days=2)
        towns = api.get("/v1/towns/vitre").json()["data"]
        assert towns["reference"]["station"] == STATION and towns["reference"]["ibm_sources"] == ["station", "sensors"]
