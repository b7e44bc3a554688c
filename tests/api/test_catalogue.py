"""The DCAT-AP catalogue parsed by rdflib, and live CSV exports validated by `frictionless validate`
against the datapackage.json, over a real uvicorn server."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
from rdflib import Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF

from heatwatch.core.measurements import qc_flag_table

LICENCE = URIRef("https://www.etalab.gouv.fr/licence-ouverte-open-licence/")
EU_FREQ = Namespace("http://publications.europa.eu/resource/authority/frequency/")
EU_FT = Namespace("http://publications.europa.eu/resource/authority/file-type/")
EU_THEME = Namespace("http://publications.europa.eu/resource/authority/data-theme/")
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
        # The EU terms data.gouv.fr's harvester maps (it reads the EU CONT as "several times a day").
        assert g.value(ds, DCTERMS.accrualPeriodicity) in {EU_FREQ.UPDATE_CONT, EU_FREQ.HOURLY, EU_FREQ.DAILY}
        contact = g.value(ds, DCAT.contactPoint)
        assert g.value(contact, VCARD.hasEmail) is not None
        assert str(g.value(ds, DCTERMS.spatial)) in {"http://id.insee.fr/geo/commune/35360",
                                                     "http://id.insee.fr/geo/commune/62765"}
        assert str(g.value(g.value(ds, DCTERMS.publisher), FOAF.name)).startswith("Ville de ")
        assert set(g.objects(ds, DCAT.theme)) == {EU_THEME.ENVI, EU_THEME.REGI}
        dists = list(g.objects(ds, DCAT.distribution))
        assert len(dists) == 3  # no month archived in this test: the API queries only
        assert {g.value(d, DCTERMS["format"]) for d in dists} == {EU_FT.CSV, EU_FT.JSON, EU_FT.PARQUET}
        for d in dists:
            assert (d, RDF.type, DCAT.Distribution) in g
            # The API query is an access distribution served by the API, not a download of the whole dataset.
            assert str(g.value(d, DCAT.accessURL)).startswith("http://127.0.0.1:8000/v1/")
            assert g.value(d, DCAT.downloadURL) is None
            assert g.value(d, DCAT.accessService) == URIRef("http://127.0.0.1:8000/v1/catalog#api")
            assert (d, DCTERMS.license, LICENCE) in g
    services = set(g.subjects(RDF.type, DCAT.DataService))
    assert services == {URIRef("http://127.0.0.1:8000/v1/catalog#api"), URIRef("http://127.0.0.1:8000/v1/catalog#sta")}
    for svc in services:
        assert set(g.objects(svc, DCAT.servesDataset)) == datasets
    # Temporal coverage from the data: Vitré's hourly aggregates span 19–21 July 2024.
    hourly = URIRef("http://127.0.0.1:8000/v1/catalog#heatwatch-vitre-hourly")
    period = g.value(hourly, DCTERMS.temporal)
    assert g.value(period, DCAT.startDate) == Literal("2024-07-19T00:00:00Z", datatype=URIRef(
        "http://www.w3.org/2001/XMLSchema#dateTime"))
    assert g.value(period, DCAT.endDate).toPython().isoformat() == "2024-07-21T23:00:00+00:00"
    assert g.value(URIRef("http://127.0.0.1:8000/v1/catalog#heatwatch-saint-omer-hourly"), DCTERMS.temporal) is None


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
    # Raw readings default to the last 24 h: one hourly reading more or less when an hour turns mid-test.
    assert rows["hourly-vitre"] == 58 and rows["readings-saint-omer"] in (22, 23) and rows["indices-vitre"] == 3
    assert rows["alerts-vitre"] == 1
    # The qc bit table travels inside the package: every qc value's meaning without another request.
    assert rows["qc-flags"] == len(qc_flag_table())
    qc = next(r for r in package["resources"] if r["name"] == "qc-flags")
    assert qc["data"][0][:2] == ["bit", "name"] and [1, "RANGE"] == qc["data"][1][:2]
