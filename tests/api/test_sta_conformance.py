"""One test per requirement of the OGC SensorThings API 1.1 (OGC 18-088) conformance classes heatwatch claims —
Sensing Core (datamodel, resource-path/resource-path-to-entities) and the Filtering Extension (request-data) — over
HTTP against a live uvicorn server (read-only: create-update-delete, batch, multi-datastream, data-array and MQTT
are not claimed). docs/interop.md lists them; the last test keeps that list, these tests and the served
serverSettings.conformance the same."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import sta_world as W

STA = "/sta/v1.1"
REQ = "http://www.opengis.net/spec/iot_sensing/1.1/req/"
BASE = ""  # the live server's http://127.0.0.1:<port>/sta/v1.1, set by the fixture


@pytest.fixture(scope="module")
def sta(influxd, tmp_path_factory) -> Any:
    global BASE
    settings = W.build(influxd.url, tmp_path_factory.mktemp("sta_conf"))
    for server in W.serve(settings):
        BASE = server + STA
        with httpx.Client(base_url=server, timeout=60) as c:
            yield c


def get(c, path: str, **params: Any) -> Any:
    r = c.get(STA + path, params=params)
    assert r.status_code == 200, (path, params, r.text)
    return r.json()


def entity(c, path: str) -> dict[str, Any]:
    return get(c, path)


OBS = f"Observations('v-centre:t:{W.R0}')"
ONE = {"Things": "Things('v-centre')", "Locations": "Locations('v-centre')",
       "HistoricalLocations": "HistoricalLocations('v-centre')", "Datastreams": "Datastreams('v-centre:t')",
       "Sensors": "Sensors('dragino-lht65')", "ObservedProperties": "ObservedProperties('air_temperature')",
       "Observations": OBS, "FeaturesOfInterest": "FeaturesOfInterest('v-centre')"}
PROPERTIES = {
    "Things": {"name", "description"}, "Locations": {"name", "description", "encodingType", "location"},
    "HistoricalLocations": {"time"}, "Sensors": {"name", "description", "encodingType", "metadata"},
    "ObservedProperties": {"name", "definition", "description"},
    "Datastreams": {"name", "description", "unitOfMeasurement", "observationType"},
    "Observations": {"phenomenonTime", "result", "resultTime"},
    "FeaturesOfInterest": {"name", "description", "encodingType", "feature"},
}
RELATIONS = {
    "Things": {"Locations", "HistoricalLocations", "Datastreams"}, "Locations": {"Things", "HistoricalLocations"},
    "HistoricalLocations": {"Thing", "Locations"}, "Sensors": {"Datastreams"},
    "ObservedProperties": {"Datastreams"}, "Datastreams": {"Thing", "Sensor", "ObservedProperty", "Observations"},
    "Observations": {"Datastream", "FeatureOfInterest"}, "FeaturesOfInterest": {"Observations"},
}


def _properties(sta, entity_set: str) -> None:
    e = entity(sta, "/" + ONE[entity_set])
    assert PROPERTIES[entity_set] <= set(e), (entity_set, set(e))
    for p in PROPERTIES[entity_set] - {"resultTime"}:
        assert e[p] is not None, (entity_set, p)


def _relations(sta, entity_set: str) -> None:
    e = entity(sta, "/" + ONE[entity_set])
    for nav in RELATIONS[entity_set]:
        link = e[f"{nav}@iot.navigationLink"]
        assert link == f"{e['@iot.selfLink']}/{nav}"
        body = sta.get(link).json()
        # A to-many navigation (plural name) answers a collection, a to-one the entity itself.
        assert ("value" in body) == nav.endswith("s"), (entity_set, nav)


# --- datamodel -----------------------------------------------------------------------------------------------------

def test_req_datamodel_entity_control_information_common_control_information(sta):
    for entity_set, path in ONE.items():
        e = entity(sta, "/" + path)
        assert e["@iot.selfLink"] == f"{BASE}/{path}" and e["@iot.id"], entity_set
        listed = get(sta, "/" + entity_set, **{"$top": "1"})["value"][0]
        assert "@iot.id" in listed and listed["@iot.selfLink"].startswith(f"{BASE}/{entity_set}(")


@pytest.mark.parametrize("entity_set", list(ONE))
def test_req_datamodel_properties(sta, entity_set):
    """thing/properties, location/properties, historical-location/properties, datastream/properties,
    sensor/properties, observed-property/properties, observation/properties, feature-of-interest/properties."""
    _properties(sta, entity_set)


@pytest.mark.parametrize("entity_set", list(ONE))
def test_req_datamodel_relations(sta, entity_set):
    """thing/relations … feature-of-interest/relations: every navigation property, its link, what it returns."""
    _relations(sta, entity_set)


def test_req_datamodel_datastream_unit_and_type(sta):
    ds = entity(sta, "/Datastreams('v-centre:rh')")
    assert set(ds["unitOfMeasurement"]) == {"name", "symbol", "definition"} and ds["unitOfMeasurement"]["symbol"] == "%"
    assert ds["observationType"].endswith("OM_Measurement")


# --- resource path -------------------------------------------------------------------------------------------------

def test_req_resource_path_resource_path_to_entities(sta):
    root = get(sta, "")
    assert [REQ + c for c in sorted(CLAIMED)] == sorted(root["serverSettings"]["conformance"])
    assert {v["name"] for v in root["value"]} == set(ONE) and all(v["url"] == f"{BASE}/{v['name']}"
                                                                 for v in root["value"])
    assert get(sta, "/Things")["value"]                                                  # a collection
    assert get(sta, "/Things('v-parc')")["@iot.id"] == "v-parc"                          # an entity
    assert get(sta, "/Things('v-parc')/name") == {"name": "Parc du Château"}             # a property
    assert sta.get(STA + "/Things('v-parc')/name/$value").text == "Parc du Château"      # its raw value
    assert get(sta, "/Datastreams('v-parc:t')/Thing")["@iot.id"] == "v-parc"             # navigation to one
    assert W.ids(get(sta, "/Things('v-parc')/Datastreams('v-parc:rh')/Observations", **{"$top": "2"})) == [
        f"v-parc:rh:{W.R0}", f"v-parc:rh:{W.R0 + 600_000}"]                                # nested navigation
    assert get(sta, "/Things('v-parc')/Locations/$ref")["value"] == [
        {"@iot.selfLink": f"{BASE}/Locations('v-parc')"}]                                  # association links
    assert sta.get(STA + "/Things('none')").status_code == 404


# --- request data --------------------------------------------------------------------------------------------------

def test_req_request_data_status_code(sta):
    assert sta.get(STA + "/Things").status_code == 200
    assert sta.get(STA + "/Things('missing')").status_code == 404


def test_req_request_data_query_status_code(sta):
    for bad in ({"$top": "x"}, {"$filter": "name eq"}, {"$orderby": "name up"}, {"$select": "na me"},
                {"$expand": "Nope"}, {"$count": "maybe"}):
        r = sta.get(STA + "/Things", params=bad)
        assert r.status_code == 400 and r.json()["error"]["message"], bad
    # What heatwatch does not do on Observations (docs/interop.md) is a 400 that says so, never a wrong answer.
    obs = STA + "/Datastreams('v-centre:t')/Observations"
    for bad in ({"$orderby": "result"}, {"$count": "true", "$filter": "result gt 20"}):
        r = sta.get(obs, params=bad)
        assert r.status_code == 400 and "Observations" in r.json()["error"]["message"], bad


def test_req_request_data_order(sta):
    # $filter, then $count (of the filtered set, before paging), then $orderby, $skip, $top.
    page = get(sta, "/Datastreams", **{"$filter": "ObservedProperty/@iot.id eq 'air_temperature'", "$count": "true",
                                       "$orderby": "@iot.id desc", "$skip": "1", "$top": "2"})
    assert page["@iot.count"] == 6 and W.ids(page) == ["v-parc:t", "v-jardin:t-1h"]


def test_req_request_data_expand(sta):
    e = get(sta, "/Things('v-centre')", **{"$expand": "Locations,Datastreams($top=1;$expand=ObservedProperty)"})
    assert e["Locations"][0]["@iot.id"] == "v-centre"
    assert e["Datastreams"][0]["ObservedProperty"]["@iot.id"] == "air_temperature"
    nested = get(sta, "/Things('v-centre')", **{"$expand": "Datastreams/Sensor"})
    assert {d["Sensor"]["@iot.id"] for d in nested["Datastreams"]} == {"dragino-lht65"}


def test_req_request_data_select(sta):
    e = get(sta, "/Things('v-centre')", **{"$select": "name,properties"})
    assert set(e) == {"name", "properties"}
    only_id = get(sta, "/Datastreams('v-centre:t')/Observations", **{"$select": "result", "$top": "1"})
    assert only_id["value"] == [{"result": 20.0}]


def test_req_request_data_orderby(sta):
    names = [t["name"] for t in get(sta, "/Things", **{"$orderby": "name asc"})["value"]]
    assert names == sorted(names)
    desc = get(sta, "/Datastreams('v-centre:t')/Observations", **{"$orderby": "phenomenonTime desc", "$top": "3"})
    assert [o["phenomenonTime"] for o in desc["value"]] == ["2024-07-20T23:50:00Z", "2024-07-20T23:40:00Z",
                                                             "2024-07-20T23:30:00Z"]


def test_req_request_data_top(sta):
    assert len(get(sta, "/Datastreams", **{"$top": "5"})["value"]) == 5
    assert len(get(sta, "/Datastreams('v-centre:t')/Observations", **{"$top": "7"})["value"]) == 7


def test_req_request_data_skip(sta):
    all_ids = W.ids(get(sta, "/Datastreams", **{"$top": "12"}))
    assert W.ids(get(sta, "/Datastreams", **{"$skip": "3", "$top": "4"})) == all_ids[3:7]
    obs = W.ids(get(sta, "/Datastreams('v-centre:t')/Observations", **{"$top": "10"}))
    assert W.ids(get(sta, "/Datastreams('v-centre:t')/Observations", **{"$skip": "4", "$top": "3"})) == obs[4:7]


def test_req_request_data_count(sta):
    assert get(sta, "/Things", **{"$count": "true"})["@iot.count"] == 3
    assert "@iot.count" not in get(sta, "/Things", **{"$count": "false"})
    assert get(sta, "/Datastreams('v-centre:t')/Observations", **{"$count": "true", "$top": "1"})["@iot.count"] == 144


def test_req_request_data_filter(sta):
    assert W.ids(get(sta, "/Things", **{"$filter": "@iot.id eq 'v-parc'"})) == ["v-parc"]
    hot = get(sta, "/Datastreams('v-centre:t')/Observations",
              **{"$filter": "result ge 21.42 and phenomenonTime gt 2024-07-20T00:00:00Z"})
    assert [o["result"] for o in hot["value"]] == [21.42, 21.43]


def test_req_request_data_built_in_filter_operations(sta):
    ok = lambda f: W.ids(get(sta, "/Datastreams('v-centre:t')/Observations", **{"$filter": f, "$top": "200"}))  # noqa: E731
    for op, f in [("eq", "result eq 20.5"), ("ne", "result ne 20.0"), ("gt", "result gt 21.4"),
                  ("ge", "result ge 21.4"), ("lt", "result lt 20.01"), ("le", "result le 20.01"),
                  ("and", "result gt 20 and result lt 20.02"), ("or", "result lt 20.01 or result gt 21.42"),
                  ("not", "not (result gt 20.01)"), ("add", "result add 1 gt 22.42"), ("sub", "result sub 1 lt 19.01"),
                  ("mul", "result mul 2 eq 40"), ("div", "result div 2 eq 10"), ("mod", "result mod 10 lt 0.005"),
                  ("()", "(result eq 20 or result eq 21)")]:
        assert ok(f), op
    assert len(ok("result ne 20.0")) == 143 and ok("not (result gt 20.01)") == ok("result le 20.01")


FUNCTION_CASES = [
    ("substringof('Château', name)", ["v-centre", "v-parc"]), ("endswith(name, 'Château')", ["v-centre", "v-parc"]),
    ("startswith(name, 'Parc')", ["v-parc"]), ("length(name) eq 16", ["v-centre"]),
    ("indexof(name, 'du') eq 6", ["v-centre"]), ("substring(name, 0, 4) eq 'Parc'", ["v-parc"]),
    ("tolower(name) eq 'parc du château'", ["v-parc"]), ("toupper(name) eq 'PARC DU CHÂTEAU'", ["v-parc"]),
    ("trim(name) eq name and concat(name, '!') eq 'Parc du Château!'", ["v-parc"]),
    ("round(properties/height_m) eq 4", ["v-centre"]), ("floor(properties/height_m) eq 3", ["v-centre"]),
    ("ceiling(properties/height_m) eq 4", ["v-centre"]),
]
GEO_CASES = [
    "st_within(location, geography'POLYGON((-1.22 48.11, -1.207 48.11, -1.207 48.13, -1.22 48.13, -1.22 48.11))')",
    "st_intersects(location, geography'POLYGON((-1.22 48.11, -1.207 48.11, -1.207 48.13, -1.22 48.13, -1.22 48.11))')",
    "st_equals(location, geography'POINT(-1.2089 48.1236)')",
    "geo.distance(location, geography'POINT(-1.2089 48.1236)') lt 0.0001",
    "geo.intersects(location, geography'POINT(-1.2089 48.1236)')",
    "st_disjoint(location, geography'POINT(0 0)') and not st_touches(location, geography'POINT(0 0)')",
    "st_contains(geography'POLYGON((-1.22 48.11, -1.207 48.11, -1.207 48.13, -1.22 48.13, -1.22 48.11))', location)",
    "st_relate(location, geography'POINT(-1.2089 48.1236)', 'T*F**FFF*') and not st_overlaps(location, location) "
    "and not st_crosses(location, geography'LINESTRING(0 0, 1 1)') and geo.length(location) eq 0",
]


def test_req_request_data_built_in_query_functions(sta):
    for f, expected in FUNCTION_CASES:
        assert W.ids(get(sta, "/Things", **{"$filter": f})) == expected, f
    for f in GEO_CASES:
        assert "v-centre" in W.ids(get(sta, "/Locations", **{"$filter": f})), f
    dates = {"year(phenomenonTime) eq 2024": 144, "month(phenomenonTime) eq 7": 144, "day(phenomenonTime) eq 20": 144,
             "hour(phenomenonTime) eq 23": 6, "minute(phenomenonTime) eq 50": 24, "second(phenomenonTime) eq 0": 144,
             "fractionalseconds(phenomenonTime) eq 0": 144, "date(phenomenonTime) eq 2024-07-20": 144,
             "time(phenomenonTime) eq '12:00:00'": 1, "totaloffsetminutes(phenomenonTime) eq 0": 144,
             "phenomenonTime lt now() and phenomenonTime gt mindatetime() and phenomenonTime lt maxdatetime()": 144}
    for f, n in dates.items():
        got = get(sta, "/Datastreams('v-centre:t')/Observations", **{"$filter": f, "$top": "200"})
        assert len(got["value"]) == n, f


def test_req_request_data_pagination(sta):
    page = get(sta, "/Things", **{"$top": "2"})
    assert len(page["value"]) == 2 and page["@iot.nextLink"].startswith(f"{BASE}/Things?")
    rest = sta.get(page["@iot.nextLink"]).json()
    assert W.ids(rest) == ["v-parc"] and "@iot.nextLink" not in rest


CLAIMED = {"datamodel", "resource-path/resource-path-to-entities", "request-data"}


def test_docs_list_the_claimed_requirements():
    text = (Path(__file__).resolve().parents[2] / "docs/interop.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"`" + re.escape(REQ) + r"([a-z/-]+)`", text))
    tested = {"datamodel/entity-control-information/common-control-information",
              *(f"datamodel/{n}/{k}" for n in ("thing", "location", "historical-location", "datastream", "sensor",
                                               "observed-property", "observation", "feature-of-interest")
                for k in ("properties", "relations")),
              "resource-path/resource-path-to-entities",
              *(f"request-data/{n}" for n in ("status-code", "query-status-code", "order", "expand", "select",
                                              "orderby", "top", "skip", "count", "filter",
                                              "built-in-filter-operations", "built-in-query-functions",
                                              "pagination"))}
    assert listed == tested
    from heatwatch.api.sta.routes import CONFORMANCE

    assert {c.removeprefix(REQ) for c in CONFORMANCE} == CLAIMED
