"""Payload decoders, chosen per subscription by the ``format`` name in settings.

Adding a format is one module exposing ``decode(payload: bytes, ctx: Context) -> Decoded``
and one line in :data:`DECODERS`; a format that reads settings also adds its factory to
:data:`CONFIGURED` (called with the settings and the LoRaWAN placement/profile rules, built
once and shared, so every network server reads the same operator profile file).
"""

from __future__ import annotations

from collections.abc import Callable

from ...core.settings import IngestSettings
from . import chirpstack, native, senml, tts
from .base import Context, Decoded, Decoder, DeviceLookup
from .lorawan import Network, network_from_settings

DECODERS: dict[str, Decoder] = {
    "json": native.decode,
    "senml": senml.decode,
    "tts": tts.decode,
    "chirpstack": chirpstack.decode,
}

CONFIGURED: dict[str, Callable[[IngestSettings, Network], Decoder]] = {
    "tts": tts.from_settings,
    "chirpstack": chirpstack.from_settings,
}


def decoders_for(settings: IngestSettings, network: Network | None = None) -> dict[str, Decoder]:
    """Every decoder, those that take settings built from ``settings`` (and the shared LoRaWAN rules)."""
    network = network or network_from_settings(settings)
    return {name: CONFIGURED[name](settings, network) if name in CONFIGURED else d for name, d in DECODERS.items()}


__all__ = ["CONFIGURED", "DECODERS", "Context", "Decoded", "Decoder", "DeviceLookup", "Network", "decoders_for",
           "network_from_settings"]
