"""What each published dataset contains: columns, types, units and descriptions.

One table drives the CSV header, the Parquet schema, the Table Schemas (:func:`table_schema`), the Frictionless
``datapackage.json``, the DCAT catalogue, the OpenAPI row schemas and the monthly archives analytics writes, so
they cannot disagree. Each dataset is a view of a stored measurement of :mod:`heatwatch.core.measurements` — its
tags and fields, with their types, units and descriptions, come from there — plus what is derived from them (a
local ``date``). It is in the kernel because two services produce
these files: the api exports them on request, analytics writes a town's month of each once the month closes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heatwatch.core.measurements import ALERT as ALERT_M
from heatwatch.core.measurements import DAILY as DAILY_M
from heatwatch.core.measurements import HOURLY as HOURLY_M
from heatwatch.core.measurements import QC_MAX, Kind, Measurement
from heatwatch.core.measurements import READING as READING_M
from heatwatch.core.measurements import TOWN_DAILY as TOWN_DAILY_M
from heatwatch.core.model import RH_MAX, RH_MIN, T_MAX, T_MIN
from heatwatch.core.trust import NETWORKS, TRUSTS


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

    @property
    def per_sensor(self) -> bool:
        """Rows about one sensor each, ending with the sensor's ``network`` and ``trust`` (:data:`SENSOR_TRUST`)."""
        return self.columns[-len(SENSOR_TRUST):] == SENSOR_TRUST


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
#: The last columns of every per-sensor dataset: whose sensor it is and how far its data is trusted
#: (core/trust.py, docs/citizens.md), as the registry says when the file or answer is made.
SENSOR_TRUST = (
    Column("network", "string", "town: the town's own network; citizen: a resident's or crowd station", derived=True),
    Column("trust", "string", "official (the town's), provisional (a citizen sensor on probation: shown, never in "
                              "the town's indices) or confirmed (a citizen sensor counted with the citizen weight)",
           derived=True),
)
_DATE = Column("date", "date", "local calendar day (Europe/Paris) the values describe", derived=True)
READING = from_measurement(
    READING_M, "readings", "Relevés bruts de température et d'humidité",
    "Raw temperature and humidity readings as received from each sensor (UTC, °C, %RH).", "CONT",
    extra=SENSOR_TRUST,
)

HOURLY = from_measurement(
    HOURLY_M, "hourly", "Agrégats horaires par capteur",
    "Hourly statistics per sensor: temperature, humidity, dew point, heat index, humidex and urban heat "
    "island intensity against the town's rural reference.", "HOURLY",
    extra=SENSOR_TRUST,
)

DAILY = from_measurement(
    DAILY_M, "daily", "Indicateurs journaliers par capteur",
    "Daily indicators per sensor: Tn, Tx, mean temperature and humidity, heat index and humidex maxima, "
    "UHI mean and nocturnal maximum, hours at or above 30 °C, tropical night, coverage.", "DAILY",
    has_date=True, extra=SENSOR_TRUST,
)

TOWN_DAILY = from_measurement(
    TOWN_DAILY_M, "indices", "Indices journaliers de la ville (ICU, IBM, canicule)",
    "Daily indices per town: IBMn and IBMx (3-day means of the reference Tn and Tx, Météo-France) with the "
    "reference they came from, canicule day flag against the département thresholds (trailing, and the D…D+2 "
    "reconstruction of the vigilance window), urban heat island mean and maximum, hottest sensor.", "DAILY",
    has_date=True,
)

ALERT = from_measurement(
    ALERT_M, "alerts", "Alertes",
    "Alerts raised by analytics and ingest (heat thresholds, sensor faults).", "CONT",
)

DATASETS: dict[str, Dataset] = {d.id: d for d in (READING, HOURLY, DAILY, TOWN_DAILY, ALERT)}

#: The datasets written as monthly archives, in the order they are listed.
ARCHIVED: tuple[Dataset, ...] = (READING, HOURLY, DAILY, TOWN_DAILY, ALERT)

#: Table Schema's profile URL (Frictionless Table Schema v1).
TABLE_SCHEMA_PROFILE = "tableschema"

# Constraints a value of a column always meets: the validation limits of ingest (core/model.py) for raw readings,
# the bit field's range for qc. Aggregates of validated readings stay within the same limits.
_CONSTRAINTS: dict[str, dict[str, Any]] = {
    "temperature": {"minimum": T_MIN, "maximum": T_MAX},
    "humidity": {"minimum": RH_MIN, "maximum": RH_MAX},
    "qc": {"minimum": 0, "maximum": QC_MAX},
    "coverage": {"minimum": 0, "maximum": 1},
    "n": {"minimum": 0},
    "hours_ge_30": {"minimum": 0, "maximum": 25},
    "network": {"enum": list(NETWORKS)},
    "trust": {"enum": list(TRUSTS)},
}
#: Columns that identify a row, per dataset (Table Schema ``primaryKey``): a stored point's key.
_PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "readings": ("time", "town", "sensor"),
    "hourly": ("time", "town", "sensor"),
    "daily": ("time", "town", "sensor"),
    "indices": ("time", "town"),
}


def table_schema(ds: Dataset, *, decimal: str = ".", local_times: bool = False,
                 qc_flags_url: str | None = None) -> dict[str, Any]:
    """The Frictionless Table Schema of ``ds``'s CSV files: field names, types, units and descriptions from the
    stored schema, constraints from the validation limits, the key of a stored point.

    ``decimal=","``: numbers as a French spreadsheet writes them (``sep=;`` exports); ``local_times``: date-times
    with a UTC offset (``times=local``) rather than ``Z``. ``qc_flags_url`` names where the qc bit table is."""
    fields: list[dict[str, Any]] = []
    for c in ds.columns:
        f: dict[str, Any] = {"name": c.name, "type": c.type, "description": c.description}
        if c.unit:
            f["unit"] = c.unit  # a custom property (the spec allows them); also in the description for readers
            f["description"] = f"{c.description} ({c.unit})"
        if c.type == "number" and decimal != ".":
            f["decimalChar"] = decimal
        if c.type == "datetime":
            # Table Schema's default datetime format is UTC with Z; a local rendering carries its offset.
            f["format"] = "any" if local_times else "default"
            if local_times and c.name == "time":
                f["description"] = "local time with its UTC offset (ISO 8601)"
        if c.name == "qc" and qc_flags_url:
            f["description"] = f"{c.description}: {qc_flags_url}"
        constraints = dict(_CONSTRAINTS.get(c.name, {}))
        if c.tag and c.name in ("town", "sensor") and ds.id != "alerts":
            constraints["required"] = True
        if c.name == "time":
            constraints["required"] = True
        if constraints:
            f["constraints"] = constraints
        fields.append(f)
    schema: dict[str, Any] = {"fields": fields, "missingValues": [""]}
    key = _PRIMARY_KEYS.get(ds.id)
    if key:
        schema["primaryKey"] = list(key)
    return schema


def table_schemas() -> dict[str, dict[str, Any]]:
    """File name → Table Schema of each dataset's CSV files (comma-separated, UTC): what ``schemas/`` holds."""
    return {f"{ds.id}.schema.json": table_schema(ds) for ds in DATASETS.values()}


def write_table_schemas(folder: Path) -> list[Path]:
    """Write :func:`table_schemas` into ``folder`` (the repository's ``schemas/``, regenerated with
    ``python -m heatwatch.core.datasets schemas``); a test keeps the committed files equal to the code."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, schema in table_schemas().items():
        path = folder / name
        path.write_text(json.dumps(schema, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        out.append(path)
    return out


if __name__ == "__main__":
    import sys

    for written in write_table_schemas(Path(sys.argv[1] if len(sys.argv) > 1 else "schemas")):
        print(written)
