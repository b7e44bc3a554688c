"""Every measurement heatwatch stores in InfluxDB: the one definition of the stored schema.

Ingest writes ``reading``; analytics writes ``hourly``, ``daily``, ``town_daily``, ``alert`` and the
last-value store ``last_reading``; the api reads them all. Each service derives what it needs from the
:class:`Measurement` objects below — the analytics writer its field types, the aggregate frames their column
order, the readers their statements, the api its datasets (CSV header, Parquet schema, datapackage, OpenAPI
row schemas) — so a field is added or renamed here and nowhere else. ``docs/architecture.md`` describes the
contract.

Conventions of the stored data, whatever the measurement:

* a point is identified by measurement, tags and timestamp (ms precision): rewriting the same key
  overwrites it, which makes every writer idempotent;
* tags are ids only (town, sensor, alert kind), validated against patterns that need no escaping;
  positions and site classes live in the sensor registry, never in tags;
* a field type never changes once written (InfluxDB refuses a point whose field type differs from
  the shard's), hence the fixed :data:`Kind` of each field;
* a value that is not known is left out of the point (line protocol has no null).

The ``qc`` field of the aggregates is a bit field of :class:`QcFlag`; what each flag means and how it
is set is in ``docs/science/qc.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag
from typing import Literal

#: Retention policy of raw readings: its duration is ``HEATWATCH_RAW_RETENTION``; the database default.
RAW_RP = "raw"
#: Retention policy of aggregates, indices and alerts: kept forever.
AGG_RP = "agg"
#: Shard group duration of ``agg``: a year per shard. InfluxDB 1.x gives an INF policy week-long shards, so a year
#: of one sensor's daily rows (what open-data users ask) opened 53 shards; aggregates are small (a town's year of
#: hourly rows is a few million points) and read over long ranges, which long shards serve best.
AGG_SHARD_DURATION = "52w"

Kind = Literal["float", "int", "bool", "str"]


@dataclass(frozen=True, slots=True)
class Tag:
    name: str
    description: str


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: Kind
    description: str
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class Measurement:
    name: str
    rp: str
    description: str
    #: what the point's timestamp stands for
    time: str
    tags: tuple[Tag, ...]
    fields: tuple[Field, ...]

    @property
    def tag_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tags)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def kinds(self) -> dict[str, Kind]:
        """Field name → stored type, in schema order."""
        return {f.name: f.kind for f in self.fields}

    @property
    def columns(self) -> list[str]:
        """Tags, ``time``, fields: the columns of a frame holding points of this measurement."""
        return [*self.tag_names, "time", *self.field_names]

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"measurement {self.name!r} has no field {name!r}")

    def col(self, name: str) -> str:
        """``name`` quoted for InfluxQL, after checking it is a tag or field of this measurement: a
        statement naming a field the schema does not have fails where it is built, not with an
        empty answer."""
        if name not in self.tag_names and name not in self.field_names:
            raise KeyError(f"measurement {self.name!r} has no tag or field {name!r}")
        return f'"{name}"'  # schema names are plain identifiers: nothing to escape


class QcFlag(IntFlag):
    """Reasons a value is not usable; stored as the integer ``qc`` field (bits OR-ed together).

    Rules and parameters: docs/science/qc.md.
    """

    RANGE = 1  # outside the town's seasonal plausible range
    STEP = 2  # jumped away from its level faster than the air can, until it comes back
    SPIKE = 4  # isolated excursion that comes straight back
    PERSISTENCE = 8  # unchanged for hours with readings coming in: stuck sensor or firmware
    SPATIAL_LOW = 16  # town sensor: far colder than its peers; crowd station: CrowdQC+ m2 low
    SPATIAL_HIGH = 32  # town sensor: far warmer than its peers; crowd station: CrowdQC+ m2 high
    AVAILABILITY = 64  # too few readings that local day for daily statistics
    UNPLACED = 128  # no position or site class in the registry: cannot be interpreted
    RADIATION = 256  # warm by day in proportion to the sun, gone at night: sun on the sensor
    DRIFT = 512  # slow monotonic trend against its peers
    MONTH_FLAGGED = 1024  # more than 20 % of the trailing 30 days' hours flagged (CrowdQC+ m3)
    MONTH_CORRELATION = 2048  # trailing 30 days correlate < 0.8 with the peer median (after CrowdQC+ m4)
    MONTH_SPARSE = 4096  # information: < 80 % of the trailing 30 days' hours present (CrowdQC+ o3)


#: Flags that make a single value unusable. AVAILABILITY is about the day and MONTH_SPARSE is
#: information: the hours a half-day sensor did report are still good hourly data.
VALUE_FLAGS = (QcFlag.RANGE | QcFlag.STEP | QcFlag.SPIKE | QcFlag.PERSISTENCE | QcFlag.SPATIAL_LOW
               | QcFlag.SPATIAL_HIGH | QcFlag.UNPLACED | QcFlag.RADIATION | QcFlag.DRIFT | QcFlag.MONTH_FLAGGED
               | QcFlag.MONTH_CORRELATION)
#: Flags that disqualify a whole sensor-day; the value flags of single hours only remove those hours.
DAILY_BLOCKING = (QcFlag.AVAILABILITY | QcFlag.UNPLACED | QcFlag.DRIFT | QcFlag.MONTH_FLAGGED
                  | QcFlag.MONTH_CORRELATION)
#: Flags that are information only: they never make a value or a day unusable.
INFO_FLAGS = QcFlag.MONTH_SPARSE

#: What each flag means, in words: published as the qc bit table (``GET /v1/qc-flags``, the Table Schemas, the
#: datapackage, docs/interop.md); the rules and parameters behind each are in docs/science/qc.md.
QC_FLAG_MEANINGS: dict[QcFlag, str] = {
    QcFlag.RANGE: "outside the town's seasonal plausible range for the month",
    QcFlag.STEP: "jumped away from its level faster than the air can, until it comes back",
    QcFlag.SPIKE: "isolated excursion that comes straight back",
    QcFlag.PERSISTENCE: "unchanged for hours with readings coming in: stuck sensor or firmware",
    QcFlag.SPATIAL_LOW: "town sensor: far colder than its peers; citizen/crowd station: CrowdQC+ m2 low",
    QcFlag.SPATIAL_HIGH: "town sensor: far warmer than its peers; citizen/crowd station: CrowdQC+ m2 high",
    QcFlag.AVAILABILITY: "too few readings that local day for daily statistics",
    QcFlag.UNPLACED: "no position or site class in the registry: cannot be interpreted",
    QcFlag.RADIATION: "warm by day in proportion to the sun, gone at night: sun on the sensor",
    QcFlag.DRIFT: "slow monotonic trend against its peers",
    QcFlag.MONTH_FLAGGED: "more than 20 % of the trailing 30 days' hours flagged (CrowdQC+ m3)",
    QcFlag.MONTH_CORRELATION: "trailing 30 days correlate below 0.8 with the peer median (after CrowdQC+ m4)",
    QcFlag.MONTH_SPARSE: "fewer than 80 % of the trailing 30 days' hours present (CrowdQC+ o3)",
}


@dataclass(frozen=True, slots=True)
class QcFlagInfo:
    """One row of the published qc bit table."""

    bit: int  # the flag's value: a power of two
    name: str
    meaning: str
    value_unusable: bool  # the hourly value is left out of indices
    day_unusable: bool  # the whole sensor-day is left out of daily statistics
    information: bool  # information only: never makes anything unusable


def qc_flag_table() -> list[QcFlagInfo]:
    """The qc bit table, lowest bit first, from :class:`QcFlag` and the flag sets above."""
    return [QcFlagInfo(int(f), f.name or "", QC_FLAG_MEANINGS[f], bool(f & VALUE_FLAGS), bool(f & DAILY_BLOCKING),
                       bool(f & INFO_FLAGS)) for f in QcFlag]


#: The largest value a ``qc`` field can hold: every flag set.
QC_MAX = sum(int(f) for f in QcFlag)

_TOWN = Tag("town", "town id (vitre, saint-omer)")
_SENSOR = Tag("sensor", "sensor id")
_QC = Field("qc", "int", "quality-control flags: a bit field, 0 = passed every check; bits in the qc bit "
             "table (GET /v1/qc-flags)")

READING = Measurement(
    "reading", RAW_RP, "raw readings as received from each sensor, after validation",
    "the instant of the reading (the sensor's own time, else the time of receipt)",
    (_TOWN, _SENSOR),
    (
        Field("temperature", "float", "air temperature", "°C"),
        Field("humidity", "float", "relative humidity", "%"),
        Field("battery_v", "float", "battery voltage", "V"),
        Field("battery_pct", "float", "battery charge remaining, for devices that report percent, not volts", "%"),
        Field("rssi", "float", "radio signal strength", "dBm"),
        Field("source", "str", "payload format the reading arrived in"),
        # After source: the columns exports had before keep their places.
        Field("snr", "float", "LoRaWAN uplinks: signal-to-noise ratio at the gateway with the best RSSI", "dB"),
    ),
)

HOURLY = Measurement(
    "hourly", AGG_RP, "hourly statistics per sensor", "the start of the UTC hour",
    (_TOWN, _SENSOR),
    (
        Field("t_mean", "float", "mean temperature over the hour", "°C"),
        Field("t_min", "float", "minimum temperature over the hour", "°C"),
        Field("t_max", "float", "maximum temperature over the hour", "°C"),
        Field("rh_mean", "float", "mean relative humidity", "%"),
        Field("dewpoint", "float", "dew point (Magnus, Alduchov & Eskridge 1996)", "°C"),
        Field("heat_index", "float", "heat index (US NWS Rothfusz regression)", "°C"),
        Field("humidex", "float", "humidex (Environment Canada)", "°C"),
        Field("uhi", "float", "urban heat island intensity: t_mean minus the rural reference", "°C"),
        Field("n", "int", "number of readings in the hour"),
        _QC,
    ),
)

DAILY = Measurement(
    "daily", AGG_RP, "daily indicators per sensor", "local midnight (town time zone) of the day, in UTC",
    (_TOWN, _SENSOR),
    (
        Field("tn", "float", "minimum over Météo-France's Tn window, 18:00 UTC the day before to 18:00 UTC "
                             "(empty below 80 % of its hours)", "°C"),
        Field("tx", "float", "maximum over Météo-France's Tx window, 06:00 UTC to 06:00 UTC the day after "
                             "(empty below 80 % of its hours or with a sun-struck hour)", "°C"),
        Field("t_mean", "float", "daily mean temperature", "°C"),
        Field("rh_mean", "float", "daily mean relative humidity", "%"),
        Field("heat_index_max", "float", "maximum hourly heat index", "°C"),
        Field("humidex_max", "float", "maximum hourly humidex", "°C"),
        Field("uhi_mean", "float", "mean urban heat island intensity", "°C"),
        Field("uhi_night_max", "float",
              "maximum UHI intensity over the night ending this morning (18:00 the day before to 06:00 local)",
              "°C"),
        Field("hours_ge_30", "int", "hours with hourly mean temperature at or above 30 °C", "h"),
        Field("tropical_night", "bool", "tropical night: tn at or above 20 °C (same window and coverage as IBMn)"),
        Field("coverage", "float", "share of the local day's hours with readings that passed the point checks",
              "1"),
        _QC,
    ),
)

TOWN_DAILY = Measurement(
    "town_daily", AGG_RP, "daily indices per town", "local midnight (town time zone) of the day, in UTC",
    (_TOWN,),
    (
        Field("ibmn", "float", "mean of the reference Tn over D−2…D (trailing, as observed)", "°C"),
        Field("ibmx", "float", "mean of the reference Tx over D−2…D (trailing, as observed)", "°C"),
        Field("canicule", "bool", "canicule day: IBMn and IBMx at or above the département thresholds"),
        Field("ibm_source", "str", "reference the day's IBM came from: station:<NUM_POSTE> or sensors:<ids>"),
        Field("ibm_reason", "str", "why IBM is empty, when it is"),
        Field("tn_ref", "float", "the day's reference Tn (18:00–18:00 UTC)", "°C"),
        Field("tx_ref", "float", "the day's reference Tx (06:00–06:00 UTC)", "°C"),
        Field("ibmn_forward", "float", "mean of the reference Tn over D…D+2, the window of Météo-France's vigilance "
                                       "forecasts, reconstructed from observations", "°C"),
        Field("ibmx_forward", "float", "mean of the reference Tx over D…D+2 (see ibmn_forward)", "°C"),
        Field("canicule_forward", "bool", "ibmn_forward and ibmx_forward at or above the thresholds"),
        Field("uhi_mean", "float", "mean UHI intensity over urban sensors (confirmed citizen sensors weighted, "
                                   "provisional ones left out)", "°C"),
        Field("uhi_max", "float", "maximum UHI intensity over urban sensors", "°C"),
        Field("uhi_source", "str", "rural reference(s) the day's UHI was measured against"),
        Field("hottest_sensor", "str", "sensor with the highest daily mean temperature"),
        Field("sensors_ok", "int", "sensors that passed quality control"),
        # The same without any citizen or crowd sensor: what /v1/indices?network=town shows (docs/citizens.md).
        Field("uhi_mean_town", "float", "uhi_mean over the town's own network only (no citizen data)", "°C"),
        Field("uhi_max_town", "float", "uhi_max over the town's own network only (no citizen data)", "°C"),
        Field("hottest_sensor_town", "str", "hottest_sensor among the town's own network only"),
        Field("sensors_ok_town", "int", "sensors_ok of the town's own network only"),
        # Counted when the day is computed (so recomputes, backfills and erasures keep them right), not by the api
        # reading every sensor-day of a range at each request.
        Field("tropical_nights", "int", "sensors with a tropical night (Tn ≥ 20 °C), among those the town's values "
                                        "count: its own and confirmed citizen sensors"),
        Field("tropical_nights_town", "int", "tropical_nights of the town's own network only (no citizen data)"),
    ),
)

#: One point per lasting condition, stamped at the instant it opened: every later write for the same
#: condition (a worse peak, the close) overwrites that point. ``sensor`` is absent for a town-level alert.
ALERT = Measurement(
    "alert", AGG_RP, "alerts raised by analytics (heat thresholds, sensor faults)",
    "the instant the alert opened",
    (_TOWN, _SENSOR, Tag("kind", "alert kind")),
    (
        Field("value", "float", "observed value"),
        Field("threshold", "float", "threshold that was crossed"),
        Field("message", "str", "human-readable message"),
        Field("state", "str", "open while the condition lasts, then closed"),
        Field("started", "int", "when the condition began, epoch ms UTC"),
        Field("ended", "int", "when it ended, epoch ms UTC (empty while open)"),
    ),
)

#: An official station's hourly series, imported from Météo-France's open climatological files with
#: ``heatwatch reference import`` (docs/science/canicule.md). Values as published; ``q*`` are their quality
#: codes (0 protected, 1 validated, 9 filtered, 2 doubtful: analytics leaves 2 out).
STATION_HOURLY = Measurement(
    "station_hourly", AGG_RP, "official reference station, hourly (Météo-France climatological files)",
    "the row's AAAAMMJJHH, UTC: T at that instant, TN/TX within the hour ending then",
    (Tag("station", "Météo-France station number (NUM_POSTE, 8 digits)"),),
    (
        Field("t", "float", "instantaneous temperature under shelter", "°C"),
        Field("tn", "float", "minimum temperature under shelter within the hour", "°C"),
        Field("tx", "float", "maximum temperature under shelter within the hour", "°C"),
        Field("u", "float", "relative humidity", "%"),
        Field("qt", "int", "quality code of t"),
        Field("qtn", "int", "quality code of tn"),
        Field("qtx", "int", "quality code of tx"),
        Field("qu", "int", "quality code of u"),
    ),
)

#: The last-value store: the newest reading of each sensor, so that "latest" reads one point per sensor instead
#: of scanning readings. One point per (town, sensor) at the fixed time :data:`LAST_READING_TIME`, written by
#: analytics (``analytics/last.py``) only when the reading it holds is newer than the stored one (``ts``): a
#: redelivered message or a backlog flush of older readings never replaces a newer value.
LAST_READING = Measurement(
    "last_reading", AGG_RP, "newest reading of each sensor (the last-value store)",
    "fixed: the epoch (1970-01-01T00:00:00Z), one point per sensor, overwritten; the reading's time is ts",
    (_TOWN, _SENSOR),
    (Field("ts", "int", "time of the reading, epoch ms UTC"), *READING.fields),
)
LAST_READING_TIME = 0
AGGREGATE_CHANGE = Measurement(
    "aggregate_change", AGG_RP, "a range of a town's aggregates just written or deleted by analytics: what a reader "
    "holding them in memory (the api's resident aggregates) reads again",
    "when analytics wrote or deleted them (its clock)",
    (_TOWN,),
    (Field("range_start", "int", "start of the range, epoch ms UTC"),
     Field("range_end", "int", "end of the range (exclusive), epoch ms UTC")),
)

MEASUREMENTS: dict[str, Measurement] = {m.name: m for m in (READING, HOURLY, DAILY, TOWN_DAILY, ALERT,
                                                             STATION_HOURLY, LAST_READING, AGGREGATE_CHANGE)}
#: What one analytics recompute writes, in the order it writes them.
AGGREGATES: tuple[Measurement, ...] = (HOURLY, DAILY, TOWN_DAILY)
