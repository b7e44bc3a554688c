"""The analytics service: APScheduler 3 (AsyncIOScheduler) running the jobs of :mod:`.jobs` and the
alert evaluation of :mod:`.alerts` on one event loop.

Missed runs: APScheduler only knows about runs it missed while running (the loop was busy, e.g.
during the start-up catch-up); ``coalesce`` folds a backlog of them into one run and
``misfire_grace_time`` lets a late run still happen. Runs missed while the process was down are
the catch-up's business: every hourly run, and one at start, begins from the newest stored
hour when that is older than its usual span (:meth:`Analytics.hourly_run`).
Every job is idempotent, so running one late or twice costs time, never correctness.

Recompute requests from the api arrive on MQTT (:mod:`.requests`) and run the backfill code path on
the same loop, alongside the jobs; the per-town locks of :class:`Analytics` keep a request and a
scheduled run of the same town from interleaving.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from heatwatch.core.contributors import ContributorStore
from heatwatch.core.influx import InfluxClient
from heatwatch.core.logging import get_logger
from heatwatch.core.registry import Registry
from heatwatch.core.settings import AnalyticsSettings
from heatwatch.core.trust import network_of

from .alerts import AlertEngine, Publisher
from .archives import Archiver
from .backfill import backfill
from .erase import describe, erase_sensor
from .jobs import Analytics, RunStats, day_span
from .last import LastReadings
from .metrics import AnalyticsMetrics, newest_per_town
from .notify import Dispatcher
from .reader import read_hourly_history
from .requests import RecomputeRequest, RecomputeRequests
from .sensorcommunity import ImportReport, boxes_for, pull
from .trust import TrustRules, Verdict, apply, review
from .writer import replace_range

log = get_logger("heatwatch.analytics")

HOURLY_MINUTE = 5  # a few minutes after the hour, so the last readings of the hour have arrived
DAILY_AT = (6, 20)  # UTC: after the Tx window of yesterday closed at 06:00 UTC
ARCHIVE_AT = (6, 40)  # UTC: after the daily job redid the last days
STOP_GRACE_S = 20.0


def utcnow() -> datetime:
    return datetime.now(UTC)


class AnalyticsService:
    def __init__(self, settings: AnalyticsSettings, client: InfluxClient, registry: Registry | None = None,
                 publisher: Publisher | None = None, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.analytics = Analytics(client, settings.towns, registry, citizen_weight=settings.analytics_citizen_weight,
                                   data_dir=settings.data_dir)
        self.alerts = AlertEngine(self.analytics, settings.alert_thresholds, publisher,
                                  grace_s=settings.alert_grace_s, lag_s=settings.alert_lag_s, started=clock())
        self.last = LastReadings(client)
        self.archiver = Archiver(client, settings.towns, settings.data_dir,
                                 delay_days=settings.analytics_archive_delay_days,
                                 recheck_months=settings.analytics_archive_recheck_months, clock=clock,
                                 registry=registry)
        self.notify = Dispatcher.from_settings(client, settings) if settings.notify_enabled else None
        self._last_since_ms: int | None = None
        # Prometheus (analytics/metrics.py): jobs timed in _guard; lag and open alerts read at scrape time.
        self.metrics = AnalyticsMetrics(lambda: newest_per_town(self.last.known, self.analytics.towns),
                                        lambda: self.alerts.open)
        self.clock = clock
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._running: set[asyncio.Task[Any]] = set()

    # Jobs ------------------------------------------------------------------------------

    async def _guard(self, name: str, work: Callable[[], Awaitable[Any]]) -> None:
        """Run one job: log its outcome, never let an exception kill the scheduler."""
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        started = self.clock()
        t0 = time.perf_counter()
        try:
            result = await work()
            for s in result if isinstance(result, list) else []:
                if isinstance(s, RunStats):
                    self.metrics.qc(s.town, s.qc)
                    if s.readings:
                        log.info(f"analytics.{name}.town", **s.as_log())
            log.info(f"analytics.{name}.done", seconds=round((self.clock() - started).total_seconds(), 3))
            self.metrics.job(name, time.perf_counter() - t0, ok=True)
        except asyncio.CancelledError:
            log.warning(f"analytics.{name}.cancelled")
            raise
        except Exception as exc:  # a failed run is retried by the next one: log and go on
            log.error(f"analytics.{name}.failed", error=repr(exc))
            self.metrics.job(name, time.perf_counter() - t0, ok=False)
        finally:
            if task is not None:
                self._running.discard(task)

    async def hourly(self) -> None:
        st = self.settings
        await self._guard("hourly", lambda: self.analytics.hourly_run(
            self.clock(), st.analytics_recompute_hours, st.analytics_catchup_max_days))
        # Readings that arrived hours after they were taken: the recompute window, once an hour.
        await self.refresh_last(st.analytics_recompute_hours * 3600_000)

    async def refresh_last(self, span_ms: int | None = None) -> None:
        """The last-value store up to date: over ``span_ms`` of reading time, else since the previous refresh
        (with one interval of overlap: a reading stored while the previous refresh ran is read again)."""
        now_ms = int(self.clock().timestamp() * 1000)
        if span_ms is not None:
            since = now_ms - span_ms
        elif self._last_since_ms is not None:
            since = self._last_since_ms - 2 * self.settings.analytics_last_interval_s * 1000
        else:
            since = now_ms - self.settings.analytics_catchup_max_days * 86_400_000

        # Not through _guard: every 30 s, a "done" line each time would drown the log. Updates and failures only.
        t0 = time.perf_counter()
        try:
            n = await self.last.refresh(since, now_ms)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # retried by the next refresh, which starts from the same point
            log.error("analytics.last.failed", error=repr(exc))
            self.metrics.job("last", time.perf_counter() - t0, ok=False)
            return
        self.metrics.job("last", time.perf_counter() - t0, ok=True)
        if span_ms is None:
            self._last_since_ms = now_ms
        if n:
            log.info("analytics.last.updated", sensors=n)

    async def daily(self) -> None:
        await self._guard("daily", lambda: self.analytics.daily_run(self.clock(), self.settings.analytics_daily_days))
        await self._guard("trust", self.review_trust)

    async def review_trust(self) -> list[Verdict]:
        """Promote (or demote) citizen sensors from their QC record (analytics/trust.py); the changes go to the
        registry. Runs after the daily job, and at start."""
        registry = self.analytics.registry
        if registry is None:
            return []
        st = self.settings
        rules = TrustRules(st.analytics_citizen_probation_days, st.analytics_citizen_min_coverage,
                           st.analytics_citizen_max_flagged)
        today = self.clock().date()
        verdicts: list[Verdict] = []
        for town in self.analytics.towns:
            citizens = [s for s in registry.list(town=town) if network_of(s) == "citizen"]
            if not citizens:
                continue
            end = datetime(today.year, today.month, today.day, tzinfo=UTC)
            hourly = await read_hourly_history(self.analytics.client, town,
                                               end - timedelta(days=rules.probation_days), end)
            mine = review(citizens, hourly, today, rules)
            for s in apply(citizens, mine, today):
                registry.upsert(s)
                v = next(v for v in mine if v.sensor == s.id)
                log.info("trust.changed", town=town, sensor=s.id, trust=s.trust, coverage=v.coverage,
                         flagged=v.flagged, reason=v.reason)
            verdicts += mine
        return verdicts

    async def pull_sensor_community(self) -> ImportReport | None:
        """One pull of the sensor.community data API for every town's box (analytics/sensorcommunity.py): new
        stations registered as provisional citizen sensors, their readings stored; the last-value store brought up
        to date over what was pulled (up to 5 minutes old, older than the 30-second refresh looks)."""
        st, registry = self.settings, self.analytics.registry
        if not st.sensor_community_url or registry is None:
            return None
        now = self.clock()
        now_ms = int(now.timestamp() * 1000)
        report = await pull(self.analytics.client, registry, st.sensor_community_url,
                            boxes_for(self.analytics.towns, st.sensor_community_radius_km), now_ms=now_ms,
                            today=now.date())
        log.info("analytics.sensor_community.pulled", **report.as_log())
        if report.span:
            await self.last.refresh(min(lo for lo, _ in report.span.values()), now_ms)
        return report

    async def sensor_community(self) -> None:
        await self._guard("sensor_community", self.pull_sensor_community)

    async def archive(self) -> None:
        """Monthly archives: closed months not archived yet, and recent ones re-checked for late data."""
        if self.settings.analytics_archives:
            await self._guard("archives", self.archiver.run)

    async def evaluate_alerts(self) -> None:
        await self._guard("alerts", lambda: self.alerts.evaluate(self.clock()))

    async def dispatch(self) -> None:
        """Notifications (analytics/notify): new and ended alerts, retries, reminders, digests."""
        if self.notify is not None:
            await self._guard("notify", lambda: self.notify.run(self.clock()))

    async def catch_up(self) -> None:
        st = self.settings
        await self._guard("catchup", lambda: self.analytics.catch_up(
            self.clock(), st.analytics_recompute_hours, st.analytics_catchup_max_days))

    async def recompute_request(self, req: RecomputeRequest) -> list[RunStats]:
        """One request from the api: exactly what ``heatwatch backfill --from --to [--town]`` does, after erasing
        the sensors it names (a contributor's withdrawal: analytics/erase.py)."""
        erased: dict[str, int] = {}
        if req.erase and req.town is not None:
            for sensor in req.erase:
                counts = await erase_sensor(self.analytics.client, req.town, sensor)
                for m, n in counts.items():
                    erased[m] = erased.get(m, 0) + n
        if req.erase and req.town is not None:
            # The town's rows of those days were computed with the erased sensors: deleted, then recomputed below
            # from what remains (a day left without any raw reading keeps no town row).
            tz = self.analytics.towns[req.town].timezone
            start, end = day_span([req.first, req.last], tz)
            await replace_range(self.analytics.client, req.town, start, end, measurements=["town_daily"])
        stats = await backfill(self.analytics, req.first, req.last, [req.town] if req.town else None)
        if self.settings.analytics_archives:
            # Archived months of the range are rebuilt: re-issued when the recompute (or erasure) changed them.
            towns = [req.town] if req.town else sorted(self.analytics.towns)
            await self._guard("archives", lambda: self.archiver.recheck(
                towns, req.first, req.last, erased=list(req.erase) if req.erase else None))
        if req.erase:
            if not stats:
                stats = [RunStats(req.town or "", [])]
            stats[0].erased = erased
            if req.town is not None:
                await asyncio.to_thread(ContributorStore.for_data_dir(self.settings.data_dir).erasure_done, req.id,
                                        "done", {"sensors": list(req.erase), **describe(erased),
                                                 "recomputed": {"from": req.first.isoformat(),
                                                                "to": req.last.isoformat()}})
        return stats

    def without_startup_grace(self) -> None:
        """``heatwatch analytics --once`` (cron-style): every run is a start, so the start-up grace would hold every
        alert forever; a lagging town's grace still applies."""
        self.alerts.started = pd.Timestamp(self.clock()) - self.alerts.grace

    async def once(self) -> None:
        """Catch up, then evaluate alerts: what one start of the service does before scheduling."""
        await self.refresh_last()  # first: "latest" is what the public sees most
        await self._guard("trust", self.review_trust)
        await self.catch_up()
        await self.evaluate_alerts()
        await self.dispatch()

    # Lifecycle -------------------------------------------------------------------------

    def schedule(self) -> None:
        common: dict[str, Any] = {"coalesce": True, "max_instances": 1, "replace_existing": True}
        self.scheduler.add_job(self.hourly, CronTrigger(minute=HOURLY_MINUTE, timezone=UTC), id="hourly",
                               misfire_grace_time=3600, **common)
        self.scheduler.add_job(self.daily, CronTrigger(hour=DAILY_AT[0], minute=DAILY_AT[1], timezone=UTC),
                               id="daily", misfire_grace_time=6 * 3600, **common)
        self.scheduler.add_job(self.archive, CronTrigger(hour=ARCHIVE_AT[0], minute=ARCHIVE_AT[1], timezone=UTC),
                               id="archives", misfire_grace_time=12 * 3600, **common)
        interval = self.settings.alert_interval_s
        self.scheduler.add_job(self.evaluate_alerts, IntervalTrigger(seconds=interval, timezone=UTC), id="alerts",
                               misfire_grace_time=interval, **common)
        if self.notify is not None:
            each = self.settings.notify_interval_s
            self.scheduler.add_job(self.dispatch, IntervalTrigger(seconds=each, timezone=UTC), id="notify",
                                   misfire_grace_time=each, **common)
        every = self.settings.analytics_last_interval_s
        self.scheduler.add_job(self.refresh_last, IntervalTrigger(seconds=every, timezone=UTC), id="last",
                               misfire_grace_time=every, **common)
        if self.settings.sensor_community_url:
            pull_every = self.settings.sensor_community_interval_s
            self.scheduler.add_job(self.sensor_community, IntervalTrigger(seconds=pull_every, timezone=UTC),
                                   id="sensor_community", next_run_time=self.clock(), misfire_grace_time=pull_every,
                                   **common)
        # The catch-up starts at once, on the scheduler like the rest, so a stop request during
        # a long catch-up is handled the same way as during any job.
        self.scheduler.add_job(self.once, id="startup", misfire_grace_time=None, **common)

    def listen(self, stop: asyncio.Event) -> RecomputeRequests:
        """Start taking recompute requests from MQTT until ``stop``."""
        listener = RecomputeRequests(self.settings, self.analytics.towns, self.recompute_request)
        task = asyncio.create_task(listener.run(stop), name="recompute-requests")
        # Among the running work, so a stop gives the request in hand the same grace as a job.
        self._running.add(task)
        task.add_done_callback(self._listener_ended)
        return listener

    def _listener_ended(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("analytics.requests.failed", error=repr(task.exception()))

    async def run(self, stop: asyncio.Event, requests: bool = False) -> None:
        self.schedule()
        self.scheduler.start()
        if requests:
            self.listen(stop)
        log.info("analytics.started", towns=sorted(self.analytics.towns),
                 jobs=[j.id for j in self.scheduler.get_jobs()], recompute_requests=requests)
        try:
            await stop.wait()
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        self.scheduler.shutdown(wait=False)
        running = [t for t in self._running if not t.done()]
        if running:
            # Let a run finish its writes; if it takes too long, cancel it: the next start
            # recomputes the same days anyway.
            _, pending = await asyncio.wait(running, timeout=STOP_GRACE_S)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        if self.notify is not None:
            await self.notify.close()
        log.info("analytics.stopped")
