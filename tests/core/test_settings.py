"""Settings: one group per service over a shared core, validated once at start-up; a bad value in any
group stops the command with a message naming the variable."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from heatwatch.cli import main
from heatwatch.core.errors import ConfigError
from heatwatch.core.settings import (
    AnalyticsSettings,
    ApiSettings,
    CoreSettings,
    IngestSettings,
    Settings,
    Subscription,
)

GROUPS = [CoreSettings, IngestSettings, AnalyticsSettings, ApiSettings, Settings]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for name in list(os.environ):
        if name.upper().startswith("HEATWATCH_"):
            monkeypatch.delenv(name)
    return monkeypatch


def bad(group: type[CoreSettings], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as info:
        group.load()
    return str(info.value)


@pytest.mark.parametrize("group", GROUPS)
def test_defaults_load_and_are_typed(group: type[CoreSettings]) -> None:
    s = group.load()
    assert s.mqtt.host == "127.0.0.1" and s.mqtt.port == 1883 and s.influx_base_url == "http://127.0.0.1:8086"
    assert set(s.towns) == {"vitre", "saint-omer"}  # read once, at load
    assert s.deadletter_path == Path("var/deadletter/deadletter.sqlite")


def test_each_group_has_its_own_and_shares_the_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEATWATCH_INFLUX_DB", "other")
    monkeypatch.setenv("HEATWATCH_BATCH_SIZE", "10")
    monkeypatch.setenv("HEATWATCH_ANALYTICS_DAILY_DAYS", "5")
    monkeypatch.setenv("HEATWATCH_ALERT_BATTERY_V", "3.1")
    monkeypatch.setenv("HEATWATCH_API_PORT", "9000")
    monkeypatch.setenv("HEATWATCH_LIVE_COALESCE_S", "0.5")
    monkeypatch.setenv("HEATWATCH_DASHBOARD_TILES_URL", "")
    monkeypatch.setenv("HEATWATCH_BACKLOG_WINDOW", "P2D")
    ingest, analytics, api, every = IngestSettings.load(), AnalyticsSettings.load(), ApiSettings.load(), Settings.load()
    assert ingest.influx_db == analytics.influx_db == api.influx_db == "other"
    assert ingest.batch_size == every.batch_size == 10 and ingest.backlog_window == timedelta(days=2)
    assert analytics.analytics_daily_days == 5
    # One alert threshold set for the service that raises alerts and the one that shows them.
    assert analytics.alert_thresholds == api.alert_thresholds == every.alert_thresholds
    assert api.alert_thresholds.battery_v == 3.1
    assert (api.api.port, api.live.coalesce_s, api.dashboard.tiles_url) == (9000, 0.5, "")
    assert not hasattr(ingest, "api") and not hasattr(api, "batch_size")  # each command sees its own groups


@pytest.mark.parametrize(("group", "env", "variable"), [
    (CoreSettings, {"HEATWATCH_INFLUX_URL": "ftp://db"}, "HEATWATCH_INFLUX_URL"),
    (CoreSettings, {"HEATWATCH_MQTT_URL": "http://broker"}, "HEATWATCH_MQTT_URL"),
    (CoreSettings, {"HEATWATCH_INFLUX_DB": "bad name"}, "HEATWATCH_INFLUX_DB"),
    (CoreSettings, {"HEATWATCH_INFLUX_TIMEOUT_S": "0"}, "HEATWATCH_INFLUX_TIMEOUT_S"),
    (CoreSettings, {"HEATWATCH_RAW_RETENTION": "3 months"}, "HEATWATCH_RAW_RETENTION"),
    (CoreSettings, {"HEATWATCH_LOG_LEVEL": "LOUD"}, "HEATWATCH_LOG_LEVEL"),
    (CoreSettings, {"HEATWATCH_LOG_JSON": "perhaps"}, "HEATWATCH_LOG_JSON"),
    (CoreSettings, {"HEATWATCH_TOWNS_FILE": "/nonexistent/towns.toml"}, "HEATWATCH_TOWNS_FILE"),
    (IngestSettings, {"HEATWATCH_BATCH_SIZE": "0"}, "HEATWATCH_BATCH_SIZE"),
    (IngestSettings, {"HEATWATCH_BATCH_INTERVAL_S": "-1"}, "HEATWATCH_BATCH_INTERVAL_S"),
    (IngestSettings, {"HEATWATCH_BACKLOG_WINDOW": "a month"}, "HEATWATCH_BACKLOG_WINDOW"),
    (IngestSettings, {"HEATWATCH_MQTT_CLIENT_ID": "two words"}, "HEATWATCH_MQTT_CLIENT_ID"),
    (IngestSettings, {"HEATWATCH_MQTT_SHARED_GROUP": "a/b"}, "HEATWATCH_MQTT_SHARED_GROUP"),
    (IngestSettings, {"HEATWATCH_METRICS_PORT": "70000"}, "HEATWATCH_METRICS_PORT"),
    (IngestSettings, {"HEATWATCH_SPOOL_MAX_BYTES": "12"}, "HEATWATCH_SPOOL_MAX_BYTES"),
    (IngestSettings, {"HEATWATCH_SUBSCRIPTIONS": '[{"filter": "x/+", "format": "xml"}]'},
     "HEATWATCH_SUBSCRIPTIONS[0].format"),
    (IngestSettings, {"HEATWATCH_SUBSCRIPTIONS": "heat/+/+"}, "subscriptions"),  # not JSON
    (IngestSettings, {"HEATWATCH_TTS_APP_TOWNS": '["vitre"]'}, "HEATWATCH_TTS_APP_TOWNS"),
    (AnalyticsSettings, {"HEATWATCH_ANALYTICS_RECOMPUTE_HOURS": "0"}, "HEATWATCH_ANALYTICS_RECOMPUTE_HOURS"),
    (AnalyticsSettings, {"HEATWATCH_ANALYTICS_DAILY_DAYS": "90"}, "HEATWATCH_ANALYTICS_DAILY_DAYS"),
    (AnalyticsSettings, {"HEATWATCH_ANALYTICS_MQTT_CLIENT_ID": ""}, "HEATWATCH_ANALYTICS_MQTT_CLIENT_ID"),
    (AnalyticsSettings, {"HEATWATCH_ALERT_INTERVAL_S": "1"}, "HEATWATCH_ALERT_INTERVAL_S"),
    (AnalyticsSettings, {"HEATWATCH_ALERT_BATTERY_V": "low"}, "HEATWATCH_ALERT_BATTERY_V"),
    (AnalyticsSettings, {"HEATWATCH_ALERT_QC_HOURS": "0"}, "HEATWATCH_ALERT_QC_HOURS"),
    (ApiSettings, {"HEATWATCH_ALERT_OFFLINE_S": "5"}, "HEATWATCH_ALERT_OFFLINE_S"),
    (ApiSettings, {"HEATWATCH_API_PORT": "70000"}, "HEATWATCH_API_PORT"),
    (ApiSettings, {"HEATWATCH_API_RATE_LIMIT_PER_S": "-1"}, "HEATWATCH_API_RATE_LIMIT_PER_S"),
    (ApiSettings, {"HEATWATCH_API_MAX_PAGE_SIZE": "none"}, "HEATWATCH_API_MAX_PAGE_SIZE"),
    (ApiSettings, {"HEATWATCH_API_STALE_AFTER_S": "5"}, "HEATWATCH_API_STALE_AFTER_S"),
    (ApiSettings, {"HEATWATCH_LIVE_QOS": "2"}, "HEATWATCH_LIVE_QOS"),
    (ApiSettings, {"HEATWATCH_LIVE_COALESCE_S": "soon"}, "HEATWATCH_LIVE_COALESCE_S"),
    (ApiSettings, {"HEATWATCH_DASHBOARD_ENABLED": "maybe"}, "HEATWATCH_DASHBOARD_ENABLED"),
    (Settings, {"HEATWATCH_LIVE_QOS": "2", "HEATWATCH_BATCH_SIZE": "0"}, "HEATWATCH_BATCH_SIZE"),
])
def test_a_bad_value_is_named(group: type[CoreSettings], env: dict[str, str], variable: str,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    message = bad(group, env, monkeypatch)
    assert message.startswith("invalid heatwatch settings") and variable in message, message


def test_every_bad_value_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    message = bad(Settings, {"HEATWATCH_API_PORT": "-1", "HEATWATCH_LIVE_QOS": "9", "HEATWATCH_BATCH_SIZE": "0",
                             "HEATWATCH_ALERT_INTERVAL_S": "0"}, monkeypatch)
    for v in ("HEATWATCH_API_PORT", "HEATWATCH_LIVE_QOS", "HEATWATCH_BATCH_SIZE", "HEATWATCH_ALERT_INTERVAL_S"):
        assert v in message
    assert "(got '-1')" in message  # the offending value, to find the typo


def test_a_group_ignores_the_other_groups_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEATWATCH_API_PORT", "not a port")
    assert IngestSettings.load().batch_size == 5000  # the ingester does not care about the api's port
    with pytest.raises(ConfigError, match="HEATWATCH_API_PORT"):
        Settings.load()  # `heatwatch up` starts the api too: it refuses before starting anything


def test_secrets_are_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    message = bad(CoreSettings, {"HEATWATCH_MQTT_URL": "http://user:s3cret@host"}, monkeypatch)
    assert "HEATWATCH_MQTT_URL" in message and "s3cret" not in message
    monkeypatch.delenv("HEATWATCH_MQTT_URL")
    message = bad(CoreSettings, {"HEATWATCH_INFLUX_TOKEN": "t0ken", "HEATWATCH_INFLUX_USER": "u"}, monkeypatch)
    assert "HEATWATCH_INFLUX_TOKEN" in message and "t0ken" not in message


def test_the_towns_file_is_checked_at_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    towns = tmp_path / "towns.toml"
    towns.write_text('[[town]]\nid = "Lille"\nname = "Lille"\n', encoding="utf-8")
    message = bad(CoreSettings, {"HEATWATCH_TOWNS_FILE": str(towns)}, monkeypatch)
    assert "HEATWATCH_TOWNS_FILE" in message and "invalid towns file" in message


def test_config_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "heatwatch.toml"
    config.write_text('influx_db = "from_file"\nbatch_size = 7\n[api]\nport = 8100\nproducer = "Ville de Vitré"\n'
                      '[live]\ncoalesce_s = 4\n', encoding="utf-8")
    monkeypatch.setenv("HEATWATCH_CONFIG", str(config))
    monkeypatch.setenv("HEATWATCH_API_PORT", "8200")  # the environment wins, field by field
    s = Settings.load()
    assert (s.influx_db, s.batch_size, s.api.port, s.api.producer, s.live.coalesce_s) == (
        "from_file", 7, 8200, "Ville de Vitré", 4.0)
    assert Settings.load(influx_db="kw").influx_db == "kw"  # keyword arguments win over both
    config.write_text("[api]\nport = -3\n", encoding="utf-8")
    monkeypatch.delenv("HEATWATCH_API_PORT")
    with pytest.raises(ConfigError, match="HEATWATCH_API_PORT"):
        ApiSettings.load()
    config.write_text("not = toml = at all", encoding="utf-8")
    with pytest.raises(ConfigError, match="config file"):
        CoreSettings.load()


def test_frontend_dir_keeps_its_old_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEATWATCH_FRONTEND_DIR", str(tmp_path))
    assert ApiSettings.load().dashboard.frontend_dir == tmp_path


def test_offline_is_one_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEATWATCH_ALERT_OFFLINE_S", "7200")
    assert ApiSettings.load().stale_after_s == 7200  # the api's "offline" status follows the alert
    monkeypatch.setenv("HEATWATCH_API_STALE_AFTER_S", "600")
    assert ApiSettings.load().stale_after_s == 600  # unless set on purpose


def test_subscriptions_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEATWATCH_SUBSCRIPTIONS", '[{"filter": "capteurs/+/+", "format": "json"}]')
    assert IngestSettings.load().subscriptions == [Subscription(filter="capteurs/+/+", format="json")]


@pytest.mark.parametrize(("argv", "env", "variable"), [
    (["ingest"], {"HEATWATCH_BATCH_SIZE": "0"}, "HEATWATCH_BATCH_SIZE"),
    (["analytics", "--once"], {"HEATWATCH_ALERT_BATTERY_V": "x"}, "HEATWATCH_ALERT_BATTERY_V"),
    (["backfill", "--from", "2025-07-01", "--to", "2025-07-02"], {"HEATWATCH_ANALYTICS_DAILY_DAYS": "0"},
     "HEATWATCH_ANALYTICS_DAILY_DAYS"),
    (["api"], {"HEATWATCH_LIVE_QOS": "2"}, "HEATWATCH_LIVE_QOS"),
    (["report", "--town", "vitre", "--season", "2025"], {"HEATWATCH_API_PORT": "x"},
     "HEATWATCH_API_PORT"),
    (["sensors", "list"], {"HEATWATCH_LOG_LEVEL": "chatty"}, "HEATWATCH_LOG_LEVEL"),
    (["simulate", "--dry-run"], {"HEATWATCH_MQTT_URL": "broker:1883"}, "HEATWATCH_MQTT_URL"),
    (["up"], {"HEATWATCH_DASHBOARD_ENABLED": "perhaps"}, "HEATWATCH_DASHBOARD_ENABLED"),
])
def test_every_command_stops_before_starting_and_names_the_variable(
        argv: list[str], env: dict[str, str], variable: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    monkeypatch.setenv("HEATWATCH_DATA_DIR", str(tmp_path / "var"))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert main(argv) == 2
    assert variable in capsys.readouterr().err
    assert not (tmp_path / "var").exists()  # nothing was started or created
