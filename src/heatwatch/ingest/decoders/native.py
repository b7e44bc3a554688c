"""Native JSON on ``heat/<town>/<sensor>``: one object, or an array of them (a backlog flush).

``{"ts": 1718000000, "temperature": 23.4, "humidity": 55.0, "battery_v": 3.1}``; ``ts`` is
epoch seconds or milliseconds or ISO 8601, and the time of receipt when absent. An optional
``sensor`` key must agree with the topic.
"""

from __future__ import annotations

from ...core.errors import DecodeError
from ...core.model import Reading, valid_sensor_id, valid_town_id
from ..reasons import Reason
from .base import Context, Decoded
from .common import number, parse_json, timestamp_ms


def topic_town_sensor(ctx: Context, town_level: int = 1, sensor_level: int = 2) -> tuple[str, str]:
    levels = ctx.levels
    if len(levels) <= max(town_level, sensor_level):
        raise DecodeError(Reason.bad_topic, ctx.topic[:200])
    town, sensor = levels[town_level], levels[sensor_level]
    if not valid_town_id(town) or not valid_sensor_id(sensor):
        raise DecodeError(Reason.bad_topic, ctx.topic[:200])
    return town, sensor


def _record(obj: object, town: str, sensor: str, ctx: Context) -> Reading:
    if not isinstance(obj, dict):
        raise DecodeError(Reason.bad_shape, f"expected an object, got {type(obj).__name__}")
    named = obj.get("sensor")
    if named is not None and named != sensor:
        raise DecodeError(Reason.sensor_mismatch, f"topic says {sensor!r}, payload says {str(named)[:80]!r}")
    ts = obj.get("ts")
    reading = Reading(
        town=town,
        sensor=sensor,
        ts_ms=ctx.received_ms if ts is None else timestamp_ms(ts),
        temperature=number(obj.get("temperature"), "temperature"),
        humidity=number(obj.get("humidity"), "humidity"),
        battery_v=number(obj.get("battery_v"), "battery_v"),
        rssi=number(obj.get("rssi"), "rssi"),
        source="json",
    )
    return reading


def decode(payload: bytes, ctx: Context) -> Decoded:
    town, sensor = topic_town_sensor(ctx)
    data = parse_json(payload)
    records = data if isinstance(data, list) else [data]
    if not records:
        raise DecodeError(Reason.bad_shape, "empty array")
    out = Decoded()
    for obj in records:
        try:
            out.readings.append(_record(obj, town, sensor, ctx))
        except DecodeError as exc:
            out.rejects.append(exc)
    return out
