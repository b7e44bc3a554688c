"""``IngestSettings``: what ``heatwatch ingest`` needs beyond the core."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from ..topics import ALERTS_ALL, CHIRPSTACK_FILTER, CHIRPSTACK_V3_FILTER, NATIVE_FILTER, SENML_FILTER, TTS_FILTER
from .base import CoreSettings

PayloadFormat = Literal["json", "senml", "tts", "chirpstack"]


class Subscription(BaseModel):
    """One MQTT topic filter and the decoder for what arrives on it (Telegraf-style)."""

    filter: str
    format: PayloadFormat


DEFAULT_SUBSCRIPTIONS = [
    Subscription(filter=NATIVE_FILTER, format="json"),
    Subscription(filter=SENML_FILTER, format="senml"),
    Subscription(filter=TTS_FILTER, format="tts"),
    Subscription(filter=CHIRPSTACK_FILTER, format="chirpstack"),
    Subscription(filter=CHIRPSTACK_V3_FILTER, format="chirpstack"),
]


class IngestSettings(CoreSettings):
    mqtt_client_id: str = Field(default="heatwatch-ingest", pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                                description="the persistent session's id: one per ingester")
    mqtt_shared_group: str | None = Field(default=None, pattern=r"^[^/+#\s]{1,64}$",
                                          description="set to share the stream: $share/<group>/...")
    subscriptions: list[Subscription] = Field(default_factory=lambda: list(DEFAULT_SUBSCRIPTIONS), min_length=1)
    # heat/alerts/<town> (analytics' own output) matches the readings filter heat/+/+.
    ignore_filters: list[str] = Field(default_factory=lambda: [ALERTS_ALL],
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
    backlog_window: timedelta = Field(default=timedelta(days=30), gt=timedelta(0))
    max_payload_bytes: int = Field(default=256 * 1024, ge=64)
    spool_max_bytes: int = Field(default=1024**3, ge=1024, description="spool bound; when full, acks are held")
    metrics_port: int | None = Field(default=None, ge=0, le=65535,
                                     description="Prometheus /metrics port of the ingester")
    metrics_host: str = Field(default="127.0.0.1", description=(
        "address of the ingester's /metrics listener (under compose the compose network's, not published)"))

    @property
    def spool_dir(self) -> Path:
        # One spool per ingester: two replaying the same segments would race.
        return self.data_dir / "spool" / self.mqtt_client_id
