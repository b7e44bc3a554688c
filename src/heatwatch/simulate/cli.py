"""``heatwatch simulate``: the argparse half. The main CLI calls ``add_arguments`` and ``run``.

With no range options it runs live (readings for "now", in real time, until stopped); with
``--start``/``--end``/``--duration`` it replays that range as fast as ``--rate`` allows.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
from datetime import date, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from heatwatch.core.settings import CoreSettings

from .formats import Message
from .options import HeatWave, SimOptions
from .publisher import simulate
from .registry import read_sensors_csv, write_sensors_csv
from .schedule import prepare

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    """'7d', '12h', '1d12h', '5m', '90s' or plain seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return timedelta(seconds=float(text))
    parts = _DURATION_RE.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (examples: 7d, 12h, 1d12h, 5m, 90s)")
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))


def parse_when(text: str) -> datetime:
    """ISO date or date-time; without a zone it is local French time."""
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid date/time {text!r}: use ISO 8601, e.g. 2025-07-01") from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("broker")
    g.add_argument("--mqtt-url", help="broker URL, mqtt://[user:pass@]host:port (default: HEATWATCH_MQTT_URL)")
    g.add_argument("--qos", type=int, choices=(0, 1, 2), default=1)
    g.add_argument("--max-inflight", type=int, default=1000, help="unacknowledged messages at most (default 1000)")
    g.add_argument("--client-id", help="MQTT client id (default: unique per run)")
    g.add_argument("--workers", type=int, default=1, help="publisher processes, one sensor shard each (replay only)")
    g.add_argument("--dry-run", action="store_true", help="print messages instead of publishing them")
    g.add_argument("--result", metavar="FILE",
                   help="write what the broker acknowledged (messages, readings, range, heat wave) to FILE as JSON")

    g = parser.add_argument_group("time")
    g.add_argument("--live", action="store_true", help="send readings in real time (default without a range)")
    g.add_argument("--start", type=parse_when, help="first reading, ISO date/time (naive = Europe/Paris)")
    g.add_argument("--end", type=parse_when, help="end of the range (exclusive)")
    g.add_argument("--duration", type=parse_duration, help="length of the range, e.g. 7d")
    g.add_argument("--backfill", type=parse_duration,
                   help="live mode: also send the past BACKFILL first, as fast as --rate allows")
    g.add_argument("--step", type=parse_duration, default=timedelta(minutes=5), help="between readings (5m)")
    g.add_argument("--rate", type=float, default=0.0, help="messages per second, 0 = as fast as possible")
    g.add_argument("--batch", type=parse_duration,
                   help="one message per sensor and BATCH of readings (e.g. 1d: a data logger's daily upload); "
                        "needs --format json or senml")

    g = parser.add_argument_group("sensors")
    g.add_argument("--towns", help="comma-separated town ids (default: all)")
    g.add_argument("--sensors", type=int, help="how many sensors: a subset, or clones of the example sites")
    g.add_argument("--registry", help="sensor registry CSV to simulate instead of the packaged examples")
    g.add_argument("--export-sensors", metavar="FILE",
                   help="write the simulated sensors as a registry CSV (for 'heatwatch sensors import') and exit")
    g.add_argument("--format", choices=("profile", "json", "senml", "tts", "chirpstack"), default="profile",
                   help="payload format for all sensors, or per device profile (default)")
    g.add_argument("--lorawan", choices=("tts", "chirpstack"), default="tts",
                   help="network server LoRaWAN sensors are heard through: The Things Stack v3 uplinks (default) "
                        "or ChirpStack v4 uplink events")

    g = parser.add_argument_group("weather")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--no-heatwave", action="store_true", help="no heat-wave episode")
    g.add_argument("--heatwave-start", type=date.fromisoformat,
                   help="first heat-wave day (default: third day of the run)")
    g.add_argument("--heatwave-days", type=int, default=5)
    g.add_argument("--heatwave-tx", type=float, default=12.0, help="°C added to daily maxima (12)")
    g.add_argument("--heatwave-tn", type=float, default=7.0, help="°C added to daily minima (7)")
    g.add_argument("--no-faults", action="store_true", help="no stuck, spiking, drifting or offline sensors")


def options_from_args(args: argparse.Namespace, now: datetime | None = None) -> SimOptions:
    ranged = args.start is not None or args.end is not None or args.duration is not None
    live = args.live or not ranged
    start = args.start
    if live and args.backfill is not None:
        start = (now or datetime.now().astimezone()) - args.backfill
    heatwave = None if args.no_heatwave else HeatWave(start=args.heatwave_start, days=args.heatwave_days,
                                                      tx_boost=args.heatwave_tx, tn_boost=args.heatwave_tn)
    return SimOptions(
        seed=args.seed, step=args.step, start=start, end=args.end, duration=args.duration,
        towns=[t.strip() for t in args.towns.split(",") if t.strip()] if args.towns else None,
        sensors=args.sensors, format=args.format, lorawan=args.lorawan, heatwave=heatwave, faults=not args.no_faults,
        live=live, rate=args.rate, qos=args.qos, max_inflight=args.max_inflight, client_id=args.client_id,
        batch=args.batch,
    )


def run(args: argparse.Namespace, settings: CoreSettings) -> int:
    try:
        opts = options_from_args(args)
        sensors = read_sensors_csv(args.registry) if args.registry else None
        if args.export_sensors:
            sim = prepare(opts, sensors)
            write_sensors_csv(sim.sensors, args.export_sensors)
            print(f"wrote {len(sim.sensors)} sensors to {args.export_sensors}", file=sys.stderr)
            return 0
        if args.dry_run:
            return _dry_run(opts, sensors)
        stop = threading.Event()
        _on_signals(stop)
        target: Any = args.mqtt_url or settings
        result = simulate(target, opts, sensors=sensors, stop=stop, workers=max(1, args.workers))
    except (ValueError, OSError, TimeoutError) as exc:
        print(f"heatwatch simulate: {exc}", file=sys.stderr)
        return 2
    if args.result:
        _write_result(args.result, result)
    end = result.end.isoformat() if result.end else "now"
    print(f"published {result.messages} messages ({result.readings} readings) from {len(result.sensors)} sensors, "
          f"{result.start.isoformat() if result.start else '?'} to {end}, in {result.elapsed_s:.1f} s "
          f"({result.rate:.0f} msg/s); refused {result.failed}, lost offline {result.dropped}", file=sys.stderr)
    if result.heatwave is not None and result.heatwave.start is not None:
        days = ", ".join(d.isoformat() for d in result.heatwave.canicule_days())
        print(f"heat wave from {result.heatwave.start} for {result.heatwave.days} days; "
              f"canicule days (trailing 3-day means): {days or 'none'}", file=sys.stderr)
    return 1 if result.failed else 0


def _write_result(path: str, result: Any) -> None:
    hw = result.heatwave
    doc = {"messages": result.messages, "readings": result.readings, "failed": result.failed,
           "dropped": result.dropped, "sensors": len(result.sensors),
           "start": result.start.isoformat() if result.start else None,
           "end": result.end.isoformat() if result.end else None,
           "heatwave": {"start": hw.start.isoformat(), "days": hw.days,
                        "canicule_days": [d.isoformat() for d in hw.canicule_days()]}
           if hw is not None and hw.start is not None else None}
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    tmp.replace(target)


def _dry_run(opts: SimOptions, sensors: Any) -> int:
    sim = prepare(opts, sensors)
    out = sys.stdout
    msg: Message
    try:
        for msg in sim.messages():
            out.write(f"{msg.topic} {msg.payload.decode('utf-8')}\n")
    except BrokenPipeError:  # `| head` is a normal way to look at a few messages
        return 0
    return 0


def _on_signals(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
