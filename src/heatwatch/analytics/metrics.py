"""Prometheus metrics of analytics (docs/operations.md, "Monitoring"), in a registry of the service's own.

* per job (``hourly``, ``daily``, ``alerts``, ``last``, ``catchup``…): run durations, runs by outcome and the time of
  the last success — a job that keeps failing or stopped running shows as a growing "time since last success";
* per town: the data lag (now − the newest reading, from the last-value store the service keeps: computed at
  scrape time, so it grows while nothing arrives), QC flag rates over the newest 24 hours computed, open alerts
  by kind.

Served by :func:`serve_metrics` on a listener of its own (``HEATWATCH_ANALYTICS_METRICS_HOST``/``_PORT``, loopback by
default).
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from threading import Thread
from typing import Any
from wsgiref.simple_server import WSGIServer

import pandas as pd
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from heatwatch.core.logging import get_logger
from heatwatch.core.measurements import QcFlag

from .rules import DIRECTION

log = get_logger("heatwatch.analytics")

#: Seconds: from the 30-second last-value refresh to a catch-up over weeks of readings.
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
#: The QC window of the flag rates: the newest hours computed for a town.
QC_WINDOW = pd.Timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class QcWindow:
    """QC flags of one town's newest computed sensor-hours (those with readings) within :data:`QC_WINDOW`."""

    newest: pd.Timestamp
    hours: int
    flagged: dict[str, int]  # flag name -> sensor-hours carrying it


def qc_window(hourly: pd.DataFrame) -> QcWindow | None:
    """The flag counts of the newest 24 hours of an hourly aggregate frame (``time``, ``n``, ``qc``)."""
    if hourly.empty or not {"time", "n", "qc"} <= set(hourly.columns):
        return None
    rows = hourly[hourly["n"] > 0]
    if rows.empty:
        return None
    newest = pd.Timestamp(rows["time"].max())
    recent = rows[rows["time"] > newest - QC_WINDOW]
    bits = recent["qc"].astype("int64")
    return QcWindow(newest, len(recent), {f.name or str(int(f)): int(((bits & int(f)) != 0).sum()) for f in QcFlag})


#: town -> newest reading time (ms); town -> kind -> open alerts. Called at scrape time, from the listener's thread.
Newest = Callable[[], Mapping[str, int]]
OpenAlerts = Callable[[], Mapping[str, Mapping[str, int]]]


class AnalyticsMetrics:
    def __init__(self, newest: Newest | None = None, open_alerts: OpenAlerts | None = None) -> None:
        self.registry = r = CollectorRegistry()
        self.job_duration = Histogram("heatwatch_analytics_job_duration_seconds", "duration of a job run", ["job"],
                                      buckets=BUCKETS, registry=r)
        self.job_runs = Counter("heatwatch_analytics_job_runs", "job runs by outcome (success, failure)",
                                ["job", "outcome"], registry=r)
        self.job_last_success = Gauge("heatwatch_analytics_job_last_success_timestamp_seconds",
                                      "when a run of the job last succeeded (Unix time)", ["job"], registry=r)
        self.qc_hours = Gauge("heatwatch_analytics_qc_hours",
                              "sensor-hours with readings in the newest 24 hours computed", ["town"], registry=r)
        self.qc_flagged = Gauge("heatwatch_analytics_qc_flagged_ratio",
                                "share of those sensor-hours carrying each QC flag (docs/science/qc.md)",
                                ["town", "flag"], registry=r)
        self._qc_newest: dict[str, pd.Timestamp] = {}
        r.register(_TownCollector(newest or dict, open_alerts or dict))

    def job(self, name: str, seconds: float, ok: bool) -> None:
        self.job_duration.labels(name).observe(seconds)
        self.job_runs.labels(name, "success" if ok else "failure").inc()
        if ok:
            self.job_last_success.labels(name).set(time.time())

    def qc(self, town: str, window: QcWindow | None) -> None:
        """A run's QC window; kept only when it is at least as new as the one shown (a backfill of an old summer
        does not replace today's rates)."""
        if window is None or window.hours == 0:
            return
        shown = self._qc_newest.get(town)
        if shown is not None and window.newest < shown:
            return
        self._qc_newest[town] = window.newest
        self.qc_hours.labels(town).set(window.hours)
        for flag, n in window.flagged.items():
            self.qc_flagged.labels(town, flag).set(n / window.hours)


class _TownCollector(Collector):
    def __init__(self, newest: Newest, open_alerts: OpenAlerts) -> None:
        self.newest = newest
        self.open_alerts = open_alerts

    def collect(self) -> Iterator[Any]:
        now = time.time()
        newest = GaugeMetricFamily("heatwatch_analytics_newest_reading_timestamp_seconds",
                                   "time of the newest stored reading of the town (Unix time)", labels=["town"])
        lag = GaugeMetricFamily("heatwatch_analytics_data_lag_seconds",
                                "now minus the time of the town's newest stored reading", labels=["town"])
        for town, ms in sorted(self.newest().items()):
            newest.add_metric([town], ms / 1000)
            lag.add_metric([town], max(0.0, now - ms / 1000))
        yield newest
        yield lag
        alerts = GaugeMetricFamily("heatwatch_analytics_alerts_open", "open alerts by town and kind (at the last "
                                   "evaluation)", labels=["town", "kind"])
        for town, kinds in sorted(self.open_alerts().items()):
            for kind in sorted(set(DIRECTION) | set(kinds)):
                alerts.add_metric([town, kind], kinds.get(kind, 0))
        yield alerts


def newest_per_town(known: Mapping[tuple[str, str], int] | None, towns: Mapping[str, Any]) -> dict[str, int]:
    """town -> its newest reading time (ms), from the last-value store's (town, sensor) -> time."""
    out: dict[str, int] = {}
    # A copy first: the event loop may update the store while the listener's thread reads it.
    for (town, _sensor), ts in dict(known or {}).items():
        if town in towns and ts > out.get(town, -1):
            out[town] = ts
    return out


def count_open(keys: Any) -> dict[str, int]:
    """kind -> open alerts, from (sensor, kind) keys."""
    return dict(Tally(kind for _sensor, kind in keys))


def serve_metrics(metrics: AnalyticsMetrics, host: str, port: int) -> tuple[WSGIServer, Thread]:
    """``/metrics`` on its own listener (a thread: it answers while a long job holds the event loop)."""
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    log.info("analytics.metrics_listening", host=host, port=server.server_port)
    return server, thread
