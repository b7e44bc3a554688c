"""Decode cost in process: the ingest pipeline (decode, validate, line protocol) on the simulator's messages.

    .venv/bin/python -m bench.ingest.decode               # 50k readings of 500 sensors, best of 5 passes
    .venv/bin/python -m bench.ingest.decode -n 20000 --repeat 3

No broker, no database: the same :class:`heatwatch.ingest.pipeline.Pipeline` the ingester runs, fed the
messages ``bench.ingest --payloads simulator`` publishes, in batches of 5000, with the registry preloaded
(a temporary SQLite file) as in production. Prints CPU µs per reading for each payload format and for the
mix, the best of ``--repeat`` passes (the machine is shared: the minimum is the least disturbed). This is
the part of an ingester's cost that heatwatch's own code decides; the end-to-end figure is
``bench.ingest``'s ``cpu_us_per_reading``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import mqtt5

from heatwatch.core.registry import Registry
from heatwatch.core.settings import Settings
from heatwatch.ingest.client import Received
from heatwatch.ingest.decoders import decoders_for
from heatwatch.ingest.pipeline import Pipeline
from heatwatch.ingest.validate import Validator

from .run import TOWNS, simulator_payloads

BATCH = 5000


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=50_000, help="readings (default 50000)")
    p.add_argument("--sensors", type=int, default=500)
    p.add_argument("--repeat", type=int, default=5, help="passes; the best is reported (default 5)")
    args = p.parse_args(argv)

    payloads = simulator_payloads(args.n, args.sensors, 1, registry=True)
    messages = payloads.parts[0]
    now_ms = int(time.time() * 1000)
    by_format: dict[str, list[mqtt5.PublishPacket]] = defaultdict(list)
    for i, (topic, payload) in enumerate(messages):
        fmt = topic.split("/", 1)[0]
        by_format[fmt].append(mqtt5.PublishPacket(topic, payload, qos=mqtt5.QoS.AT_LEAST_ONCE, packet_id=i % 65535 + 1))
    settings = Settings.load()
    with tempfile.TemporaryDirectory() as tmp, Registry(Path(tmp) / "registry.sqlite", towns=TOWNS) as registry:
        registry.upsert_many(payloads.sensors)
        validator = Validator(towns=set(TOWNS), backlog_ms=30 * 86_400_000)

        def pipeline() -> Pipeline:
            return Pipeline(settings.subscriptions, validator, max_payload_bytes=settings.max_payload_bytes,
                            devices=registry, decoders=decoders_for(settings), ignore=settings.ignore_filters)

        print(f"{len(messages):,} messages, {payloads.readings:,} readings; best of {args.repeat} passes")
        total_cpu, total_readings = 0.0, 0
        for fmt, msgs in sorted(by_format.items()):
            best = float("inf")
            stored = rejected = 0
            for _ in range(args.repeat):
                pipe = pipeline()  # a fresh topic cache each pass, as after a restart
                stored = rejected = 0
                t0 = time.process_time()
                for k in range(0, len(msgs), BATCH):
                    out = pipe.process([Received(now_ms, msgs[k:k + BATCH])])
                    stored += out.readings
                    rejected += len(out.dead)
                best = min(best, time.process_time() - t0)
            print(f"  {fmt:<6} {len(msgs):>7,} messages {stored:>7,} readings stored, {rejected} rejected: "
                  f"{best * 1e6 / max(stored, 1):6.2f} CPU µs/reading")
            total_cpu += best
            total_readings += stored
        print(f"  mix    {total_readings:>7,} readings: {total_cpu * 1e6 / max(total_readings, 1):6.2f} CPU µs/reading")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
