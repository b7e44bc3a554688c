"""A town's geographic layers (vegetation, trees, imperviousness, buildings, water, biodiversity, perimeters,
population): import and checks (:mod:`.io`), the per-town GeoPackage (:mod:`.store`), the town's extent
(:mod:`.extent`), land-cover rasters and focal shares (:mod:`.cover`) and the site context of each sensor
(:mod:`.context`). In the kernel because the command line writes layers and the api and report read them.

Science and choices: ``docs/science/drivers.md``.
"""

from .extent import L93, WGS84, Extent, town_extent
from .kinds import SPECS, LayerKind
from .store import LayerInfo, LayerStore

__all__ = ["L93", "SPECS", "WGS84", "Extent", "LayerInfo", "LayerKind", "LayerStore", "town_extent"]
