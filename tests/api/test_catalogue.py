"""The DCAT-AP catalogue parsed by rdflib, and live CSV exports validated by `frictionless validate`
against the datapackage.json, over a real uvicorn server."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from rdflib import Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, RDF

from heatwatch.api.app import create_app
from heatwatch.api.config import ApiConfig
from heatwatch.stack.embedded import free_port

LICENCE = URIRef("https://www.etalab.gouv.fr/licence-ouverte-open-licence/")
EU_FREQ = Namespace("http://publications.europa.eu/resource/authority/frequency/")
EU_FT = Namespace("http://publications.europa.eu/resource/authority/file-type/")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")


def test_dcat_catalogue_parses_into_expected_triples(client, dataset):
    r = client.get("/v1/catalog")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/ld+json")
    g = Graph().parse(data=r.text, format="json-ld")
    catalogs = list(g.subjects(RDF.type, DCAT.Catalog))
    assert len(catalogs) == 1
    datasets = set(g.subjects(RDF.type, DCAT.Dataset))
    assert len(datasets) == 10  # 2 towns x (readings, hourly, daily, indices, alerts)
    assert set(g.objects(catalogs[0], DCAT.dataset)) == datasets
    for ds in datasets:
        assert (ds, DCTERMS.license, LICENCE) in g
        assert g.value(ds, DCTERMS.title) is not None and g.value(ds, DCTERMS.description) is not None
        assert g.value(ds, DCTERMS.accrualPeriodicity) in {EU_FREQ.CONT, EU_FREQ.HOURLY, EU_FREQ.DAILY}
        contact = g.value(ds, DCAT.contactPoint)
        assert g.value(contact, VCARD.hasEmail) is not None
        dists = list(g.objects(ds, DCAT.distribution))
        assert len(dists) == 3
        assert {g.value(d, DCTERMS["format"]) for d in dists} == {EU_FT.CSV, EU_FT.JSON, EU_FT.PARQUET}
        for d in dists:
            assert (d, RDF.type, DCAT.Distribution) in g
            assert str(g.value(d, DCAT.downloadURL)).startswith("http://testserver/v1/")
            assert (d, DCTERMS.license, LICENCE) in g
    # Temporal coverage from the data: Vitré's hourly aggregates span 19–21 July 2024.
    hourly = URIRef("http://testserver/v1/catalog#heatwatch-vitre-hourly")
    period = g.value(hourly, DCTERMS.temporal)
    assert g.value(period, DCAT.startDate) == Literal("2024-07-19T00:00:00Z", datatype=URIRef(
        "http://www.w3.org/2001/XMLSchema#dateTime"))
    assert g.value(period, DCAT.endDate).toPython().isoformat() == "2024-07-21T23:00:00+00:00"
    assert g.value(URIRef("http://testserver/v1/catalog#heatwatch-saint-omer-hourly"), DCTERMS.temporal) is None


@pytest.fixture
def live_server(api_settings, seed):
    """The app under a real uvicorn on a free port, with data of the last days (the CSV defaults)."""
    now = int(time.time() * 1000) // 3600_000 * 3600_000
    raw, agg = [], []
    for h in range(1, 30):
        ts = now - h * 3600_000
        for s, off in (("v-a", 1.5), ("vitre-rural-01", 0.0)):
            raw.append(f'reading,city=vitre,sensor={s} temperature={20 + off},humidity=60.5,source="json" {ts}')
            agg.append(f"hourly,city=vitre,sensor={s} t_mean={20 + off},t_min=19.0,t_max=22.0,rh_mean=60.0,"
                       f"dewpoint=12.1,heat_index=20.0,humidex=22.0,uhi={off},n=6i,qc=0i {ts}")
        raw.append(f"reading,city=saint-omer,sensor=so-1 temperature=17.25,humidity=80.0,battery_v=3.3 {ts}")
    for d in range(1, 4):
        ts = now - d * 86_400_000
        agg.append(f"daily,city=vitre,sensor=v-a tn=15.0,tx=25.0,t_mean=20.0,rh_mean=60.0,heat_index_max=25.0,"
                   f"humidex_max=27.0,uhi_mean=1.5,uhi_night_max=2.5,hours_ge_30=0i,tropical_night=false,"
                   f"coverage=1.0,qc=0i {ts}")
        agg.append(f'city_daily,city=vitre ibmn=15.0,ibmx=25.0,canicule=false,uhi_mean=1.5,uhi_max=1.5,'
                   f'hottest_sensor="v-a, centre",sensors_ok=2i {ts}')
    agg.append(f'alert,city=vitre,sensor=v-a,kind=hot value=31.0,threshold=30.0,message="hot, \\"very\\"" {now}')
    seed(raw, "raw")
    seed(agg, "agg")
    port = free_port()
    app = create_app(api_settings, ApiConfig(rate_limit_per_s=0, cache_ttl_agg_s=0, cache_ttl_latest_s=0))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _frictionless() -> str:
    exe = Path(sys.executable).with_name("frictionless")
    return str(exe) if exe.exists() else (shutil.which("frictionless") or "frictionless")


def test_frictionless_validates_live_csv_exports(live_server, tmp_path):
    package = httpx.get(f"{live_server}/v1/datapackage.json").json()
    assert {r["name"] for r in package["resources"]} >= {"hourly-vitre", "indices-vitre", "readings-saint-omer"}
    out = subprocess.run([_frictionless(), "validate", "--json", f"{live_server}/v1/datapackage.json"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    report = json.loads(out.stdout)
    errors = [(t.get("name"), e.get("message")) for t in report.get("tasks", []) for e in t.get("errors", [])]
    assert report["valid"], errors or out.stderr[-2000:]
    rows = {t["name"]: t["stats"].get("rows") for t in report["tasks"]}
    assert rows["hourly-vitre"] == 58 and rows["readings-saint-omer"] == 23 and rows["indices-vitre"] == 3
    assert rows["alerts-vitre"] == 1
