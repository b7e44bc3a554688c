"""The SensorThings entities heatwatch's data maps to, built from the sensor registry and the stored schema.

| STA entity | heatwatch | id |
|---|---|---|
| Thing | a sensor's site (registry entry) | the sensor id |
| Location, FeatureOfInterest | the site's position — blurred for a private site (``core/public.py``) | the sensor id |
| HistoricalLocation | the site's installation (its ``installed`` date) | the sensor id |
| Sensor | a device model (the registry's ``device_profile``) | the profile name, ``unknown`` |
| ObservedProperty | air temperature, relative humidity | ``air_temperature``, ``relative_humidity`` |
| Datastream | per sensor, property and aggregation (raw, hourly) | ``<sensor>:t``, ``:rh``, ``:t-1h``, ``:rh-1h`` |
| Observation | a raw reading's value, an hourly mean | ``<datastream>:<epoch ms>`` |

Sensor ids never contain ``:`` (``core/model.py``), so every id decodes back without a lookup.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from heatwatch.core.datafiles import read_toml
from heatwatch.core.measurements import HOURLY, READING, Measurement
from heatwatch.core.model import Sensor
from heatwatch.core.public import public_fields
from heatwatch.core.tabular import iso_z

UCUM = "https://ucum.org/ucum#"
CELSIUS = {"name": "degree Celsius", "symbol": "Cel", "definition": UCUM + "para-30"}
PERCENT = {"name": "percent", "symbol": "%", "definition": UCUM + "para-29"}
MEASUREMENT_TYPE = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


@dataclass(frozen=True, slots=True)
class ObservedProperty:
    id: str
    name: str
    definition: str
    description: str


PROPERTIES: dict[str, ObservedProperty] = {
    "air_temperature": ObservedProperty(
        "air_temperature", "Air temperature", "http://vocab.nerc.ac.uk/standard_name/air_temperature/",
        "Temperature of the air under a radiation shield, 2.5–4 m above the street (CF standard name air_temperature; "
        "QUDT quantity kind http://qudt.org/vocab/quantitykind/Temperature)."),
    "relative_humidity": ObservedProperty(
        "relative_humidity", "Relative humidity", "http://vocab.nerc.ac.uk/standard_name/relative_humidity/",
        "Relative humidity of the air (CF standard name relative_humidity; QUDT quantity kind "
        "http://qudt.org/vocab/quantitykind/RelativeHumidity)."),
}


@dataclass(frozen=True, slots=True)
class StreamKind:
    """One kind of Datastream every sensor has: a field of a stored measurement."""

    code: str
    prop: str
    measurement: Measurement
    field: str
    unit: dict[str, str]
    interval_ms: int | None  # None: instants (raw readings); else the aggregation period
    label: str


KINDS: dict[str, StreamKind] = {k.code: k for k in (
    StreamKind("t", "air_temperature", READING, "temperature", CELSIUS, None, "air temperature, raw readings"),
    StreamKind("rh", "relative_humidity", READING, "humidity", PERCENT, None, "relative humidity, raw readings"),
    StreamKind("t-1h", "air_temperature", HOURLY, "t_mean", CELSIUS, 3600_000,
               "air temperature, hourly mean (quality-controlled)"),
    StreamKind("rh-1h", "relative_humidity", HOURLY, "rh_mean", PERCENT, 3600_000, "relative humidity, hourly mean"),
)}


def datastream_id(sensor: str, kind: str) -> str:
    return f"{sensor}:{kind}"


def split_datastream(ds_id: str) -> tuple[str, StreamKind] | None:
    sensor, _, kind = ds_id.rpartition(":")
    k = KINDS.get(kind)
    return (sensor, k) if sensor and k else None


def split_observation(obs_id: str) -> tuple[str, StreamKind, int] | None:
    head, _, ms = obs_id.rpartition(":")
    found = split_datastream(head)
    if found is None or not ms.isdigit() or len(ms) > 15:
        return None
    return found[0], found[1], int(ms)


def _profiles() -> dict[str, str]:
    """Device profile name → description, from the built-in profiles file (the api does not import ingest)."""
    try:
        raw = read_toml(None, "device_profiles.toml", "device profiles")
    except Exception:  # a broken data file must not take the sensor descriptions down
        return {}
    return {name: str(v.get("description", "")) for name, v in raw.items() if isinstance(v, dict)}


_PAYLOAD_FORMATS = {"native": "heatwatch native JSON over MQTT", "senml": "SenML (RFC 8428) over MQTT"}


class Model:
    """Every entity but Observations, in memory: a town's few hundred sensors at most, rebuilt per request from
    the registry's cached snapshot."""

    def __init__(self, sensors: Iterable[Sensor], towns: dict[str, Any]) -> None:
        self.sensors = {s.id: s for s in sensors}
        self.towns = towns
        self._profiles = _profiles()
        self.public = {sid: public_fields(s) for sid, s in self.sensors.items()}  # the one source of positions

    # ids of each entity set
    def ids(self, entity_set: str) -> list[str]:
        if entity_set == "Things":
            return sorted(self.sensors)
        if entity_set in ("Locations", "FeaturesOfInterest"):
            return sorted(s for s in self.sensors if self._point(s) is not None)
        if entity_set == "HistoricalLocations":
            return sorted(s for s, v in self.sensors.items() if v.installed is not None and self._point(s))
        if entity_set == "Sensors":
            return sorted({self.profile_of(s) for s in self.sensors.values()})
        if entity_set == "ObservedProperties":
            return list(PROPERTIES)
        if entity_set == "Datastreams":
            return [datastream_id(s, k) for s in sorted(self.sensors) for k in KINDS]
        return []

    def exists(self, entity_set: str, eid: str) -> bool:
        if entity_set == "Datastreams":
            d = split_datastream(eid)
            return d is not None and d[0] in self.sensors
        if entity_set == "Sensors":
            return eid in {self.profile_of(s) for s in self.sensors.values()}
        if entity_set == "ObservedProperties":
            return eid in PROPERTIES
        if entity_set == "Things":
            return eid in self.sensors
        if entity_set in ("Locations", "FeaturesOfInterest"):
            return eid in self.sensors and self._point(eid) is not None
        if entity_set == "HistoricalLocations":
            return eid in self.sensors and self.sensors[eid].installed is not None and self._point(eid) is not None
        return False

    def profile_of(self, s: Sensor) -> str:
        return s.device_profile or "unknown"

    def _point(self, sid: str) -> dict[str, Any] | None:
        pub = self.public[sid]
        if pub["latitude"] is None or pub["longitude"] is None:
            return None
        return {"type": "Point", "coordinates": [pub["longitude"], pub["latitude"]]}

    # entity bodies (no control information: the service adds ids and links)
    def body(self, entity_set: str, eid: str) -> dict[str, Any]:
        if entity_set == "Things":
            s, pub = self.sensors[eid], self.public[eid]
            town = self.towns.get(s.town)
            return {"name": pub["name"] or eid,
                    "description": f"heatwatch sensor site {eid} in {town.name if town else s.town}",
                    "properties": {"town": s.town, "site_class": str(s.site_class), "lcz": s.lcz,
                                   "height_m": s.height_m, "owner": s.owner, "network": pub["network"],
                                   "trust": pub["trust"], "retired": s.retired,
                                   "installed": s.installed.isoformat() if s.installed else None,
                                   "position_blurred": pub["position_blurred"]}}
        if entity_set in ("Locations", "FeaturesOfInterest"):
            pub = self.public[eid]
            blurred = pub["position_blurred"]
            desc = ("position of the sensor site" if not blurred else
                    "centre of the grid cell holding the site: a resident's site is never published exactly")
            key = "location" if entity_set == "Locations" else "feature"
            return {"name": pub["name"] or eid, "description": desc, "encodingType": "application/geo+json",
                    key: self._point(eid), "properties": {"position_blurred": blurred}}
        if entity_set == "HistoricalLocations":
            installed = self.sensors[eid].installed
            assert installed is not None
            return {"time": iso_z(int(datetime.combine(installed, time(), UTC).timestamp() * 1000))}
        if entity_set == "Sensors":
            if eid in _PAYLOAD_FORMATS:
                desc = f"a device sending {_PAYLOAD_FORMATS[eid]}"
            elif eid == "unknown":
                desc = "device model not recorded in the registry"
            else:
                desc = self._profiles.get(eid) or f"device profile {eid}"
            return {"name": eid, "description": desc, "encodingType": "text/plain",
                    "metadata": f"heatwatch device profile {eid}: {desc}"}
        if entity_set == "ObservedProperties":
            p = PROPERTIES[eid]
            return {"name": p.name, "definition": p.definition, "description": p.description}
        if entity_set == "Datastreams":
            sid, k = split_datastream(eid)  # type: ignore[misc]
            s = self.sensors[sid]
            pub = self.public[sid]
            props: dict[str, Any] = {"town": s.town, "sensor": sid, "measurement": k.measurement.name,
                                     "field": k.field}
            if k.interval_ms:
                props["aggregation"] = "mean"
                props["period"] = "PT1H"
                props["resultQuality"] = "qc flags of the hour: bits in /v1/qc-flags"
            body: dict[str, Any] = {"name": f"{pub['name'] or sid} — {k.label}",
                                    "description": f"{k.label} of sensor {sid}",
                                    "observationType": MEASUREMENT_TYPE, "unitOfMeasurement": dict(k.unit),
                                    "properties": props}
            point = self._point(sid)
            if point is not None:
                body["observedArea"] = point
            return body
        raise KeyError(entity_set)

    # relations between in-memory entities: (target set, ids, one?)
    def related(self, entity_set: str, eid: str, nav: str) -> tuple[str, list[str], bool] | None:
        if entity_set == "Things":
            if nav in ("Locations", "HistoricalLocations"):
                return nav, [eid] if self.exists(nav, eid) else [], False
            if nav == "Datastreams":
                return nav, [datastream_id(eid, k) for k in KINDS], False
        elif entity_set == "Locations":
            if nav == "Things":
                return nav, [eid], False
            if nav == "HistoricalLocations":
                return nav, [eid] if self.exists(nav, eid) else [], False
        elif entity_set == "HistoricalLocations":
            if nav == "Thing":
                return "Things", [eid], True
            if nav == "Locations":
                return nav, [eid], False
        elif entity_set == "Sensors":
            if nav == "Datastreams":
                return nav, [datastream_id(s.id, k) for s in sorted(self.sensors.values(), key=lambda s: s.id)
                             if self.profile_of(s) == eid for k in KINDS], False
        elif entity_set == "ObservedProperties":
            if nav == "Datastreams":
                return nav, [datastream_id(s, c) for s in sorted(self.sensors) for c, k in KINDS.items()
                             if k.prop == eid], False
        elif entity_set == "Datastreams":
            sid, k = split_datastream(eid)  # type: ignore[misc]
            if nav == "Thing":
                return "Things", [sid], True
            if nav == "Sensor":
                return "Sensors", [self.profile_of(self.sensors[sid])], True
            if nav == "ObservedProperty":
                return "ObservedProperties", [k.prop], True
        return None


#: Navigation properties of each entity set: name → (target set, one?)
NAVIGATION: dict[str, dict[str, tuple[str, bool]]] = {
    "Things": {"Locations": ("Locations", False), "HistoricalLocations": ("HistoricalLocations", False),
               "Datastreams": ("Datastreams", False)},
    "Locations": {"Things": ("Things", False), "HistoricalLocations": ("HistoricalLocations", False)},
    "HistoricalLocations": {"Thing": ("Things", True), "Locations": ("Locations", False)},
    "Sensors": {"Datastreams": ("Datastreams", False)},
    "ObservedProperties": {"Datastreams": ("Datastreams", False)},
    "Datastreams": {"Thing": ("Things", True), "Sensor": ("Sensors", True),
                    "ObservedProperty": ("ObservedProperties", True), "Observations": ("Observations", False)},
    "Observations": {"Datastream": ("Datastreams", True), "FeatureOfInterest": ("FeaturesOfInterest", True)},
    "FeaturesOfInterest": {"Observations": ("Observations", False)},
}
ENTITY_SETS = ("Datastreams", "FeaturesOfInterest", "HistoricalLocations", "Locations", "Observations",
               "ObservedProperties", "Sensors", "Things")
