"""Typed settings, validated once at start-up.

Sources, highest priority first: keyword arguments, ``HEATWATCH_*`` environment variables,
a TOML file named by ``HEATWATCH_CONFIG`` (or ``Settings.load(config_file=...)``), defaults.
Nothing here runs at import time: each service calls :meth:`Settings.load` in its entry point.
"""

from __future__ import annotations

import os
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .datafiles import read_toml
from .deadletters import FILENAME as DEADLETTER_FILE
from .errors import ConfigError
from .model import Town
from .thresholds import DEFAULT_THRESHOLDS, AlertThresholds

PayloadFormat = Literal["json", "senml", "tts", "chirpstack"]


class Subscription(BaseModel):
    """One MQTT topic filter and the decoder for what arrives on it (Telegraf-style)."""

    filter: str
    format: PayloadFormat


DEFAULT_SUBSCRIPTIONS = [
    Subscription(filter="heat/+/+", format="json"),
    Subscription(filter="senml/+/+", format="senml"),
    Subscription(filter="v3/+/devices/+/up", format="tts"),
    Subscription(filter="application/+/device/+/event/up", format="chirpstack"),
    Subscription(filter="application/+/device/+/rx", format="chirpstack"),
]


class MqttUrl(BaseModel):
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> MqttUrl:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"MQTT URL must start with mqtt:// or mqtts://, got {url!r}")
        if not parts.hostname:
            raise ValueError(f"MQTT URL has no host: {url!r}")
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


class _TomlFileSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self._data: dict[str, Any] = {}
        if path is not None:
            self._data = read_toml(Path(path), None, "config file")

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEATWATCH_", extra="ignore", validate_default=True)

    # Connections. None means "start the embedded one" for `heatwatch up`; services
    # run alone fall back to the loopback defaults of DESIGN.md.
    mqtt_url: str | None = None
    influx_url: str | None = None
    influx_db: str = Field(default="heatwatch", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    influx_token: SecretStr | None = None
    influx_user: str | None = None
    influx_password: SecretStr | None = None
    influx_gzip: bool = False
    influx_timeout_s: float = Field(default=10.0, gt=0)
    raw_retention: str = Field(default="INF", pattern=r"^(INF|\d+[hdw])$",
                               description="retention of raw readings, InfluxQL duration or INF")

    data_dir: Path = Path("./var")
    admin_token: SecretStr | None = None
    log_level: str = "INFO"
    log_json: bool = False
    towns_file: Path | None = None

    # Ingest.
    mqtt_client_id: str = Field(default="heatwatch-ingest", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    mqtt_shared_group: str | None = Field(default=None, description="set to share the stream: $share/<group>/...")
    mqtt_session_expiry_s: int = Field(default=7 * 24 * 3600, ge=1)
    subscriptions: list[Subscription] = Field(default_factory=lambda: list(DEFAULT_SUBSCRIPTIONS))
    # heat/alerts/<town> (analytics' own output) matches the readings filter heat/+/+.
    ignore_filters: list[str] = Field(default_factory=lambda: ["heat/alerts/#"],
                                      description="topics ingest acknowledges and drops without dead-lettering")
    app_towns: dict[str, str] = Field(
        default_factory=dict, description="LoRaWAN application → town, for devices not in the registry: The Things "
                                          "Stack application id, ChirpStack application name or id")
    tts_app_towns: dict[str, str] = Field(
        default_factory=dict, description="former name of app_towns (The Things Stack only); merged into it")
    device_profiles_file: Path | None = Field(
        default=None, description="the operator's device profiles (TOML), added to the packaged ones")
    batch_size: int = Field(default=5000, ge=1, le=65535)
    batch_interval_s: float = Field(default=0.5, gt=0)
    backlog_window: timedelta = timedelta(days=30)
    max_payload_bytes: int = Field(default=256 * 1024, ge=64)
    spool_max_bytes: int = Field(default=1024**3, ge=1024, description="spool bound; when full, acks are held")
    metrics_port: int | None = Field(default=None, description="Prometheus /metrics port of the ingester")

    # Analytics: the hourly job recomputes the local days touched by the last N hours; on start the
    # service catches up from its last stored hour, at most this many days back (older: backfill).
    analytics_recompute_hours: int = Field(default=6, ge=1, le=72)
    analytics_daily_days: int = Field(default=3, ge=1, le=31, description="complete days the daily job redoes")
    analytics_catchup_max_days: int = Field(default=31, ge=1)
    analytics_mqtt_client_id: str = Field(default="heatwatch-analytics", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    # Alert rules (live, every alert_interval_s).
    alert_interval_s: int = Field(default=300, ge=10)
    alert_temperature_c: float = DEFAULT_THRESHOLDS.temperature_c
    alert_heat_index_c: float = DEFAULT_THRESHOLDS.heat_index_c
    alert_uhi_night_c: float = DEFAULT_THRESHOLDS.uhi_night_c
    alert_offline_s: int = Field(default=DEFAULT_THRESHOLDS.offline_s, ge=60)
    alert_battery_v: float = DEFAULT_THRESHOLDS.battery_v
    alert_qc_hours: int = Field(default=DEFAULT_THRESHOLDS.qc_hours, ge=1,
                                description="consecutive flagged hours before a QC alert")

    # API.
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt(cls, v: str | None) -> str | None:
        if v is not None:
            MqttUrl.parse(v)
        return v

    @field_validator("influx_url")
    @classmethod
    def _check_influx(cls, v: str | None) -> str | None:
        if v is not None and urlsplit(v).scheme not in ("http", "https"):
            raise ValueError(f"InfluxDB URL must be http:// or https://, got {v!r}")
        return v.rstrip("/") if v else v

    @model_validator(mode="after")
    def _auth(self) -> Settings:
        if self.influx_token is not None and self.influx_user is not None:
            raise ValueError("set either HEATWATCH_INFLUX_TOKEN or HEATWATCH_INFLUX_USER/_PASSWORD, not both")
        return self

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):  # type: ignore[override]
        path = os.environ.get("HEATWATCH_CONFIG")
        return (init_settings, env_settings, _TomlFileSource(settings_cls, Path(path) if path else None))

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Build and validate settings, turning validation errors into one readable ConfigError."""
        try:
            return cls(**overrides)
        except ValidationError as exc:
            lines = [f"  {'.'.join(map(str, e['loc'])) or '(settings)'}: {e['msg']}" for e in exc.errors()]
            raise ConfigError("invalid heatwatch settings:\n" + "\n".join(lines)) from None

    # Derived values -----------------------------------------------------------------

    @property
    def mqtt(self) -> MqttUrl:
        return MqttUrl.parse(self.mqtt_url or "mqtt://127.0.0.1:1883")

    @property
    def influx_base_url(self) -> str:
        return self.influx_url or "http://127.0.0.1:8086"

    @property
    def registry_path(self) -> Path:
        return self.data_dir / "registry.sqlite"

    @property
    def spool_dir(self) -> Path:
        # One spool per ingester: two replaying the same segments would race.
        return self.data_dir / "spool" / self.mqtt_client_id

    @property
    def deadletter_dir(self) -> Path:
        return self.data_dir / "deadletter"

    @property
    def deadletter_path(self) -> Path:
        return self.deadletter_dir / DEADLETTER_FILE

    @property
    def alert_thresholds(self) -> AlertThresholds:
        return AlertThresholds(temperature_c=self.alert_temperature_c, heat_index_c=self.alert_heat_index_c,
                               uhi_night_c=self.alert_uhi_night_c, offline_s=self.alert_offline_s,
                               battery_v=self.alert_battery_v, qc_hours=self.alert_qc_hours)

    @cached_property
    def towns(self) -> dict[str, Town]:
        return load_towns(self.towns_file)


def load_towns(path: Path | None = None) -> dict[str, Town]:
    """Towns from a TOML file (``[[town]]`` tables); the packaged Vitré/Saint-Omer file by default."""
    raw = read_toml(path, "towns.toml", "towns file")
    try:
        towns = [Town.model_validate(t) for t in raw.get("town", [])]
    except ValidationError as exc:
        raise ConfigError(f"invalid towns file {path or '(packaged)'}: {exc}") from exc
    return {t.id: t for t in towns}
