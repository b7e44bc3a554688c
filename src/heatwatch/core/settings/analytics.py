"""``AnalyticsSettings``: what ``heatwatch analytics`` and ``heatwatch backfill`` need beyond the core."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from ..notifications import parse_month_day
from ..thresholds import VIGILANCE_SEASON_MMDD
from .base import AlertSettings, CoreSettings


class AnalyticsSettings(CoreSettings, AlertSettings):
    # The hourly job recomputes the local days touched by the last N hours; on start the service
    # catches up from its last stored hour, at most this many days back (older: backfill).
    analytics_recompute_hours: int = Field(default=6, ge=1, le=72)
    analytics_daily_days: int = Field(default=3, ge=1, le=31, description="complete days the daily job redoes")
    analytics_catchup_max_days: int = Field(default=31, ge=1)
    analytics_mqtt_client_id: str = Field(default="heatwatch-analytics", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    alert_interval_s: int = Field(default=300, ge=10, description="how often the alert rules are evaluated")
    # docs/alerts.md, "When an alert may open": no alert for a condition seen only before start-up or while a
    # backlog was being flushed.
    alert_grace_s: int = Field(default=600, ge=0, description=(
        "after the service starts, and after a town's data has caught up, alerts wait this long before opening"))
    alert_lag_s: int = Field(default=900, ge=60, description=(
        "a town whose newest reading is older than this is lagging: one town-level silence alert instead of one "
        "per sensor, and no alert of it closes until its data is back"))
    analytics_last_interval_s: int = Field(default=30, ge=5, le=3600, description=(
        "how often the last-value store (the newest reading of each sensor, what the api's latest reads) is "
        "brought up to date"))
    # Prometheus /metrics on a listener of its own (analytics/metrics.py): loopback by default; under compose the
    # compose network's address, not published on the host.
    analytics_metrics_host: str = Field(default="127.0.0.1", description="address of the /metrics listener")
    analytics_metrics_port: int | None = Field(default=None, ge=0, le=65535, description=(
        "port of the Prometheus /metrics listener; unset: no listener (0: any free port)"))
    # Participatory science (docs/citizens.md): a citizen sensor stays provisional for this many days at least,
    # and is confirmed once, over the last that many days, it was present and passed quality control enough.
    analytics_citizen_probation_days: int = Field(default=14, ge=1, le=365)
    analytics_citizen_min_coverage: float = Field(default=0.8, gt=0, le=1, description=(
        "share of the probation window's hours a citizen sensor must have reported"))
    analytics_citizen_max_flagged: float = Field(default=0.1, ge=0, lt=1, description=(
        "share of its present hours a citizen sensor may have flagged by QC and still be confirmed"))
    analytics_citizen_weight: float = Field(default=0.5, ge=0, le=1, description=(
        "weight of a confirmed citizen sensor in the town's indices (the town's own sensors weigh 1)"))
    # sensor.community (docs/citizens.md): the stations of each town's box as citizen sensors, pulled from the data
    # API on a schedule when its base URL is set (e.g. https://data.sensor.community); archive files are imported
    # with `heatwatch sensor-community import`.
    sensor_community_url: str | None = Field(default=None, pattern=r"^https?://\S+$", description=(
        "base URL of the sensor.community data API; set: analytics pulls each town's box on a schedule"))
    sensor_community_interval_s: int = Field(default=300, ge=60, le=86_400, description=(
        "how often the data API is pulled (it answers the measurements of the last 5 minutes)"))
    sensor_community_radius_km: float = Field(default=5.0, gt=0, le=50, description=(
        "half the side of the square around each town's centre whose stations are taken"))

    @field_validator("sensor_community_url", mode="before")
    @classmethod
    def _empty_url_is_unset(cls, v: Any) -> Any:
        return None if v == "" else v
    # Monthly archives (docs/interop.md): written when a month closes, re-checked for late data.
    analytics_archives: bool = Field(default=True, description="write the monthly archives")
    analytics_archive_delay_days: int = Field(default=3, ge=1, le=31, description=(
        "days after a month's last day before it is archived (the daily job has redone its last days by then)"))
    analytics_archive_recheck_months: int = Field(default=3, ge=0, le=120, description=(
        "closed months re-checked each day for late data (older ones: heatwatch archives build)"))

    # Notifications (docs/alerts.md, "How an alert reaches people"): subscriptions live in the notification store
    # (the api's /v1/notifications); these say how analytics' dispatcher sends.
    notify_enabled: bool = Field(default=True, description="run the notification dispatcher")
    notify_interval_s: int = Field(default=30, ge=5, le=3600, description=(
        "how often the dispatcher looks for new and ended alerts, due retries, re-notifications and digests"))
    notify_smtp_host: str | None = Field(default=None, description="SMTP server; unset: e-mails wait, logged")
    notify_smtp_port: int | None = Field(default=None, ge=1, le=65535, description=(
        "default 587 for starttls, 465 for tls, 25 for none"))
    notify_smtp_security: Literal["starttls", "tls", "none"] = Field(default="starttls", description=(
        "starttls: upgrade after connecting (submission, 587); tls: TLS from the start (465); none: plain (a relay "
        "on loopback only)"))
    notify_smtp_username: str | None = Field(default=None, max_length=256)
    notify_smtp_password: SecretStr | None = None
    notify_smtp_from: str = Field(default="heatwatch <alertes@heatwatch.example>", max_length=256)
    notify_smtp_ca_file: Path | None = Field(default=None, description=(
        "CA certificate(s) the SMTP server's certificate is checked against; else the system's"))
    notify_smtp_timeout_s: float = Field(default=30.0, gt=0, le=300)
    notify_webhook_timeout_s: float = Field(default=10.0, gt=0, le=120)
    notify_attempts: int = Field(default=6, ge=1, le=20, description=(
        "attempts per message before it goes to the dead-letter list"))
    notify_backoff_s: float = Field(default=30.0, gt=0, le=3600, description=(
        "wait before the first retry; doubled at each retry"))
    notify_backoff_max_s: float = Field(default=3600.0, gt=0, le=86_400)
    notify_renotify_s: int = Field(default=4 * 3600, ge=0, le=30 * 86_400, description=(
        "repeat an open, unacknowledged alert this often (a subscription may set its own); 0: never"))
    notify_digest_hour: int = Field(default=8, ge=0, le=23, description="local hour of the daily digest")
    notify_season_start: str = Field(default=VIGILANCE_SEASON_MMDD[0], description=(
        "first day (MM-DD) of the vigilance season"))
    notify_season_end: str = Field(default=VIGILANCE_SEASON_MMDD[1], description=(
        "last day (MM-DD) of the vigilance season"))
    notify_dashboard_url: str | None = Field(default=None, pattern=r"^https?://\S+$", description=(
        "the dashboard's address, given in messages (where to acknowledge)"))

    @field_validator("notify_smtp_host", "notify_smtp_username", "notify_smtp_password", "notify_dashboard_url",
                     mode="before")
    @classmethod
    def _empty_notify_is_unset(cls, v: Any) -> Any:
        return None if v == "" else v

    @field_validator("notify_season_start", "notify_season_end")
    @classmethod
    def _month_day(cls, v: str) -> str:
        parse_month_day(v)
        return v

    @property
    def notify_smtp_port_or_default(self) -> int:
        if self.notify_smtp_port is not None:
            return self.notify_smtp_port
        return {"starttls": 587, "tls": 465, "none": 25}[self.notify_smtp_security]
