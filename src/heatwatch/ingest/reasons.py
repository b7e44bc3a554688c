"""Reason codes for rejected messages and records: stable strings for counters and dead letters."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    invalid_json = "invalid_json"            # not UTF-8 JSON
    oversized = "oversized"                  # payload above max_payload_bytes
    bad_shape = "bad_shape"                  # JSON of the wrong structure for its format
    bad_topic = "bad_topic"                  # topic levels do not name a valid town/sensor
    unknown_town = "unknown_town"            # town not configured
    unknown_device = "unknown_device"        # LoRaWAN device with no registry mapping and no town for its application
    unknown_profile = "unknown_profile"      # the registry names a device profile that does not exist
    town_mismatch = "town_mismatch"          # a registered sensor's reading arrived under another town
    unknown_unit = "unknown_unit"            # SenML unit heatwatch does not accept
    non_numeric = "non_numeric"              # a measurement that is not a finite number
    no_measurement = "no_measurement"        # a record with neither temperature nor humidity
    temperature_range = "temperature_range"  # outside −40…60 °C
    humidity_range = "humidity_range"        # outside 0…100 %RH
    bad_timestamp = "bad_timestamp"          # unparseable time
    future_timestamp = "future_timestamp"    # more than 5 min ahead of the receipt time
    stale_timestamp = "stale_timestamp"      # older than the backlog window
    sensor_mismatch = "sensor_mismatch"      # topic and payload name different sensors
    influx_rejected = "influx_rejected"      # InfluxDB refused the point itself (400)
