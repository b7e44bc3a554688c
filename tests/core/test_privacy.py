"""The privacy blur (core/privacy.py): which sites are private, the grid, what public outputs show."""

from __future__ import annotations

import math

import pytest

from heatwatch.core import privacy
from heatwatch.core.layers.extent import to_l93
from heatwatch.core.model import Sensor
from heatwatch.core.public import public_fields
from heatwatch.core.trust import network_of, trust_of, weight_of

HOME = (48.121937, -1.208463)  # a garden in Vitré (illustrative)


def _sensor(owner: str, **kw: object) -> Sensor:
    return Sensor(id="c1", town="vitre", name="Jardin de Mme Martin, 12 rue X", latitude=HOME[0],
                  longitude=HOME[1], site_class="urban", owner=owner, **kw)


@pytest.mark.parametrize("owner,private", [("citizen", True), ("crowd", True), ("town", False), ("ecole", False)])
def test_private_sites_by_owner(owner: str, private: bool) -> None:
    s = _sensor(owner)
    lat, lon, blurred = privacy.public_position(s)
    assert blurred is private
    assert ((lat, lon) != HOME) is private
    assert (privacy.public_name(s) != s.name) is private
    assert network_of(s) == ("citizen" if private else "town")


@pytest.mark.parametrize("grid", [100, 150, 200, 500])
def test_snap_is_the_centre_of_a_metric_cell(grid: int) -> None:
    lat, lon = privacy.snap(*HOME, grid)
    (x,), (y,) = to_l93([lon], [lat])
    # the published point is a cell centre: (k + 0.5) × grid in Lambert-93, to the 5-decimal rounding (~1 m)
    assert abs((x / grid - 0.5) - round(x / grid - 0.5)) * grid < 1.5
    assert abs((y / grid - 0.5) - round(y / grid - 0.5)) * grid < 1.5
    (hx,), (hy,) = to_l93([HOME[1]], [HOME[0]])
    assert abs(hx - x) <= grid / 2 + 1.5 and abs(hy - y) <= grid / 2 + 1.5
    # every position of the cell shows at the same point: nothing to average out
    assert privacy.snap(HOME[0] + 1e-5, HOME[1] - 1e-5, grid) in {(lat, lon), privacy.snap(*HOME, grid)}


def test_grid_bounds_and_configure() -> None:
    with pytest.raises(ValueError):
        privacy.check_grid(50)
    with pytest.raises(ValueError):
        privacy.check_grid(math.nan)
    before = privacy.grid_m()
    try:
        privacy.configure(100)
        a = privacy.public_position(_sensor("citizen"))
        privacy.configure(200)
        b = privacy.public_position(_sensor("citizen"))
        assert a != b
    finally:
        privacy.configure(before)


def test_public_fields_carry_no_personal_data_and_say_trust() -> None:
    s = _sensor("citizen")
    f = public_fields(s)
    assert f["name"] == "citizen sensor" and f["position_blurred"] is True
    assert f["trust"] == "provisional" and trust_of(s) == "provisional"
    assert weight_of(s, 0.5) == 0.0
    confirmed = s.model_copy(update={"trust": "confirmed"})
    assert trust_of(confirmed) == "confirmed" and weight_of(confirmed, 0.5) == 0.5
    town = _sensor("town")
    assert public_fields(town)["latitude"] == HOME[0] and trust_of(town) == "official" and weight_of(town, 0.5) == 1
    unplaced = Sensor(id="c2", town="vitre", owner="citizen")
    assert privacy.public_position(unplaced) == (None, None, True)
