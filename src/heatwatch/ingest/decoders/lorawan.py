"""What the LoRaWAN network-server decoders (The Things Stack, ChirpStack) share.

Which sensor an uplink is (:meth:`Network.place`):

1. the registry, by DevEUI: a registry entry whose ``mqtt_identity`` is a DevEUI (any case, any
   separators) is that device, whatever the network calls it;
2. the registry, by the network's device identifier (TTS ``device_id``, ChirpStack device name);
3. otherwise the application decides the town — the ``HEATWATCH_APP_TOWNS`` map (TTS application
   id, ChirpStack application name or id), else the naming convention ``heatwatch-<town>``, else a
   configured town id the application's name starts or ends with (``capteurs-vitre``, or
   ``Capteurs Vitré`` once reduced to ``capteurs-vitre``) — and the device identifier becomes the
   sensor id (ingest then registers it as unplaced). With no town at all: ``unknown_device``.

Which fields are the measurements (:meth:`Network.measure`): the registry's device profile for the
sensor, else the best-matching profile (:mod:`.profiles`). A registry naming a profile that does
not exist is ``unknown_profile``: guessing could store the wrong field (an LHT65's external probe
for the air temperature), and the dead letter is replayed once the profile is added.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Collection, Mapping

from ...core.errors import ConfigError, DecodeError
from ...core.model import valid_sensor_id, valid_town_id
from ...core.settings import IngestSettings
from ..reasons import Reason
from .base import Context
from .common import timestamp_ms
from .profiles import Profile, ProfileSource

DEFAULT_APP_PREFIX = "heatwatch-"

_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def rfc3339_ms(value: object) -> int:
    """Epoch ms of a network server's RFC 3339 time (TTS and ChirpStack send nanoseconds, truncated):
    a string, read by the kernel's one timestamp parser."""
    if not isinstance(value, str):
        raise DecodeError(Reason.bad_timestamp, repr(value)[:100])
    return timestamp_ms(value)


def _number(raw: object) -> float | None:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        return None
    return float(raw)


def best_signal(rx: object) -> tuple[float | None, float | None]:
    """RSSI and SNR of the gateway that heard the uplink best (highest RSSI; without any RSSI, the best SNR):
    the link's margin as the maintenance view shows it. Malformed entries are skipped, it is only metadata.
    SNR is ``snr`` (The Things Stack, ChirpStack v4) or ``loRaSNR`` (ChirpStack v3); The Things Stack omits a
    zero SNR, so a gateway with an RSSI and no SNR reads 0 dB."""
    if not isinstance(rx, list):
        return None, None
    best: tuple[float | None, float | None] = (None, None)
    for gw in rx:
        if not isinstance(gw, dict):
            continue
        rssi = _number(gw.get("rssi", gw.get("channel_rssi")))
        snr = _number(gw.get("snr", gw.get("loRaSNR")))
        if rssi is not None and "snr" not in gw and "loRaSNR" not in gw:
            snr = 0.0  # protobuf JSON (TTS, ChirpStack v4) leaves out a field at its zero value
        key_new = (rssi if rssi is not None else -math.inf, snr if snr is not None else -math.inf)
        key_old = (best[0] if best[0] is not None else -math.inf, best[1] if best[1] is not None else -math.inf)
        if (rssi is not None or snr is not None) and (best == (None, None) or key_new > key_old):
            best = (rssi, snr)
    return best


def best_rssi(rx: object) -> float | None:
    """The strongest signal among the gateways; malformed entries are skipped, it is only metadata."""
    return best_signal(rx)[0]


def slug(name: str) -> str:
    """``Capteurs Vitré`` → ``capteurs-vitre``: application names compared with town ids."""
    ascii_ = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return _NOT_SLUG.sub("-", ascii_.lower()).strip("-")


class Network:
    """Placement and measurement rules, configured once from settings and shared by the decoders."""

    def __init__(
        self,
        app_towns: Mapping[str, str] | None = None,
        *,
        towns: Collection[str] = (),
        app_prefix: str = DEFAULT_APP_PREFIX,
        profiles: ProfileSource | None = None,
    ) -> None:
        self.app_towns = dict(app_towns or {})
        # Longest first, so "saint-omer" wins over a shorter town id it may end with.
        self.towns = sorted(towns, key=len, reverse=True)
        self.app_prefix = app_prefix
        self.source = profiles or ProfileSource()
        self._app_cache: dict[tuple[str, ...], str | None] = {}

    @property
    def profiles(self):  # type: ignore[no-untyped-def]
        return self.source.current()

    def town_for_app(self, *apps: str) -> str | None:
        """The town of the first application (id, name...) that names one; None when none does."""
        try:
            return self._app_cache[apps]
        except KeyError:
            pass
        town = self._town_for(apps)
        if len(self._app_cache) < 10_000:
            self._app_cache[apps] = town
        return town

    def _town_for(self, apps: tuple[str, ...]) -> str | None:
        for app in apps:
            if app and app in self.app_towns:
                return self.app_towns[app]
        for app in apps:
            if not app:
                continue
            s = app if app.islower() and _NOT_SLUG.sub("-", app) == app else slug(app)
            if self.app_prefix and s.startswith(self.app_prefix):
                rest = s[len(self.app_prefix):]
                if valid_town_id(rest) and (not self.towns or rest in self.towns):
                    return rest
            for t in self.towns:
                if s == t or s.startswith(t + "-") or s.endswith("-" + t):
                    return t
        return None

    def place(self, ctx: Context, eui: str | None, device: str, apps: tuple[str, ...]) -> tuple[str, str, str]:
        """(town, sensor, the identity the registry knew it by, or "") of an uplink."""
        devices = ctx.devices
        if devices is not None:
            if eui is not None:
                found = devices.resolve(eui)
                if found is not None:
                    return found[0], found[1], eui
            found = devices.resolve(device)
            if found is not None:
                return found[0], found[1], device
        town = self.town_for_app(*apps)
        if town is None:
            names = " / ".join(dict.fromkeys(a for a in apps if a))
            raise DecodeError(Reason.unknown_device,
                              f"device {device!r} (DevEUI {eui or '?'}) of application {names!r} is not in the "
                              "registry and no town is set for its application")
        if not valid_sensor_id(device):
            raise DecodeError(Reason.unknown_device, f"device {device[:80]!r} is not in the registry and is not a "
                                                     "valid sensor id")
        return town, device, ""

    def profile(self, ctx: Context, identity: str, payload: Mapping[str, object], device: str) -> Profile:
        profiles = self.profiles
        if identity:
            # getattr, not isinstance on a runtime-checkable Protocol: that check cost ~3 µs per uplink.
            lookup = getattr(ctx.devices, "device_profile", None)
            name = lookup(identity) if lookup is not None else None
            if name is not None:
                found = profiles.get(name)
                if found is None:
                    raise DecodeError(Reason.unknown_profile,
                                      f"{device}: the registry names device profile {name!r}, which is neither "
                                      "packaged nor in the operator's profile file")
                return found
        found = profiles.detect(payload)
        if found is None:
            raise DecodeError(Reason.no_measurement, f"{device}: no profile matches fields {sorted(payload)[:20]}")
        return found

    def measure(self, ctx: Context, identity: str, payload: object, device: str,
                what: str) -> tuple[Profile, dict[str, float | None]]:
        """The profile and the values (heatwatch units) of a decoded payload; at least one measurement."""
        if payload is None:
            raise DecodeError(Reason.no_measurement, f"{device}: no {what} (no payload codec configured?)")
        if not isinstance(payload, dict):
            raise DecodeError(Reason.bad_shape, f"{what} is a {type(payload).__name__}")
        profile = self.profile(ctx, identity, payload, device)
        values = profile.read(payload)
        if values.get("temperature") is None and values.get("humidity") is None:
            raise DecodeError(Reason.no_measurement,
                              f"{device}: profile {profile.name} found no temperature or humidity in "
                              f"{sorted(payload)[:20]}")
        return profile, values

    @staticmethod
    def device_time(profile: Profile, payload: Mapping[str, object]) -> int | None:
        """The device's own time when its profile names a time field and the payload carries it."""
        if profile.time_map is None:
            return None
        raw = profile.time_map.raw(payload)
        if raw is None:
            return None
        return timestamp_ms(raw)


def network_from_settings(settings: IngestSettings) -> Network:
    """A :class:`Network` from settings (``app_towns``, the legacy ``tts_app_towns``, the towns, the profile file)."""
    app_towns = {**settings.tts_app_towns, **settings.app_towns}
    unknown = sorted({t for t in app_towns.values() if t not in settings.towns})
    if unknown:
        raise ConfigError(f"HEATWATCH_APP_TOWNS names unknown town(s) {unknown}; "
                          f"configured: {', '.join(sorted(settings.towns))}")
    path = settings.device_profiles_file
    return Network(app_towns, towns=list(settings.towns), profiles=ProfileSource(path) if path else None)
