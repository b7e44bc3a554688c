"""Greening and de-sealing scenarios: "+X points of canopy / −Y points of sealed surface around site S or
inside polygon P" → the change in nocturnal UHI the drivers model predicts, with its 95 % interval.

A *model estimate*, read from how heat varies with the surroundings between the town's sites — not a
measurement, and not a promise: the measured effect of works is the intervention evaluation's, set beside it.

* Around a site: the site's canopy (or vegetation) and impervious shares within 100 m change by the points
  given, capped so a share stays within 0–100 (the answer says when it was capped).
* Inside a polygon: points added inside P change the share within 100 m of a location L by X × (the part of
  L's 100 m disc that lies in P). The answer gives the mean change over P's 10 m cells and, for each sensor
  whose disc reaches P, its own change.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .drivers import DriversModel, effect_text

CAVEAT = ("model estimate: how nocturnal UHI varies with tree canopy and sealed surfaces between the town's sites, "
          "applied to the change; not a measurement (compare with measured effects of works)")


def _columns(model: DriversModel) -> tuple[str | None, str | None]:
    canopy = next((c for c in model.columns if c in ("canopy_100", "vegetation_100")), None)
    sealed = "impervious_100" if "impervious_100" in model.columns else None
    return canopy, sealed


def _estimate(model: DriversModel, deltas: dict[str, float]) -> dict[str, Any]:
    mean, lo, hi, p_neg = model.change(deltas)
    return {"delta_uhi_c": round(mean, 3), "ci95": [round(lo, 3), round(hi, 3)],
            "probability_cooler": round(p_neg, 3), "text": effect_text(mean, lo, hi, "°C")}


def site_scenario(model: DriversModel, ctx: dict[str, Any], canopy: float, sealed: float) -> dict[str, Any]:
    ccol, scol = _columns(model)
    notes = []
    deltas: dict[str, float] = {}
    if canopy:
        if ccol is None:
            notes.append("the model has no canopy predictor here: the canopy change is not predicted")
        else:
            cur = ctx.get(ccol) or 0.0
            d = min(canopy, 100 - cur) if canopy > 0 else max(canopy, -cur)
            if d != canopy:
                notes.append(f"{ccol} is {cur:.0f} %: the change is capped at {d:+.0f} points")
            deltas[ccol] = d
    if sealed:
        if scol is None:
            notes.append("the model has no imperviousness predictor here: the sealed change is not predicted")
        else:
            cur = ctx.get(scol) or 0.0
            d = max(sealed, -cur) if sealed < 0 else min(sealed, 100 - cur)
            if d != sealed:
                notes.append(f"{scol} is {cur:.0f} %: the change is capped at {d:+.0f} points")
            deltas[scol] = d
    return {"changes": {k: round(v, 1) for k, v in deltas.items()}, **_estimate(model, deltas),
            "current": {c: ctx.get(c) for c in model.columns}, "notes": notes}


def polygon_scenario(model: DriversModel, cover: Any, polygon_l93: Any, canopy: float, sealed: float,
                     sensor_ctx: dict[str, dict[str, Any]], sensor_xy: dict[str, tuple[float, float]]
                     ) -> dict[str, Any]:
    from rasterio.features import rasterize
    from scipy.signal import fftconvolve

    from heatwatch.core.layers.cover import _disc

    ccol, scol = _columns(model)
    mask = rasterize([(polygon_l93, 1)], out_shape=cover.shape, transform=cover.transform, fill=0, dtype="uint8",
                     all_touched=False).astype("float64")
    if mask.sum() == 0:
        raise ValueError("the polygon covers no 10 m cell of the town's grid (outside the town, or smaller than a "
                         "cell)")
    k = _disc(100)
    frac = fftconvolve(mask, k, mode="same") / k.sum()
    inside = mask > 0
    mean_f = float(frac[inside].mean())

    def deltas(f: float) -> dict[str, float]:
        out = {}
        if canopy and ccol:
            out[ccol] = canopy * f
        if sealed and scol:
            out[scol] = sealed * f
        return out

    sites = []
    for s, (x, y) in sensor_xy.items():
        r, c, ok = cover.index(np.array([x]), np.array([y]))
        f = float(frac[r[0], c[0]]) if ok[0] else 0.0
        if f > 0.005 and s in sensor_ctx:
            sites.append({"sensor": s, "share_of_disc_in_polygon": round(f, 3), **_estimate(model, deltas(f))})
    sites.sort(key=lambda d: d["delta_uhi_c"])
    notes = []
    if canopy and not ccol:
        notes.append("the model has no canopy predictor here: the canopy change is not predicted")
    if sealed and not scol:
        notes.append("the model has no imperviousness predictor here: the sealed change is not predicted")
    return {"area_m2": round(float(inside.sum()) * 100.0), "mean_share_of_disc_in_polygon": round(mean_f, 3),
            "inside_polygon": {"changes": {k2: round(v, 1) for k2, v in deltas(mean_f).items()},
                               **_estimate(model, deltas(mean_f))},
            "sites": sites, "notes": notes}
