"""Where a sensor may be shown: the one privacy rule every public output goes through.

A private site is a resident's home, garden or balcony. Its exact position is known to heatwatch (quality
control compares it with its neighbours, the site context reads the land around it) but is never published:
every public output — the api in every format, maps, the catalogue, the live stream, the seasonal report,
the dashboard — carries :func:`public_position` instead, and :func:`public_name` instead of the name a
registry or a contributor gave it (docs/privacy.md).

Which sites are private (:func:`is_private`): every site whose registry ``owner`` is one of
:data:`PRIVATE_OWNERS` — ``citizen`` (a resident's sensor, registered through ``/v1/contribute``, imported
from sensor.community, or written into a registry CSV/GeoJSON file by the town) and ``crowd`` (a crowd-sourced
station such as a private weather station network's: also someone's home) — whatever way it was registered.
The town's own sites (``town``, or any other owner: a school, a partner) are public.

The blur: the position is snapped to the centre of its cell on a square grid of ``grid_m`` metres (100–1000,
``HEATWATCH_PRIVACY_GRID_M``, default 200) in Lambert-93 (EPSG:2154, the French metric projection the layers
use), cells aligned on multiples of ``grid_m``, and rounded to 5 decimals. Every private site of a cell is
published at the same point; the exact position is anywhere within ±grid_m/2 of it on each axis. The snap is
deterministic (the same site always shows at the same point), so averaging many answers reveals nothing more.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from .model import Sensor

#: Registry owners whose sites are somebody's home: never published exactly.
PRIVATE_OWNERS = frozenset({"citizen", "crowd"})
#: Grid size of the blur when settings do not say (``HEATWATCH_PRIVACY_GRID_M``).
DEFAULT_GRID_M = 200
MIN_GRID_M = 100
MAX_GRID_M = 1000
#: Decimals of a published blurred position (1e-5° is about a metre: finer digits would be noise).
PUBLIC_DECIMALS = 5

_L93 = "EPSG:2154"
_WGS84 = "EPSG:4326"


_grid_m: float = DEFAULT_GRID_M


def configure(grid_m: float) -> None:
    """Set the process's blur grid from settings (``HEATWATCH_PRIVACY_GRID_M``), once, where a command that
    publishes builds its service (the api, the report): every public output then blurs alike."""
    global _grid_m
    _grid_m = check_grid(grid_m)


def grid_m() -> float:
    """The blur grid in force, metres."""
    return _grid_m


@lru_cache(maxsize=2)
def _transformer(src: str, dst: str) -> Any:
    # pyproj is imported here and not at module level: ingest imports the kernel and never blurs.
    from pyproj import Transformer

    return Transformer.from_crs(src, dst, always_xy=True)


def is_private(sensor: Sensor | None) -> bool:
    """True for a site that must never be published exactly (a resident's or a crowd station's)."""
    return sensor is not None and sensor.owner in PRIVATE_OWNERS


def check_grid(grid_m: float) -> float:
    if not (MIN_GRID_M <= grid_m <= MAX_GRID_M) or not math.isfinite(grid_m):
        raise ValueError(f"privacy grid must be {MIN_GRID_M}–{MAX_GRID_M} m, got {grid_m}")
    return float(grid_m)


@lru_cache(maxsize=4096)
def snap(latitude: float, longitude: float, grid: float) -> tuple[float, float]:
    """The centre of the ``grid``-metre Lambert-93 cell holding (latitude, longitude), as WGS84 (lat, lon)."""
    grid = check_grid(grid)
    x, y = _transformer(_WGS84, _L93).transform(longitude, latitude)
    cx = (math.floor(x / grid) + 0.5) * grid
    cy = (math.floor(y / grid) + 0.5) * grid
    lon, lat = _transformer(_L93, _WGS84).transform(cx, cy)
    return round(lat, PUBLIC_DECIMALS), round(lon, PUBLIC_DECIMALS)


def public_position(sensor: Sensor, grid: float | None = None) -> tuple[float | None, float | None, bool]:
    """(latitude, longitude, blurred) as a public output may show them; ``grid`` defaults to the configured one.

    A public site keeps its registry position (``blurred`` False); a private one gets the centre of its grid
    cell (``blurred`` True); an unplaced sensor has (None, None, is_private).
    """
    private = is_private(sensor)
    if sensor.latitude is None or sensor.longitude is None:
        return None, None, private
    if not private:
        return sensor.latitude, sensor.longitude, False
    lat, lon = snap(sensor.latitude, sensor.longitude, _grid_m if grid is None else grid)
    return lat, lon, True


def public_name(sensor: Sensor) -> str:
    """The name a public output shows: the registry's for a town site; a neutral label for a private one
    (a registry or a contributor may have written a person's name or an address into it)."""
    if not is_private(sensor):
        return sensor.name
    return "crowd station" if sensor.owner == "crowd" else "citizen sensor"


def public_sensor(sensor: Sensor, grid: float | None = None) -> Sensor:
    """The sensor as public outputs may show it: blurred position and neutral name when private.

    The copy is for display only: never write it back to the registry, never compute with its position.
    """
    if not is_private(sensor):
        return sensor
    lat, lon, _ = public_position(sensor, grid)
    return sensor.model_copy(update={"latitude": lat, "longitude": lon, "name": public_name(sensor)})


def public_sensors(sensors: list[Sensor], grid: float | None = None) -> list[Sensor]:
    """:func:`public_sensor` of each."""
    return [public_sensor(s, grid) for s in sensors]
