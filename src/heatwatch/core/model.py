"""The reading, sensor and town model shared by the three services.

``Reading`` is a slotted dataclass rather than a pydantic model: ingest builds tens of
thousands a second and validates them by hand in the decoders, where each rejection needs
its own reason code anyway. ``Sensor`` and ``Town`` are pydantic models: they come from
files and HTTP bodies and are few.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, field_validator

SENSOR_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
TOWN_ID_RE = re.compile(r"[a-z][a-z0-9-]{0,63}")

# Physical plausibility limits of ingest's validation (docs/architecture.md, MQTT topics) and of QC's range
# test (docs/science/qc.md).
T_MIN, T_MAX = -40.0, 60.0
RH_MIN, RH_MAX = 0.0, 100.0


def valid_sensor_id(value: str) -> bool:
    return SENSOR_ID_RE.fullmatch(value) is not None


def valid_town_id(value: str) -> bool:
    return TOWN_ID_RE.fullmatch(value) is not None


# Words heatwatch itself uses as MQTT topic levels where a town or sensor id would stand
# (heat/alerts/<town>, heatwatch/live/<town>, ...): a town or sensor with one of these ids would
# make its topics ambiguous, or let a sensor account publish on a topic that is not its own.
RESERVED_IDS = frozenset({"alerts", "live", "recompute", "done", "heat", "heatwatch", "senml", "v3", "devices",
                          "application", "device", "event", "up", "rx", "all"})

_EUI_SEPARATORS = re.compile(r"[-:\s]")
_EUI_RE = re.compile(r"[0-9A-Fa-f]{16}")


def normalize_eui(value: str) -> str | None:
    """The DevEUI a string spells, as 16 upper-case hex digits; None when it spells none.

    Accepts any case and the usual separators (``a8-40-41-..``, ``A8:40:41:..``, ``A840 414E ...``),
    and The Things Stack's default device id ``eui-<deveui>``.
    """
    if len(value) == 16 and _EUI_RE.fullmatch(value):  # what TTS and ChirpStack send: no work beyond this
        return value.upper()
    v = value.strip()
    if v[:4].lower() == "eui-":
        v = v[4:]
    v = _EUI_SEPARATORS.sub("", v)
    return v.upper() if len(v) == 16 and _EUI_RE.fullmatch(v) else None


@dataclass(slots=True)
class Reading:
    """One observation of one sensor. ``ts_ms`` is UTC epoch milliseconds."""

    town: str
    sensor: str
    ts_ms: int
    temperature: float | None = None
    humidity: float | None = None
    battery_v: float | None = None
    rssi: float | None = None
    source: str | None = None
    battery_pct: float | None = None  # charge remaining, for devices that report percent and not volts
    snr: float | None = None  # LoRaWAN: signal-to-noise ratio at the gateway that heard the uplink best, dB

    def to_line(self) -> str:
        """Line protocol for the ``reading`` measurement.

        Town and sensor ids are validated against patterns that exclude every character
        line protocol would need escaped, so this hot path skips escaping on purpose.
        """
        fields = []
        if self.temperature is not None:
            fields.append(f"temperature={self.temperature!r}")
        if self.humidity is not None:
            fields.append(f"humidity={self.humidity!r}")
        if self.battery_v is not None:
            fields.append(f"battery_v={self.battery_v!r}")
        if self.battery_pct is not None:
            fields.append(f"battery_pct={self.battery_pct!r}")
        if self.rssi is not None:
            fields.append(f"rssi={self.rssi!r}")
        if self.source is not None:
            fields.append(f'source="{self.source}"')
        if self.snr is not None:  # after source, in the stored schema's order
            fields.append(f"snr={self.snr!r}")
        return f"reading,sensor={self.sensor},town={self.town} {','.join(fields)} {self.ts_ms}"

    @property
    def key(self) -> tuple[str, str, int]:
        """What InfluxDB identifies the point by: rewriting the same key overwrites."""
        return (self.town, self.sensor, self.ts_ms)


class SiteClass(StrEnum):
    urban = "urban"
    suburban = "suburban"
    park = "park"
    water = "water"
    rural_reference = "rural_reference"
    unplaced = "unplaced"


#: What each site class means (the registry's ``site_class``); published in ``GET /v1/codes``.
SITE_CLASS_MEANINGS: dict[SiteClass, str] = {
    SiteClass.urban: "street or square in the built-up town",
    SiteClass.suburban: "residential outskirts, detached houses and gardens",
    SiteClass.park: "inside a park or a large green space",
    SiteClass.water: "by a river, canal or lake",
    SiteClass.rural_reference: "outside the town, the rural reference the urban heat island is measured against",
    SiteClass.unplaced: "position or site class not known yet: kept out of indices until placed",
}

#: Local Climate Zones (Stewart & Oke 2012, Bull. Amer. Meteor. Soc. 93, 1879–1900): the registry's ``lcz``, written
#: "LCZ 2", "LCZ B"…; published in ``GET /v1/codes``.
LCZ_CLASSES: dict[str, str] = {
    "LCZ 1": "compact high-rise", "LCZ 2": "compact midrise", "LCZ 3": "compact low-rise",
    "LCZ 4": "open high-rise", "LCZ 5": "open midrise", "LCZ 6": "open low-rise",
    "LCZ 7": "lightweight low-rise", "LCZ 8": "large low-rise", "LCZ 9": "sparsely built",
    "LCZ 10": "heavy industry", "LCZ A": "dense trees", "LCZ B": "scattered trees", "LCZ C": "bush, scrub",
    "LCZ D": "low plants", "LCZ E": "bare rock or paved", "LCZ F": "bare soil or sand", "LCZ G": "water",
}


class Sensor(BaseModel):
    """A sensor as the registry knows it. Position and site class never go into InfluxDB tags."""

    id: str = Field(pattern=f"^{SENSOR_ID_RE.pattern}$")
    town: str = Field(pattern=f"^{TOWN_ID_RE.pattern}$")
    name: str = ""
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    site_class: SiteClass = SiteClass.unplaced
    lcz: str | None = Field(default=None, description="Local Climate Zone (Stewart & Oke 2012), e.g. 'LCZ 2'")
    height_m: float | None = Field(default=None, ge=0, le=100)
    owner: str = "town"
    installed: date | None = None
    device_profile: str | None = None
    mqtt_identity: str | None = Field(
        default=None, description="network identity: a LoRaWAN DevEUI (any case, separators allowed), a The Things "
                                   "Stack device_id or a ChirpStack device name")
    retired: bool = False
    # Participatory science (docs/citizens.md): citizen and crowd sensors earn trust; the town's own network is
    # official (None here).
    trust: Literal["provisional", "confirmed"] | None = Field(
        default=None, description="citizen/crowd sensors: provisional until they have passed quality control for "
                                  "the probation period, then confirmed; empty for the town's own network")
    trust_since: date | None = Field(default=None, description="when the sensor entered its trust state")
    licence: str | None = Field(default=None, description="licence of this sensor's data where it differs from the "
                                                          "instance's (e.g. ODbL-1.0 for sensor.community)")
    provenance: str | None = Field(default=None, max_length=200,
                                   description="where the sensor comes from: contributor, sensor.community:<id>, "
                                               "import")

    @property
    def placed(self) -> bool:
        return self.site_class is not SiteClass.unplaced and self.latitude is not None

    @property
    def is_reference(self) -> bool:
        return self.site_class is SiteClass.rural_reference


class CaniculeThresholds(BaseModel):
    ibmn: float = Field(description="threshold on the 3-day mean of Tn, °C")
    ibmx: float = Field(description="threshold on the 3-day mean of Tx, °C")
    source: str


class ReferenceConfig(BaseModel):
    """Where a town's canicule indices and urban heat island take their rural reference from.

    ``station``: a Météo-France station (8-digit NUM_POSTE) whose hourly series is imported with
    ``heatwatch reference import``. ``ibm_sources`` / ``uhi_sources``: the sources tried in order,
    day by day for IBMn/IBMx and hour by hour for the UHI (docs/science/canicule.md, uhi.md).
    """

    station: str | None = Field(default=None, pattern=r"^\d{8}$")
    station_name: str | None = None
    station_source: str | None = Field(default=None, description="where the station id was checked")
    ibm_sources: list[Literal["station", "sensors"]] = Field(default_factory=lambda: ["station", "sensors"],
                                                             min_length=1)
    uhi_sources: list[Literal["sensors", "station"]] = Field(default_factory=lambda: ["sensors"], min_length=1)


class Publisher(BaseModel):
    """Who publishes a town's data in the DCAT catalogue (data.gouv.fr shows it as the organisation), and whom to
    contact about it. Unset fields fall back to the api's producer and contact (``HEATWATCH_API_*``)."""

    name: str | None = Field(default=None, description="the organisation, e.g. 'Ville de Vitré'")
    url: str | None = Field(default=None, pattern=r"^https?://", description="its web site")
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$", description="contact point e-mail")
    contact: str | None = Field(default=None, description="contact point name (a service, not a person)")


class Town(BaseModel):
    id: str = Field(pattern=f"^{TOWN_ID_RE.pattern}$")
    name: str
    insee: str = Field(pattern=r"\d[0-9AB]\d{3}")
    departement: str
    timezone: str = "Europe/Paris"
    latitude: float
    longitude: float
    canicule: CaniculeThresholds
    reference_sensors: list[str] = Field(default_factory=list)
    reference: ReferenceConfig = Field(default_factory=ReferenceConfig)
    publisher: Publisher = Field(default_factory=Publisher)
    #: QC seasonal range per calendar month, 12 [low, high] pairs in °C (docs/science/qc.md)
    qc_range_c: list[tuple[float, float]] | None = Field(default=None, min_length=12, max_length=12)

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v in RESERVED_IDS:
            raise ValueError(f"town id {v!r} is a word heatwatch uses in its topics "
                             f"({', '.join(sorted(RESERVED_IDS))})")
        return v

    @field_validator("reference_sensors")
    @classmethod
    def _ids(cls, v: list[str]) -> list[str]:
        for s in v:
            if not valid_sensor_id(s):
                raise ValueError(f"invalid sensor id {s!r}")
        return v
