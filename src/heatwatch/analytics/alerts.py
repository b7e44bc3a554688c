"""Alert state: one stored alert per lasting condition, opened and closed across evaluations.

Stored as the ``alert`` measurement of :mod:`heatwatch.core.measurements`: the point's timestamp is
the instant the alert **opened**, so every later write for the same condition (a worse peak, the
close) overwrites that one point: a condition lasting three days is one row, never one per
evaluation. ``value`` is the worst value seen while open (highest, or lowest for ``battery``).

Open alerts are read back from InfluxDB at every evaluation (``state = 'open'``), so the state
survives restarts and a second analytics instance sees the same alerts. Each open and close is
published on MQTT ``heat/alerts/<town>`` (QoS 1) as an :class:`~heatwatch.core.topics.AlertEvent`,
after the point is stored: a crash in between loses the notification, never the alert.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import pandas as pd

from heatwatch.core.influx import InfluxClient
from heatwatch.core.lineprotocol import Point
from heatwatch.core.logging import get_logger
from heatwatch.core.measurements import ALERT
from heatwatch.core.thresholds import AlertThresholds
from heatwatch.core.timestamps import iso_ms
from heatwatch.core.topics import AlertEvent, alerts_topic

from .jobs import Analytics
from .metrics import count_open
from .qc import QcConfig
from .reader import read_hourly_qc, read_live, read_town_daily
from .rules import DIRECTION, TOWN, Check, Snapshot, data_lag_s, evaluate, town_silence_rule

log = get_logger("heatwatch.analytics.alerts")

OPEN, CLOSED = "open", "closed"


class Publisher(Protocol):
    def publish(self, topic: str, payload: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class Alert:
    town: str
    sensor: str
    kind: str
    value: float
    threshold: float
    message: str
    started: int
    state: str = OPEN
    ended: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.sensor, self.kind)

    def point(self) -> Point:
        fields: dict[str, Any] = {"value": float(self.value), "threshold": float(self.threshold),
                                  "message": self.message, "state": self.state, "started": int(self.started)}
        if self.ended is not None:
            fields["ended"] = int(self.ended)
        tags = {"town": self.town, "sensor": self.sensor, "kind": self.kind}
        return Point(ALERT.name, tags, fields, self.started)

    def event(self, event: str, ts: int) -> AlertEvent:
        """The MQTT message announcing this alert's opening or closing."""
        return AlertEvent.model_validate({
            "event": event, "town": self.town, "sensor": self.sensor or None, "kind": self.kind, "value": self.value,
            "threshold": self.threshold, "message": self.message, "state": self.state,
            "started": iso_ms(self.started), "ended": iso_ms(self.ended), "ts": ts})


@dataclass(frozen=True, slots=True)
class Change:
    event: str  # "open", "update" (worse peak, not published) or "close"
    alert: Alert


def _worse(kind: str, new: float, old: float) -> bool:
    return new < old if DIRECTION.get(kind, "above") == "below" else new > old


def transition(town: str, open_alerts: Mapping[tuple[str, str], Alert], checks: Sequence[Check],
               now_ms: int, may_open: Callable[[Check], bool] = lambda c: True,
               may_close: bool = True) -> list[Change]:
    """What changes, given the open alerts and the conditions that hold now. Pure.

    ``may_open`` says whether a raised check may open its alert now (the grace rule of :class:`AlertEngine`);
    ``may_close`` False keeps every open alert as it is (the town's data is late: no evidence either way)."""
    holding = {(c.sensor, c.kind): c for c in checks}
    changes: list[Change] = []
    for key, alert in sorted(open_alerts.items()):
        check = holding.get(key)
        if check is None:
            if may_close:
                changes.append(Change("close", replace(alert, state=CLOSED, ended=now_ms)))
        elif _worse(alert.kind, check.value, alert.value):
            changes.append(Change("update", replace(alert, value=check.value, message=check.message)))
    for key, check in sorted(holding.items()):
        if key not in open_alerts and check.raised and may_open(check):
            changes.append(Change("open", Alert(town, check.sensor, check.kind, check.value, check.threshold,
                                                check.message, now_ms)))
    return changes


@dataclass(frozen=True, slots=True)
class Gate:
    """What the grace rule lets one evaluation of a town do (docs/alerts.md, "When an alert may open")."""

    lag_s: float | None  # seconds since the town's newest reading; None: none within the look-back
    lagging: bool  # the town's data is late: per-sensor silence is not evidence, nothing closes
    settled: bool  # past the grace period after the start and after the town's data caught up

    def may_open(self, check: Check, started_ok: bool) -> bool:
        if check.sensor == TOWN and check.kind == "offline":
            return started_ok  # the town's silence is the lag itself: only the start-up grace applies
        return self.settled and not self.lagging


async def load_open(client: InfluxClient, town: str) -> dict[tuple[str, str], Alert]:
    c = ALERT.col
    q = (f"SELECT {c('value')}, {c('threshold')}, {c('message')}, {c('started')} "
         f"FROM {client.table(ALERT)} WHERE {c('town')} = $town AND {c('state')} = $open "
         f"GROUP BY {c('sensor')}, {c('kind')}")
    out: dict[tuple[str, str], Alert] = {}
    for r in await client.query_records(q, {"town": town, "open": OPEN}):
        started = int(r.get("started") or r["time"])
        alert = Alert(town, r.get("sensor") or TOWN, r["kind"], float(r["value"]), float(r["threshold"]),
                      str(r.get("message") or ""), started)
        # Two open points for one condition cannot arise from one runner; if two runners raced,
        # keep the older and let the next close/update settle the other.
        if alert.key not in out or started < out[alert.key].started:
            out[alert.key] = alert
    return out


async def alert_history(client: InfluxClient, town: str) -> list[dict[str, Any]]:
    """Every stored alert of a town, oldest first (tests and diagnostics)."""
    c = ALERT.col
    q = f"SELECT * FROM {client.table(ALERT)} WHERE {c('town')} = $town GROUP BY {c('sensor')}, {c('kind')}"
    rows = await client.query_records(q, {"town": town})
    return sorted(rows, key=lambda r: (r["time"], r.get("sensor") or "", r["kind"]))


class AlertEngine:
    """Evaluates the rules of every town and keeps the alert state in InfluxDB.

    The grace rule (docs/alerts.md): no alert opens for a condition seen only before the service started or while
    a town's data was catching up. ``grace_s`` after ``started`` and after a town's data stops lagging, raised checks
    wait (they open at the first evaluation past it if they still hold); while a town lags (its newest reading is
    older than ``lag_s``), its per-sensor ``offline`` checks give way to one town-level silence check and no alert
    of it closes. ``grace_s=0`` and ``lag_s=None`` (the defaults) evaluate every snapshot on its own.
    """

    def __init__(self, analytics: Analytics, thresholds: AlertThresholds | None = None,
                 publisher: Publisher | None = None, qc: QcConfig | None = None, *, grace_s: float = 0.0,
                 lag_s: float | None = None, started: datetime | None = None) -> None:
        self.analytics = analytics
        self.client = analytics.client
        self.thresholds = thresholds or AlertThresholds()
        self.publisher = publisher
        self.qc = qc or QcConfig()
        self.grace = pd.Timedelta(seconds=grace_s)
        self.lag_s = lag_s
        self.started = pd.Timestamp(started) if started is not None else None
        #: per town, since when its data has been on time (None while it lags, absent before its first evaluation)
        self.settled_since: dict[str, pd.Timestamp | None] = {}
        #: per town, the data lag of the last evaluation (the metrics read it)
        self.lags: dict[str, float | None] = {}
        #: per town, open alerts by kind after the last evaluation (the metrics read it)
        self.open: dict[str, dict[str, int]] = {}

    def gate(self, town: str, snap: Snapshot) -> Gate:
        now = snap.now
        lag = data_lag_s(snap)
        self.lags[town] = lag
        if self.lag_s is None:
            lagging = False
        else:
            lagging = lag is None or lag > self.lag_s
        if lagging:
            self.settled_since[town] = None
        elif self.settled_since.get(town) is None:
            # First evaluation on time: from the start if this is the first one, else from now (a catch-up ended).
            first = town not in self.settled_since
            self.settled_since[town] = (self.started if first and self.started is not None else now)
        since = self.settled_since.get(town)
        settled = since is not None and now - since >= self.grace
        return Gate(lag, lagging, settled)

    async def snapshot(self, town: str, now: pd.Timestamp) -> Snapshot:
        th = self.thresholds
        sensors = self.analytics.sensors(town)
        ctx = self.analytics.context(town)
        # Live medians leave out what QC's seasonal range would flag this month (docs/science/qc.md).
        lo, hi = ctx.qc.range_bounds(np.array([now.tz_convert(ctx.timezone).month]))
        live = await read_live(
            self.client, town, now - pd.Timedelta(seconds=th.live_window_s), now,
            now - pd.Timedelta(seconds=th.seen_lookback_s), (float(lo[0]), float(hi[0])))
        hourly = await read_hourly_qc(self.client, town, now - pd.Timedelta(hours=th.qc_hours + 1), now)
        town_daily = await read_town_daily(self.client, town, now - pd.Timedelta(days=4), now)
        expected = frozenset(s.id for s in sensors if not s.retired)
        return Snapshot(ctx, now, live, hourly, town_daily, expected, th)

    async def evaluate(self, now: datetime) -> list[Change]:
        now_ts = pd.Timestamp(now)
        now_ms = int(now_ts.value // 1_000_000)
        changes: list[Change] = []
        started_ok = self.started is None or now_ts - self.started >= self.grace
        for town in self.analytics.towns:
            snap = await self.snapshot(town, now_ts)
            gate = self.gate(town, snap)
            checks = evaluate(snap)
            if gate.lagging:
                checks = [c for c in checks if c.kind != "offline"] + town_silence_rule(snap, gate.lag_s)
            open_alerts = await load_open(self.client, town)
            town_changes = transition(town, open_alerts, checks, now_ms,
                                      lambda c, g=gate: g.may_open(c, started_ok), may_close=not gate.lagging)
            waiting = sum(1 for c in checks if c.raised and (c.sensor, c.kind) not in open_alerts
                          and not gate.may_open(c, started_ok))
            if waiting:
                log.info("alert.deferred", town=town, checks=waiting, lagging=gate.lagging,
                         lag_s=None if gate.lag_s is None else round(gate.lag_s))
            if town_changes:
                await self.client.write_points([c.alert.point() for c in town_changes], rp=ALERT.rp)
            for c in town_changes:
                if c.event == "update":
                    continue
                log.info("alert." + c.event, town=town, sensor=c.alert.sensor, kind=c.alert.kind,
                         value=round(c.alert.value, 3), threshold=c.alert.threshold)
                if self.publisher is not None:
                    self.publisher.publish(alerts_topic(town), c.alert.event(c.event, now_ms).encode())
            changes.extend(town_changes)
            still = set(open_alerts)
            for c in town_changes:
                if c.event == "open":
                    still.add(c.alert.key)
                elif c.event == "close":
                    still.discard(c.alert.key)
            self.open[town] = count_open(still)
        return changes
