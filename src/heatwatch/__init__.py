"""heatwatch: urban heat island measurement for French towns.

Three services (``ingest``, ``analytics``, ``api``) share the small kernel in
:mod:`heatwatch.core` and meet only in InfluxDB and on MQTT.
"""

__version__ = "0.1.0"
