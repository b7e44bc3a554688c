"""The site context of each sensor: what surrounds it within 50, 100 and 250 m, and a Local Climate Zone
suggestion where the registry has none.

Per radius r (``RADII_M``), in percent points of the disc's area (:mod:`.cover`):
``vegetation_<r>`` (green spaces and tree crowns), ``canopy_<r>`` (tree crowns), ``impervious_<r>``
(the imperviousness raster, buildings included as Copernicus counts them), ``building_<r>`` (footprints);
``building_volume_<r>`` (m³) and ``building_height_<r>`` (footprint-weighted mean height, m). Then
``water_distance_m`` and ``park_distance_m`` (exact, to the nearest water feature and to the nearest green
space of at least 0.5 ha; 0 inside), ``in_perimeter`` (the perimeter's label, or null outside; absent without
a perimeter layer). A value is null when the layer it needs is not imported.

Recomputed whenever a layer or a sensor's position changes: the result is stored in the town's GeoPackage
with a fingerprint of the layers and of the sensors' positions, and recomputed on read when the fingerprint
no longer matches (:func:`site_context`).

LCZ suggestion (Stewart & Oke 2012, Table 3 property ranges, at 250 m): see :func:`suggest_lcz`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..logging import get_logger
from ..model import Sensor, Town
from .cover import COVERS, RES_M, Cover, _disc
from .extent import Extent, to_l93, town_extent
from .store import LayerStore

log = get_logger("heatwatch.layers")

RADII_M = (50, 100, 250)
#: bump when the computation changes, so stored contexts are recomputed
CONTEXT_VERSION = "1"
SHARES = ("vegetation", "canopy", "impervious", "building")


def _r(v: float | None, nd: int = 1) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), nd)


def sensors_fingerprint(sensors: Iterable[Sensor]) -> str:
    text = "|".join(f"{s.id}:{s.latitude}:{s.longitude}:{s.lcz}:{s.retired}:{s.site_class}"
                    for s in sorted(sensors, key=lambda s: s.id))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def point_context(cover: Cover, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """The context columns at Lambert-93 points (arrays, NaN where a layer is missing)."""
    n = len(x)
    out: dict[str, np.ndarray] = {}
    for r in RADII_M:
        for name in SHARES:
            out[f"{name}_{r}"] = cover.sample(name, r, x, y) * 100 if cover.has(name) else np.full(n, np.nan)
        if cover.has("volume"):
            vol = cover.sample("volume", r, x, y)
            cells = _disc(r).sum()
            built_m2 = out[f"building_{r}"] / 100 * cells * RES_M * RES_M
            out[f"building_volume_{r}"] = vol
            with np.errstate(invalid="ignore", divide="ignore"):
                out[f"building_height_{r}"] = np.where(built_m2 > 1.0, vol / np.maximum(built_m2, 1e-9), np.nan)
        else:
            out[f"building_volume_{r}"] = np.full(n, np.nan)
            out[f"building_height_{r}"] = np.full(n, np.nan)
    out["water_distance_m"] = cover.distance("water", x, y)
    out["park_distance_m"] = cover.distance("park", x, y)
    return out


def suggest_lcz(ctx: dict[str, Any], footprint_m2: float | None = None) -> tuple[str | None, str]:
    """A Local Climate Zone from the 250 m context, by the property ranges of Stewart & Oke (2012, Table 3):
    building surface fraction (BSF), impervious surface fraction *outside buildings* (ISF = imperviousness −
    BSF), mean building height (HRE), tree canopy, water. Returns (LCZ or None, the rule that fired or why
    none did).

    Limits: the classes are defined for areas of a few hundred metres of homogeneous fabric, and by more
    properties than these (sky view factor, aspect ratio, albedo, anthropogenic heat); a sensor on the edge of
    two fabrics gets the one that dominates its disc. It is a suggestion for the registry, never written to it.
    """
    bsf, imp = ctx.get("building_250"), ctx.get("impervious_250")
    hre, canopy = ctx.get("building_height_250"), ctx.get("canopy_250")
    veg, water = ctx.get("vegetation_250"), ctx.get("water_share_250")
    if water is not None and water >= 50:
        return "LCZ G", f"water covers {water:.0f} % of 250 m"
    if bsf is None:
        return None, "needs a buildings layer (building surface fraction and height)"
    isf = max(0.0, imp - bsf) if imp is not None else None
    if bsf < 10:
        if canopy is not None and canopy >= 60:
            return "LCZ A", f"BSF {bsf:.0f} % < 10, tree canopy {canopy:.0f} % ≥ 60"
        if canopy is not None and canopy >= 30:
            return "LCZ B", f"BSF {bsf:.0f} % < 10, tree canopy {canopy:.0f} % 30–60"
        if isf is not None and isf >= 50:
            return "LCZ E", f"BSF {bsf:.0f} % < 10, paved {isf:.0f} % ≥ 50"
        if (veg is not None and veg >= 50) or (imp is not None and imp < 30 and bsf < 5):
            return "LCZ D", f"BSF {bsf:.0f} % < 10, mostly pervious ground"
        if bsf >= 5:
            return "LCZ 9", f"BSF {bsf:.0f} % 5–10: sparsely built"
        return None, f"BSF {bsf:.0f} % < 5 and neither trees, paving nor low plants dominate (layers missing?)"
    h = hre if hre is not None else 0.0
    if h >= 25:
        return ("LCZ 1", f"BSF {bsf:.0f} % ≥ 40, height {h:.0f} m ≥ 25") if bsf >= 40 else \
            ("LCZ 4", f"BSF {bsf:.0f} % < 40, height {h:.0f} m ≥ 25")
    if h >= 10:
        return ("LCZ 2", f"BSF {bsf:.0f} % ≥ 40, height {h:.0f} m 10–25") if bsf >= 40 else \
            ("LCZ 5", f"BSF {bsf:.0f} % 10–40, height {h:.0f} m 10–25")
    if bsf >= 20 and isf is not None and isf >= 35 and footprint_m2 is not None and footprint_m2 >= 500:
        return "LCZ 8", (f"BSF {bsf:.0f} %, paved {isf:.0f} % ≥ 35, large low buildings "
                         f"({footprint_m2:.0f} m² on average)")
    if bsf >= 40:
        return "LCZ 3", f"BSF {bsf:.0f} % ≥ 40, height {h:.0f} m < 10"
    if bsf >= 20:
        return "LCZ 6", f"BSF {bsf:.0f} % 20–40, height {h:.0f} m < 10"
    return "LCZ 9", f"BSF {bsf:.0f} % 10–20, height {h:.0f} m < 10"


def _footprints(cover: Cover, x: float, y: float, r: float = 250.0) -> float | None:
    b = cover.buildings
    if b is None or b.empty:
        return None
    import shapely

    near = b[b.intersects(shapely.Point(x, y).buffer(r))]
    return float(near.geometry.area.mean()) if len(near) else None


def compute_context(cover: Cover, sensors: list[Sensor]) -> list[dict[str, Any]]:
    placed = [s for s in sensors if s.latitude is not None and s.longitude is not None]
    if not placed:
        return []
    x, y = to_l93([s.longitude for s in placed], [s.latitude for s in placed])  # type: ignore[misc]
    xa, ya = np.array(x), np.array(y)
    cols = point_context(cover, xa, ya)
    water_share = cover.sample("water", 250, xa, ya) * 100 if cover.has("water") else np.full(len(xa), np.nan)
    perimeter = cover.in_perimeter(xa, ya)
    rows = []
    for i, s in enumerate(placed):
        row: dict[str, Any] = {"sensor": s.id, "name": s.name, "site_class": str(s.site_class),
                               "latitude": s.latitude, "longitude": s.longitude}
        for k, v in cols.items():
            nd = 0 if "volume" in k or "distance" in k else 1
            row[k] = _r(v[i], nd)
        if perimeter is not None:
            row["in_perimeter"] = perimeter[i]
        lcz, why = suggest_lcz({**row, "water_share_250": _r(water_share[i])}, _footprints(cover, xa[i], ya[i]))
        row["lcz_registry"] = s.lcz
        row["lcz_suggested"] = lcz if not s.lcz else None
        row["lcz_rule"] = why if not s.lcz else f"registry says {s.lcz}; the layers suggest {lcz or 'none'} ({why})"
        row["lcz_layers"] = lcz
        rows.append(row)
    return rows


def site_context(store: LayerStore, town: Town, sensors: list[Sensor], *, extent: Extent | None = None
                 ) -> dict[str, Any]:
    """The town's site context, from the GeoPackage when still valid, else recomputed and stored."""
    sensors = [s for s in sensors if s.town == town.id and not s.retired]
    fp = f"{CONTEXT_VERSION}-{store.fingerprint()}-{sensors_fingerprint(sensors)}"
    cached = store.cached_context(fp)
    if cached is not None:
        return cached
    ext = extent or town_extent(town, sensors)
    cover = COVERS.get(store, ext)
    rows = compute_context(cover, sensors)
    data = {"fingerprint": fp, "computed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            .replace("+00:00", "Z"), "layers": [i.name for i in store.list()], "radii_m": list(RADII_M),
            "extent": ext.describe(), "sensors": rows}
    json.dumps(data, allow_nan=False)  # NaN must have become null above
    if store.exists():
        try:
            store.store_context(fp, data)
        except (OSError, sqlite3.Error) as exc:
            # A reader without write access to the data folder (the api under its own account) still answers;
            # it recomputes next time instead of reading the stored copy.
            log.warning("layers.context_not_stored", town=town.id, error=str(exc))
    return data


def cover_for(store: LayerStore, town: Town, sensors: list[Sensor]) -> Cover:
    return COVERS.get(store, town_extent(town, [s for s in sensors if s.town == town.id and not s.retired]))
