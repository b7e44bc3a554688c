"""What each published dataset contains: columns, types, units and descriptions.

One table drives the CSV header, the Parquet schema, the Frictionless ``datapackage.json``, the DCAT
catalogue and the OpenAPI row schemas, so they cannot disagree. Each dataset is a view of a stored
measurement of :mod:`heatwatch.core.measurements` — its tags and fields, with their types, units and
descriptions, come from there — plus what the api itself adds (a local ``date``, derived counts).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from heatwatch.core.measurements import ALERT as ALERT_M
from heatwatch.core.measurements import DAILY as DAILY_M
from heatwatch.core.measurements import HOURLY as HOURLY_M
from heatwatch.core.measurements import READING as READING_M
from heatwatch.core.measurements import TOWN_DAILY as TOWN_DAILY_M
from heatwatch.core.measurements import Kind, Measurement


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str  # Frictionless type: datetime, date, string, number, integer, boolean
    description: str
    unit: str | None = None
    tag: bool = False  # an InfluxDB tag rather than a field
    derived: bool = False  # computed by the API (not selected from InfluxDB)


@dataclass(frozen=True, slots=True)
class Dataset:
    id: str
    measurement: str
    rp: str
    title: str
    description: str
    frequency: str  # DCAT / EU frequency vocabulary term
    columns: tuple[Column, ...]
    has_date: bool = False
    tag_keys: tuple[str, ...] = field(default=("town", "sensor"))

    @property
    def fields(self) -> list[str]:
        return [c.name for c in self.columns if not c.tag and not c.derived and c.name != "time"]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


#: Stored field type → Frictionless (and JSON) column type.
FRICTIONLESS: dict[Kind, str] = {"float": "number", "int": "integer", "bool": "boolean", "str": "string"}


def stored_columns(m: Measurement) -> tuple[list[Column], list[Column]]:
    """(tag columns, field columns) of a measurement, as the stored schema describes them."""
    tags = [Column(t.name, "string", t.description, tag=True) for t in m.tags]
    fields = [Column(f.name, FRICTIONLESS[f.kind], f.description, f.unit) for f in m.fields]
    return tags, fields


def from_measurement(m: Measurement, id: str, title: str, description: str, frequency: str, *,
                     has_date: bool = False, extra: tuple[Column, ...] = ()) -> Dataset:
    """A dataset of every tag and field of ``m``: time, [local date], tags, fields, then ``extra``."""
    tags, fields = stored_columns(m)
    head = [_TIME, _DATE] if has_date else [_TIME]
    return Dataset(id, m.name, m.rp, title, description, frequency, (*head, *tags, *fields, *extra),
                   has_date=has_date, tag_keys=m.tag_names)


_TIME = Column("time", "datetime", "UTC timestamp (ISO 8601 with Z)")
_DATE = Column("date", "date", "local calendar day (Europe/Paris) the values describe", derived=True)
READING = from_measurement(
    READING_M, "readings", "Relevés bruts de température et d'humidité",
    "Raw temperature and humidity readings as received from each sensor (UTC, °C, %RH).", "CONT",
)

HOURLY = from_measurement(
    HOURLY_M, "hourly", "Agrégats horaires par capteur",
    "Hourly statistics per sensor: temperature, humidity, dew point, heat index, humidex and urban heat "
    "island intensity against the town's rural reference.", "HOURLY",
)

DAILY = from_measurement(
    DAILY_M, "daily", "Indicateurs journaliers par capteur",
    "Daily indicators per sensor: Tn, Tx, mean temperature and humidity, heat index and humidex maxima, "
    "UHI mean and nocturnal maximum, hours at or above 30 °C, tropical night, coverage.", "DAILY",
    has_date=True,
)

TOWN_DAILY = from_measurement(
    TOWN_DAILY_M, "indices", "Indices journaliers de la ville (ICU, IBM, canicule)",
    "Daily indices per town: IBMn and IBMx (3-day means of the reference Tn and Tx, Météo-France) with the "
    "reference they came from, canicule day flag against the département thresholds (trailing, and the D…D+2 "
    "reconstruction of the vigilance window), urban heat island mean and maximum, hottest sensor.", "DAILY",
    has_date=True,
    extra=(Column("tropical_nights", "integer", "sensors of the town with a tropical night (Tn ≥ 20 °C)",
                  derived=True),),
)

ALERT = from_measurement(
    ALERT_M, "alerts", "Alertes",
    "Alerts raised by analytics and ingest (heat thresholds, sensor faults).", "CONT",
)

DATASETS: dict[str, Dataset] = {d.id: d for d in (READING, HOURLY, DAILY, TOWN_DAILY, ALERT)}
