"""InfluxDB line protocol encoding with the escaping rules of InfluxDB 1.x.

Measurement: escape ``,`` and space. Tag keys, tag values, field keys: escape ``,``, ``=``
and space. String field values: escape ``"`` and ``\\``. Newlines are not representable
in names or tags, and a tag value ending in a backslash would swallow the separator that
follows it; both raise :class:`EncodeError` instead of silently writing something else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import EncodeError

_MEAS = str.maketrans({",": r"\,", " ": r"\ "})
_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_STR = str.maketrans({'"': r"\"", "\\": "\\\\"})

FieldValue = float | int | bool | str


@dataclass(slots=True)
class Point:
    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue | None]
    ts_ms: int
    extra: dict[str, str] = field(default_factory=dict)


def _name(value: str, table: dict[int, str], what: str) -> str:
    if not value:
        raise EncodeError(f"empty {what}")
    if "\n" in value or "\r" in value:
        raise EncodeError(f"{what} {value!r} contains a newline")
    if value.endswith("\\"):
        raise EncodeError(f"{what} {value!r} ends with a backslash")
    return value.translate(table)


def escape_measurement(name: str) -> str:
    return _name(name, _MEAS, "measurement")


def escape_key(key: str) -> str:
    return _name(key, _KEY, "tag key, tag value or field key")


def escape_string(value: str) -> str:
    return '"' + value.translate(_STR) + '"'


def format_value(value: FieldValue) -> str:
    # bool before int: bool is an int subclass.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EncodeError(f"field value {value!r} is not finite")
        return repr(value)
    if isinstance(value, str):
        return escape_string(value)
    raise EncodeError(f"unsupported field type {type(value).__name__}")


def encode(point: Point) -> str:
    """One line for one point. ``None`` fields are omitted; a point with no field is an error."""
    parts = [escape_measurement(point.measurement)]
    for k in sorted(point.tags):  # sorted tags are what InfluxDB indexes fastest
        v = point.tags[k]
        if v is None or v == "":
            continue  # InfluxDB has no empty tag values: an absent tag is the same thing
        parts.append(f"{escape_key(k)}={escape_key(v)}")
    fields = [f"{escape_key(k)}={format_value(v)}" for k, v in point.fields.items() if v is not None]
    if not fields:
        raise EncodeError(f"point of {point.measurement!r} has no field")
    return f"{','.join(parts)} {','.join(fields)} {int(point.ts_ms)}"
