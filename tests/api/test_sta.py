"""/sta/v1.1 against the session's influxd: paths, options, paging, blurred positions, and a real client."""

from __future__ import annotations

from typing import Any

import pytest

from support import sta_world as W

STA = "/sta/v1.1"


@pytest.fixture(scope="module")
def sta(influxd, tmp_path_factory) -> Any:
    settings = W.build(influxd.url, tmp_path_factory.mktemp("sta"))
    yield from W.client(settings)


def get(c, path: str, **params: Any) -> dict[str, Any]:
    r = c.get(STA + path, params=params)
    assert r.status_code == 200, (path, params, r.text)
    return r.json()


def test_root_and_things(sta):
    root = get(sta, "")
    assert {v["name"] for v in root["value"]} >= {"Things", "Datastreams", "Observations", "Locations"}
    assert "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data" in root["serverSettings"]["conformance"]
    things = get(sta, "/Things")
    assert W.ids(things) == ["v-centre", "v-jardin", "v-parc"]
    t = things["value"][0]
    assert t["@iot.selfLink"] == "http://127.0.0.1:8000/sta/v1.1/Things('v-centre')"
    assert t["Datastreams@iot.navigationLink"].endswith("/Things('v-centre')/Datastreams")
    assert t["properties"]["lcz"] == "LCZ 2" and t["properties"]["town"] == "vitre"


def test_private_site_is_blurred_everywhere(sta):
    loc = get(sta, "/Locations('v-jardin')")
    lon, lat = loc["location"]["coordinates"]
    assert (lat, lon) != (48.1201, -1.2133) and loc["properties"]["position_blurred"] is True
    assert "rue" not in loc["name"] and "Mme" not in get(sta, "/Things('v-jardin')")["name"]
    foi = get(sta, "/FeaturesOfInterest('v-jardin')")
    assert foi["feature"] == loc["location"]
    exact = get(sta, "/Locations('v-centre')")["location"]["coordinates"]
    assert exact == [-1.2089, 48.1236]


def test_datastreams_units_and_properties(sta):
    ds = get(sta, "/Things('v-centre')/Datastreams")
    assert W.ids(ds) == ["v-centre:t", "v-centre:rh", "v-centre:t-1h", "v-centre:rh-1h"]
    t = ds["value"][0]
    assert t["unitOfMeasurement"]["symbol"] == "Cel" and ds["value"][1]["unitOfMeasurement"]["symbol"] == "%"
    op = get(sta, "/Datastreams('v-centre:t')/ObservedProperty")
    assert op["@iot.id"] == "air_temperature" and op["definition"].startswith("http://vocab.nerc.ac.uk/")
    sensor = get(sta, "/Datastreams('v-centre:t')/Sensor")
    assert sensor["@iot.id"] == "dragino-lht65" and "LHT65" in sensor["description"]
    assert get(sta, "/Sensors('native')/Datastreams", **{"$count": "true"})["@iot.count"] == 8


def test_observations_paging_in_order_without_loss(sta):
    seen: list[str] = []
    page = get(sta, "/Datastreams('v-centre:t')/Observations", **{"$top": "50"})
    while True:
        seen += W.ids(page)
        nxt = page.get("@iot.nextLink")
        if not nxt:
            break
        page = sta.get(nxt.replace("http://127.0.0.1:8000", "")).json()
    assert len(seen) == 144 and len(set(seen)) == 144
    times = [int(i.rsplit(":", 1)[1]) for i in seen]
    assert times == sorted(times) and times[0] == W.R0
    first = get(sta, "/Datastreams('v-centre:t')/Observations", **{"$top": "1", "$orderby": "phenomenonTime desc"})
    assert first["value"][0]["phenomenonTime"] == "2024-07-20T23:50:00Z" and first["value"][0]["result"] == 21.43


def test_observations_filter_and_count(sta):
    q = {"$filter": "phenomenonTime ge 2024-07-20T12:00:00Z and phenomenonTime lt 2024-07-20T13:00:00Z",
         "$count": "true"}
    page = get(sta, "/Datastreams('v-parc:rh')/Observations", **q)
    assert page["@iot.count"] == 6 and len(page["value"]) == 6
    hot = get(sta, "/Datastreams('v-centre:t')/Observations", **{"$filter": "result gt 21.4"})
    assert [o["result"] for o in hot["value"]] == [21.41, 21.42, 21.43]
    both = get(sta, "/Datastreams('v-centre:t')/Observations",
               **{"$filter": "result lt 20.02 or result ge 21.43"})
    assert [o["result"] for o in both["value"]] == [20.0, 20.01, 21.43]
    across = get(sta, "/Observations", **{"$filter": "phenomenonTime eq 2024-07-20T00:00:00Z and "
                                                       "Datastream/@iot.id eq 'v-parc:t'"})
    assert W.ids(across) == [f"v-parc:t:{W.R0}"]
    r = sta.get(STA + "/Datastreams('v-centre:t')/Observations", params={"$filter": "result gt 1", "$count": "true"})
    assert r.status_code == 400


def test_hourly_datastream_carries_qc(sta):
    page = get(sta, "/Datastreams('v-parc:t-1h')/Observations",
               **{"$filter": "phenomenonTime ge 2024-07-19T05:00:00Z", "$top": "2"})
    o = page["value"][0]
    assert o["phenomenonTime"] == "2024-07-19T05:00:00Z/2024-07-19T06:00:00Z"
    assert o["resultQuality"] == {"qc": 4, "flags": ["SPIKE"], "passed": False} and o["parameters"]["n"] == 6


def test_entity_property_value_expand_select_ref(sta):
    obs_id = f"v-centre:t:{W.R0}"
    o = get(sta, f"/Observations('{obs_id}')", **{"$expand": "Datastream($select=name),FeatureOfInterest"})
    assert o["result"] == 20.0 and o["Datastream"]["name"].startswith("Place du Château")
    assert set(o["Datastream"]) == {"name"} and o["FeatureOfInterest"]["@iot.id"] == "v-centre"
    assert get(sta, "/Things('v-parc')/name") == {"name": "Parc du Château"}
    assert sta.get(STA + "/Things('v-parc')/name/$value").text == "Parc du Château"
    sel = get(sta, "/Things", **{"$select": "id,name", "$top": "1"})
    assert sel["value"] == [{"@iot.id": "v-centre", "name": "Place du Château"}]
    exp = get(sta, "/Things('v-centre')", **{"$expand": "Datastreams($filter=@iot.id eq 'v-centre:t';"
                                                         "$expand=Observations($top=2))"})
    (ds,) = exp["Datastreams"]
    assert len(ds["Observations"]) == 2 and "Observations@iot.nextLink" in ds
    refs = get(sta, "/Things('v-centre')/Datastreams/$ref")
    assert refs["value"][0] == {"@iot.selfLink": "http://127.0.0.1:8000/sta/v1.1/Datastreams('v-centre:t')"}


def test_filters_on_entities(sta):
    poly = "POLYGON((-1.22 48.11, -1.207 48.11, -1.207 48.13, -1.22 48.13, -1.22 48.11))"
    inside = get(sta, "/Locations", **{"$filter": f"st_within(location, geography'{poly}')"})
    assert "v-centre" in W.ids(inside) and "v-parc" not in W.ids(inside)
    parks = get(sta, "/Things", **{"$filter": "properties/site_class eq 'park' or substringof('Château', name)",
                                   "$orderby": "name desc"})
    assert W.ids(parks) == ["v-centre", "v-parc"]  # "Place du Château" > "Parc du Château"
    ds = get(sta, "/Datastreams", **{"$filter": "ObservedProperty/@iot.id eq 'relative_humidity' and "
                                                "Thing/@iot.id eq 'v-parc'"})
    assert W.ids(ds) == ["v-parc:rh", "v-parc:rh-1h"]
    paged = get(sta, "/Datastreams", **{"$top": "5", "$skip": "5", "$count": "true"})
    assert paged["@iot.count"] == 12 and len(paged["value"]) == 5 and "$skip=10" in paged["@iot.nextLink"]


@pytest.mark.parametrize("path,params,status", [
    ("/Things('nope')", {}, 404), ("/Nothing", {}, 404), ("/Things", {"$top": "-1"}, 400),
    ("/Things", {"$filter": "name eq"}, 400), ("/Things", {"$filter": "foo(name)"}, 400),
    ("/Things", {"$orderby": "name sideways"}, 400), ("/Things", {"$expand": "Nothing"}, 400),
    ("/Observations('v-centre:t:notatime')", {}, 404), ("/Things", {"$bogus": "1"}, 400),
    ("/Datastreams('v-centre:t')/Observations", {"$skiptoken": "x"}, 400),
])
def test_bad_requests_are_4xx_with_a_message(sta, path, params, status):
    r = sta.get(STA + path, params=params)
    assert r.status_code == status, r.text
    assert r.json()["error"]["message"]
