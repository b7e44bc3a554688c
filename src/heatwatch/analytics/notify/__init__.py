"""The notification dispatcher: tells subscribers of alerts by e-mail and signed webhooks (docs/alerts.md, "How an
alert reaches people").

It runs in analytics, on its own schedule (``HEATWATCH_NOTIFY_INTERVAL_S``), and takes the alerts from where they
are true: InfluxDB's ``alert`` measurement, the same open alerts the engine reads back. Each run:

1. **Reconciles** the open alerts of every town with the notification store: an alert open in InfluxDB and not in
   the store has opened; one the store had open and InfluxDB no longer has has ended. Reading the stored state
   rather than listening to ``heat/alerts/<town>`` means nothing is lost when analytics stops between storing an
   alert and announcing it, or while the dispatcher was down: the next run sees the difference.
2. **Plans** messages (``delivery`` rows, written before anything is sent: an outbox): an opening per matching
   subscription; a reminder when an open alert stays unacknowledged for the re-notification delay; an end for
   subscribers that were told of the opening; a digest per subscription once a day in the vigilance season.
3. **Sends** what is due, except in the subscription's quiet hours (held until they end). A failure is retried
   after ``HEATWATCH_NOTIFY_BACKOFF_S``, doubling each time, up to ``HEATWATCH_NOTIFY_ATTEMPTS`` attempts; then the
   delivery is ``dead`` and listed to technicians (``GET /v1/notifications/deliveries?status=dead``), who can send
   it again.

Every time decision uses the injected ``now``: the tests drive days of quiet hours, back-off and digests with a
clock, never with sleeps.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from zoneinfo import ZoneInfo

from heatwatch.core.errors import InfluxError
from heatwatch.core.influx import InfluxClient
from heatwatch.core.logging import get_logger
from heatwatch.core.model import Town
from heatwatch.core.notifications import (
    Delivery,
    NotificationStore,
    StoredAlert,
    Subscription,
    alert_key,
    in_season,
    quiet_until,
)
from heatwatch.core.settings import AnalyticsSettings
from heatwatch.core.thresholds import VIGILANCE_SEASON_MMDD

from ..alerts import load_open
from . import text
from .senders import EmailSender, SendError, WebhookSender

log = get_logger("heatwatch.analytics.notify")

CONCURRENCY = 8  # messages in flight at once: a slow receiver holds one slot, not the run
#: A day's digest goes out at the digest hour, or up to this many hours later (analytics was down, or the
#: subscription was made then); later than that, that day has none: a 16:00 "morning" digest is noise.
DIGEST_LATE_H = 4
#: Sent and skipped messages and ended alerts are kept this long (the record of who was told what), then deleted;
#: dead ones stay until a technician sends them again.
KEEP_DAYS = 400


@dataclass
class Policy:
    attempts: int = 6
    backoff_s: float = 30.0
    backoff_max_s: float = 3600.0
    renotify_s: int = 4 * 3600
    digest_hour: int = 8
    season_start: str = VIGILANCE_SEASON_MMDD[0]
    season_end: str = VIGILANCE_SEASON_MMDD[1]
    dashboard_url: str | None = None

    def backoff(self, attempts: int) -> float:
        """Wait after the ``attempts``-th failed attempt: 30 s, 60 s, 120 s… capped."""
        return min(self.backoff_s * 2 ** (attempts - 1), self.backoff_max_s)


@dataclass
class RunReport:
    opened: int = 0
    closed: int = 0
    planned: int = 0
    sent: int = 0
    failed: int = 0
    dead: int = 0
    skipped: int = 0
    held: int = 0

    def as_log(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if v}


def _ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


class Dispatcher:
    def __init__(self, client: InfluxClient, store: NotificationStore, towns: Mapping[str, Town],
                 email: EmailSender, webhook: WebhookSender, policy: Policy | None = None) -> None:
        self.client = client
        self.store = store
        self.towns = towns
        self.email = email
        self.webhook = webhook
        self.policy = policy or Policy()
        self._pruned_day: dt.date | None = None

    @classmethod
    def from_settings(cls, client: InfluxClient, settings: AnalyticsSettings) -> Dispatcher:
        st = settings
        email = EmailSender(st.notify_smtp_host, st.notify_smtp_port_or_default, st.notify_smtp_security,
                            st.notify_smtp_from, st.notify_smtp_username,
                            st.notify_smtp_password.get_secret_value() if st.notify_smtp_password else None,
                            st.notify_smtp_ca_file, st.notify_smtp_timeout_s)
        policy = Policy(st.notify_attempts, st.notify_backoff_s, st.notify_backoff_max_s, st.notify_renotify_s,
                        st.notify_digest_hour, st.notify_season_start, st.notify_season_end, st.notify_dashboard_url)
        return cls(client, NotificationStore.for_data_dir(st.data_dir), st.towns, email,
                   WebhookSender(st.notify_webhook_timeout_s), policy)

    async def close(self) -> None:
        await self.webhook.close()

    # One run -------------------------------------------------------------------------------------------

    async def run(self, now: dt.datetime) -> RunReport:
        report = RunReport()
        subs = await asyncio.to_thread(self.store.subscriptions, None, True)
        if subs:
            closed: list[str] = []
            try:
                for town in self.towns:
                    current = await load_open(self.client, town)
                    alerts = [StoredAlert(key=alert_key(town, a.sensor, a.kind, a.started), town=town,
                                          sensor=a.sensor, kind=a.kind, started=a.started, value=a.value,
                                          threshold=a.threshold, message=a.message, state="open", seen=_ms(now))
                              for a in current.values()]
                    opened, gone = await asyncio.to_thread(self.store.sync_open, town, alerts, _ms(now))
                    report.opened += len(opened)
                    report.closed += len(gone)
                    closed += gone
            except InfluxError as exc:
                # InfluxDB down: what is known is still sent (retries, reminders, digests); the next run reconciles.
                log.warning("notify.alerts_unreadable", error=str(exc))
            report.planned = await asyncio.to_thread(self._plan, subs, closed, now)
        await self._send_due(now, report)
        if self._pruned_day != now.date():
            self._pruned_day = now.date()
            await asyncio.to_thread(self.store.prune, _ms(now) - KEEP_DAYS * 86_400_000)
        if any(asdict(report).values()):
            log.info("notify.run", **report.as_log())
        return report

    # Planning ------------------------------------------------------------------------------------------

    def _plan(self, subs: list[Subscription], closed: list[str], now: dt.datetime) -> int:
        st, now_ms, n = self.store, _ms(now), 0
        for a in st.open_alerts():
            acked = st.ack_of(a.key) is not None
            for s in subs:
                if not (s.immediate and s.wants(a.town, a.kind)):
                    continue
                told = [d for d in st.deliveries_of(s.id, a.key) if d.reason in ("open", "renotify")]
                if not told:
                    if not acked:  # an acknowledged alert is in hand: a new subscriber hears of it in the digest
                        n += st.add_delivery(s.id, "open", now_ms, now_ms, alert=a.key) is not None
                    continue
                every = s.renotify_s if s.renotify_s is not None else self.policy.renotify_s
                if acked or every <= 0 or any(d.status == "pending" for d in told):
                    continue
                if now_ms - max(d.created for d in told) >= every * 1000:
                    n += st.add_delivery(s.id, "renotify", now_ms, now_ms, alert=a.key) is not None
        for key in closed:
            a = st.alert(key)
            if a is None:
                continue
            for s in subs:
                if not (s.immediate and s.send_resolved and s.wants(a.town, a.kind)):
                    continue
                ds = st.deliveries_of(s.id, key)
                if any(d.reason == "close" for d in ds):
                    continue
                if any(d.reason in ("open", "renotify") and d.status == "sent" for d in ds):
                    n += st.add_delivery(s.id, "close", now_ms, now_ms, alert=key) is not None
        for s in subs:
            if s.digest:
                n += self._plan_digest(s, now)
        return n

    def _plan_digest(self, s: Subscription, now: dt.datetime) -> int:
        town = self.towns.get(s.town)
        if town is None:
            return 0
        local = now.astimezone(ZoneInfo(town.timezone))
        p = self.policy
        if not p.digest_hour <= local.hour < p.digest_hour + DIGEST_LATE_H:
            return 0
        if not in_season(local.date(), p.season_start, p.season_end):
            return 0
        day = local.date().isoformat()
        if self.store.has_digest(s.id, day):
            return 0
        end = _ms(now)
        start = end - 86_400_000
        alerts = [(a, self.store.ack_of(a.key)) for a in self.store.alerts_between(s.town, start, end)
                  if not s.kinds or a.kind in s.kinds]
        subject, body = text.digest_message(town.name, town.timezone, s.lang, start, end, alerts, p.dashboard_url)
        payload = {"subject": subject, "text": body, "json": {
            "type": "digest", "town": s.town, "day": day, "from": start, "to": end,
            "alerts": [text.alert_json(a, k) for a, k in alerts]}}
        return int(self.store.add_delivery(s.id, "digest", end, end, day=day, payload=payload) is not None)

    # Sending -------------------------------------------------------------------------------------------

    async def _send_due(self, now: dt.datetime, report: RunReport) -> None:
        due = await asyncio.to_thread(self.store.due, _ms(now))
        if not due:
            return
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(d: Delivery) -> None:
            async with gate:
                outcome = await self._deliver(d, now)
            setattr(report, outcome, getattr(report, outcome) + 1)

        await asyncio.gather(*(one(d) for d in due))

    async def _deliver(self, d: Delivery, now: dt.datetime) -> str:
        """Send one due delivery; returns what became of it: sent, failed, dead, skipped or held."""
        st, now_ms = self.store, _ms(now)
        sub = await asyncio.to_thread(st.subscription, d.subscription)
        if sub is None or not sub.active:
            await asyncio.to_thread(st.update_delivery, d.id, status="skipped",
                                    last_error="subscription deleted or paused")
            return "skipped"
        town = self.towns.get(sub.town)
        tz = town.timezone if town else "Europe/Paris"
        # A test message is asked for by someone checking the set-up now: quiet hours do not hold it.
        until = None if d.reason == "test" else quiet_until(now, sub.quiet_start, sub.quiet_end, tz)
        if until is not None:
            await asyncio.to_thread(st.update_delivery, d.id, due=_ms(until))
            return "held"
        payload = d.payload
        if d.alert is not None:
            alert = await asyncio.to_thread(st.alert, d.alert)
            ack = await asyncio.to_thread(st.ack_of, d.alert)
            why = None
            if alert is None:
                why = "unknown alert"
            elif d.reason in ("open", "renotify") and alert.state != "open":
                why = "the alert ended before it could be sent"
            elif d.reason in ("open", "renotify") and ack is not None:
                why = f"acknowledged by {ack.by}"
            if why is not None:
                await asyncio.to_thread(st.update_delivery, d.id, status="skipped", last_error=why)
                return "skipped"
            if payload is None:
                assert alert is not None
                subject, body = text.alert_message(d.reason, alert, ack, town.name if town else sub.town, tz,
                                                   sub.lang, self.policy.dashboard_url)
                payload = {"subject": subject, "text": body, "json": {
                    "type": f"alert.{d.reason}", "alert": text.alert_json(alert, ack)}}
                # Kept: every retry sends the same message (receivers deduplicate on webhook-id).
                await asyncio.to_thread(st.update_delivery, d.id, payload=payload)
        assert payload is not None
        attempts = d.attempts + 1
        try:
            if sub.channel == "email":
                thread = self.email.msgid(f"alert-{_short(d.alert)}-s{sub.id}") if d.alert else None
                own = thread if d.reason == "open" else self.email.msgid(f"hw-delivery-{d.id}")
                msg = self.email.message(sub.target, payload["subject"], payload["text"], own, thread)
                await self.email.send(msg)
            else:
                body = json.dumps({"id": f"hw-{d.id}", **payload["json"], "subject": payload["subject"]},
                                  ensure_ascii=False).encode()
                assert sub.secret is not None
                await self.webhook.send(sub.target, sub.secret, f"hw-{d.id}", body)
        except SendError as exc:
            if attempts >= self.policy.attempts:
                await asyncio.to_thread(st.update_delivery, d.id, status="dead", attempts=attempts,
                                        last_error=str(exc))
                log.warning("notify.dead", delivery=d.id, subscription=sub.id, channel=sub.channel,
                            reason=d.reason, attempts=attempts, error=str(exc))
                return "dead"
            wait_s = self.policy.backoff(attempts)
            await asyncio.to_thread(st.update_delivery, d.id, attempts=attempts, last_error=str(exc),
                                    due=now_ms + int(wait_s * 1000))
            log.info("notify.retry", delivery=d.id, subscription=sub.id, channel=sub.channel, attempts=attempts,
                     retry_in_s=wait_s, error=str(exc))
            return "failed"
        await asyncio.to_thread(st.update_delivery, d.id, status="sent", attempts=attempts, sent=now_ms,
                                last_error=None)
        log.info("notify.sent", delivery=d.id, subscription=sub.id, channel=sub.channel, reason=d.reason,
                 alert=d.alert, day=d.day)
        return "sent"


def _short(key: str | None) -> str:
    return hashlib.sha256((key or "").encode()).hexdigest()[:16]


__all__ = ["Dispatcher", "Policy", "RunReport"]
