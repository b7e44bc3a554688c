"""Exports a French spreadsheet opens right (decimal commas, local times, XLSX), HEAD wherever GET is, Link
headers on JSON pages, Vary: Accept, and the qc filters — against the session's influxd."""

from __future__ import annotations

import csv
import io
from datetime import datetime

from openpyxl import load_workbook

from heatwatch.core.influx import AGG_RP

HOURLY = {"town": "vitre", "from": "2024-07-19T00:00:00Z", "to": "2024-07-19T03:00:00Z"}


def _rows(body: bytes, sep: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig")), delimiter=sep))


def test_semicolon_csv_has_decimal_commas_and_a_bom(client, dataset):
    r = client.get("/v1/hourly", params={**HOURLY, "format": "csv", "sep": ";"})
    assert r.status_code == 200 and r.content.startswith("\ufeff".encode())
    rows = _rows(r.content, ";")
    assert len(rows) == 9 and rows[0]["sensor"] == "v-centre" and rows[0]["t_mean"] == "24,0"
    assert rows[0]["uhi"] == "2,0"
    assert rows[0]["n"] == "6" and rows[0]["time"] == "2024-07-19T00:00:00Z"  # integers and times untouched
    # decimal=. keeps the point with ';'; a comma mark with ',' separators is refused.
    dots = _rows(client.get("/v1/hourly", params={**HOURLY, "format": "csv", "sep": ";", "decimal": "."}).content, ";")
    assert dots[0]["t_mean"] == "24"  # as the database answers it
    bad = client.get("/v1/hourly", params={**HOURLY, "format": "csv", "decimal": ","})
    assert bad.status_code == 400 and "sep=;" in bad.json()["error"]["message"]
    # Town tables and small answers too.
    idx = _rows(client.get("/v1/indices", params={"town": "vitre", "from": "2024-07-12", "to": "2024-07-13",
                                                  "format": "csv", "sep": ";"}).content, ";")
    assert idx[0]["ibmn"] == "19,0" and idx[0]["canicule"] == "true"


def test_times_local_writes_the_offset(client, dataset):
    r = client.get("/v1/hourly", params={**HOURLY, "format": "csv", "times": "local"})
    assert _rows(r.content, ",")[0]["time"] == "2024-07-19T02:00:00+02:00"
    j = client.get("/v1/hourly", params={**HOURLY, "times": "local", "tz": "UTC"}).json()
    assert j["data"][0]["time"] == "2024-07-19T00:00:00+00:00"
    assert client.get("/v1/hourly", params=HOURLY).json()["data"][0]["time"] == "2024-07-19T00:00:00Z"


def test_xlsx_has_numbers_times_and_the_licence(client, dataset):
    r = client.get("/v1/hourly", params={**HOURLY, "format": "xlsx", "times": "local"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats-officedocument.spreadsheetml")
    assert 'filename="heatwatch-hourly-vitre.xlsx"' in r.headers["content-disposition"]
    wb = load_workbook(io.BytesIO(r.content))
    data = list(wb["data"].iter_rows(values_only=True))
    assert data[0][:4] == ("time", "town", "sensor", "t_mean") and len(data) == 10
    # Numbers are number cells (a spreadsheet shows them with its own decimal mark), not text.
    assert data[1][0] == datetime(2024, 7, 19, 2, 0) and isinstance(data[1][3], int | float) and data[1][3] == 24
    about = {row[0]: row[1] for row in wb["about"].iter_rows(values_only=True) if row and row[0]}
    assert "Licence Ouverte" in about["licence"] and about["times"] == "in Europe/Paris"
    assert ("t_mean", "mean temperature over the hour", "°C") in set(wb["about"].iter_rows(values_only=True))
    ind = client.get("/v1/indices", params={"town": "vitre", "from": "2024-07-10", "to": "2024-07-25",
                                            "format": "xlsx"})
    rows = list(load_workbook(io.BytesIO(ind.content))["data"].iter_rows(values_only=True))
    assert len(rows) == 16 and rows[3][5] is True  # 12 July: a canicule day, a real boolean cell
    assert client.get("/v1/hourly", params={**HOURLY, "format": "xlsx", "limit": 5}).status_code == 400


def test_head_wherever_get_is(client, dataset):
    for url in ("/v1/hourly?town=vitre&from=2024-07-19&to=2024-07-20&format=csv",
                "/v1/indices?town=vitre&from=2024-07-10&to=2024-07-20", "/v1/towns", "/v1/qc-flags",
                "/v1/datapackage.json", "/sta/v1.1", "/sta/v1.1/ObservedProperties", "/healthz"):
        get, head = client.get(url), client.head(url)
        assert head.status_code == get.status_code == 200, url
        assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"], url
        if "content-length" in get.headers:
            assert head.headers["content-length"] == get.headers["content-length"], url
    assert client.head("/v1/hourly?town=nowhere").status_code == 404


def test_link_next_and_vary_accept(client, dataset):
    r = client.get("/v1/hourly", params={**HOURLY, "limit": 4})
    nxt = r.json()["meta"]["next"]
    assert nxt and r.headers["link"].startswith(f'<{nxt}>; rel="next"')
    assert "accept" in [v.strip().lower() for v in r.headers["vary"].split(",")]
    last = client.get(nxt.replace("http://127.0.0.1:8000", ""))
    while last.json()["meta"]["next"]:
        last = client.get(last.json()["meta"]["next"].replace("http://127.0.0.1:8000", ""))
    assert 'rel="next"' not in last.headers.get("link", "")
    gz = client.get("/v1/indices?town=vitre&from=2024-07-10&to=2024-07-25", headers={"Accept-Encoding": "gzip"})
    assert {v.strip() for v in gz.headers["vary"].split(",")} >= {"Accept", "Accept-Encoding"}


def test_qc_filters(client, dataset, seed):
    seed(["hourly,town=vitre,sensor=v-flag t_mean=40.0,n=6i,qc=1i 1721347200000",
          "hourly,town=vitre,sensor=v-info t_mean=22.0,n=6i,qc=4096i 1721347200000"], AGG_RP)
    base = {"town": "vitre", "from": "2024-07-19T00:00:00Z", "to": "2024-07-19T01:00:00Z"}
    sensors = lambda **q: sorted(r["sensor"] for r in client.get("/v1/hourly", params={**base, **q}).json()["data"])  # noqa: E731
    assert sensors() == ["v-centre", "v-flag", "v-info", "v-parc", "vitre-rural-01"]
    assert sensors(qc=0) == ["v-centre", "v-parc", "vitre-rural-01"]
    assert sensors(qc_max=1) == ["v-centre", "v-flag", "v-parc", "vitre-rural-01"]
    assert sensors(qc=4096) == ["v-info"]
    assert client.get("/v1/hourly", params={**base, "qc": -1}).status_code == 422
    assert client.get("/v1/readings", params={**base, "qc": 0}).status_code == 400  # raw readings have no qc


def _validate(body: bytes, schema: dict, sep: str) -> list[str]:
    from frictionless import Resource, Schema, formats

    res = Resource(body, format="csv", encoding="utf-8-sig", schema=Schema.from_descriptor(schema),
                   control=formats.CsvControl(delimiter=sep))
    report = res.validate()
    return [e.message for task in report.tasks for e in task.errors]


def test_frictionless_validates_french_and_local_exports_against_the_served_schemas(client, dataset):
    for name, path, params in (("hourly", "/v1/hourly", HOURLY),
                               ("daily", "/v1/daily", {"town": "vitre", "from": "2024-07-10", "to": "2024-07-25"}),
                               ("indices", "/v1/indices", {"town": "vitre", "from": "2024-07-10",
                                                           "to": "2024-07-25"})):
        for variant, schema_q in (({"sep": ";"}, {"decimal": ","}), ({"times": "local"}, {"times": "local"}),
                                  ({}, {})):
            body = client.get(path, params={**params, **variant, "format": "csv"}).content
            schema = client.get(f"/v1/schemas/{name}.json", params=schema_q).json()
            assert _validate(body, schema, variant.get("sep", ",")) == [], (name, variant)
    # The schema catches what it should: a comma-decimal file read with the point schema fails.
    body = client.get("/v1/hourly", params={**HOURLY, "format": "csv", "sep": ";"}).content
    assert _validate(body, client.get("/v1/schemas/hourly.json").json(), ";")
    assert client.get("/v1/schemas/nothing.json").status_code == 404
