"""Prometheus metrics of one ingester, in a registry of its own (several may share a process in tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class IngestMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter("heatwatch_ingest_messages_received", "MQTT messages received", registry=r)
        self.stored = Counter("heatwatch_ingest_readings_stored", "readings made durable (InfluxDB or spool)",
                              registry=r)
        self.rejected = Counter("heatwatch_ingest_rejected", "records rejected, by reason", ["reason"], registry=r)
        self.acked = Counter("heatwatch_ingest_messages_acked", "messages acknowledged to the broker", registry=r)
        self.spool_depth = Gauge("heatwatch_ingest_spool_batches", "batches waiting in the spool", registry=r)
        self.spool_bytes = Gauge("heatwatch_ingest_spool_bytes", "bytes waiting in the spool", registry=r)
        self.spool_full = Gauge("heatwatch_ingest_spool_full", "1 while acks are held because the spool is full",
                                registry=r)
        self.write_latency = Histogram("heatwatch_ingest_write_seconds", "InfluxDB write latency", registry=r,
                                       buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.batch_size = Histogram("heatwatch_ingest_batch_readings", "readings per batch", registry=r,
                                    buckets=(1, 10, 50, 100, 500, 1000, 2500, 5000, 10000))
        self.reconnects = Counter("heatwatch_ingest_mqtt_connects", "MQTT (re)connections", registry=r)
        self.inbox = Gauge("heatwatch_ingest_inbox", "messages received, not yet processed", registry=r)
