"""What a valid registry entry is: a :class:`~heatwatch.core.model.Sensor` whose ids are usable as InfluxDB tags
and topic levels, whose network identity is stored in one spelling, and whose empty optional text is None
(an empty string and "absent" cannot be told apart in CSV)."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import ValidationError

from ..model import RESERVED_IDS, SENSOR_ID_RE, TOWN_ID_RE, Sensor, normalize_eui, valid_sensor_id, valid_town_id

FIELDS: tuple[str, ...] = tuple(Sensor.model_fields)


def _optional(name: str) -> bool:
    ann = Sensor.model_fields[name].annotation
    return typing.get_origin(ann) in (typing.Union, types.UnionType) and type(None) in typing.get_args(ann)


# Optional text fields: an empty string and "absent" are the same thing to a user and cannot be
# told apart in CSV, so the registry stores None for both (which keeps round trips exact).
_OPTIONAL_STR = tuple(
    n for n in FIELDS if _optional(n) and str in typing.get_args(Sensor.model_fields[n].annotation)
)
NULLABLE = frozenset(n for n in FIELDS if _optional(n))
TEXT = frozenset(n for n in FIELDS if Sensor.model_fields[n].annotation is str)


def normalize(sensor: Sensor) -> Sensor:
    """The form the registry stores: empty optional text becomes None."""
    empty = {n: None for n in _OPTIONAL_STR if getattr(sensor, n) == ""}
    return sensor.model_copy(update=empty) if empty else sensor


def _errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'sensor'}: {e['msg']}" for e in exc.errors())


def canonical_identity(identity: str | None) -> str | None:
    """A network identity as the registry stores it: a bare DevEUI, in any case and with any separators,
    becomes 16 upper-case hex digits (so two spellings of one device cannot both be registered); any
    other identity (a TTS device id, ``eui-...`` included, a ChirpStack device name) is kept as written."""
    if not identity:
        return identity
    if identity[:4].lower() != "eui-":
        eui = normalize_eui(identity)
        if eui is not None:
            return eui
    return identity.strip()


def validate(data: dict[str, Any]) -> Sensor:
    """A Sensor from raw fields, or ValueError with a readable reason.

    Ids are checked with fullmatch here because pydantic's ``pattern`` only searches: it takes
    ``"bad id"`` or ``"Vitré"`` as valid, and neither may become an InfluxDB tag. A sensor id may
    not be one of the words heatwatch uses as topic levels (:data:`RESERVED_IDS`): ``heat/alerts/vitre``
    must never read as sensor ``vitre`` of town ``alerts``, nor a sensor account's topic be an alert's.
    """
    try:
        s = Sensor.model_validate(data)
    except ValidationError as exc:
        raise ValueError(_errors(exc)) from None
    if not valid_sensor_id(s.id):
        raise ValueError(f"id: {s.id!r} is not a valid sensor id ({SENSOR_ID_RE.pattern})")
    if s.id.lower() in RESERVED_IDS:
        raise ValueError(f"id: {s.id!r} is a word heatwatch reserves for its topics "
                         f"({', '.join(sorted(RESERVED_IDS))})")
    if not valid_town_id(s.town):
        raise ValueError(f"town: {s.town!r} is not a valid town id ({TOWN_ID_RE.pattern})")
    identity = canonical_identity(s.mqtt_identity)
    if identity != s.mqtt_identity:
        s = s.model_copy(update={"mqtt_identity": identity})
    return normalize(s)
