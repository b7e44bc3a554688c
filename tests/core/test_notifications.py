"""The notification kernel's pure rules: quiet hours in local time (across midnight and DST), the vigilance season,
the webhook signature against the Standard Webhooks reference library, the SMTP password from a file, and the words
of a message."""

from __future__ import annotations

import datetime as dt

import pytest
import standardwebhooks

from heatwatch.analytics.notify import Policy
from heatwatch.analytics.notify.text import describe, duration
from heatwatch.core.errors import ConfigError
from heatwatch.core.notifications import in_season, new_secret, quiet_until, sign, verify
from heatwatch.core.settings import AnalyticsSettings

PARIS = "Europe/Paris"


def utc(*a: int) -> dt.datetime:
    return dt.datetime(*a, tzinfo=dt.UTC)


@pytest.mark.parametrize(("now", "until"), [
    (utc(2026, 7, 15, 19, 59), None),  # 21:59 in Paris (UTC+2): not yet
    (utc(2026, 7, 15, 20, 0), utc(2026, 7, 16, 5, 0)),  # 22:00: quiet until 07:00 local next morning
    (utc(2026, 7, 15, 23, 30), utc(2026, 7, 16, 5, 0)),  # 01:30 local, after midnight
    (utc(2026, 7, 16, 4, 59), utc(2026, 7, 16, 5, 0)),
    (utc(2026, 7, 16, 5, 0), None),  # 07:00 local: over
    (utc(2026, 1, 15, 21, 0), utc(2026, 1, 16, 6, 0)),  # winter (UTC+1): 07:00 local is 06:00 UTC
    (utc(2026, 10, 24, 21, 0), utc(2026, 10, 25, 6, 0)),  # the night clocks go back: still 07:00 local
])
def test_quiet_hours_are_local_and_span_midnight(now, until):
    assert quiet_until(now, "22:00", "07:00", PARIS) == until


def test_quiet_hours_within_a_day_and_none():
    assert quiet_until(utc(2026, 7, 15, 11, 0), "12:00", "14:00", PARIS) == utc(2026, 7, 15, 12, 0)
    assert quiet_until(utc(2026, 7, 15, 12, 0), "12:00", "14:00", PARIS) is None
    assert quiet_until(utc(2026, 7, 15, 11, 0), None, None, PARIS) is None
    assert quiet_until(utc(2026, 7, 15, 11, 0), "08:00", "08:00", PARIS) is None


def test_the_vigilance_season_is_1_june_to_15_september_inclusive():
    days = {d: in_season(dt.date(2026, *d)) for d in [(5, 31), (6, 1), (7, 14), (9, 15), (9, 16), (12, 1)]}
    assert days == {(5, 31): False, (6, 1): True, (7, 14): True, (9, 15): True, (9, 16): False, (12, 1): False}
    assert in_season(dt.date(2026, 5, 20), "05-15", "09-30")


def test_the_signature_is_standard_webhooks():
    secret, body, now = new_secret(), b'{"type":"alert.open","town":"vitre"}', 1_784_116_800
    ours = sign(secret, "hw-7", now, body)
    ref = standardwebhooks.Webhook(secret).sign("hw-7", dt.datetime.fromtimestamp(now, dt.UTC), body.decode())
    assert ours == ref
    headers = {"webhook-id": "hw-7", "webhook-timestamp": str(now), "webhook-signature": ours}
    assert verify(secret, headers, body, now + 10)
    assert not verify(secret, headers, body + b" ", now)  # another body
    assert not verify(secret, headers, body, now + 301)  # a replay, five minutes later
    assert not verify(new_secret(), headers, body, now)  # another subscription's secret


def test_backoff_doubles_and_is_capped():
    p = Policy(backoff_s=30, backoff_max_s=200)
    assert [p.backoff(n) for n in range(1, 6)] == [30, 60, 120, 200, 200]


def test_the_smtp_password_comes_from_a_file(tmp_path, monkeypatch):
    secret = tmp_path / "smtp"
    secret.write_text("p4ss-from-a-file\n")
    monkeypatch.setenv("HEATWATCH_NOTIFY_SMTP_PASSWORD_FILE", str(secret))
    s = AnalyticsSettings.load()
    assert s.notify_smtp_password.get_secret_value() == "p4ss-from-a-file"
    assert "p4ss" not in repr(s)
    monkeypatch.setenv("HEATWATCH_NOTIFY_SMTP_PASSWORD", "other")
    with pytest.raises(ConfigError, match="not both"):
        AnalyticsSettings.load()
    monkeypatch.delenv("HEATWATCH_NOTIFY_SMTP_PASSWORD")
    monkeypatch.delenv("HEATWATCH_NOTIFY_SMTP_PASSWORD_FILE")
    with pytest.raises(ConfigError, match="HEATWATCH_NOTIFY_SEASON_END"):
        AnalyticsSettings.load(notify_season_end="09-31")
    assert AnalyticsSettings.load(notify_smtp_security="tls").notify_smtp_port_or_default == 465


def test_messages_use_the_dashboards_words():
    assert describe("offline", "u1", 1684.0, 60.0, "fr") == "silencieux depuis 28 h"
    assert describe("offline", "", 75.0, 60.0, "en") == "no reading from any sensor for 75 min"
    assert describe("battery", "u2", 2.45, 2.6, "fr") == "batterie à 2,45 V (seuil 2,6 V)"
    assert describe("battery", "u2", 12.0, 20.0, "en") == "battery at 12 % (threshold 20 %)"
    assert describe("temperature", "u1", 36.24, 35.0, "fr") == "36,2 °C (seuil 35 °C)"
    assert duration(150, "fr") == "2 h 30" and duration(3 * 1440, "en") == "3 d"
