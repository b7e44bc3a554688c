"""Native JSON on ``heat/<town>/<sensor>``: one object, or an array of them (a backlog flush).

``{"ts": 1718000000, "temperature": 23.4, "humidity": 55.0, "battery_v": 3.1}``; ``ts`` is
epoch seconds or milliseconds or ISO 8601, and the time of receipt when absent. An optional
``sensor`` key must agree with the topic.
"""

from __future__ import annotations

from ...core.errors import DecodeError
from ...core.model import RH_MAX, RH_MIN, T_MAX, T_MIN, Reading, valid_sensor_id, valid_town_id
from ...core.timestamps import MS_THRESHOLD
from ..reasons import Reason
from ..validate import FUTURE_TOLERANCE_MS
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


def record(obj: object, town: str, sensor: str, ctx: Context) -> Reading:
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
            out.readings.append(record(obj, town, sensor, ctx))
        except DecodeError as exc:
            out.rejects.append(exc)
    return out


class FastRoute:
    """The native format's common case for one topic, in as few Python operations as possible.

    :meth:`line` answers the line protocol of a decoded payload that is one object with an integer ``ts``
    (or none) and plain numbers, every check passed, exactly as :func:`decode`, the validator and
    :meth:`~heatwatch.core.model.Reading.to_line` would make it (``tests/ingest/test_fast_native.py``
    compares them on generated payloads). Anything else — an array, a string or float ``ts``, a wrong
    type, a value out of range, a mismatching ``sensor`` — answers None, and the message takes the general
    path, which stores it or gives its rejection reason.
    """

    __slots__ = ("backlog_ms", "key", "prefix", "registrable", "sensor", "town")

    def __init__(self, town: str, sensor: str, *, backlog_ms: int, registrable: bool) -> None:
        self.town = town
        self.sensor = sensor
        self.key = (town, sensor)
        self.prefix = f"reading,sensor={sensor},town={town} "
        self.backlog_ms = backlog_ms
        # An unregistered sensor with this id may be registered (it is not a town id or a reserved word).
        self.registrable = registrable

    def line(self, obj: dict, received_ms: int) -> tuple[str, int] | None:
        get = obj.get
        ts = get("ts")
        t = get("temperature")
        h = get("humidity")
        if type(ts) is int and ts >= 0:
            ms = ts if ts >= MS_THRESHOLD else ts * 1000
        elif ts is None:
            ms = received_ms
        else:
            return None
        if not (received_ms - self.backlog_ms <= ms <= received_ms + FUTURE_TOLERANCE_MS):
            return None
        if type(t) is float:
            if not T_MIN <= t <= T_MAX:
                return None
            fields = f"temperature={t!r},"
        elif t is None:
            if h is None:
                return None
            fields = ""
        elif type(t) is int and T_MIN <= t <= T_MAX:
            fields = f"temperature={float(t)!r},"
        else:
            return None
        if h is not None:
            if type(h) is float:
                if not RH_MIN <= h <= RH_MAX:
                    return None
                fields += f"humidity={h!r},"
            elif type(h) is int and RH_MIN <= h <= RH_MAX:
                fields += f"humidity={float(h)!r},"
            else:
                return None
        if len(obj) > (ts is not None) + (t is not None) + (h is not None):  # the rarer members
            named = get("sensor")
            if named is not None and named != self.sensor:
                return None
            for name in ("battery_v", "rssi"):
                v = get(name)
                if v is not None:
                    if type(v) is float:  # orjson never makes an infinite or NaN float
                        fields += f"{name}={v!r},"
                    elif type(v) is int:
                        fields += f"{name}={float(v)!r},"
                    else:
                        return None
        return f'{self.prefix}{fields}source="json" {ms}', ms
