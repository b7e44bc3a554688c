"""The shared core of every command's settings, and how settings are read and checked.

Sources, highest priority first: keyword arguments, ``HEATWATCH_*`` environment variables, a TOML
file named by ``HEATWATCH_CONFIG``, defaults. Each command builds its group once, in its entry point
(:meth:`CoreSettings.load`), and hands it down: nothing reads settings later, at request time or at
import. A bad value stops the command with a message naming the environment variable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Self
from urllib.parse import unquote, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from ..datafiles import read_toml
from ..deadletters import FILENAME as DEADLETTER_FILE
from ..deadletters import MAX_BYTES as DEADLETTER_MAX_BYTES
from ..deadletters import MAX_ENTRIES as DEADLETTER_MAX_ENTRIES
from ..deadletters import PAYLOAD_MAX_BYTES as DEADLETTER_PAYLOAD_MAX_BYTES
from ..errors import ConfigError
from ..model import Town
from ..thresholds import DEFAULT_THRESHOLDS, AlertThresholds

PREFIX = "HEATWATCH_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class MqttUrl(BaseModel):
    host: str
    port: int
    tls: bool
    username: str | None = None
    # Out of repr: a settings object or a URL logged by mistake must not print a password.
    password: str | None = Field(default=None, repr=False)
    #: CA bundle the broker's certificate is checked against (``mqtts://``); None: the system's.
    ca_file: str | None = None

    @classmethod
    def parse(cls, url: str) -> MqttUrl:
        # Error messages never repeat the URL: it may carry a password, and a mistyped URL may put the
        # password where a parser does not expect one ("user:pass@host" parses as scheme "user").
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError("an MQTT URL must start with mqtt:// or mqtts:// (the value is not shown: it may "
                             "hold a password)")
        try:
            host, port = parts.hostname, parts.port
        except ValueError:
            raise ValueError("the MQTT URL's port is not a number (the value is not shown)") from None
        if not host:
            raise ValueError("the MQTT URL has no host (the value is not shown)")
        tls = parts.scheme == "mqtts"
        return cls(
            host=host,
            port=port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def redacted(self) -> str:
        """The URL without its password, for logs."""
        user = f"{self.username}:***@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def load_towns(path: Path | None = None) -> dict[str, Town]:
    """Towns from a TOML file (``[[town]]`` tables); the packaged Vitré/Saint-Omer file by default."""
    raw = read_toml(path, "towns.toml", "towns file")
    try:
        towns = [Town.model_validate(t) for t in raw.get("town", [])]
    except ValidationError as exc:
        raise ConfigError(f"invalid towns file {path or '(packaged)'}: {exc}") from exc
    return {t.id: t for t in towns}


class Group(BaseModel):
    """Options of one part of a service read from their own prefix (``HEATWATCH_API_*``...), nested in
    that service's settings as one field, so they are validated with everything else at start-up.
    ``aliases`` are other variable names accepted for a field (kept for deployments that use them)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    env_prefix: ClassVar[str]
    aliases: ClassVar[dict[str, str]] = {}


def _groups(settings_cls: type[BaseModel]) -> dict[str, type[Group]]:
    return {name: f.annotation for name, f in settings_cls.model_fields.items()
            if isinstance(f.annotation, type) and issubclass(f.annotation, Group)}


class _TomlFileSource(PydanticBaseSettingsSource):
    """The ``HEATWATCH_CONFIG`` file: top-level keys are field names, a table per group (``[api]``...)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self.data = read_toml(Path(path), None, "config file") if path is not None else {}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self.data.items() if k in self.settings_cls.model_fields}


class _GroupEnvSource(PydanticBaseSettingsSource):
    """Each group's fields from its own prefix: ``HEATWATCH_API_RATE_LIMIT_PER_S`` → ``api.rate_limit_per_s``.
    Below keyword arguments and above the config file, like the plain environment."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        env = {k.upper(): v for k, v in os.environ.items()}
        out: dict[str, Any] = {}
        for name, group in _groups(self.settings_cls).items():
            values = {k[len(group.env_prefix):].lower(): v for k, v in env.items() if k.startswith(group.env_prefix)}
            for field, alias in group.aliases.items():
                if field not in values and alias in env:
                    values[field] = env[alias]
            keep = {k: v for k, v in values.items() if k in group.model_fields}
            if keep:
                out[name] = keep
        return out


#: Settings that are secrets, or may hold one (a URL with a password): never echoed in an error, and each
#: may instead be read from the file named by ``<variable>_FILE`` (Docker and systemd credentials).
SECRET_FIELDS = frozenset({"mqtt_url", "mqtt_password", "influx_url", "influx_token", "influx_password",
                           "admin_token", "replay_mqtt_password", "notify_smtp_password"})
_SECRET_WORDS = ("TOKEN", "PASSWORD", "URL", "SECRET")


def _got(variable: str, value: object) -> str:
    if not isinstance(value, str | int | float) or any(w in variable for w in _SECRET_WORDS):
        return ""  # secrets (a URL may carry a password) are never echoed
    return f" (got {value!r})"


def read_secret_file(variable: str, path: str) -> str:
    """The content of a ``*_FILE`` secret, without the final newline editors and ``echo`` add."""
    try:
        data = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"invalid heatwatch settings:\n  {variable}: cannot read {path}: "
                          f"{getattr(exc, 'strerror', None) or type(exc).__name__}") from None
    value = data.rstrip("\r\n")
    if not value:
        raise ConfigError(f"invalid heatwatch settings:\n  {variable}: {path} is empty")
    return value


class _SecretFilesSource(PydanticBaseSettingsSource):
    """``HEATWATCH_<SECRET>_FILE=/run/secrets/x``: the secret is the file's content. Setting both the variable
    and its ``_FILE`` is refused (which one wins would be a guess). Above the plain environment."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        env = {k.upper(): v for k, v in os.environ.items()}
        out: dict[str, Any] = {}
        for name in self.settings_cls.model_fields:
            if name not in SECRET_FIELDS:
                continue
            variable = PREFIX + name.upper()
            path = env.get(variable + "_FILE")
            if not path:
                continue
            if env.get(variable):
                raise ConfigError(f"invalid heatwatch settings:\n  {variable}: set either {variable} or "
                                  f"{variable}_FILE, not both")
            out[name] = read_secret_file(variable + "_FILE", path)
        return out


class CoreSettings(BaseSettings):
    """What every command needs: where the broker and the database are, the data folder, the towns, logs."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", validate_default=True, frozen=True)

    # Connections. None means "start the embedded one" for `heatwatch up`; services run alone fall
    # back to the loopback defaults.
    # Out of repr: the URL may carry a password, and settings objects end up in logs and tracebacks.
    mqtt_url: str | None = Field(default=None, repr=False)
    # Credentials apart from the URL, so that the password can come from a file (HEATWATCH_MQTT_PASSWORD_FILE).
    mqtt_username: str | None = Field(default=None, max_length=256)
    mqtt_password: SecretStr | None = None
    mqtt_ca_file: Path | None = Field(default=None, description="CA certificate(s) the broker's TLS certificate "
                                                                  "is checked against (mqtts://); else the system's")
    mqtt_session_expiry_s: int = Field(default=7 * 24 * 3600, ge=1,
                                       description="persistent MQTT sessions (ingest, recompute requests)")
    influx_url: str | None = None
    influx_db: str = Field(default="heatwatch", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    # Aggregates live in a database of their own, because InfluxDB 1.x grants are per database: ingest may
    # then write raw readings without being able to touch (or DELETE) the published aggregates.
    influx_agg_db: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                      description="database of aggregates, indices and alerts; default <db>_agg")
    influx_token: SecretStr | None = None
    influx_user: str | None = None
    influx_password: SecretStr | None = None
    influx_gzip: bool = False
    influx_timeout_s: float = Field(default=10.0, gt=0)
    raw_retention: str = Field(default="INF", pattern=r"^(INF|\d+[hdw])$",
                               description="retention of raw readings, InfluxQL duration or INF")

    data_dir: Path = Path("./var")
    # The dead-letter store is fed by whatever sensors send: bounded in bytes, payloads kept truncated.
    deadletter_max_bytes: int = Field(default=DEADLETTER_MAX_BYTES, ge=1024 * 1024)
    deadletter_payload_max_bytes: int = Field(default=DEADLETTER_PAYLOAD_MAX_BYTES, ge=256)
    deadletter_max_entries: int = Field(default=DEADLETTER_MAX_ENTRIES, ge=100)
    log_level: str = "INFO"
    log_json: bool = False
    towns_file: Path | None = None
    # Residents' sites are published on a grid of this size, never exactly (core/privacy.py, docs/privacy.md).
    privacy_grid_m: int = Field(default=200, ge=100, le=1000,
                                description="grid (m) private sites' positions are snapped to in every public output")

    _towns: dict[str, Town] = PrivateAttr(default_factory=dict)

    @field_validator("mqtt_url", "mqtt_username", "mqtt_password", "influx_url", "influx_token", "influx_user",
                     "influx_password", mode="before")
    @classmethod
    def _empty_is_unset(cls, v: Any) -> Any:
        # VAR= in an env file or compose's ${VAR:-} means "not set", not "set to nothing".
        return None if v == "" else v

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt(cls, v: str | None) -> str | None:
        if v is not None:
            MqttUrl.parse(v)
        return v

    @field_validator("influx_url")
    @classmethod
    def _check_influx(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https"):
            raise ValueError("an InfluxDB URL must start with http:// or https:// (the value is not shown)")
        if parts.username or parts.password:
            raise ValueError("credentials go in HEATWATCH_INFLUX_USER and HEATWATCH_INFLUX_PASSWORD(_FILE) (or "
                             "_TOKEN), not in the URL")
        return v.rstrip("/")

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, v: str) -> str:
        if v.upper() not in LOG_LEVELS:
            raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {v!r}")
        return v.upper()

    @field_validator("towns_file")
    @classmethod
    def _check_towns(cls, v: Path | None) -> Path | None:
        try:
            if not load_towns(v):
                raise ValueError(f"towns file {v or '(packaged)'} defines no [[town]]")
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return v

    @model_validator(mode="after")
    def _auth(self) -> Self:
        if self.influx_token is not None and self.influx_user is not None:
            raise ValueError("set either HEATWATCH_INFLUX_TOKEN or HEATWATCH_INFLUX_USER/_PASSWORD, not both")
        if self.influx_agg_db is not None and self.influx_agg_db == self.influx_db:
            raise ValueError("HEATWATCH_INFLUX_AGG_DB must differ from HEATWATCH_INFLUX_DB (per-database grants "
                             "are what keep ingest away from the aggregates)")
        return self

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        self._towns = load_towns(self.towns_file)  # read and checked by the validator above: once, at start

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):  # type: ignore[override]
        # Sources are deep-merged, highest first: a group's table in the file is completed, not replaced,
        # by its variables.
        path = os.environ.get("HEATWATCH_CONFIG")
        return (init_settings, _SecretFilesSource(settings_cls), env_settings, _GroupEnvSource(settings_cls),
                _TomlFileSource(settings_cls, Path(path) if path else None))

    @classmethod
    def load(cls, **overrides: Any) -> Self:
        """Build and validate settings; any bad value becomes one :class:`ConfigError` naming its variable."""
        try:
            return cls(**overrides)
        except ValidationError as exc:
            lines = [f"  {cls.variable(e['loc'])}: {e['msg']}{_got(cls.variable(e['loc']), e.get('input'))}"
                     for e in exc.errors()]
            raise ConfigError("invalid heatwatch settings:\n" + "\n".join(lines)) from None
        except SettingsError as exc:  # a complex value (JSON list or map) that does not parse
            raise ConfigError(f"invalid heatwatch settings:\n  {exc}") from None

    @classmethod
    def variable(cls, loc: tuple[int | str, ...]) -> str:
        """The environment variable behind an error location: ``("api", "port")`` → ``HEATWATCH_API_PORT``."""
        if not loc:
            return "(settings)"
        head, rest = str(loc[0]), loc[1:]
        group = _groups(cls).get(head)
        if group is not None and rest:
            field = str(rest[0])
            name = group.env_prefix + field.upper()
            rest = rest[1:]
        else:
            name = PREFIX + head.upper()
        return name + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in rest)

    # Derived values -----------------------------------------------------------------

    @property
    def towns(self) -> dict[str, Town]:
        # Read from the model's private values directly: going through pydantic's __getattr__ for a private
        # attribute costs ~2 µs, and the api reads the towns at every request.
        return self.__pydantic_private__["_towns"]

    @property
    def mqtt(self) -> MqttUrl:
        """The broker: the URL, with the credentials and CA of their own settings when those are set."""
        url = MqttUrl.parse(self.mqtt_url or "mqtt://127.0.0.1:1883")
        update: dict[str, Any] = {}
        if self.mqtt_username is not None:
            update["username"] = self.mqtt_username
        if self.mqtt_password is not None:
            update["password"] = self.mqtt_password.get_secret_value()
        if self.mqtt_ca_file is not None:
            update["ca_file"] = str(self.mqtt_ca_file)
        return url.model_copy(update=update) if update else url

    @property
    def influx_base_url(self) -> str:
        return self.influx_url or "http://127.0.0.1:8086"

    @property
    def influx_agg_database(self) -> str:
        """Where aggregates, indices, alerts and reference stations are stored."""
        return self.influx_agg_db or f"{self.influx_db}_agg"

    @property
    def registry_path(self) -> Path:
        return self.data_dir / "registry.sqlite"

    @property
    def layers_dir(self) -> Path:
        """One GeoPackage per town of its geographic layers (``heatwatch layers``)."""
        return self.data_dir / "layers"

    @property
    def deadletter_dir(self) -> Path:
        return self.data_dir / "deadletter"

    @property
    def deadletter_path(self) -> Path:
        return self.deadletter_dir / DEADLETTER_FILE


class AlertSettings(BaseModel):
    """The alert thresholds (``HEATWATCH_ALERT_*``): analytics raises alerts on them, the api's dashboard
    marks values with them. Mixed into both groups, so one environment gives both the same set."""

    alert_temperature_c: float = DEFAULT_THRESHOLDS.temperature_c
    alert_heat_index_c: float = DEFAULT_THRESHOLDS.heat_index_c
    alert_uhi_night_c: float = DEFAULT_THRESHOLDS.uhi_night_c
    alert_offline_s: int = Field(default=DEFAULT_THRESHOLDS.offline_s, ge=60)
    alert_battery_v: float = Field(default=DEFAULT_THRESHOLDS.battery_v, ge=0)
    alert_battery_pct: float = Field(default=DEFAULT_THRESHOLDS.battery_pct, ge=0, le=100,
                                     description="battery alert of devices reporting percent, not volts")
    alert_qc_hours: int = Field(default=DEFAULT_THRESHOLDS.qc_hours, ge=1,
                                description="consecutive flagged hours before a QC alert")

    @property
    def alert_thresholds(self) -> AlertThresholds:
        return AlertThresholds(temperature_c=self.alert_temperature_c, heat_index_c=self.alert_heat_index_c,
                               uhi_night_c=self.alert_uhi_night_c, offline_s=self.alert_offline_s,
                               battery_v=self.alert_battery_v, battery_pct=self.alert_battery_pct,
                               qc_hours=self.alert_qc_hours)
