"""The Things Stack v3 uplinks on ``v3/<app-id>[@<tenant>]/devices/<device-id>/up``.

One uplink is one reading. What heatwatch takes from the message (TTS data formats documentation):

- ``end_device_ids.device_id``: must equal the topic's device id (``sensor_mismatch``);
  ``end_device_ids.dev_eui``: the DevEUI the registry may know the device by.
- ``uplink_message.decoded_payload``: the payload formatter's output — a vendor codec, or TTS's
  built-in Cayenne LPP formatter (``temperature_1``, ``relative_humidity_2``, ``analog_in_3``); a
  :mod:`profile <heatwatch.ingest.decoders.profiles>` maps it to heatwatch fields and units.
  TTS omits empty and zero-valued fields, so every mapped field is optional; an uplink with
  neither temperature nor humidity is rejected (``no_measurement``) with the field names it did
  carry, which is what one needs to fix a wrong profile.
- ``uplink_message.rx_metadata[].rssi`` and ``.snr``: those of the gateway that heard it best (highest RSSI).
- time: the device's own when its profile names a time field, else the network server's
  ``uplink_message.received_at``, else the top-level ``received_at``, else the MQTT receipt.
  TTS writes RFC 3339 with nanoseconds; the kernel's parser truncates them to milliseconds.

Town and sensor: :meth:`heatwatch.ingest.decoders.lorawan.Network.place` (registry by DevEUI,
then by device id, then the application's town with the device id as sensor id).
"""

from __future__ import annotations

from typing import Any

from ...core.errors import DecodeError
from ...core.model import Reading, normalize_eui, valid_sensor_id
from ...core.settings import IngestSettings
from ..reasons import Reason
from .base import Context, Decoded
from .common import parse_json
from .lorawan import DEFAULT_APP_PREFIX, Network, best_signal, network_from_settings, rfc3339_ms

__all__ = ["DEFAULT_APP_PREFIX", "TtsDecoder", "decode", "from_settings", "rfc3339_ms", "topic_app_device"]


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


class TtsDecoder:
    """The TTS decoder with its placement and profile rules (:class:`Network`).

    The module-level :data:`decode` uses the defaults (naming convention only, packaged profiles);
    :func:`from_settings` builds one from settings.
    """

    def __init__(self, app_towns: dict[str, str] | None = None, *, towns: Any = (), profiles: Any = None,
                 network: Network | None = None) -> None:
        if network is None:
            from .profiles import Profiles, ProfileSource

            source = ProfileSource(profiles=profiles) if isinstance(profiles, Profiles) else profiles
            network = Network(app_towns, towns=towns, profiles=source)
        self.network = network

    def town_for_app(self, app: str) -> str | None:
        return self.network.town_for_app(app)

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
        raw_eui = ids.get("dev_eui")  # type: ignore[union-attr]
        eui = normalize_eui(raw_eui) if isinstance(raw_eui, str) else None

        net = self.network
        town, sensor, identity = net.place(ctx, eui, device, (app,))
        fields = up.get("decoded_payload")
        profile, values = net.measure(ctx, identity, fields, device, "decoded_payload")
        ts = net.device_time(profile, fields)  # type: ignore[arg-type]
        if ts is None:
            ts = self._time(msg, up, ctx)
        rssi, snr = best_signal(up.get("rx_metadata"))
        reading = Reading(
            town=town,
            sensor=sensor,
            ts_ms=ts,
            temperature=values.get("temperature"),
            humidity=values.get("humidity"),
            battery_v=values.get("battery_v"),
            rssi=rssi,
            snr=snr,
            source="tts",
            battery_pct=values.get("battery_pct"),
        )
        return Decoded(readings=[reading])

    @staticmethod
    def _time(msg: dict[str, Any], up: dict[str, Any], ctx: Context) -> int:
        for source in (up.get("received_at"), msg.get("received_at")):
            if source is not None:
                return rfc3339_ms(source)
        return ctx.received_ms


def from_settings(settings: IngestSettings, network: Network | None = None) -> TtsDecoder:
    """A decoder from settings (application → town map, towns, the operator's profile file)."""
    return TtsDecoder(network=network or network_from_settings(settings))


decode = TtsDecoder()
