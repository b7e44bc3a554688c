"""Simulated heat-island sensors for Vitré and Saint-Omer: weather, faults, payloads, publishing.

Pure parts (no broker): ``generate`` yields the readings, ``messages`` the encoded MQTT
messages in sending order, ``encode`` one message; ``simulate`` publishes to a broker.
"""

from .faults import plan_faults
from .formats import Message, encode, format_for
from .options import Fault, FaultKind, HeatWave, SimOptions
from .publisher import Publisher, SimulationResult, simulate
from .registry import load_example_sensors, read_sensors_csv, select_sensors, write_sensors_csv
from .schedule import Simulation, generate, messages, prepare

__all__ = [
    "Fault",
    "FaultKind",
    "HeatWave",
    "Message",
    "Publisher",
    "SimOptions",
    "Simulation",
    "SimulationResult",
    "encode",
    "format_for",
    "generate",
    "load_example_sensors",
    "messages",
    "plan_faults",
    "prepare",
    "read_sensors_csv",
    "select_sensors",
    "simulate",
    "write_sensors_csv",
]
