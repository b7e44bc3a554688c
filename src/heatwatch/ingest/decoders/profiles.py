"""LoRaWAN device profiles: how one device model names its measurements in a decoded payload.

A network server runs the device maker's payload codec and hands heatwatch its output: The Things
Stack's ``uplink_message.decoded_payload``, ChirpStack's ``object``. Every maker picks its own
field names, nesting and units, and some codecs emit numbers as strings, so the mapping is
configuration, not code: one TOML table per device model (the layout is in ``docs/devices.md``).
Profiles load from the packaged ``heatwatch/data/device_profiles.toml`` and, when the setting
``HEATWATCH_DEVICE_PROFILES_FILE`` names one, from the operator's own file, which adds models and
overrides packaged ones of the same name (:func:`load_profiles`); :class:`ProfileSource` reloads
the operator's file when it changes, so a town adds a device model without a release or a restart.

A profile is chosen from the registry (``Sensor.device_profile``) or, failing that, guessed
from the field names present (:meth:`Profiles.detect`).

What a field map does with a raw value (:meth:`FieldMap.read`):

- a numeric string (``"27.97"``, Dragino's stock formatter) is a number; an empty string or
  ``"NaN"`` is an absent value; any other string, a boolean or an object is ``non_numeric``;
- a *sentinel* is an absent value, not a reading: 0x7FFF / 0x8000 / 0xFFFF patterns at the usual
  scales (``327.67`` and ``-327.68`` for "no probe", ``6553.5`` for a failed humidity channel,
  ``65535``...) in :data:`DEFAULT_ABSENT`, plus a profile's own ``absent`` list;
- then ``raw * scale + offset``, then the unit to heatwatch's (°C, %RH, V for ``battery_v``,
  % for ``battery_pct``).
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ...core.datafiles import read_toml
from ...core.errors import ConfigError, DecodeError
from ...core.logging import get_logger
from ..reasons import Reason

log = get_logger("heatwatch.ingest.profiles")

# Raw values that mean "no value": 16-bit all-ones / sign patterns at scales 1, 0.1 and 0.01.
# None of them is a plausible temperature, humidity or battery voltage at the scale it appears in.
DEFAULT_ABSENT = frozenset({32767.0, -32768.0, 65535.0, 3276.7, -3276.8, 6553.5, 327.67, -327.68, 655.35})

# Profile keys that name a measurement, with the units each accepts → (Reading attribute, converter).
_C = ("temperature", None)
_F = ("temperature", lambda v: (v - 32.0) * 5.0 / 9.0)
_UNITS: dict[str, dict[str, tuple[str, Any]]] = {
    "temperature": {
        "Cel": _C, "°C": _C, "C": _C, "degC": _C,
        "K": ("temperature", lambda v: v - 273.15),
        "degF": _F, "°F": _F,
    },
    "humidity": {"%RH": ("humidity", None), "%": ("humidity", None)},
    "battery": {
        "V": ("battery_v", None), "mV": ("battery_v", lambda v: v / 1000.0),
        "%": ("battery_pct", None), "%EL": ("battery_pct", None),
    },
}
_DEFAULT_UNIT = {"temperature": "Cel", "humidity": "%RH", "battery": "V"}
# ``battery_v`` is the key of profile files written before battery percent existed: a battery in volts.
_LEGACY = {"battery_v": ("battery", "V")}
_MEASUREMENTS = ("temperature", "humidity")
_TABLE_KEYS = {*_UNITS, *_LEGACY, "time", "detect", "description", "source", "absent"}
_MAP_KEYS = {"field", "unit", "scale", "offset", "absent"}

# One path step: a key; `*` any key or element; `[k=v]` the first list element whose k is v; a
# key with glob characters (`temperature_*`, Cayenne LPP on The Things Stack) the first matching key.
_STEP_RE = re.compile(r"\[([^=\]]+)=([^\]]*)\]|[^.\[]+")


def _natural(key: str) -> tuple[int, int | str]:
    # Channel "2" before "10"; numeric keys before names.
    tail = re.search(r"(\d+)$", key)
    return (0, int(tail.group(1))) if tail else (1, key)


@dataclass(frozen=True, slots=True)
class _Step:
    kind: str  # "key", "any", "match", "glob"
    key: str = ""
    value: str = ""


def parse_path(path: str) -> tuple[_Step, ...]:
    """``a.b.0``, ``temperatureSensor.*``, ``messages[measurementId=4097].measurementValue``, ``temperature_*``."""
    steps: list[_Step] = []
    for part in path.split("."):
        if not part:
            raise ValueError(f"empty step in field path {path!r}")
        pos = 0
        for m in _STEP_RE.finditer(part):
            if m.start() != pos:
                raise ValueError(f"cannot parse field path {path!r}")
            pos = m.end()
            if m.group(1) is not None:
                steps.append(_Step("match", m.group(1), m.group(2)))
            elif m.group(0) == "*":
                steps.append(_Step("any"))
            elif any(c in m.group(0) for c in "*?"):
                steps.append(_Step("glob", m.group(0)))
            else:
                steps.append(_Step("key", m.group(0)))
        if pos != len(part):
            raise ValueError(f"cannot parse field path {path!r}")
    return tuple(steps)


def _walk(node: object, steps: tuple[_Step, ...]) -> object:
    if not steps:
        return node
    step, rest = steps[0], steps[1:]
    if step.kind == "key":
        if isinstance(node, dict):
            return _walk(node.get(step.key), rest) if step.key in node else None
        if isinstance(node, list) and step.key.isdigit():
            i = int(step.key)
            return _walk(node[i], rest) if i < len(node) else None
        return None
    if step.kind == "match":
        if isinstance(node, list):
            for item in node:
                if isinstance(item, dict) and str(item.get(step.key)) == step.value:
                    found = _walk(item, rest)
                    if found is not None:
                        return found
        return None
    if isinstance(node, dict):
        keys = sorted(node, key=_natural) if step.kind == "any" else sorted(
            (k for k in node if fnmatch.fnmatchcase(k, step.key)), key=_natural)
        candidates: list[object] = [node[k] for k in keys]
    elif isinstance(node, list) and step.kind == "any":
        candidates = node
    else:
        return None
    for c in candidates:
        found = _walk(c, rest)
        if found is not None:
            return found
    return None


def to_number(value: object, name: str) -> float | None:
    """A decoded value as a float; None for absent (None, "", "NaN"). Numeric strings are numbers."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise DecodeError(Reason.non_numeric, f"{name}={value!r}")
    if isinstance(value, int | float):
        f = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text or text.lower() == "nan":
            return None
        try:
            f = float(text)
        except ValueError:
            raise DecodeError(Reason.non_numeric, f"{name}={value[:80]!r}") from None
    else:
        raise DecodeError(Reason.non_numeric, f"{name}={value!r}"[:200])
    if not math.isfinite(f):
        raise DecodeError(Reason.non_numeric, f"{name}={value!r}"[:200])
    return f


@dataclass(frozen=True, slots=True)
class FieldMap:
    """One payload field (a path), its unit, and the linear conversion ``raw * scale + offset`` before the unit."""

    field: str
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = None
    absent: frozenset[float] = DEFAULT_ABSENT
    steps: tuple[_Step, ...] = ()
    convert_unit: Any = None
    # The top-level key, or glob, a payload must carry for this map to find anything: for detection.
    head: str = ""

    @classmethod
    def build(cls, path: str, *, scale: float = 1.0, offset: float = 0.0, unit: str | None = None,
              absent: frozenset[float] = DEFAULT_ABSENT, convert_unit: Any = None) -> FieldMap:
        steps = parse_path(path)
        head = steps[0].key if steps[0].kind in ("key", "glob") else "*"
        # A single plain key is the common case: no steps to walk (see raw()).
        return cls(path, scale, offset, unit, absent, () if len(steps) == 1 and steps[0].kind == "key" else steps,
                   convert_unit, head)

    def raw(self, payload: Mapping[str, object]) -> object:
        if not self.steps:
            return payload.get(self.field)
        return _walk(payload, self.steps)

    def present(self, keys: Mapping[str, object]) -> bool:
        if self.head == "*":
            return bool(keys)
        if self.steps and self.steps[0].kind == "glob":
            return any(fnmatch.fnmatchcase(k, self.head) for k in keys)
        return self.head in keys

    def convert(self, raw: float) -> float:
        value = raw
        # Skip the arithmetic for the identity map so values pass through bit-exact.
        if self.scale != 1.0 or self.offset != 0.0:
            value = round(raw * self.scale + self.offset, 9)  # 3.538, not 3.5380000000000003
        if self.convert_unit is not None:
            value = round(self.convert_unit(value), 9)
        return value

    def read(self, payload: Mapping[str, object]) -> float | None:
        """The value in heatwatch units, None when absent or a sentinel; DecodeError when not a number."""
        raw = to_number(self.raw(payload), self.field)
        if raw is None or raw in self.absent:
            return None
        return self.convert(raw)


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    fields: Mapping[str, FieldMap]  # Reading attribute ("temperature", "battery_pct", ...) -> field map
    time: str | None = None
    detect: frozenset[str] = frozenset()
    description: str = ""
    source: str = ""
    signature: frozenset[str] = field(init=False)
    time_map: FieldMap | None = field(init=False)
    _measures: tuple[FieldMap, ...] = field(init=False)
    # (target, plain key or None, field map) per field, for read() on the ingest hot path.
    _plan: tuple[tuple[str, str | None, FieldMap], ...] = field(init=False)

    def __post_init__(self) -> None:
        names = {f.head for f in self.fields.values() if f.head != "*"} | set(self.detect)
        time_map = FieldMap.build(self.time) if self.time else None
        if time_map is not None and time_map.head != "*":
            names.add(time_map.head)
        object.__setattr__(self, "time_map", time_map)
        object.__setattr__(self, "signature", frozenset(names))
        object.__setattr__(self, "_measures", tuple(self.fields[t] for t in _MEASUREMENTS if t in self.fields))
        object.__setattr__(self, "_plan", tuple((t, None if f.steps else f.field, f) for t, f in self.fields.items()))

    def measures(self, payload: Mapping[str, object]) -> bool:
        """Whether the payload carries a value where this profile reads temperature or humidity."""
        return any(f.raw(payload) is not None for f in self._measures)

    def score(self, payload: Mapping[str, object]) -> int:
        keys = payload.keys()
        n = len(self.signature & keys)
        # Glob heads (Cayenne LPP `temperature_*`) match keys that are never equal to them.
        n += sum(1 for f in self.fields.values() if f.steps and f.steps[0].kind == "glob" and f.present(payload))
        return n

    def read(self, payload: Mapping[str, object]) -> dict[str, float | None]:
        """Every mapped value in heatwatch units (None when absent or a sentinel), as :meth:`FieldMap.read`
        does it, inlined: this runs once per uplink."""
        out: dict[str, float | None] = {}
        for target, key, fmap in self._plan:
            raw = payload.get(key) if key is not None else fmap.raw(payload)
            kind = type(raw)
            if kind is float or kind is int:  # not bool: type() is exact
                value: float | None = float(raw)  # type: ignore[arg-type]
            elif raw is None:
                out[target] = None
                continue
            else:
                value = to_number(raw, fmap.field)
            if value is None or value in fmap.absent:
                out[target] = None
            else:
                out[target] = fmap.convert(value)
        return out


class Profiles(Mapping[str, Profile]):
    """The known profiles by name, in file order (the order breaks auto-detection ties)."""

    def __init__(self, profiles: list[Profile]) -> None:
        self._by_name = {p.name: p for p in profiles}

    def __getitem__(self, name: str) -> Profile:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def merged(self, other: Profiles) -> Profiles:
        """These profiles, with ``other``'s added and replacing those of the same name."""
        return Profiles([*(p for n, p in self._by_name.items() if n not in other), *other.values()])

    def detect(self, payload: Mapping[str, object]) -> Profile | None:
        """The profile sharing most field names with the payload, among those that find a measurement.

        Models that share names (``temperature``/``humidity``) map them identically, so a tie
        between them gives the same reading whichever wins; their battery fields differ, which is
        what their ``detect`` names are for.
        """
        best: Profile | None = None
        best_score = 0
        for p in self._by_name.values():
            if not p.measures(payload):
                continue
            score = p.score(payload)
            if score > best_score:
                best, best_score = p, score
        return best


def _absent(name: str, where: str, spec: object) -> frozenset[float]:
    if spec is None:
        return frozenset()
    if not isinstance(spec, list) or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in spec):
        raise ConfigError(f"device profile {name!r}: {where}absent must be a list of numbers")
    return frozenset(float(v) for v in spec)


def _field_map(name: str, key: str, spec: object, extra_absent: frozenset[float]) -> tuple[str, FieldMap]:
    kind, unit = _LEGACY.get(key, (key, None))
    if isinstance(spec, str):
        spec = {"field": spec}
    if not isinstance(spec, dict) or not isinstance(spec.get("field"), str):
        raise ConfigError(f"device profile {name!r}: {key} must be a field name or {{ field = \"...\" }}")
    unknown = set(spec) - _MAP_KEYS
    if unknown:
        raise ConfigError(f"device profile {name!r}: {key} has unknown keys {sorted(unknown)}")
    unit = spec.get("unit", unit or _DEFAULT_UNIT[kind])
    if unit not in _UNITS[kind]:
        raise ConfigError(f"device profile {name!r}: {key} unit {unit!r} is not one of {sorted(_UNITS[kind])}")
    target, convert = _UNITS[kind][unit]
    try:
        scale, offset = float(spec.get("scale", 1.0)), float(spec.get("offset", 0.0))
    except (TypeError, ValueError):
        raise ConfigError(f"device profile {name!r}: {key} scale/offset must be numbers") from None
    absent = DEFAULT_ABSENT | extra_absent | _absent(name, f"{key}.", spec.get("absent"))
    try:
        fmap = FieldMap.build(spec["field"], scale=scale, offset=offset, unit=unit, absent=absent,
                              convert_unit=convert)
    except ValueError as exc:
        raise ConfigError(f"device profile {name!r}: {key}: {exc}") from None
    return target, fmap


def parse_profiles(raw: Mapping[str, Any]) -> Profiles:
    """Profiles from a parsed TOML document (one table per profile)."""
    out = []
    for name, table in raw.items():
        if not isinstance(table, dict):
            raise ConfigError(f"device profile {name!r} must be a table")
        unknown = set(table) - _TABLE_KEYS
        if unknown:
            raise ConfigError(f"device profile {name!r}: unknown keys {sorted(unknown)}; "
                              f"known: {', '.join(sorted(_TABLE_KEYS))}")
        extra = _absent(name, "", table.get("absent"))
        fields: dict[str, FieldMap] = {}
        for key in (*_UNITS, *_LEGACY):
            if key in table:
                target, fmap = _field_map(name, key, table[key], extra)
                if target in fields:
                    raise ConfigError(f"device profile {name!r}: two fields give {target}")
                fields[target] = fmap
        if not any(t in fields for t in _MEASUREMENTS):
            raise ConfigError(f"device profile {name!r} maps neither temperature nor humidity")
        time_field = table.get("time")
        detect = table.get("detect", [])
        if time_field is not None and not isinstance(time_field, str):
            raise ConfigError(f"device profile {name!r}: time must be a field name")
        if time_field is not None:
            try:
                parse_path(time_field)
            except ValueError as exc:
                raise ConfigError(f"device profile {name!r}: time: {exc}") from None
        if not isinstance(detect, list) or not all(isinstance(d, str) for d in detect):
            raise ConfigError(f"device profile {name!r}: detect must be a list of field names")
        out.append(Profile(name, fields, time_field, frozenset(detect), str(table.get("description", "")),
                           str(table.get("source", ""))))
    return Profiles(out)


def _read(path: Path | None) -> Profiles:
    raw = read_toml(path, "device_profiles.toml", "device profiles")
    try:
        return parse_profiles(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path or 'packaged device profiles'}: {exc}") from None


def load_profiles(path: Path | None = None) -> Profiles:
    """The packaged profiles, merged with those of ``path`` (the operator's file) when given."""
    packaged = default_profiles()
    return packaged if path is None else packaged.merged(_read(path))


@cache
def default_profiles() -> Profiles:
    """The packaged profiles, read once per process."""
    return _read(None)


def _mtime(path: Path) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


class ProfileSource:
    """The profiles in force: packaged + the operator's file, re-read when that file changes.

    The ingest service calls :meth:`refresh` every few seconds (not the decoders, so the hot path
    reads an attribute and nothing else). A file that became unreadable or invalid keeps the
    profiles already loaded and logs the error, so a typo made while ingest runs does not stop
    it; at start-up the same error stops the service (the constructor raises ConfigError).
    """

    def __init__(self, path: Path | None = None, *, profiles: Profiles | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._profiles = profiles
        self._mtime: int | None = None
        if profiles is None and self.path is not None:
            self._mtime = _mtime(self.path)
            self._profiles = load_profiles(self.path)

    def current(self) -> Profiles:
        if self._profiles is None:  # resolved lazily so importing the decoders never reads a file
            self._profiles = default_profiles()
        return self._profiles

    def refresh(self) -> bool:
        """Re-read the operator's file if it changed since it was read; True when new profiles are in force."""
        if self.path is None:
            return False
        mtime = _mtime(self.path)
        if mtime == self._mtime:
            return False
        self._mtime = mtime
        try:
            self._profiles = load_profiles(self.path)
        except ConfigError as exc:
            log.error("profiles.reload_failed", path=str(self.path), error=str(exc))
            return False
        log.info("profiles.reloaded", path=str(self.path), profiles=len(self._profiles))
        return True
