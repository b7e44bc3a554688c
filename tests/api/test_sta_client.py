"""A real SensorThings client — FROST's own Python client, frost-sta-client from PyPI — reads heatwatch over HTTP:
lists the Things, follows a Thing's Datastreams, pages through Observations by @iot.nextLink."""

from __future__ import annotations

from typing import Any

import frost_sta_client as fsc
import pytest

from support import sta_world as W


@pytest.fixture(scope="module")
def server(influxd, tmp_path_factory) -> Any:
    settings = W.build(influxd.url, tmp_path_factory.mktemp("sta_client"))
    yield from W.serve(settings)


def test_frost_client_lists_follows_and_pages(server):
    service = fsc.SensorThingsService(f"{server}/sta/v1.1")
    things = list(service.things().query().list())
    assert sorted(t.id for t in things) == ["v-centre", "v-jardin", "v-parc"]
    centre = next(t for t in things if t.id == "v-centre")
    assert centre.name == "Place du Château" and centre.properties["site_class"] == "urban"

    streams = list(centre.get_datastreams().query().list())
    assert [d.id for d in streams] == ["v-centre:t", "v-centre:rh", "v-centre:t-1h", "v-centre:rh-1h"]
    temp = streams[0]
    assert temp.unit_of_measurement.symbol == "Cel"

    # Pages of 40: the client follows @iot.nextLink by itself until the 144 readings of the day are read.
    observations = list(temp.get_observations().query().top(40).list())
    assert len(observations) == 144 and len({o.id for o in observations}) == 144
    assert observations[0].result == 20.0 and observations[-1].result == 21.43

    # The client's own query builder: a filter, an order and an expansion.
    hot = list(temp.get_observations().query().filter("result ge 21.4").orderby("phenomenonTime", "DESC").list())
    assert [o.result for o in hot] == [21.43, 21.42, 21.41, 21.4]
    locations = list(service.locations().query().list())
    assert {loc.id for loc in locations} == {"v-centre", "v-jardin", "v-parc"}
    with_ds = service.things().query().expand("Datastreams($top=1)").top(1).list()
    embedded = with_ds.get(0).datastreams
    assert [d.id for d in embedded.entities] == ["v-centre:t"] and embedded.next_link
    assert [d.id for d in embedded] == [d.id for d in streams]  # iterating follows the embedded next link
