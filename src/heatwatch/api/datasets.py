"""What each published dataset contains: columns, types, units and descriptions.

One table drives the CSV header, the Parquet schema, the Frictionless ``datapackage.json`` and
the DCAT catalogue, so they cannot disagree. Names match DESIGN.md §3: the measurement,
tag and field names there are the contract with ingest and analytics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from heatwatch.core.influx import AGG_RP, RAW_RP


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


_TIME = Column("time", "datetime", "UTC timestamp (ISO 8601 with Z)")
_TOWN = Column("town", "string", "town id (vitre, saint-omer)", tag=True)
_SENSOR = Column("sensor", "string", "sensor id", tag=True)
_DATE = Column("date", "date", "local calendar day (Europe/Paris) the values describe", derived=True)

READING = Dataset(
    "readings", "reading", RAW_RP, "Relevés bruts de température et d'humidité",
    "Raw temperature and humidity readings as received from each sensor (UTC, °C, %RH).", "CONT",
    (
        _TIME, _TOWN, _SENSOR,
        Column("temperature", "number", "air temperature", "°C"),
        Column("humidity", "number", "relative humidity", "%"),
        Column("battery_v", "number", "battery voltage", "V"),
        Column("rssi", "number", "radio signal strength", "dBm"),
        Column("source", "string", "payload format the reading arrived in"),
    ),
)

HOURLY = Dataset(
    "hourly", "hourly", AGG_RP, "Agrégats horaires par capteur",
    "Hourly statistics per sensor: temperature, humidity, dew point, heat index, humidex and urban heat "
    "island intensity against the town's rural reference.", "HOURLY",
    (
        _TIME, _TOWN, _SENSOR,
        Column("t_mean", "number", "mean temperature over the hour", "°C"),
        Column("t_min", "number", "minimum temperature over the hour", "°C"),
        Column("t_max", "number", "maximum temperature over the hour", "°C"),
        Column("rh_mean", "number", "mean relative humidity", "%"),
        Column("dewpoint", "number", "dew point (Magnus, Alduchov & Eskridge 1996)", "°C"),
        Column("heat_index", "number", "heat index (US NWS Rothfusz regression)", "°C"),
        Column("humidex", "number", "humidex (Environment Canada)", "°C"),
        Column("uhi", "number", "urban heat island intensity: t_mean minus the rural reference", "°C"),
        Column("n", "integer", "number of readings in the hour"),
        Column("qc", "integer", "quality-control flags (bit field, 0 = passed)"),
    ),
)

DAILY = Dataset(
    "daily", "daily", AGG_RP, "Indicateurs journaliers par capteur",
    "Daily indicators per sensor: Tn, Tx, mean temperature and humidity, heat index and humidex maxima, "
    "UHI mean and nocturnal maximum, hours at or above 30 °C, tropical night, coverage.", "DAILY",
    (
        _TIME, _DATE, _TOWN, _SENSOR,
        Column("tn", "number", "daily minimum over the local calendar day "
                                 "(the town IBMn uses Météo-France's 18:00–18:00 UTC window)", "°C"),
        Column("tx", "number", "daily maximum over the local calendar day "
                                 "(the town IBMx uses Météo-France's 06:00–06:00 UTC window)", "°C"),
        Column("t_mean", "number", "daily mean temperature", "°C"),
        Column("rh_mean", "number", "daily mean relative humidity", "%"),
        Column("heat_index_max", "number", "maximum hourly heat index", "°C"),
        Column("humidex_max", "number", "maximum hourly humidex", "°C"),
        Column("uhi_mean", "number", "mean urban heat island intensity", "°C"),
        Column("uhi_night_max", "number",
               "maximum UHI intensity over the night ending this morning (18:00 the day before to 06:00 local)",
               "°C"),
        Column("hours_ge_30", "integer", "hours with hourly mean temperature at or above 30 °C", "h"),
        Column("tropical_night", "boolean", "tropical night: Tn at or above 20 °C"),
        Column("coverage", "number", "share of expected hourly values present", "1"),
        Column("qc", "integer", "quality-control flags (bit field, 0 = passed)"),
    ),
    has_date=True,
)

TOWN_DAILY = Dataset(
    "indices", "town_daily", AGG_RP, "Indices journaliers de la ville (ICU, IBM, canicule)",
    "Daily indices per town: IBMn and IBMx (3-day running means of Tn and Tx, Météo-France), canicule day "
    "flag against the département thresholds, urban heat island mean and maximum, hottest sensor.", "DAILY",
    (
        _TIME, _DATE, _TOWN,
        Column("ibmn", "number", "3-day running mean of daily Tn", "°C"),
        Column("ibmx", "number", "3-day running mean of daily Tx", "°C"),
        Column("canicule", "boolean", "canicule day: IBMn and IBMx at or above the département thresholds"),
        Column("uhi_mean", "number", "mean UHI intensity over urban sensors", "°C"),
        Column("uhi_max", "number", "maximum UHI intensity over urban sensors", "°C"),
        Column("hottest_sensor", "string", "sensor with the highest daily mean temperature"),
        Column("sensors_ok", "integer", "sensors that passed quality control"),
        Column("tropical_nights", "integer", "sensors of the town with a tropical night (Tn ≥ 20 °C)",
               derived=True),
    ),
    has_date=True,
    tag_keys=("town",),
)

ALERT = Dataset(
    "alerts", "alert", AGG_RP, "Alertes",
    "Alerts raised by analytics and ingest (heat thresholds, sensor faults).", "CONT",
    (
        _TIME, _TOWN, _SENSOR,
        Column("kind", "string", "alert kind", tag=True),
        Column("value", "number", "observed value"),
        Column("threshold", "number", "threshold that was crossed"),
        Column("message", "string", "human-readable message"),
        Column("state", "string", "open while the condition lasts, then closed"),
        Column("started", "integer", "when the condition began, epoch ms UTC"),
        Column("ended", "integer", "when it ended, epoch ms UTC (empty while open)"),
    ),
    tag_keys=("town", "sensor", "kind"),
)

DATASETS: dict[str, Dataset] = {d.id: d for d in (READING, HOURLY, DAILY, TOWN_DAILY, ALERT)}
