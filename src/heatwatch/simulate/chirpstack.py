"""ChirpStack v4 uplink events, as its MQTT integration publishes them (JSON marshaler) on
``application/<application id>/device/<DevEUI>/event/up``.

The same radio frame, codec output and gateways as :func:`heatwatch.simulate.tts.uplink` (the
device does not know which network server it talks to), in the ``UplinkEvent`` shape of
ChirpStack's ``integration.proto`` and its documented JSON example: ``deviceInfo`` (tenant,
application, device profile, device name, ``devEui`` in lower case), ``time`` (the network server's
reception, RFC 3339 with ``+00:00``), ``object`` (the codec's output), ``rxInfo[]`` (``gatewayId``,
``rssi``, ``snr``), ``txInfo``. Application ids are UUIDs, one per town, named ``heatwatch-<town>``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

from heatwatch.core.model import Reading, Sensor

from . import tts

# Stable UUIDs: the same town gets the same application id in every run.
_NS = uuid.UUID("6f1b6c2e-8c7a-4d55-9a8e-3d0f1c2b4a50")
_REGION = {"region_config_id": "eu868", "region_common_name": "EU868"}


def application_id(town: str) -> str:
    return str(uuid.uuid5(_NS, f"application/{town}"))


def uplink(sensor: Sensor, reading: Reading, profile_name: str | None, *, seed: int,
           step_s: int) -> tuple[str, bytes, Reading]:
    """Topic, JSON payload and the reading a correct decoder recovers from it."""
    _topic, payload, published = tts.uplink(sensor, reading, profile_name, seed=seed, step_s=step_s)
    up = json.loads(payload)
    ids, msg = up["end_device_ids"], up["uplink_message"]
    eui = ids["dev_eui"].lower()
    profile = tts.PROFILES[profile_name or tts.DEFAULT_PROFILE]
    app = application_id(sensor.town)
    lora = msg["settings"]["data_rate"]["lora"]
    rx = []
    for i, gw in enumerate(msg["rx_metadata"]):
        item: dict[str, object] = {"gatewayId": gw["gateway_ids"]["eui"].lower(),
                                   "uplinkId": (gw.get("timestamp", 0) + 7919 * i) & 0xFFFFFFFF,
                                   "rssi": gw["rssi"]}
        if gw.get("snr") is not None:
            item["snr"] = gw["snr"]
        if gw.get("channel_index"):
            item["channel"] = gw["channel_index"]
        if "location" in gw:
            loc = gw["location"]
            item["location"] = {"latitude": loc["latitude"], "longitude": loc["longitude"], "altitude": loc["altitude"]}
        item["context"] = gw["uplink_token"][:8]
        item["metadata"] = _REGION
        rx.append(item)
    body = {
        "deduplicationId": str(uuid.uuid5(_NS, up["correlation_ids"][0])),
        "time": msg["received_at"][:-1] + "+00:00",
        "deviceInfo": {
            "tenantId": str(uuid.uuid5(_NS, "tenant")), "tenantName": "ChirpStack",
            "applicationId": app, "applicationName": tts.application_id(sensor.town),
            "deviceProfileId": str(uuid.uuid5(_NS, profile.name)),
            "deviceProfileName": f"{profile.brand_id} {profile.model_id} (EU868)",
            "deviceName": ids["device_id"], "devEui": eui, "tags": {"heatwatch_sensor": sensor.id},
        },
        "devAddr": ids["dev_addr"].lower(),
        "adr": True,
        "dr": 12 - lora["spreading_factor"],
        "fCnt": msg["f_cnt"],
        "fPort": msg["f_port"],
        "data": msg["frm_payload"],
        "object": msg["decoded_payload"],
        "rxInfo": rx,
        "txInfo": {"frequency": int(msg["settings"]["frequency"]),
                   "modulation": {"lora": {"bandwidth": lora["bandwidth"], "spreadingFactor": lora["spreading_factor"],
                                           "codeRate": "CR_4_5"}}},
    }
    topic = f"application/{app}/device/{eui}/event/up"
    return topic, json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"), replace(published)
