"""The Things Stack v3 uplinks on ``v3/<app-id>[@<tenant>]/devices/<device-id>/up``.

One uplink is one reading. What heatwatch takes from the message:

- ``end_device_ids.device_id``: must equal the topic's device id (``sensor_mismatch``).
- ``uplink_message.decoded_payload``: measurements, named per device model; a
  :mod:`profile <heatwatch.ingest.decoders.profiles>` maps them to heatwatch fields and units.
  TTS omits empty and zero-valued fields, so every mapped field is optional; an uplink with
  neither temperature nor humidity is rejected here (``no_measurement``) with the field names
  it did carry, which is what one needs to fix a wrong profile.
- ``uplink_message.rx_metadata[].rssi``: the best (highest) over all gateways that heard it.
- time: the device's own when its profile names a time field, else the network server's
  ``uplink_message.received_at``, else the top-level ``received_at``, else the MQTT receipt.
  TTS writes RFC 3339 with nanoseconds; the kernel's parser truncates them to milliseconds.

Town and sensor: the registry (``ctx.devices.resolve(device_id)``) when it knows the device;
otherwise the application decides the town — an explicit application → town map, else the
naming convention ``heatwatch-<town>`` (``heatwatch-vitre``), else a configured town id the
application id starts or ends with — and the device id becomes the sensor id (ingest then
registers it as unplaced). With no town at all the uplink is rejected (``unknown_device``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any, Protocol, runtime_checkable

from ...core.errors import DecodeError
from ...core.model import Reading, valid_sensor_id, valid_town_id
from ..reasons import Reason
from .base import Context, Decoded
from .common import number, parse_json, timestamp_ms
from .profiles import Profile, Profiles, default_profiles

DEFAULT_APP_PREFIX = "heatwatch-"

@runtime_checkable
class ProfileLookup(Protocol):
    """Optional extra of a device lookup: the device profile the registry names for a device."""

    def device_profile(self, identity: str) -> str | None: ...


def rfc3339_ms(value: object) -> int:
    """Epoch ms of an RFC 3339 timestamp, any number of fractional digits (TTS sends nine)."""
    if not isinstance(value, str):
        raise DecodeError(Reason.bad_timestamp, repr(value)[:100])
    return timestamp_ms(value)


def topic_app_device(ctx: Context) -> tuple[str, str]:
    """(application id without tenant, device id) from ``v3/<app>[@<tenant>]/devices/<device>/up``."""
    levels = ctx.levels
    if len(levels) != 5 or levels[0] != "v3" or levels[2] != "devices" or levels[4] != "up":
        raise DecodeError(Reason.bad_topic, ctx.topic[:200])
    app = levels[1].split("@", 1)[0]
    device = levels[3]
    if not app or not valid_sensor_id(device):
        raise DecodeError(Reason.bad_topic, ctx.topic[:200])
    return app, device


def _best_rssi(rx_metadata: object) -> float | None:
    """The strongest signal among the gateways; malformed entries are skipped, it is only metadata."""
    if not isinstance(rx_metadata, list):
        return None
    best: float | None = None
    for gw in rx_metadata:
        if not isinstance(gw, dict):
            continue
        raw = gw.get("rssi", gw.get("channel_rssi"))
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            continue
        if best is None or raw > best:
            best = float(raw)
    return best


class TtsDecoder:
    """A decoder configured with the application → town fallback and the device profiles.

    The module-level :data:`decode` is an instance with the defaults (naming convention only,
    packaged profiles); :func:`from_settings` builds one from settings.
    """

    def __init__(
        self,
        app_towns: Mapping[str, str] | None = None,
        *,
        towns: Collection[str] = (),
        app_prefix: str = DEFAULT_APP_PREFIX,
        profiles: Profiles | None = None,
    ) -> None:
        self.app_towns = dict(app_towns or {})
        # Longest first, so "saint-omer" wins over a shorter town id it may end with.
        self.towns = sorted(towns, key=len, reverse=True)
        self.app_prefix = app_prefix
        self._profiles = profiles

    @property
    def profiles(self) -> Profiles:
        # Resolved lazily so importing the decoders never reads a file.
        if self._profiles is None:
            self._profiles = default_profiles()
        return self._profiles

    def town_for_app(self, app: str) -> str | None:
        town = self.app_towns.get(app)
        if town is not None:
            return town
        if self.app_prefix and app.startswith(self.app_prefix):
            rest = app[len(self.app_prefix):]
            if valid_town_id(rest):
                return rest
        for t in self.towns:
            if app == t or app.startswith(t + "-") or app.endswith("-" + t):
                return t
        return None

    def _profile(self, ctx: Context, device: str, payload: Mapping[str, object]) -> Profile | None:
        # getattr, not isinstance on the runtime-checkable Protocol: that check cost ~3 µs per uplink.
        lookup = getattr(ctx.devices, "device_profile", None)
        if lookup is not None:
            name = lookup(device)
            if name is not None and name in self.profiles:
                return self.profiles[name]
            # An unknown profile name falls through to detection: a typo in the registry
            # should not drop data (`heatwatch sensors import` warns about it).
        return self.profiles.detect(payload)

    def __call__(self, payload: bytes, ctx: Context) -> Decoded:
        app, device = topic_app_device(ctx)
        msg = parse_json(payload)
        if not isinstance(msg, dict):
            raise DecodeError(Reason.bad_shape, f"expected an object, got {type(msg).__name__}")
        ids = msg.get("end_device_ids")
        named = ids.get("device_id") if isinstance(ids, dict) else None
        if not isinstance(named, str):
            raise DecodeError(Reason.bad_shape, "no end_device_ids.device_id")
        if named != device:
            raise DecodeError(Reason.sensor_mismatch, f"topic says {device!r}, payload says {named[:80]!r}")
        up = msg.get("uplink_message")
        if not isinstance(up, dict):
            # Join accepts, downlink events, location updates: nothing to measure.
            raise DecodeError(Reason.bad_shape, "not an uplink: no uplink_message")

        place = ctx.devices.resolve(device) if ctx.devices is not None else None
        if place is None:
            town = self.town_for_app(app)
            if town is None:
                raise DecodeError(Reason.unknown_device, f"device {device!r} of application {app!r}")
            place = (town, device)
        town, sensor = place

        fields = up.get("decoded_payload")
        if fields is None:
            raise DecodeError(Reason.no_measurement, f"{device}: no decoded_payload (no payload formatter?)")
        if not isinstance(fields, dict):
            raise DecodeError(Reason.bad_shape, f"decoded_payload is a {type(fields).__name__}")
        profile = self._profile(ctx, device, fields)
        if profile is None:
            raise DecodeError(Reason.no_measurement, f"{device}: no profile matches fields {sorted(fields)[:20]}")

        values: dict[str, float | None] = {}
        for target, fmap in profile.fields.items():
            raw = number(fields.get(fmap.field), fmap.field)
            values[target] = None if raw is None else fmap.convert(raw)
        if values.get("temperature") is None and values.get("humidity") is None:
            raise DecodeError(Reason.no_measurement,
                              f"{device}: profile {profile.name} found none of its fields in {sorted(fields)[:20]}")
        reading = Reading(
            town=town,
            sensor=sensor,
            ts_ms=self._time(msg, up, fields, profile, ctx),
            temperature=values.get("temperature"),
            humidity=values.get("humidity"),
            battery_v=values.get("battery_v"),
            rssi=_best_rssi(up.get("rx_metadata")),
            source="tts",
        )
        return Decoded(readings=[reading])

    @staticmethod
    def _time(msg: Mapping[str, Any], up: Mapping[str, Any], fields: Mapping[str, Any], profile: Profile,
              ctx: Context) -> int:
        if profile.time is not None and fields.get(profile.time) is not None:
            raw = fields[profile.time]
            return timestamp_ms(raw)
        for source in (up.get("received_at"), msg.get("received_at")):
            if source is not None:
                return rfc3339_ms(source)
        return ctx.received_ms


def from_settings(settings: object) -> TtsDecoder:
    """A decoder from settings: ``tts_app_towns`` (application id → town) and the configured towns.

    Read with getattr so this works before/without those settings existing.
    """
    app_towns = getattr(settings, "tts_app_towns", None) or {}
    towns = getattr(settings, "towns", None) or {}
    return TtsDecoder(app_towns, towns=list(towns))


decode = TtsDecoder()
