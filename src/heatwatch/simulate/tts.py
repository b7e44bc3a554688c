"""The Things Stack v3 uplinks, as TTS publishes them on ``v3/<app>@<tenant>/devices/<device>/up``.

Each device profile builds the real frame bytes of that device (``frm_payload``) and the
``decoded_payload`` its vendor's decoder in the TTN Device Repository returns for them, with
the same field names and value types (JavaScript numbers: a whole value prints without ``.0``).
Envelope fields follow the TTS data-format documentation; zero or empty fields are omitted as
TTS omits them; timestamps use 0, 3, 6 or 9 fractional digits as protobuf JSON does.
"""

from __future__ import annotations

import base64
import json
import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from heatwatch.core.model import Reading, Sensor, SiteClass

from . import noise
from .sun import daylight
from .weather import battery_percent

_S_GW, _S_GWN, _S_RSSI, _S_SNR, _S_FREQ, _S_LAT, _S_TOKEN, _S_ULID, _S_EUI, _S_ADDR, _S_SKEY = range(40, 51)
_S_DS, _S_LIGHT, _S_MOTION = 51, 52, 53

_EU868 = (868_100_000, 868_300_000, 868_500_000, 867_100_000, 867_300_000, 867_500_000, 867_700_000,
          867_900_000)
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DEVICE_ID_RE = re.compile(r"^[a-z0-9](?:-?[a-z0-9]){2,35}$")
_EUI_ID_RE = re.compile(r"^eui-([0-9a-f]{16})$")

# Illustrative gateways (id, EUI, latitude, longitude) per town, like the example sensors.
_GATEWAYS = {
    "vitre": (("vitre-mairie-gw", "58A0CBFFFE8012A4", 48.1240, -1.2071),
              ("vitre-baratiere-gw", "7076FFFFFF0119C2", 48.1352, -1.1952)),
    "saint-omer": (("so-hotel-de-ville-gw", "B827EBFFFE61A3C0", 50.7496, 2.2526),
                   ("so-haut-pont-gw", "A840411D51344150", 50.7602, 2.2611)),
}


@dataclass(frozen=True, slots=True)
class Frame:
    f_port: int
    frm_payload: bytes
    decoded: dict[str, object]
    temperature: float
    humidity: float
    battery_v: float | None
    battery_pct: float | None = None


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    name: str
    brand_id: str
    model_id: str
    hardware_version: str
    firmware_version: str
    eui_prefix: str
    join_eui: str
    frame: Callable[[Sensor, Reading, int], Frame]


def _js(x: float) -> float | int:
    # JavaScript has one number type: JSON.stringify(55.0) is "55", and TTS passes that on.
    return int(x) if float(x).is_integer() else x


def _lht65(sensor: Sensor, r: Reading, seed: int) -> Frame:
    bat_mv = max(0, min(0x3FFF, round((r.battery_v or 3.0) * 1000)))
    volts = bat_mv / 1000
    status = 3 if volts > 2.65 else 2 if volts > 2.55 else 1 if volts > 2.50 else 0
    t = max(-32768, min(32767, round((r.temperature or 0.0) * 100)))
    h = max(0, min(1000, round((r.humidity or 0.0) * 10)))
    # An external DS18B20 probe is plugged in (Ext = 1): a second, slightly different temperature
    # that a decoder must not confuse with the SHT20 air temperature.
    ds = t - round(40 + 30 * noise.uniform1(seed, noise.key_of(sensor.id), _S_DS, r.ts_ms))
    frm = struct.pack(">HhHBhH", (status << 14) | bat_mv, t, h, 0x01, ds, 0x7FFF)
    decoded: dict[str, object] = {
        "BatV": _js(bat_mv / 1000), "Bat_status": status, "TempC_SHT": _js(t / 100), "Hum_SHT": _js(h / 10),
        "Ext_sensor": "Temperature Sensor", "TempC_DS": _js(ds / 100),
    }
    return Frame(2, frm, decoded, t / 100, h / 10, bat_mv / 1000)


def _em300_th(sensor: Sensor, r: Reading, seed: int) -> Frame:
    pct = battery_percent(r.battery_v or 3.6, sensor.device_profile or "milesight-em300-th")
    t = max(-32768, min(32767, round((r.temperature or 0.0) * 10)))
    h = max(0, min(200, round((r.humidity or 0.0) * 2)))
    frm = bytes([0x01, 0x75, pct, 0x03, 0x67]) + struct.pack("<h", t) + bytes([0x04, 0x68, h])
    decoded: dict[str, object] = {"battery": pct, "temperature": _js(t / 10), "humidity": _js(h / 2)}
    # The device reports charge in percent, not volts: stored as battery_pct.
    return Frame(85, frm, decoded, t / 10, h / 2, None, float(pct))


def _elsys_ers(sensor: Sensor, r: Reading, seed: int) -> Frame:
    key = noise.key_of(sensor.id)
    t = max(-32768, min(32767, round((r.temperature or 0.0) * 10)))
    h = max(0, min(100, round(r.humidity or 0.0)))
    vdd = max(0, min(0xFFFF, round((r.battery_v or 3.6) * 1000)))
    sun = daylight(r.ts_ms / 1000, sensor.latitude or 48.0, sensor.longitude or 0.0)
    light = min(0xFFFF, round(sun * (8000 + 6000 * noise.uniform1(seed, key, _S_LIGHT, r.ts_ms))))
    busy = 6 if sun > 0 and sensor.site_class in (SiteClass.urban, SiteClass.suburban) else 1
    motion = int(noise.uniform1(seed, key, _S_MOTION, r.ts_ms) * busy)
    frm = (bytes([0x01]) + struct.pack(">h", t) + bytes([0x02, h, 0x04]) + struct.pack(">H", light)
           + bytes([0x05, motion, 0x07]) + struct.pack(">H", vdd))
    decoded: dict[str, object] = {"temperature": _js(t / 10), "humidity": h, "light": light, "motion": motion,
                                  "vdd": vdd}
    return Frame(5, frm, decoded, t / 10, float(h), vdd / 1000)


PROFILES: dict[str, DeviceProfile] = {
    "dragino-lht65": DeviceProfile("dragino-lht65", "dragino", "lht65", "1.0", "1.8", "a84041",
                                   "A840410000000101", _lht65),
    "milesight-em300-th": DeviceProfile("milesight-em300-th", "milesight-iot", "em300-th", "1.1", "1.3",
                                        "24e124", "24E124C0002A0001", _em300_th),
    "elsys-ers": DeviceProfile("elsys-ers", "elsys", "ers", "1.0", "2.3.0", "a81758",
                               "A81758FFFE000001", _elsys_ers),
}
DEFAULT_PROFILE = "milesight-em300-th"


def application_id(town: str) -> str:
    return f"heatwatch-{town}"


def device_ids(sensor: Sensor, profile: DeviceProfile, seed: int) -> tuple[str, str]:
    """(device_id, dev_eui) from the registry identity, derived when the registry has none."""
    identity = (sensor.mqtt_identity or "").lower()
    m = _EUI_ID_RE.match(identity)
    if m:
        return identity, m.group(1).upper()
    tail = noise.bits1(seed, noise.key_of(sensor.id), _S_EUI) & 0xFFFFFFFFFF
    eui = f"{profile.eui_prefix}{tail:010x}"
    device_id = identity if _DEVICE_ID_RE.match(identity) else f"eui-{eui}"
    return device_id, eui.upper()


def uplink(sensor: Sensor, reading: Reading, profile_name: str | None, *, seed: int, step_s: int,
           tenant: str = "ttn") -> tuple[str, bytes, Reading]:
    """Topic, JSON payload and the reading a correct decoder recovers from it."""
    profile = PROFILES[profile_name or DEFAULT_PROFILE]
    frame = profile.frame(sensor, reading, seed)
    key = noise.key_of(sensor.id)
    app = application_id(sensor.town)
    device_id, dev_eui = device_ids(sensor, profile, seed)
    ts = reading.ts_ms

    gateways = _GATEWAYS.get(sensor.town) or ((f"{sensor.town}-gw-1", "0000000000000001", None, None),)
    n_gw = 1 if len(gateways) == 1 or noise.uniform1(seed, key, _S_GWN) < 0.5 else 2
    first_gw = int(noise.uniform1(seed, key, _S_GW) * len(gateways))
    base_rssi = -75.0 - 40.0 * noise.uniform1(seed, key, _S_RSSI)
    sf = 7 if base_rssi > -100 else 8 if base_rssi > -106 else 9 if base_rssi > -110 else 10 \
        if base_rssi > -113 else 11 if base_rssi > -116 else 12
    freq = _EU868[int(noise.uniform1(seed, key, _S_FREQ, ts) * len(_EU868))]
    airtime_s = lora_airtime(13 + len(frame.frm_payload), sf)

    tx_end_ns = ts * 1_000_000 + round(airtime_s * 1e9)
    gs_ns = tx_end_ns + round((30 + 120 * noise.uniform1(seed, key, _S_LAT, ts)) * 1e6) + ts % 997
    ns_ns = gs_ns + round((200 + 30 * noise.uniform1(seed, key, _S_LAT + 100, ts)) * 1e6) + ts % 991
    as_ns = ns_ns + round((2 + 18 * noise.uniform1(seed, key, _S_LAT + 200, ts)) * 1e6) + ts % 983

    rx: list[dict[str, object]] = []
    for g in range(n_gw):
        gw_id, gw_eui, gw_lat, gw_lon = gateways[(first_gw + g) % len(gateways)]
        rssi = round(base_rssi - 9 * g + (noise.uniform1(seed, key, _S_RSSI + 10 * (g + 1), ts) - 0.5) * 6)
        snr = max(-20.0, min(11.0, 9.5 - 0.7 * max(0, -rssi - 95)
                             + (noise.uniform1(seed, key, _S_SNR + 10 * g, ts) - 0.5) * 2))
        meta: dict[str, object] = {"gateway_ids": {"gateway_id": gw_id, "eui": gw_eui}}
        if g == 0:
            meta["time"] = _rfc3339(tx_end_ns)  # only the first gateway has GPS time
        counter = (tx_end_ns // 1000 + noise.bits1(seed, noise.key_of(gw_id), _S_GW)) & 0xFFFFFFFF
        if counter:
            meta["timestamp"] = counter
        meta.update({"rssi": rssi, "channel_rssi": rssi, "snr": _js(round(snr * 4) / 4) or None})
        chan = _EU868.index(freq)
        if chan:
            meta["channel_index"] = chan
        if gw_lat is not None:
            meta["location"] = {"latitude": gw_lat, "longitude": gw_lon, "altitude": 30, "source": "SOURCE_REGISTRY"}
        meta["uplink_token"] = _b64(noise.bits1(seed, key, _S_TOKEN + g, ts).to_bytes(8, "big") * 3)
        meta["received_at"] = _rfc3339(gs_ns + g * 1_234_567)
        rx.append({k: v for k, v in meta.items() if v is not None})
    rx.sort(key=lambda m: -int(m["rssi"]))  # type: ignore[call-overload]

    installed = sensor.installed or date(2024, 1, 1)
    f_cnt = max(1, (ts // 1000 - (installed - date(1970, 1, 1)).days * 86400) // step_s + 1)
    uplink_message: dict[str, object] = {
        "session_key_id": _b64(noise.bits1(seed, key, _S_SKEY).to_bytes(8, "big") * 2),
        "f_port": frame.f_port,
        "f_cnt": f_cnt,
        "frm_payload": _b64(frame.frm_payload),
        "decoded_payload": frame.decoded,
        "rx_metadata": rx,
        "settings": {k: v for k, v in {
            "data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": sf, "coding_rate": "4/5"}},
            "frequency": str(freq),
            "timestamp": rx[0].get("timestamp"),
            "time": _rfc3339(tx_end_ns),
        }.items() if v is not None},
        "received_at": _rfc3339(ns_ns),
        "consumed_airtime": _duration(airtime_s),
        "version_ids": {"brand_id": profile.brand_id, "model_id": profile.model_id,
                        "hardware_version": profile.hardware_version,
                        "firmware_version": profile.firmware_version, "band_id": "EU_863_870"},
        "network_ids": {"net_id": "000013", "ns_id": "EC656E0000000181", "tenant_id": tenant,
                        "cluster_id": "eu1", "cluster_address": "eu1.cloud.thethings.network"},
    }
    if sensor.latitude is not None and sensor.longitude is not None:
        uplink_message["locations"] = {"user": {"latitude": sensor.latitude, "longitude": sensor.longitude,
                                                "source": "SOURCE_REGISTRY"}}
    body = {
        "end_device_ids": {
            "device_id": device_id,
            "application_ids": {"application_id": app},
            "dev_eui": dev_eui,
            "join_eui": profile.join_eui,
            "dev_addr": f"260B{noise.bits1(seed, key, _S_ADDR) & 0xFFFF:04X}",
        },
        "correlation_ids": [f"as:up:{_ulid(as_ns // 1_000_000, seed, key, ts)}",
                            f"gs:conn:{_ulid(ts - 86_400_000, seed, key, 1)}",
                            f"gs:uplink:{_ulid(gs_ns // 1_000_000, seed, key, ts + 1)}",
                            f"ns:uplink:{_ulid(ns_ns // 1_000_000, seed, key, ts + 2)}",
                            f"rpc:/ttn.lorawan.v3.GsNs/HandleUplink:{_ulid(gs_ns // 1_000_000, seed, key, ts + 3)}",
                            f"rpc:/ttn.lorawan.v3.NsAs/HandleUplink:{_ulid(ns_ns // 1_000_000, seed, key, ts + 4)}"],
        "received_at": _rfc3339(as_ns),
        "uplink_message": uplink_message,
    }
    payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    topic = f"v3/{app}@{tenant}/devices/{device_id}/up"
    # The Network Server's reception time is the closest TTS gives to when the device sent it.
    published = Reading(town=sensor.town, sensor=sensor.id, ts_ms=ns_ns // 1_000_000,
                        temperature=frame.temperature, humidity=frame.humidity, battery_v=frame.battery_v,
                        rssi=float(rx[0]["rssi"]), battery_pct=frame.battery_pct)  # type: ignore[arg-type]
    return topic, payload, published


def lora_airtime(phy_len: int, sf: int, bandwidth: int = 125_000, coding_rate: int = 1) -> float:
    """Time on air (s) of a LoRa frame: Semtech AN1200.13, explicit header, CRC on, 8-symbol preamble."""
    t_sym = (1 << sf) / bandwidth
    de = 1 if sf >= 11 and bandwidth == 125_000 else 0
    n = 8 + max(math.ceil((8 * phy_len - 4 * sf + 28 + 16) / (4 * (sf - 2 * de))) * (coding_rate + 4), 0)
    return (8 + 4.25) * t_sym + n * t_sym


def _rfc3339(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}{_fraction(frac)}Z"


def _duration(seconds: float) -> str:
    ns = round(seconds * 1e9)
    secs, frac = divmod(ns, 1_000_000_000)
    return f"{secs}{_fraction(frac)}s"


def _fraction(ns: int) -> str:
    # protobuf JSON prints 0, 3, 6 or 9 fractional digits, whichever is shortest and exact.
    if ns == 0:
        return ""
    if ns % 1_000_000 == 0:
        return f".{ns // 1_000_000:03d}"
    if ns % 1000 == 0:
        return f".{ns // 1000:06d}"
    return f".{ns:09d}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _ulid(ms: int, seed: int, key: int, salt: int) -> str:
    value = (ms & ((1 << 48) - 1)) << 80 | (noise.bits1(seed, key, _S_ULID, salt) << 16) | (salt & 0xFFFF)
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in range(25, -1, -1))
