"""ChirpStack uplink events over its MQTT integration (JSON marshaler).

Topics: ``application/<application id>/device/<DevEUI>/event/up`` (ChirpStack v4, and v3.x) and
``application/<application id>/device/<DevEUI>/rx`` (ChirpStack Application Server v3's legacy
topic). One uplink is one reading. The two payload shapes, told apart by their keys:

- **v4** (``UplinkEvent`` of ChirpStack's ``integration.proto``, protobuf JSON mapping):
  ``deviceInfo`` {``devEui``, ``deviceName``, ``applicationId``, ``applicationName``,
  ``tenantName``, ``deviceProfileName``, ``tags``}, ``time`` (RFC 3339, nanoseconds), ``object``
  (the device-profile codec's output), ``rxInfo[]`` {``rssi``, ``snr``}.
- **v3** (``applicationID``, ``applicationName``, ``deviceName``, ``devEUI`` — hex in the "JSON v3"
  marshaler, base64 in the protobuf-JSON one —, ``rxInfo[]`` {``rssi``, ``loRaSNR``}, ``object`` or
  ``objectJSON`` (a JSON string), ``publishedAt``).

The payload's DevEUI must be the topic's (``sensor_mismatch``). Town and sensor: the registry by
DevEUI, then by device name, then the application (id or name) through ``HEATWATCH_APP_TOWNS``
and the naming rules of :mod:`.lorawan`, the sensor id then being the device name when it is a
valid sensor id, else the DevEUI in lower case. Measurements: the device profile, as for The
Things Stack — ChirpStack's device-profile templates carry the same vendor codecs, and its built-in
Cayenne LPP codec has its own packaged profile (``temperatureSensor.<channel>``...). Time: the
device's own when its profile names one, else the event's ``time`` (v4) / ``publishedAt`` (v3),
else the MQTT receipt.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from ...core.errors import DecodeError
from ...core.model import Reading, normalize_eui, valid_sensor_id
from ...core.settings import IngestSettings
from ..reasons import Reason
from .base import Context, Decoded
from .common import parse_json
from .lorawan import Network, best_signal, network_from_settings, rfc3339_ms


def topic_app_eui(ctx: Context) -> tuple[str, str]:
    """(application id, DevEUI upper case) from ``application/<id>/device/<DevEUI>/event/up`` or ``.../rx``."""
    levels = ctx.levels
    ok = len(levels) >= 5 and levels[0] == "application" and levels[2] == "device" and (
        (len(levels) == 6 and levels[4] == "event" and levels[5] == "up") or (len(levels) == 5 and levels[4] == "rx"))
    eui = normalize_eui(levels[3]) if ok else None
    if not ok or eui is None or not levels[1]:
        raise DecodeError(Reason.bad_topic, ctx.topic[:200])
    return levels[1], eui


def _eui_of(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    eui = normalize_eui(value)
    if eui is None and len(value) == 12:
        try:  # protobuf JSON maps bytes to base64 (ChirpStack v3's "JSON" marshaler)
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
        eui = raw.hex().upper() if len(raw) == 8 else None
    return eui


class ChirpStackDecoder:
    def __init__(self, network: Network | None = None) -> None:
        self.network = network or Network()

    def __call__(self, payload: bytes, ctx: Context) -> Decoded:
        topic_app, topic_eui = topic_app_eui(ctx)
        msg = parse_json(payload)
        if not isinstance(msg, dict):
            raise DecodeError(Reason.bad_shape, f"expected an object, got {type(msg).__name__}")
        info = msg.get("deviceInfo")
        if isinstance(info, dict):  # v4
            eui_raw, name = info.get("devEui"), info.get("deviceName")
            apps = (info.get("applicationId"), info.get("applicationName"), topic_app)
            obj = msg.get("object")
            when = msg.get("time")
            rx = msg.get("rxInfo")
        elif "devEUI" in msg or "applicationID" in msg:  # v3
            eui_raw, name = msg.get("devEUI"), msg.get("deviceName")
            apps = (msg.get("applicationID"), msg.get("applicationName"), topic_app)
            obj = msg.get("object")
            if obj is None and isinstance(msg.get("objectJSON"), str) and msg["objectJSON"]:
                try:
                    obj = orjson.loads(msg["objectJSON"])
                except orjson.JSONDecodeError as exc:
                    raise DecodeError(Reason.bad_shape, f"objectJSON is not JSON: {str(exc)[:120]}") from None
            when = msg.get("publishedAt")
            rx = msg.get("rxInfo")
        else:
            # join, status, ack, txack, log, location events share the topic tree, not this shape.
            raise DecodeError(Reason.bad_shape, "not a ChirpStack uplink event: no deviceInfo (v4) or devEUI (v3)")
        eui = _eui_of(eui_raw)
        if eui is None:
            raise DecodeError(Reason.bad_shape, f"no valid DevEUI in the event ({str(eui_raw)[:40]!r})")
        if eui != topic_eui:
            raise DecodeError(Reason.sensor_mismatch, f"topic says DevEUI {topic_eui}, payload says {eui}")
        device = name if isinstance(name, str) and valid_sensor_id(name) else eui.lower()
        app_names = tuple(str(a) for a in apps if isinstance(a, str | int) and not isinstance(a, bool) and a != "")

        net = self.network
        town, sensor, identity = net.place(ctx, eui, device, app_names)
        profile, values = net.measure(ctx, identity, obj, device, "object")
        ts = net.device_time(profile, obj)  # type: ignore[arg-type]
        if ts is None:
            ts = rfc3339_ms(when) if when is not None else self._rx_time(rx, ctx)
        rssi, snr = best_signal(rx)
        reading = Reading(
            town=town,
            sensor=sensor,
            ts_ms=ts,
            temperature=values.get("temperature"),
            humidity=values.get("humidity"),
            battery_v=values.get("battery_v"),
            rssi=rssi,
            snr=snr,
            source="chirpstack",
            battery_pct=values.get("battery_pct"),
        )
        return Decoded(readings=[reading])

    @staticmethod
    def _rx_time(rx: Any, ctx: Context) -> int:
        # v4's rxInfo[].nsTime is when the network server received the frame; a gateway's own time
        # (gwTime, v3's time) needs a GPS fix to be right, so it is not used.
        if isinstance(rx, list):
            for gw in rx:
                if isinstance(gw, dict) and isinstance(gw.get("nsTime"), str):
                    return rfc3339_ms(gw["nsTime"])
        return ctx.received_ms


def from_settings(settings: IngestSettings, network: Network | None = None) -> ChirpStackDecoder:
    return ChirpStackDecoder(network or network_from_settings(settings))


decode = ChirpStackDecoder()
