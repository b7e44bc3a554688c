"""The sensor registry: where each sensor is, what it is, and which network identity it uses.

* :mod:`.validation` — what a valid entry is;
* :mod:`.files` — CSV and GeoJSON registry files (import, export, the packaged examples);
* :mod:`.store` — the SQLite store ingest and the api share (:class:`Registry`).
"""

from .files import (
    CSV_SUFFIXES,
    GEOJSON_SUFFIXES,
    example_files,
    read_sensors,
    sensors_from_csv,
    sensors_from_geojson,
    sensors_to_csv,
    sensors_to_geojson,
    write_sensors,
)
from .store import Registry
from .validation import FIELDS, canonical_identity, normalize, validate

__all__ = [
    "CSV_SUFFIXES",
    "FIELDS",
    "GEOJSON_SUFFIXES",
    "Registry",
    "canonical_identity",
    "example_files",
    "normalize",
    "read_sensors",
    "sensors_from_csv",
    "sensors_from_geojson",
    "sensors_to_csv",
    "sensors_to_geojson",
    "validate",
    "write_sensors",
]
