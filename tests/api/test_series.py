"""Raw readings, hourly and daily aggregates, town indices, canicule episodes, alerts, UHI snapshots:
end to end against the real influxd with data in the stored schema (core/measurements.py)."""

from __future__ import annotations

import csv
import io

import pyarrow.parquet as pq
import pytest


def _csv(resp, sep=","):
    return list(csv.DictReader(io.StringIO(resp.content.decode("utf-8-sig")), delimiter=sep))


def test_readings_paging_covers_every_row_once(client, dataset):
    params = {"town": "vitre", "from": "2024-07-20T00:00:00Z", "to": "2024-07-21T00:00:00Z", "limit": 100,
              "count": "true"}
    r = client.get("/v1/readings", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["meta"]["count"] == 144 * 3
    seen = [(x["time"], x["sensor"]) for x in body["data"]]
    pages = 1
    nxt = body["meta"]["next"]
    while nxt:
        page = client.get(nxt).json()
        seen += [(x["time"], x["sensor"]) for x in page["data"]]
        nxt = page["meta"]["next"]
        pages += 1
    assert pages == 5  # 432 rows by 100, and rows sharing a timestamp straddle page edges
    assert len(seen) == len(set(seen)) == 144 * 3
    assert seen == sorted(seen, key=lambda x: x[0])
    first = body["data"][0]
    assert first["time"] == "2024-07-20T00:00:00Z" and first["town"] == "vitre"


def test_readings_csv_parquet_and_sensor_filter(client, dataset):
    params = {"town": "vitre", "sensor": "v-parc", "from": "2024-07-20", "to": "2024-07-21", "tz": "UTC"}
    r = client.get("/v1/readings", params=params | {"format": "csv"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    assert r.content.startswith(b"time,town,sensor,temperature,humidity,battery_v,battery_pct,rssi,source,snr,"
                             b"network,trust\r\n")
    rows = _csv(r)
    assert len(rows) == 144 and {x["sensor"] for x in rows} == {"v-parc"}
    assert rows[1]["time"] == "2024-07-20T00:10:00Z" and float(rows[1]["temperature"]) == 20.51
    semi = client.get("/v1/readings", params=params | {"format": "csv", "sep": ";"})
    assert semi.content.startswith("\ufefftime;town;sensor".encode())
    pr = client.get("/v1/readings", params=params, headers={"Accept": "application/vnd.apache.parquet"})
    assert pr.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(pr.content))
    assert table.num_rows == 144 and str(table.schema.field("time").type) == "timestamp[ms, tz=UTC]"
    assert table.schema.field("temperature").metadata[b"unit"] == "°C".encode()


def test_caps_answer_clear_4xx(client, dataset):
    r = client.get("/v1/readings", params={"town": "vitre", "from": "2024-01-01", "to": "2024-03-01"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "range_too_long" and "at most 31 days" in err["message"]
    r = client.get("/v1/readings", params={"town": "vitre", "limit": 100000})
    assert r.status_code == 400 and r.json()["error"]["code"] == "page_too_large"
    r = client.get("/v1/readings", params={"town": "vitre", "from": "yesterday"})  # shape is in the schema: 422
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("from:")
    r = client.get("/v1/readings", params={"town": "vitre", "from": "2024-02-30"})  # right shape, no such day
    assert r.status_code == 400 and "ISO 8601" in r.json()["error"]["message"]
    r = client.get("/v1/readings", params={"town": "vitre", "from": "2024-07-02", "to": "2024-07-01"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_range"
    r = client.get("/v1/readings", params={"town": "vitre", "tz": "Mars/Olympus"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_tz"
    r = client.get("/v1/readings", params={"town": "vitre", "cursor": "x; DROP"})
    assert r.status_code == 422 and "cursor" in r.json()["error"]["message"]
    r = client.get("/v1/hourly", params={"town": "vitre", "format": "csv", "limit": 5})
    assert r.status_code == 400 and r.json()["error"]["code"] == "not_paginated"


HOSTILE = ["v-parc' OR sensor =~ /.*/ --", 'v"; DROP DATABASE x', "v-parc\nSELECT", "/.*/", "*", "v-parc OR 1=1",
           "v-parc' ; DROP MEASUREMENT reading", "$town", "v-parc\\", "\u00e9t\u00e9"]


def test_hostile_parameters_never_reach_influxql(client, dataset):
    for hostile in HOSTILE:
        for path in ("/v1/readings", "/v1/hourly", "/v1/daily"):
            r = client.get(path, params={"town": "vitre", "sensor": hostile})
            assert r.status_code == 422, (path, r.text)
        for path in ("/v1/latest", "/v1/indices", "/v1/sensors", "/v1/uhi"):
            r = client.get(path, params={"town": hostile})
            assert r.status_code in (404, 422), (path, r.text)
        r = client.get("/v1/alerts", params={"town": "vitre", "kind": hostile})
        assert r.status_code == 422
        for key in ("from", "to", "cursor", "tz", "at"):
            r = client.get("/v1/readings" if key != "at" else "/v1/uhi", params={"town": "vitre", key: hostile})
            assert r.status_code in (400, 422), (key, r.text)
    # The database is intact and still answers.
    r = client.get("/v1/readings", params={"town": "vitre", "sensor": "v-parc", "from": "2024-07-20",
                                           "to": "2024-07-21", "tz": "UTC", "count": "true"})
    assert r.json()["meta"]["count"] == 144


def test_hourly_and_daily(client, dataset):
    r = client.get("/v1/hourly", params={"town": "vitre", "sensor": "v-centre", "from": "2024-07-19T00:00:00Z",
                                         "to": "2024-07-20T00:00:00Z"})
    assert r.status_code == 200
    data = r.json()["data"]
    assert len(data) == 24 and data[0]["time"] == "2024-07-19T00:00:00Z" and data[0]["n"] == 6
    assert set(data[0]) == {"time", "town", "sensor", "t_mean", "t_min", "t_max", "rh_mean", "dewpoint",
                            "heat_index", "humidex", "uhi", "n", "qc", "network", "trust"}
    assert r.headers["etag"] and "max-age" in r.headers["cache-control"]

    d = client.get("/v1/daily", params={"town": "vitre", "sensor": "v-centre", "from": "2024-07-19",
                                        "to": "2024-07-21"}).json()["data"]
    # Local-day bucketing: the points are stamped 22:00 UTC, i.e. local midnight in Paris.
    assert [x["date"] for x in d] == ["2024-07-19", "2024-07-20"]
    assert d[0]["time"] == "2024-07-18T22:00:00Z" and d[0]["tropical_night"] is True
    in_utc = client.get("/v1/daily", params={"town": "vitre", "sensor": "v-centre", "from": "2024-07-19",
                                             "to": "2024-07-21", "tz": "UTC"}).json()["data"]
    # Read in UTC, the range holds the points stamped 19 and 20 July 22:00 UTC; their date stays the town's day.
    assert [(x["time"], x["date"]) for x in in_utc] == [("2024-07-19T22:00:00Z", "2024-07-20"),
                                                       ("2024-07-20T22:00:00Z", "2024-07-21")]


def test_etag_and_304(client, dataset):
    params = {"town": "vitre", "from": "2024-07-10", "to": "2024-07-25"}
    r = client.get("/v1/indices", params=params)
    etag = r.headers["etag"]
    again = client.get("/v1/indices", params=params, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    other = client.get("/v1/indices", params=params, headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200


def test_indices_and_canicule_episodes(client, dataset):
    params = {"town": "vitre", "from": "2024-07-10", "to": "2024-07-25"}
    body = client.get("/v1/indices", params=params).json()
    rows = body["data"]
    assert len(rows) == 15 and rows[0]["date"] == "2024-07-10"
    assert body["meta"]["canicule_thresholds"]["ibmn"] == 18.0
    by_date = {x["date"]: x for x in rows}
    assert by_date["2024-07-19"]["canicule"] is True and by_date["2024-07-19"]["ibmx"] == 34.0
    assert by_date["2024-07-19"]["tropical_nights"] == 1  # v-centre only: Tn 16+2+3 = 21
    assert by_date["2024-07-10"]["tropical_nights"] == 0
    assert by_date["2024-07-10"]["hottest_sensor"] == "v-centre"

    eps = client.get("/v1/canicule-episodes", params=params).json()["data"]
    assert [(e["start"], e["end"], e["days"], e["ongoing"]) for e in eps] == [
        ("2024-07-12", "2024-07-13", 2, False), ("2024-07-18", "2024-07-21", 4, False),
        ("2024-07-24", "2024-07-24", 1, True)]
    assert eps[1]["ibmx_max"] == 34.0

    c = client.get("/v1/indices", params=params | {"format": "csv"})
    assert _csv(c)[0].keys() >= {"date", "ibmn", "ibmx", "canicule", "tropical_nights"}
    so = client.get("/v1/canicule-episodes", params={"town": "saint-omer", "from": "2024-07-10",
                                                     "to": "2024-07-25"}).json()
    assert so["data"] == []


def test_alerts(client, dataset, seed):
    past = client.get("/v1/alerts", params={"town": "vitre", "from": "2024-07-01", "to": "2024-08-01"}).json()
    assert [(a["sensor"], a["kind"]) for a in past["data"]] == [("v-centre", "canicule"), ("v-parc", "stuck")]
    assert past["data"][0]["message"] == "IBMx 34.0 ≥ 33"
    only = client.get("/v1/alerts", params={"town": "vitre", "from": "2024-07-01", "to": "2024-08-01",
                                            "kind": "stuck"}).json()["data"]
    assert len(only) == 1
    assert client.get("/v1/alerts", params={"town": "vitre", "status": "open"}).json()["data"] == []
    import time

    now = int(time.time() * 1000)
    # As analytics stores them: one point per lasting condition, stamped when it opened.
    seed(['alert,town=vitre,sensor=v-parc,kind=offline value=7200.0,threshold=3600.0,message="silent 2 h",'
          f'state="open",started={now - 60_000}i {now - 60_000}',
          'alert,town=vitre,sensor=v-parc,kind=offline value=3700.0,threshold=3600.0,message="silent 1 h",'
          f'state="closed",started={now - 9 * 3600_000}i,ended={now - 8 * 3600_000}i {now - 9 * 3600_000}',
          'alert,town=vitre,sensor=v-centre,kind=temperature value=36.0,threshold=35.0,message="hot for days",'
          f'state="open",started={now - 30 * 3600_000}i {now - 30 * 3600_000}'], "agg")
    open_ = client.get("/v1/alerts", params={"town": "vitre", "status": "open"}).json()
    assert sorted((a["kind"], a["message"], a["state"]) for a in open_["data"]) == [
        ("offline", "silent 2 h", "open"), ("temperature", "hot for days", "open")]
    r = client.get("/v1/alerts", params={"town": "vitre", "status": "open", "from": "2024-01-01"})
    assert r.status_code == 400


def test_uhi_snapshot(client, dataset):
    r = client.get("/v1/uhi", params={"town": "vitre", "at": "2024-07-19T05:30:00Z"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    fc = r.json()
    assert fc["type"] == "FeatureCollection" and fc["meta"]["hour"] == "2024-07-19T05:00:00Z"
    uhi = {f["properties"]["sensor"]: f["properties"]["uhi"] for f in fc["features"]}
    assert uhi == {"v-centre": pytest.approx(2.05), "v-parc": pytest.approx(0.55),
                   "vitre-rural-01": pytest.approx(0.05)}
    night = client.get("/v1/uhi", params={"town": "vitre", "night": "2024-07-20", "format": "json"}).json()
    assert night["meta"]["night"] == "2024-07-20"
    assert {x["sensor"]: x["uhi"] for x in night["data"]}["v-centre"] == 3.0
    newest = client.get("/v1/uhi", params={"town": "vitre"}).json()
    assert newest["meta"]["hour"] == "2024-07-21T23:00:00Z" and len(newest["features"]) == 3
    assert client.get("/v1/uhi", params={"town": "vitre", "at": "2024-07-19T05:00:00Z",
                                         "night": "2024-07-19"}).status_code == 400
    empty = client.get("/v1/uhi", params={"town": "saint-omer"}).json()
    assert empty["features"] == [] and empty["meta"]["hour"] is None


def _local_day(ms: int, tz: str) -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).date().isoformat()


def _awkward_instants(days: list[str], tz: str) -> list[int]:
    """Instants around each local midnight of ``days``: on it, just before and after, and a quarter-hour off."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    out = []
    for day in days:
        midnight = int(datetime.fromisoformat(day).replace(tzinfo=ZoneInfo(tz)).timestamp() * 1000)
        out += [midnight, midnight - 1, midnight + 1, midnight + 14 * 60_000, midnight - 16 * 60_000,
                midnight + int(timedelta(hours=12).total_seconds() * 1000)]
    return out


def test_tropical_nights_match_a_point_by_point_count(client, dataset, seed):
    """The town's tropical_nights (counted by InfluxDB per 15-minute bucket) equal a plain count of the
    sensors' daily points by local day, on DST days and for points a millisecond either side of midnight."""
    from heatwatch.core.influx import AGG_RP

    days = ["2024-03-30", "2024-03-31", "2024-04-01", "2024-10-26", "2024-10-27", "2024-10-28", "2024-07-15"]
    lines = []
    for day in days:
        t0 = _awkward_instants([day], "Europe/Paris")[0]
        lines.append(f"town_daily,town=saint-omer ibmn=14.0,ibmx=24.0,canicule=false,uhi_mean=0.8,uhi_max=1.9,"
                     f'hottest_sensor="so-1",sensors_ok=3i {t0}')
    for k, ts in enumerate(_awkward_instants(days, "Europe/Paris")):
        for s in range(k % 4):  # 0 to 3 sensors with a tropical night at that instant, some without
            lines.append(f"daily,town=saint-omer,sensor=so-{s} tn=21.0,tropical_night=true {ts}")
        lines.append(f"daily,town=saint-omer,sensor=so-9 tn=15.0,tropical_night=false {ts}")
    seed(lines, AGG_RP)
    params = {"town": "saint-omer", "from": "2024-03-01", "to": "2024-11-30"}
    daily = _csv(client.get("/v1/daily", params=params | {"format": "csv"}))
    expected: dict[str, int] = {}
    for row in daily:
        if row["tropical_night"] == "true":
            from datetime import datetime

            ms = int(datetime.fromisoformat(row["time"].replace("Z", "+00:00")).timestamp() * 1000)
            day = _local_day(ms, "Europe/Paris")
            expected[day] = expected.get(day, 0) + 1
    assert sum(expected.values()) > 50
    rows = client.get("/v1/indices", params=params).json()["data"]
    got = {r["date"]: r["tropical_nights"] for r in rows}
    assert set(days) <= set(got)  # with the fixture's July days
    assert got == {d: expected.get(d, 0) for d in got}
    assert all(got[d] for d in days)
    # Episodes do not count tropical nights at all, and still find none here.
    assert client.get("/v1/canicule-episodes", params=params).json()["data"] == []


@pytest.mark.parametrize("tz", ["Europe/Paris", "UTC", "Asia/Kathmandu", "America/St_Johns", "Africa/Monrovia"])
def test_true_per_day_in_zones_with_odd_offsets(influxd, db_name, seed, tz):
    """Store.true_per_day against a point-by-point count, in zones whose offsets are not whole hours
    (+05:45, -03:30) or not even quarter hours (Monrovia, -00:44:30 until 1972): buckets spanning a
    local midnight are counted point by point."""
    import asyncio
    from collections import Counter
    from zoneinfo import ZoneInfo

    from heatwatch.api.store import Filter, Store
    from heatwatch.core.datasets import DAILY
    from heatwatch.core.influx import AGG_RP, InfluxClient

    days = ["1971-06-01", "1971-06-02", "2024-03-31", "2024-11-03", "2024-07-15"]
    instants = _awkward_instants(days, tz)
    lines = [f"daily,town=vitre,sensor=s{k % 3} tropical_night={'true' if k % 5 else 'false'} {ts}"
             for k, ts in enumerate(instants)]
    seed(lines, AGG_RP)
    expected = Counter(_local_day(ts, tz) for k, ts in enumerate(instants) if k % 5)

    async def go() -> Counter[str]:
        async with InfluxClient(influxd.url, db_name) as c:
            return await Store(c).true_per_day(DAILY, "tropical_night", Filter(0, 2 * 10**12, town="vitre"),
                                               ZoneInfo(tz))

    # Points sharing a series and a time overwrite one another: compare with what InfluxDB holds.
    assert len(set((k % 3, ts) for k, ts in enumerate(instants))) == len(instants)
    assert asyncio.run(go()) == expected
