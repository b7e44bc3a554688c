"""Participatory science end to end (docs/citizens.md, docs/privacy.md), on the real broker, ingester and database:

registration → HTTP push → stored, provisional → confirmed after the probation (the analytics clock injected) →
every public output scanned for the exact position and the personal data → withdrawal erases everything and
recomputes the town's indices.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from heatwatch.analytics.scheduler import AnalyticsService
from heatwatch.api.app import create_app
from heatwatch.core.contributors import CHARTER_VERSION, ContributorStore
from heatwatch.core.influx import InfluxClient
from heatwatch.core.layers.extent import to_l93, to_wgs84
from heatwatch.core.mqtt import make_client
from heatwatch.core.registry import Registry
from heatwatch.core.settings import MqttUrl, Settings
from heatwatch.core.topics import RECOMPUTE, parse_request
from heatwatch.stack.children import ServiceProcess
from support.apps import NO_LIMITS, with_api
from support.mqtt import publish_all
from support.wait import wait_until

TOWNS = ("vitre", "saint-omer")
PSEUDONYM = "Mme Roselyne Quintal-Berthou"
CONTACT = "roselyne.qb@exemple-mail.fr"
DESCRIPTION = "Cour intérieure du 17 rue des Tanneurs, à côté de la fenêtre"


def home() -> tuple[float, float]:
    """A position 70 m east and 80 m north of a 200 m cell's centre: its digits differ from the published ones
    from the third decimal of longitude / fourth of latitude on."""
    (x,), (y,) = to_l93([-1.2105], [48.1235])
    cx, cy = (x // 200 + 0.5) * 200, (y // 200 + 0.5) * 200
    (lon,), (lat,) = to_wgs84([cx + 70], [cy + 80])
    return round(lat, 7), round(lon, 7)


def spellings(lat: float, lon: float) -> list[str]:
    out = [repr(lat), repr(lon)]
    for nd in (4, 5, 6):
        out += [f"{lat:.{nd}f}", f"{lon:.{nd}f}"]
    return out


def count(influx_url: str, db: str, measurement: str, sensor: str, rp: str = "raw") -> int:
    r = httpx.post(f"{influx_url}/query", data={"db": db, "q": f'SELECT COUNT(*) FROM "{rp}"."{measurement}" WHERE '
                                                f'"sensor" = \'{sensor}\''}, timeout=30)
    r.raise_for_status()
    series = r.json()["results"][0].get("series")
    return max((v for v in series[0]["values"][0][1:] if v is not None), default=0) if series else 0


@pytest.fixture(scope="module")
def world(mosquitto, influxd, tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("citizens")
    data_dir = root / "var"
    db = f"citizens_{os.getpid()}"
    with Registry(data_dir / "registry.sqlite", towns=TOWNS) as registry:
        registry.load_examples()
    env = {"HEATWATCH_MQTT_URL": mosquitto.url, "HEATWATCH_INFLUX_URL": influxd.url, "HEATWATCH_INFLUX_DB": db,
           "HEATWATCH_DATA_DIR": str(data_dir), "HEATWATCH_MQTT_CLIENT_ID": f"ingest-{db}",
           "HEATWATCH_BATCH_INTERVAL_S": "0.2"}
    settings = Settings.load(influx_url=influxd.url, influx_db=db, mqtt_url=mosquitto.url, data_dir=data_dir,
                             admin_token="t" * 40, analytics_citizen_probation_days=2)
    ingester = ServiceProcess(["ingest"], env, root / "ingest.log", name="ingest")
    ingester.start(ready_marker="mqtt.subscribed")
    try:
        with TestClient(create_app(with_api(settings, **NO_LIMITS))) as client:
            yield {"settings": settings, "client": client, "db": db, "influx": influxd.url, "root": root,
                   "mqtt": mosquitto.url}
    finally:
        ingester.stop()


def registration(**over: Any) -> dict[str, Any]:
    lat, lon = home()
    return {"town": "vitre", "pseudonym": PSEUDONYM, "contact": CONTACT, "device_model": "DHT22 + ESP8266",
            "latitude": lat, "longitude": lon, "height_m": 1.8, "setting": "courtyard", "shade": "partial",
            "description": DESCRIPTION, "licence": "odbl-1.0", "consent": True, "charter_version": CHARTER_VERSION,
            **over}


@pytest.fixture(scope="module")
def joined(world: Any) -> dict[str, Any]:
    """A resident registered and pushed two days of hourly readings; a town sensor published the same days;
    analytics computed them and reviewed trust on the third morning."""
    c: TestClient = world["client"]
    r = c.post("/v1/contribute", json=registration())
    assert r.status_code == 201, r.text
    out = r.json()
    auth = {"Authorization": f"Bearer {out['token']}"}
    today = datetime.now(UTC).date()
    days = [today - timedelta(days=3), today - timedelta(days=2)]
    start = datetime(days[0].year, days[0].month, days[0].day, tzinfo=UTC)
    hours = [start + timedelta(hours=h, minutes=10) for h in range(48)]
    readings = [{"ts": int(t.timestamp()), "temperature": 21.0 + (h % 24) / 4, "humidity": 60.0}
                for h, t in enumerate(hours)]
    r = c.post("/v1/contribute/me/readings", content=json.dumps(readings), headers=auth)
    assert r.status_code == 202, r.text
    town = [("heat/vitre/vitre-centre-01",
             json.dumps({"ts": int(t.timestamp()), "temperature": 22.0 + (h % 24) / 4, "humidity": 55.0}).encode())
            for h, t in enumerate(hours)]
    assert publish_all(world["mqtt"], town) == len(town)
    wait_until(lambda: count(world["influx"], world["db"], "reading", out["sensor"]) == 48 and
               count(world["influx"], world["db"], "reading", "vitre-centre-01") == 48, 60, "readings stored")
    settings: Settings = world["settings"]
    with Registry.from_settings(settings) as registry:
        stored = registry.get(out["sensor"])
        assert stored is not None and stored.owner == "citizen" and stored.trust == "provisional"
        # As if registered on the first day of its readings: the probation counts from there.
        registry.upsert(stored.model_copy(update={"trust_since": days[0], "installed": days[0]}))
        clock = [datetime.combine(days[0] + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=7)]

        async def analytics() -> list[Any]:
            async with InfluxClient.from_settings(settings) as client:
                service = AnalyticsService(settings, client, registry, clock=lambda: clock[0])
                for d in days:
                    await service.analytics.recompute("vitre", [d])
                before = await service.review_trust()
                clock[0] += timedelta(days=1)  # the probation (2 days) is over the next morning
                after = await service.review_trust()
                for d in days:  # confirmed: it now counts in the town's indices, with its weight
                    await service.analytics.recompute("vitre", [d])
                return [before, after]

        out["verdicts"] = asyncio.run(analytics())
        out["trust_after"] = registry.get(out["sensor"]).trust  # type: ignore[union-attr]
    out["auth"], out["days"] = auth, days
    return out


def test_registration_refuses_without_consent_and_caps_per_client(world: Any) -> None:
    c: TestClient = world["client"]
    r = c.post("/v1/contribute", json=registration(consent=False))
    assert r.status_code == 422 and "consent" in r.text  # the api's answer to an invalid body
    r = c.post("/v1/contribute", json=registration(charter_version="0.1"))
    assert r.status_code == 422 and CHARTER_VERSION in r.text
    r = c.post("/v1/contribute", json=registration(town="paris"))
    assert r.status_code == 400
    assert c.get("/v1/contribute/me").status_code == 401
    assert c.get("/v1/contribute/me", headers={"Authorization": "Bearer nope"}).status_code == 403


def test_publish_stored_provisional_then_confirmed(world: Any, joined: dict[str, Any]) -> None:
    c: TestClient = world["client"]
    before, after = joined["verdicts"]
    mine = next(v for v in before if v.sensor == joined["sensor"])
    assert mine.trust == "provisional" and "probation" in mine.reason
    mine = next(v for v in after if v.sensor == joined["sensor"])
    assert mine.trust == "confirmed", mine
    assert joined["trust_after"] == "confirmed"
    # the private view: own data, QC, how it is used
    me = c.get("/v1/contribute/me", headers=joined["auth"]).json()
    assert me["trust"] == "confirmed" and me["contribution"]["contact"] == CONTACT
    assert me["how_your_data_is_used"]["position_shown"]["latitude"] != home()[0]
    # every public output marks the network and the trust
    sensors = {s["id"]: s for s in c.get("/v1/sensors", params={"town": "vitre"}).json()["data"]}
    s = sensors[joined["sensor"]]
    assert (s["network"], s["trust"], s["position_blurred"]) == ("citizen", "confirmed", True)
    assert sensors["vitre-centre-01"]["trust"] == "official"
    # the town network's indices stay computable without citizen data
    d, e = joined["days"][-1].isoformat(), (joined["days"][-1] + timedelta(days=1)).isoformat()
    every = c.get("/v1/indices", params={"town": "vitre", "from": d, "to": e}).json()["data"]
    town = c.get("/v1/indices", params={"town": "vitre", "from": d, "to": e, "network": "town"}).json()["data"]
    assert every[0]["sensors_ok"] == 2 and town[0]["sensors_ok"] == 1
    # tropical nights too: the confirmed resident's night counts in the town's values, never with network=town
    assert every[0]["tropical_nights"] == 2 and town[0]["tropical_nights"] == 1


def test_every_per_sensor_output_marks_network_and_trust(world: Any, joined: dict[str, Any]) -> None:
    """Provisional and confirmed visible in every output with per-sensor rows: the series in each format (the
    columns of their Table Schemas), latest, the UHI snapshot, SensorThings' Things."""
    import io

    import pyarrow.parquet as pq
    from openpyxl import load_workbook

    c: TestClient = world["client"]
    first, last = joined["days"]
    expected = {joined["sensor"]: ("citizen", "confirmed"), "vitre-centre-01": ("town", "official")}
    for path in ("/v1/readings", "/v1/hourly", "/v1/daily"):
        for sensor, want in expected.items():
            q = {"town": "vitre", "sensor": sensor, "from": first.isoformat(), "to": last.isoformat()}
            rows = c.get(path, params=q).json()["data"]
            assert rows and {(r["network"], r["trust"]) for r in rows} == {want}, (path, sensor)
            text = c.get(path, params={**q, "format": "csv"}).text.splitlines()
            head = text[0].split(",")
            assert head[-2:] == ["network", "trust"]
            assert {tuple(line.split(",")[-2:]) for line in text[1:]} == {want}, (path, sensor, "csv")
            table = pq.read_table(io.BytesIO(c.get(path, params={**q, "format": "parquet"}).content))
            assert set(zip(table.column("network").to_pylist(), table.column("trust").to_pylist(),
                           strict=True)) == {want}, (path, sensor, "parquet")
            sheet = load_workbook(io.BytesIO(c.get(path, params={**q, "format": "xlsx"}).content)).worksheets[0]
            cells = list(sheet.iter_rows(values_only=True))
            i, j = cells[0].index("network"), cells[0].index("trust")
            assert {(r[i], r[j]) for r in cells[1:]} == {want}, (path, sensor, "xlsx")
        schema = c.get(f"/v1/schemas/{path.rsplit('/', 1)[1]}.json").json()
        assert [f["name"] for f in schema["fields"]][-2:] == ["network", "trust"]
    # (/v1/latest's recent window is past these days: tests/stack/test_contributor_mqtt.py checks it, live)
    hour = f"{last.isoformat()}T12:00:00Z"
    uhi = {r["sensor"]: r for r in c.get("/v1/uhi", params={"town": "vitre", "at": hour, "format": "json"}).json()
           ["data"]}
    feats = {f["properties"]["sensor"]: f["properties"]
             for f in c.get("/v1/uhi", params={"town": "vitre", "at": hour}).json()["features"]}
    for sensor, want in expected.items():
        for where, row in (("uhi", uhi[sensor]), ("uhi geojson", feats[sensor])):
            assert (row["network"], row["trust"]) == want, (where, sensor)
        thing = c.get(f"/sta/v1.1/Things('{sensor}')").json()
        assert (thing["properties"]["network"], thing["properties"]["trust"]) == want, ("sta", sensor)


def test_no_public_output_shows_where_the_resident_lives(world: Any, joined: dict[str, Any]) -> None:
    """Every GET path of the OpenAPI document, in every format it documents, searched for the exact
    coordinates (4–6 decimals and full) and the personal data."""
    c: TestClient = world["client"]
    doc = c.get("/openapi.json").json()
    secrets = [*spellings(*home()), PSEUDONYM, CONTACT, "Tanneurs"]
    d = joined["days"][-1].isoformat()
    values = {"town": "vitre", "sensor": joined["sensor"], "name": "trees", "id": "1", "season": str(date.today().year)}
    checked = 0
    for path, ops in doc["paths"].items():
        if "get" not in ops or path.startswith(("/v1/admin", "/v1/contribute", "/v1/live")):
            continue
        url = re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "x"), path)
        params: dict[str, str] = {}
        for p in ops["get"].get("parameters", []):
            if p["in"] == "query" and p["name"] in ("town", "sensor"):
                params[p["name"]] = values[p["name"]]
            if p["in"] == "query" and p["name"] in ("from", "to") and "indices" in path:
                params[p["name"]] = d
        media = list(ops["get"]["responses"].get("200", {}).get("content", {"application/json": {}}))
        fmts = {"application/json": "json", "application/geo+json": "geojson", "text/csv": "csv",
                "image/png": "png"}
        has_format = any(p["name"] == "format" for p in ops["get"].get("parameters", []))
        for m in media:
            q = dict(params)
            if has_format and m in fmts:
                q["format"] = fmts[m]
            r = c.get(url, params=q)
            body = r.content.decode("utf-8", "replace")
            for s in secrets:
                assert s not in body, (path, m, r.status_code, s)
            checked += 1
    for page in ("/", "/contribute", "/governance", "/dashboard/config.json"):
        body = c.get(page).text
        assert not any(s in body for s in secrets), page
    assert checked > 30
    # the report is public too
    from heatwatch.api.report import write_report

    with Registry.from_settings(world["settings"]) as registry:
        paths = write_report(world["settings"], "vitre", date.today().year, world["root"] / "report",
                             registry=registry)
    for p in paths:
        text = Path(p).read_text(encoding="utf-8", errors="replace")
        assert not any(s in text for s in secrets), p


def test_private_sites_are_blurred_whatever_way_they_were_registered(world: Any, tmp_path: Path) -> None:
    """A citizen site from a CSV import, a crowd station from a GeoJSON import, a citizen site created through the
    admin API: none of their exact positions nor names in the public sensor listings (JSON, CSV, GeoJSON) or in
    SensorThings; each marked position_blurred, citizen, provisional."""
    c: TestClient = world["client"]
    sites = {"imp-csv-1": (48.1262871, -1.2009137, "citizen", "Chez M. Import CSV"),
             "imp-geo-1": (48.1187613, -1.2157759, "crowd", "Station de Mme GeoJSON"),
             "imp-api-1": (48.1219437, -1.1983671, "citizen", "Balcon de M. Admin")}
    head = "id,town,name,latitude,longitude,site_class,owner\n"
    lat, lon, owner, name = sites["imp-csv-1"]
    (tmp_path / "sites.csv").write_text(head + f"imp-csv-1,vitre,{name},{lat},{lon},suburban,{owner}\n")
    lat, lon, owner, name = sites["imp-geo-1"]
    (tmp_path / "sites.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "imp-geo-1", "geometry": {"type": "Point", "coordinates": [lon, lat]},
         "properties": {"town": "vitre", "name": name, "site_class": "suburban", "owner": owner}}]}))
    with Registry.from_settings(world["settings"]) as registry:
        assert registry.import_file(tmp_path / "sites.csv") == 1
        assert registry.import_file(tmp_path / "sites.geojson") == 1
    lat, lon, owner, name = sites["imp-api-1"]
    r = c.post("/v1/admin/sensors", headers={"Authorization": "Bearer " + "t" * 40},
               json={"id": "imp-api-1", "town": "vitre", "name": name, "latitude": lat, "longitude": lon,
                     "site_class": "suburban", "owner": owner})
    assert r.status_code == 201, r.text
    secrets = [x for lat, lon, _, name in sites.values() for x in (*spellings(lat, lon), name)]
    bodies = {f: c.get("/v1/sensors", params={"town": "vitre", "format": f}).text for f in ("json", "csv", "geojson")}
    for sid in sites:
        bodies[f"sta {sid}"] = c.get(f"/sta/v1.1/Things('{sid}')", params={"$expand": "Locations"}).text
    for where, body in bodies.items():
        assert not any(x in body for x in secrets), (where, [x for x in secrets if x in body])
    listed = {x["id"]: x for x in c.get("/v1/sensors", params={"town": "vitre"}).json()["data"]}
    for sid in sites:
        assert sid in bodies["geojson"] and sid in bodies[f"sta {sid}"]
        assert (listed[sid]["position_blurred"], listed[sid]["network"], listed[sid]["trust"]) == (
            True, "citizen", "provisional")


def test_catalogue_carries_each_source_and_its_licence(world: Any, joined: dict[str, Any]) -> None:
    """The resident chose the ODbL: Vitré's per-sensor datasets are offered under the ODbL as a whole and under the
    Licence Ouverte for the town network's rows (network=town); their provenance names every source; the town's
    indices stay under the Licence Ouverte with the ODbL notice; Saint-Omer (no ODbL source) is unchanged; the same
    in the datapackage's sources and licenses. The DCAT-AP 2.1.1 shapes find no violation."""
    from pyshacl import validate
    from rdflib import Graph, URIRef
    from rdflib.namespace import DCAT, DCTERMS, RDF, RDFS, SH

    c: TestClient = world["client"]
    etalab, odbl = (URIRef("https://www.etalab.gouv.fr/licence-ouverte-open-licence/"),
                    URIRef("https://opendatacommons.org/licenses/odbl/1-0/"))
    g = Graph().parse(data=c.get("/v1/catalog").text, format="json-ld")
    base = "http://127.0.0.1:8000/v1/catalog#heatwatch-"
    for ds in ("readings", "hourly", "daily"):
        node = URIRef(f"{base}vitre-{ds}")
        assert g.value(node, DCTERMS.license) == odbl
        by_licence: dict[Any, list[str]] = {}
        for d in g.objects(node, DCAT.distribution):
            by_licence.setdefault(g.value(d, DCTERMS.license), []).append(str(g.value(d, DCAT.accessURL)))
        assert len(by_licence[odbl]) == 3 and not any("network=town" in u for u in by_licence[odbl])
        assert len(by_licence[etalab]) == 3 and all("network=town" in u for u in by_licence[etalab])
        text = str(g.value(g.value(node, DCTERMS.provenance), RDFS.label))
        assert "town's own sensor network" in text and "residents' sensors" in text and "ODbL" in text
        assert PSEUDONYM not in text and CONTACT not in text
        so = URIRef(f"{base}saint-omer-{ds}")
        assert {g.value(d, DCTERMS.license) for d in g.objects(so, DCAT.distribution)} == {etalab}
    indices = URIRef(f"{base}vitre-indices")
    assert {g.value(d, DCTERMS.license) for d in g.objects(indices, DCAT.distribution)} == {etalab}
    assert "made available under the ODbL" in str(g.value(g.value(indices, DCTERMS.provenance), RDFS.label))
    # The town-only distribution answers without the resident's rows.
    q = {"town": "vitre", "from": joined["days"][0].isoformat(), "to": joined["days"][1].isoformat()}
    rows = c.get("/v1/hourly", params={**q, "network": "town", "limit": 5000}).json()["data"]
    assert rows and {r["network"] for r in rows} == {"town"}
    mine = c.get("/v1/hourly", params={**q, "network": "citizen", "limit": 5000}).json()["data"]
    assert {r["sensor"] for r in mine} == {joined["sensor"]} and {r["network"] for r in mine} == {"citizen"}

    # The datapackage: sources and licences per resource, the town network's rows as a resource of their own.
    from frictionless import Package

    pkg = c.get("/v1/datapackage.json").json()
    assert not Package.validate_descriptor(pkg).errors
    res = {r["name"]: r for r in pkg["resources"]}
    assert [x["name"] for x in res["hourly-vitre"]["licenses"]] == ["ODbL-1.0", "etalab-2.0"]
    assert [x["name"] for x in res["hourly-vitre-town-network"]["licenses"]] == ["etalab-2.0"]
    assert "network=town" in res["hourly-vitre-town-network"]["path"]
    assert [x["name"] for x in res["hourly-saint-omer"]["licenses"]] == ["etalab-2.0"]
    assert "hourly-saint-omer-town-network" not in res
    assert [x["name"] for x in res["indices-vitre"]["licenses"]] == ["etalab-2.0"]
    titles = " ".join(x["title"] for x in res["hourly-vitre"]["sources"])
    assert "town's own sensor network" in titles and "residents' sensors" in titles and PSEUDONYM not in titles
    assert {x["name"] for x in pkg["licenses"]} == {"etalab-2.0", "ODbL-1.0"}
    assert {x["title"].split(" (")[0] for x in pkg["sources"]} >= {"the town's own sensor network",
                                                                 "residents' sensors registered through heatwatch"}

    # Each answer says its own licence: ODbL as a whole with the resident's rows, the Licence Ouverte without.
    for params, want in (({}, "ODbL-1.0"), ({"network": "town"}, "Etalab-2.0"),
                         ({"sensor": "vitre-centre-01"}, "Etalab-2.0"), ({"sensor": joined["sensor"]}, "ODbL-1.0")):
        for fmt in ("json", "csv", "xlsx"):
            r = c.get("/v1/hourly", params={**q, **params, "format": fmt})
            assert r.status_code == 200 and r.headers["x-data-licence"] == want, (params, fmt)
            licence_links = [x for x in r.headers.get_list("link") if 'rel="license"' in x]
            assert len(licence_links) == 1 and (("opendatacommons" in licence_links[0]) == (want == "ODbL-1.0"))
        meta = c.get("/v1/hourly", params={**q, **params}).json()["meta"]
        assert meta["licence"]["id"] == want, params
        # The Parquet file says it in its own metadata, as it travels without the headers.
        pq_meta = pq.read_schema(io.BytesIO(c.get("/v1/hourly", params={**q, **params, "format": "parquet"}
                                                  ).content)).metadata
        assert (b"opendatacommons" in pq_meta[b"licence"]) == (want == "ODbL-1.0"), params
        if want == "ODbL-1.0":
            assert "contributors" in {x["source"] for x in meta["sources"]}
            assert PSEUDONYM not in json.dumps(meta)

    shapes = Graph()
    for name in ("dcat-ap_2.1.1_shacl_shapes.ttl",):
        shapes.parse(Path(__file__).resolve().parents[1] / "data" / "dcat-ap" / name, format="turtle")
    _, report, _ = validate(g, shacl_graph=shapes, inference="none", allow_warnings=True)
    violations = [str(report.value(r, SH.resultMessage)) for r in report.subjects(RDF.type, SH.ValidationResult)
                  if report.value(r, SH.resultSeverity) == SH.Violation
                  and "Checksum_Property_spdx_algorithm" not in str(report.value(r, SH.sourceShape))]
    assert violations == []


def test_governance_says_who_produces_what_under_which_licence(world: Any, joined: dict[str, Any]) -> None:
    c: TestClient = world["client"]
    g = c.get("/v1/governance").json()
    by_source = {d["source"]: d for d in g["datasets"]}
    assert set(by_source) == {"town_network", "contributors", "sensor.community"}
    assert by_source["town_network"]["licence"]["id"] == "Etalab-2.0"
    assert by_source["sensor.community"]["licence"]["id"] == "ODbL-1.0"
    assert "Etalab" in by_source["contributors"]["licence"] and "ODbL" in by_source["contributors"]["licence"]
    # live counts per town and source: the resident's ODbL sensor among the contributors, confirmed
    mine = g["towns"]["vitre"]["sources"]["contributors"]
    assert mine["licences"].get("ODbL-1.0", 0) >= 1 and mine["trust"].get("confirmed", 0) >= 1
    assert g["towns"]["vitre"]["sources"]["town_network"]["licences"] == {
        "Etalab-2.0": g["towns"]["vitre"]["sources"]["town_network"]["sensors"]}
    assert g["retention"] and g["processing"] and g["qc_rules"] == "docs/science/qc.md"
    assert g["contribute"]["charter_version"] == CHARTER_VERSION and "withdraw" in g["rights"]["withdrawal_and_erasure"]
    assert "object" in g["rights"] and "/v1/catalog" in g["provenance"]["catalogue"]
    assert PSEUDONYM not in json.dumps(g) and CONTACT not in json.dumps(g)


def test_withdrawal_erases_everything_and_recomputes(world: Any, joined: dict[str, Any]) -> None:
    c: TestClient = world["client"]
    settings: Settings = world["settings"]
    sensor = joined["sensor"]
    export = c.get("/v1/contribute/me/export", headers=joined["auth"]).json()
    assert len(export["reading"]) == 48 and export["contribution"]["pseudonym"] == PSEUDONYM
    assert len(export["hourly"]) == 47  # the last UTC hour falls on the next local day, not recomputed
    csv = c.get("/v1/contribute/me/export", params={"format": "csv"}, headers=joined["auth"])
    assert csv.status_code == 200 and csv.text.count("\n") == 49

    got: list[bytes] = []
    ready = threading.Event()
    sub = make_client(MqttUrl.parse(world["mqtt"]), "")
    sub.on_connect = lambda cl, *_: cl.subscribe(RECOMPUTE, qos=1)
    sub.on_subscribe = lambda *_: ready.set()
    sub.on_message = lambda _c, _u, msg: got.append(msg.payload)
    sub.connect(MqttUrl.parse(world["mqtt"]).host, MqttUrl.parse(world["mqtt"]).port)
    sub.loop_start()
    try:
        assert ready.wait(10)
        r = c.post("/v1/contribute/me/withdraw", headers=joined["auth"])
        assert r.status_code == 202, r.text
        wait_until(lambda: got, 10, "the erasure request")
    finally:
        sub.disconnect()
        sub.loop_stop()
    req = parse_request(got[0], TOWNS)
    assert req.erase == [sensor] and req.town == "vitre"
    assert c.get("/v1/contribute/me", headers=joined["auth"]).status_code == 403
    store = ContributorStore.for_data_dir(settings.data_dir)
    gone = store.get(sensor)
    assert gone is not None and gone.pseudonym == "" and gone.contact == "" and gone.withdrawn
    assert gone.consent["withdrawn"]

    agg_db = f"{world['db']}_agg"
    with Registry.from_settings(settings) as registry:
        async def run() -> list[Any]:
            async with InfluxClient.from_settings(settings) as client:
                return await AnalyticsService(settings, client, registry).recompute_request(req)

        stats = asyncio.run(run())
    assert stats[0].erased["reading"] == 48 and stats[0].erased["hourly"] == 47
    for m, db in (("reading", world["db"]), ("hourly", agg_db), ("daily", agg_db), ("last_reading", agg_db)):
        assert count(world["influx"], db, m, sensor, "raw" if m == "reading" else "agg") == 0, m
    assert count(world["influx"], world["db"], "reading", "vitre-centre-01") == 48  # the town's own kept
    # announced over all time, so that an api holding the town's aggregates in memory drops the sensor's rows
    r = httpx.post(f"{world['influx']}/query", data={"db": agg_db, "q": 'SELECT "range_start", "range_end" FROM '
                                                      '"agg"."aggregate_change" WHERE "town" = \'vitre\''}, timeout=30)
    announced = [tuple(v[1:]) for s in r.json()["results"][0].get("series", []) for v in s["values"]]
    assert (0, 4_102_444_800_000) in announced
    d, e = joined["days"][-1].isoformat(), (joined["days"][-1] + timedelta(days=1)).isoformat()
    row = c.get("/v1/indices", params={"town": "vitre", "from": d, "to": e}).json()["data"][0]
    assert row["sensors_ok"] == 1 and row["hottest_sensor"] == "vitre-centre-01"
    log = store.erasures(sensor)
    assert log and log[-1]["status"] == "done" and log[-1]["details"]["deleted"]["reading"] == 48
    ids = {s["id"] for s in c.get("/v1/sensors", params={"town": "vitre"}).json()["data"]}
    assert sensor not in ids


def test_town_counts_leave_out_provisional_citizens_and_every_citizen_for_the_town_network() -> None:
    from heatwatch.api.routes.aggregates import uncounted
    from heatwatch.core.model import Sensor

    sensors = [Sensor(id="t1", town="vitre"), Sensor(id="c1", town="vitre", owner="citizen", trust="provisional"),
               Sensor(id="c2", town="vitre", owner="citizen", trust="confirmed"),
               Sensor(id="sc-1", town="vitre", owner="citizen"),  # no state yet: provisional
               Sensor(id="w1", town="vitre", owner="crowd", trust="confirmed")]
    assert uncounted(sensors, "all") == ("c1", "sc-1")
    assert uncounted(sensors, "town") == ("c1", "c2", "sc-1", "w1")

