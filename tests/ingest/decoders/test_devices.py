"""Real-shaped uplinks of each packaged device profile, through The Things Stack and ChirpStack.

Each file in ``data/`` is one uplink message as the network server publishes it, its decoded
payload taken from the maker's codec examples (The Things Network's Device Repository,
``lorawan-devices``) or the network server's documentation — ``source`` names where — with the
reading heatwatch must make of it. The test decodes each one twice: with the profile detected
from the field names (no registry), and with the registry naming the sensor's profile and
knowing the device by its DevEUI.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from heatwatch.core.model import normalize_eui
from heatwatch.core.settings import IngestSettings
from heatwatch.ingest.decoders import Context, decoders_for
from heatwatch.ingest.decoders.profiles import default_profiles

DATA = Path(__file__).parent / "data"
CASES = sorted(DATA.glob("*.json"))
NOW_MS = 1_719_835_300_000
# Towns configured, no application map: applications reach their town by name ("Capteurs Vitré").
DECODERS = decoders_for(IngestSettings.load())


class Devices:
    """A registry stand-in: resolve() and device_profile() by identity (DevEUI upper case or device id)."""

    def __init__(self, places: dict[str, tuple[str, str]], profiles: dict[str, str | None]) -> None:
        self.places, self.profiles = places, profiles

    def resolve(self, identity: str) -> tuple[str, str] | None:
        return self.places.get(identity)

    def device_profile(self, identity: str) -> str | None:
        return self.profiles.get(identity)


def load(path: Path) -> dict:
    case = json.loads(path.read_text(encoding="utf-8"))
    assert case["source"] and case["network"] in ("tts", "chirpstack")
    return case


def eui_of(case: dict) -> str:
    msg = case["message"]
    raw = (msg.get("end_device_ids", {}).get("dev_eui") or msg.get("deviceInfo", {}).get("devEui")
           or msg.get("devEUI"))
    eui = normalize_eui(raw)
    assert eui is not None
    return eui


def check(reading, expected: dict) -> None:
    for attr in ("temperature", "humidity", "battery_v", "battery_pct"):
        assert getattr(reading, attr) == (pytest.approx(expected[attr]) if attr in expected else None), attr


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_detected_profile(path: Path) -> None:
    case = load(path)
    out = DECODERS[case["network"]](orjson.dumps(case["message"]), Context(case["topic"], NOW_MS))
    assert not out.rejects
    [r] = out.readings
    check(r, case["expected"])
    assert r.source == case["network"] and r.rssi is not None and r.ts_ms > 1_600_000_000_000


@pytest.mark.parametrize("path", [p for p in CASES if load(p)["profile"]], ids=lambda p: p.stem)
def test_registry_profile_by_deveui(path: Path) -> None:
    case = load(path)
    assert case["profile"] in default_profiles()
    eui = eui_of(case)
    devices = Devices({eui: ("saint-omer", "so-registered")}, {eui: case["profile"]})
    out = DECODERS[case["network"]](orjson.dumps(case["message"]), Context(case["topic"], NOW_MS, devices))
    [r] = out.readings
    assert (r.town, r.sensor) == ("saint-omer", "so-registered")  # whatever the device id / name
    check(r, case["expected"])


def test_every_packaged_profile_has_a_captured_uplink() -> None:
    covered = {load(p)["profile"] for p in CASES}
    # LHT65N shares the LHT65's fields (detection picks the LHT65); heatwatch-generic is heatwatch's own.
    assert set(default_profiles()) - covered <= {"dragino-lht65n", "heatwatch-generic"}
