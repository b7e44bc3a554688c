"""Ingest benchmark: heatwatch end to end against the raw ceilings, side by side in one run.

    .venv/bin/python -m bench.ingest                 # 200k readings, 500 sensors, full run
    .venv/bin/python -m bench.ingest -n 20000        # quick look

Starts its own mosquitto and influxd (heatwatch.stack.embedded, the limits the tests use), then for
each scenario a fresh broker (so no persistent session of an earlier scenario queues copies) and:

* heatwatch with 1, 2 and 3 ingester processes (a shared subscription from 2 on): readings/s from the
  first publish to the last reading stored, loss, CPU seconds and peak RSS of each ingester;
* a paho-mqtt subscriber that only counts (QoS 1, persistent session): the Python receive ceiling;
* ``mosquitto_sub -q 1 -C N`` counting: the broker ceiling;
* direct line-protocol writes in batches of 5000 with httpx, 1 and 2 writers: the database ceiling.

Every scenario publishes the same N readings (both towns) at full speed, QoS 1, from several publisher
processes (paho publishes only a few thousand messages/s per process); the consumer runs while they
publish. ``--payloads`` picks the messages: ``native`` (default) one small native JSON object per reading
on ``heat/<town>/<sensor>``; ``simulator`` the simulator's messages for the same number of sensors, each in
its device profile's format (native JSON, SenML, The Things Stack uplinks), generated before any timing.
Results: a table on stdout and JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from heatwatch.core.settings import MqttUrl
from heatwatch.stack.children import ServiceProcess
from heatwatch.stack.embedded import Influxd, Mosquitto

TOWNS = ("vitre", "saint-omer")
# What each payload mode publishes: the ingesters' subscriptions and the count-only consumers' filters.
SUBSCRIPTIONS = {
    "native": '[{"filter":"heat/+/+","format":"json"}]',
    "simulator": '[{"filter":"heat/+/+","format":"json"},{"filter":"senml/+/+","format":"senml"},'
                 '{"filter":"v3/+/devices/+/up","format":"tts"}]',
}
COUNT_FILTERS = {"native": ("heat/#",), "simulator": ("heat/#", "senml/#", "v3/#")}
RESULTS = Path(__file__).resolve().parents[1] / "results"
NODERED = Path(__file__).resolve().parent / "nodered"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- the readings --------------------------------------------------------------------------------


def reading(i: int, n_sensors: int, base_ms: int) -> tuple[str, bytes, str]:
    """Reading number ``i``: topic, native JSON payload and its line protocol (for the DB ceiling)."""
    k, step = i % n_sensors, i // n_sensors
    town = TOWNS[k % 2]
    sensor = f"b{k:04d}"
    ts = base_ms + step * 60_000 + k
    t = round(15 + (k % 10) + (step % 100) * 0.05, 2)
    rh = float(40 + step % 50)
    payload = b'{"ts":%d,"temperature":%r,"humidity":%r}' % (ts, t, rh)
    line = f"reading,town={town},sensor={sensor} temperature={t!r},humidity={rh!r},source=\"bench\" {ts}"
    return f"heat/{town}/{sensor}", payload, line


@dataclass
class Payloads:
    """The messages of one run, built before any timing, and what they carry.

    ``parts`` (simulator mode) holds each publisher's messages, split by sensor so a sensor's messages
    keep their order; native mode leaves it empty and every publisher builds its share with ``reading``."""

    mode: str
    messages: int
    readings: int
    formats: dict[str, dict] = field(default_factory=dict)  # format: messages, readings, bytes, bytes/message
    generation_s: float = 0.0
    parts: list[list[tuple[str, bytes]]] = field(default_factory=list, repr=False)
    lines: list[str] = field(default_factory=list, repr=False)  # line protocol of every reading (DB ceiling)
    sensors: list = field(default_factory=list, repr=False)  # the simulated registry, for the ingesters
    sensor_ids: set[str] = field(default_factory=set, repr=False)  # sensor tags the ingesters should store

    def summary(self) -> dict:
        return {"mode": self.mode, "messages": self.messages, "readings": self.readings,
                "generation_s": self.generation_s, "formats": self.formats}


def native_payloads(n: int, n_sensors: int, base_ms: int) -> Payloads:
    """Native mode: one reading per message; publishers build their own, this only measures the sizes."""
    size = sum(len(reading(i, n_sensors, base_ms)[1]) for i in range(n))
    return Payloads("native", n, n, {"json": {"messages": n, "readings": n, "bytes": size,
                                              "bytes_per_message": round(size / max(n, 1), 1)}})


def simulator_payloads(n: int, n_sensors: int, parts: int, registry: bool, seed: int = 42) -> Payloads:
    """The first ``n`` readings the simulator's ``n_sensors`` send (both towns, 5-min step, faults on),
    as messages in their device profiles' formats.

    The run is sized so its planned faults (an offline native/SenML sensor per town flushing a backlog
    array, LoRaWAN outages that just lose readings) fall inside it, and ends at least an hour ago so no
    timestamp is in the future. A backlog message that would overshoot ``n`` is skipped: the count is
    exact. ``registry``: the ingesters will know every sensor (TTS device ids resolve to the sensor ids);
    otherwise a TTS device becomes a sensor named by its device id (the application → town fallback)."""
    from heatwatch.simulate import SimOptions, prepare

    t0 = time.perf_counter()
    step = timedelta(minutes=5)
    duration = step * (-(-n * 21 // (n_sensors * 20)) + 2)  # 5 % margin: LoRaWAN outages drop readings
    if duration > timedelta(days=25):
        raise SystemExit(f"--payloads simulator: {n} readings of {n_sensors} sensors at a 5-min step span "
                         f"{duration}; ingest rejects readings older than 30 days. Use fewer readings.")
    now = datetime.now(UTC)
    start = min(now - timedelta(days=3), now - duration - timedelta(hours=1))
    sim = prepare(SimOptions(seed=seed, step=step, start=start, duration=duration, sensors=n_sensors))
    shard = {s.id: i % parts for i, s in enumerate(sim.sensors)}
    out = Payloads("simulator", 0, 0, parts=[[] for _ in range(parts)], sensors=list(sim.sensors) if registry else [])
    formats = out.formats
    for m in sim.messages():
        k = len(m.readings)
        if out.readings + k > n:
            continue  # a backlog array past the target: the single readings that follow fill up to n
        out.parts[shard[m.sensor]].append((m.topic, m.payload))
        out.messages += 1
        out.readings += k
        f = formats.setdefault(m.format, {"messages": 0, "readings": 0, "bytes": 0})
        f["messages"] += 1
        f["readings"] += k
        f["bytes"] += len(m.payload)
        # Without the registry a TTS uplink is stored under its device id (the topic's 4th level).
        stored_as = m.topic.split("/")[3] if m.format == "tts" and not registry else m.sensor
        out.sensor_ids.add(stored_as)
        for r in m.readings:
            if r.temperature is None:  # count_stored counts temperatures: every reading must carry one
                raise RuntimeError(f"simulated reading without temperature: {r}")
            out.lines.append(replace(r, sensor=stored_as, source=m.format).to_line())
        if out.readings == n:
            break
    if out.readings < n:
        raise RuntimeError(f"the simulator sent only {out.readings} of {n} readings")
    for f in formats.values():
        f["bytes_per_message"] = round(f["bytes"] / f["messages"], 1)
    out.generation_s = round(time.perf_counter() - t0, 1)
    return out


def print_payloads(p: Payloads) -> None:
    print(f"payloads: {p.mode}, {p.messages:,} messages carrying {p.readings:,} readings"
          + (f" (generated in {p.generation_s:.1f} s, before any timing)" if p.generation_s else ""))
    for fmt, f in p.formats.items():
        print(f"  {fmt:<6} {f['messages']:>8,} messages {f['readings']:>8,} readings "
              f"{f['bytes_per_message']:>7,.0f} bytes/message  ({100 * f['messages'] / p.messages:.0f} % of messages)")
    total = sum(f["bytes"] for f in p.formats.values())
    print(f"  all    {p.messages:>8,} messages {p.readings:>8,} readings {total / p.messages:>7,.0f} bytes/message",
          flush=True)


# --- processes that publish, count and write -------------------------------------------------------


def _publisher(url: str, n: int, n_sensors: int, base_ms: int, part: int, parts: int,
               go: mp.Event, out: mp.Queue,  # type: ignore[valid-type]
               prebuilt: list[tuple[str, bytes]] | None = None, window: int = 1000) -> None:
    """QoS 1 publisher on a plain socket, packets made by the mqtt5 codec before timing, at most ``window``
    unacknowledged: the load (paho's Python publish path tops out at a few thousand messages/s a process,
    which would cap every consumer), as the shared peer harness's raw publisher."""
    import socket

    import mqtt5

    # Simulator messages come pre-built (inherited through fork); native ones are built here.
    msgs = prebuilt if prebuilt is not None else [reading(i, n_sensors, base_ms)[:2] for i in range(part, n, parts)]
    packets = [mqtt5.PublishPacket(t, b, qos=mqtt5.QoS.AT_LEAST_ONCE, packet_id=i % 65535 + 1).write()
               for i, (t, b) in enumerate(msgs)]
    target = MqttUrl.parse(url)
    sock = socket.create_connection((target.host, target.port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(mqtt5.ConnectPacket(f"bench-pub-{os.getpid()}", clean_start=True).write())
    acked = [0]
    buf = bytearray()
    cond = threading.Condition()
    connected = threading.Event()

    def reader() -> None:
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf.extend(data)
            pos, k = 0, 0
            view = memoryview(bytes(buf))
            while pos < len(view):
                try:
                    packet, size = mqtt5.read(view[pos:])
                except IndexError:
                    break
                pos += size
                if isinstance(packet, mqtt5.PubAckPacket):
                    k += 1
                elif isinstance(packet, mqtt5.ConnAckPacket):
                    connected.set()
            del buf[:pos]
            if k:
                with cond:
                    acked[0] += k
                    cond.notify_all()

    threading.Thread(target=reader, daemon=True).start()
    connected.wait(30)
    go.wait()
    t0 = time.time()
    sent = 0
    while sent < len(packets):
        with cond:
            cond.wait_for(lambda s=sent: s - acked[0] < window, 60)
            k = min(window - (sent - acked[0]), 500, len(packets) - sent)
        sock.sendall(b"".join(packets[sent:sent + k]))
        sent += k
    with cond:
        ok = cond.wait_for(lambda: acked[0] >= len(packets), 600)
    t1 = time.time()
    sock.sendall(mqtt5.DisconnectPacket().write())
    sock.close()
    out.put({"part": part, "sent": len(msgs), "acked": acked[0], "ok": ok, "t0": t0, "t1": t1})


def _paho_counter(url: str, n: int, client_id: str, ready: mp.Event, out: mp.Queue,  # type: ignore[valid-type]
                  register_only: bool = False, filters: tuple[str, ...] = ("heat/#",),
                  persistent: bool = False) -> None:
    """The Python receive ceiling as a user measures it: a plain paho-mqtt 2.x subscriber with default
    settings (MQTT 3.1.1, automatic acks, QoS 1), counting and nothing else, as the shared peer harness's.

    ``n`` is a number of messages. ``persistent`` (drain mode) keeps the session (``clean_session=False``) so
    the broker queues the burst for it; ``register_only`` subscribes and leaves."""
    import paho.mqtt.client as mqtt

    target = MqttUrl.parse(url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                         clean_session=not persistent)
    count = [0]
    first = [0.0]
    done = threading.Event()

    def on_message(*_a: object) -> None:
        count[0] += 1
        if count[0] == 1:
            first[0] = time.time()
        if count[0] >= n:
            done.set()

    connected = [0.0]

    def on_connect(c: mqtt.Client, *_a: object) -> None:
        connected[0] = time.time()
        c.subscribe([(f, 1) for f in filters])

    client.on_message = on_message
    client.on_subscribe = lambda *_a: ready.set()
    client.on_connect = on_connect
    client.connect(target.host, target.port)
    client.loop_start()
    if register_only:
        ready.wait(30)
        client.disconnect()
        client.loop_stop()
        return
    done.wait(900)
    t_last = time.time()
    client.disconnect()
    client.loop_stop()
    out.put({"count": count[0], "t_connected": connected[0], "t_first": first[0], "t_last": t_last})


def _writer(url: str, db: str, batches: list[str], go: mp.Event, out: mp.Queue) -> None:  # type: ignore[valid-type]
    with httpx.Client(base_url=url, timeout=60) as http:
        go.wait()
        t0 = time.time()
        for body in batches:
            r = http.post("/write", params={"db": db, "rp": "raw", "precision": "ms"}, content=body.encode())
            r.raise_for_status()
        out.put({"t0": t0, "t1": time.time(), "batches": len(batches)})


# --- measurement helpers ---------------------------------------------------------------------------


def proc_usage(pid: int) -> tuple[float, float]:
    """(CPU seconds user+system, peak RSS MB) of a live process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15 of stat)
    hwm = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    return cpu, hwm


def count_stored(url: str, db: str) -> int:
    r = httpx.post(f"{url}/query", data={"db": db, "q": 'SELECT COUNT("temperature") FROM "raw"."reading"'},
                   timeout=60)
    series = r.json()["results"][0].get("series") if r.status_code == 200 else None
    return int(series[0]["values"][0][1]) if series else 0


def stored_sensors(url: str, db: str) -> set[str]:
    r = httpx.post(f"{url}/query", data={"db": db, "q": 'SHOW TAG VALUES FROM "raw"."reading" WITH KEY = "sensor"'},
                   timeout=60)
    series = r.json()["results"][0].get("series") if r.status_code == 200 else None
    return {v[1] for v in series[0]["values"]} if series else set()


def preload_registry(data_dir: Path, sensors: list) -> None:
    """The ingester's registry as production has it: every sensor, TTS devices by their device ids."""
    from heatwatch.core.registry import Registry
    from heatwatch.core.settings import Settings

    with Registry(Settings.load(data_dir=data_dir).registry_path, towns=TOWNS) as registry:
        registry.upsert_many(sensors)


def create_db(url: str, db: str) -> None:
    for q in (f'CREATE DATABASE "{db}"', f'CREATE RETENTION POLICY "raw" ON "{db}" DURATION INF REPLICATION 1 DEFAULT'):
        httpx.post(f"{url}/query", data={"q": q}, timeout=30).raise_for_status()


@dataclass
class Result:
    name: str
    kind: str
    mode: str  # live: consumers run while the burst is published; drain: the burst is queued first
    readings: int
    received: int
    seconds: float
    rate: float
    loss: int
    publish_rate: float | None = None
    processes: list[dict] = field(default_factory=list)
    note: str = ""


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.n = args.n
        self.base_ms = int(time.time() * 1000) - 3 * 24 * 3600 * 1000
        if args.payloads == "simulator":
            self.payloads = simulator_payloads(self.n, args.sensors, args.publishers, not args.no_registry)
        else:
            self.payloads = native_payloads(self.n, args.sensors, self.base_ms)
        self.messages = self.payloads.messages  # == n in native mode; fewer when backlog arrays carry several
        self.filters = COUNT_FILTERS[args.payloads]
        print_payloads(self.payloads)
        self.work = Path(tempfile.mkdtemp(prefix="heatwatch-bench-"))
        self.influx = Influxd(self.work / "influxd")
        self.results: list[Result] = []
        self.ctx = mp.get_context("fork")

    def _readings_in(self, count: int) -> int:
        """Readings carried by ``count`` messages counted by a consumer that does not decode them: exact when
        every message arrived; otherwise a lower bound (the missing ones may be the backlog arrays)."""
        return self.payloads.readings if count >= self.messages else count

    # One scenario: a fresh broker, the consumers started, then the publishers at full speed.
    def _broker(self, name: str) -> Mosquitto:
        # The production save period (deploy/mosquitto.conf), not the tests' 1 s: saving rewrites every
        # queued message, which with a 200k burst queued would be most of the broker's work. In-flight
        # window: mosquitto's default (20), as a stock broker and the shared peer harness have it; it limits
        # MQTT 3.1.1 subscribers, while MQTT 5 ones (heatwatch) set theirs with a Receive Maximum.
        return Mosquitto(self.work / f"mosquitto-{name}",
                         extra_conf=f"autosave_interval {self.args.broker_autosave}\n"
                                    "max_inflight_messages 20\n").start()

    def _publish(self, url: str) -> tuple[float, float, int]:
        go = self.ctx.Event()
        out = self.ctx.Queue()
        parts = self.payloads.parts
        procs = [self.ctx.Process(target=_publisher, args=(url, self.n, self.args.sensors, self.base_ms, p,
                                                           self.args.publishers, go, out,
                                                           parts[p] if parts else None))
                 for p in range(self.args.publishers)]
        for p in procs:
            p.start()
        time.sleep(1.0)  # let every publisher build its messages and connect
        go.set()
        parts = [out.get(timeout=900) for _ in procs]
        for p in procs:
            p.join()
        t0 = min(r["t0"] for r in parts)
        t1 = max(r["t1"] for r in parts)
        acked = sum(r["acked"] for r in parts)
        if acked != self.messages:
            print(f"  publishers: only {acked}/{self.messages} messages PUBACKed", file=sys.stderr)
        return t0, t1, acked

    def heatwatch(self, k: int, mode: str) -> Result:
        name = f"heatwatch x{k} {mode}"
        print(f"- {name}", flush=True)
        broker = self._broker(f"hw{k}{mode}")
        db = f"bench_hw{k}_{mode}"
        procs = []
        for i in range(k):
            env = {
                "HEATWATCH_MQTT_URL": broker.url,
                "HEATWATCH_INFLUX_URL": self.influx.url,
                "HEATWATCH_INFLUX_DB": db,
                "HEATWATCH_DATA_DIR": str(self.work / f"var-{k}-{mode}-{i}"),
                "HEATWATCH_MQTT_CLIENT_ID": f"bench-ingest-{k}-{i}",
                "HEATWATCH_BATCH_SIZE": str(self.args.batch_size),
                "HEATWATCH_BATCH_INTERVAL_S": str(self.args.batch_interval),
                "HEATWATCH_SUBSCRIPTIONS": SUBSCRIPTIONS[self.args.payloads],
                "HEATWATCH_LOG_LEVEL": "INFO",  # the ready marker is an INFO line; there are few of them
            }
            if k > 1:
                env["HEATWATCH_MQTT_SHARED_GROUP"] = "heatwatch"
            if self.payloads.sensors:
                preload_registry(Path(env["HEATWATCH_DATA_DIR"]), self.payloads.sensors)
            p = ServiceProcess(["ingest"], env, self.work / f"ingest-{k}-{mode}-{i}.log", name=f"ingest-{i}")
            procs.append(p.start(ready_marker="mqtt.subscribed", timeout=60))
        try:
            if mode == "drain":
                # Sessions stay on the broker while the ingesters are down: the burst queues for them. The
                # start-up's CPU (imports, settings, connect), measured now, is taken off the drain's.
                startup = [proc_usage(p.pid)[0] for p in procs if p.pid]
                for p in procs:
                    p.stop()
                t_pub0, t_pub1, acked = self._publish(broker.url)
                offsets = [p.log_path.stat().st_size for p in procs]
                for p in procs:
                    p.start(ready_marker="mqtt.connected", timeout=60)
                t0 = min(_log_time(p, "mqtt.connected", off) for p, off in zip(procs, offsets, strict=True))
                base = {p.pid: cpu for p, cpu in zip(procs, startup, strict=True)}
            else:
                base = {p.pid: proc_usage(p.pid)[0] for p in procs if p.pid}  # start-up is not ingest work
                t_pub0, t_pub1, acked = self._publish(broker.url)
                t0 = t_pub0
            t_last, stored = self._wait_stored(db)
            note = f"batch {self.args.batch_size}"
            if self.payloads.sensor_ids:
                ids = stored_sensors(self.influx.url, db)
                wrong = len(ids - self.payloads.sensor_ids) + len(self.payloads.sensor_ids - ids)
                note += (f", {len(ids)} sensor ids as expected" if not wrong
                         else f", sensor ids: {wrong} differ from the simulator's")
                note += "" if self.payloads.sensors else " (TTS: device ids, no registry)"
            usage = []
            for i, p in enumerate(procs):
                assert p.pid is not None
                cpu, rss = proc_usage(p.pid)
                usage.append({"process": f"ingest-{i}", "cpu_s": round(cpu - base[p.pid], 2),
                              "peak_rss_mb": round(rss, 1)})
        finally:
            for p in procs:
                p.stop()
            broker.stop()
        secs = t_last - t0
        return Result(name, "heatwatch", mode, self.n, stored, round(secs, 2), round(stored / secs), self.n - stored,
                      round(acked / (t_pub1 - t_pub0)), usage, note)

    def _wait_stored(self, db: str) -> tuple[float, int]:
        deadline = time.monotonic() + self.args.timeout
        last_n, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            n = count_stored(self.influx.url, db)
            now = time.time()
            if n >= self.n:
                return now, n
            if n != last_n:
                last_n, last_change = n, time.monotonic()
            elif time.monotonic() - last_change > 30:
                break  # stalled: report the loss
            time.sleep(0.1)
        return time.time(), max(last_n, 0)

    def paho(self, mode: str) -> Result:
        name = f"paho 3.1.1 count-only {mode}"
        print(f"- {name}", flush=True)
        broker = self._broker(f"paho{mode}")
        ready, out = self.ctx.Event(), self.ctx.Queue()
        try:
            if mode == "drain":
                reg = self.ctx.Process(target=_paho_counter,
                                       args=(broker.url, self.messages, "bench-paho", ready, out, True, self.filters,
                                             True))
                reg.start()
                reg.join(30)
                ready.clear()
                t_pub0, t_pub1, acked = self._publish(broker.url)
            proc = self.ctx.Process(target=_paho_counter,
                                    args=(broker.url, self.messages, "bench-paho", ready, out, False, self.filters,
                                          mode == "drain"))
            proc.start()
            assert ready.wait(30)
            if mode == "live":
                t_pub0, t_pub1, acked = self._publish(broker.url)
            r = out.get(timeout=self.args.timeout)
            proc.join()
        finally:
            broker.stop()
        t0 = r["t_connected"] if mode == "drain" else t_pub0
        secs = r["t_last"] - t0
        got = self._readings_in(r["count"])
        return Result(name, "paho", mode, self.n, got, round(secs, 2), round(got / secs),
                      self.n - got, round(acked / (t_pub1 - t_pub0)), [], "Python receive ceiling, 1 process")

    def nodered(self, mode: str) -> Result:
        """Node-RED 4 with node-red-contrib-influxdb (``bench/ingest/nodered/``): what towns' integrators often
        pick. It acknowledges on receipt (the MQTT node's automatic acks), not after the write."""
        name = f"node-red {mode}"
        print(f"- {name}", flush=True)
        home = Path(self.args.node_red).resolve()
        broker = self._broker(f"nodered{mode}")
        db = f"bench_nodered_{mode}"
        create_db(self.influx.url, db)
        env = {**os.environ, "MQTT_HOST": "127.0.0.1", "MQTT_PORT": str(broker.port), "INFLUX_HOST": "127.0.0.1",
               "INFLUX_PORT": str(self.influx.port), "INFLUX_DB": db, "NODERED_USERDIR": str(home)}
        log = self.work / f"nodered-{mode}.log"
        argv = [str(home / "node_modules" / ".bin" / "node-red"), "--settings", str(NODERED / "settings.js")]

        def start(settle: bool = True) -> tuple[subprocess.Popen, float]:
            offset = log.stat().st_size if log.exists() else 0
            with open(log, "ab") as f:
                proc = subprocess.Popen(argv, env=env, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
            deadline = time.monotonic() + 90
            while b"Connected to broker" not in log.read_bytes()[offset:]:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"node-red did not connect; see {log}")
                time.sleep(0.05)
            t = time.time()
            if settle:
                time.sleep(1.0)  # the subscription follows the connection
            return proc, t

        def stop(proc: subprocess.Popen) -> None:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # the process group this bench created for it
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()

        proc = None
        try:
            proc, _ = start()
            base = proc_usage(proc.pid)[0]  # start-up is not ingest work (in drain mode: the first start's)
            if mode == "drain":
                stop(proc)  # the session (clean session off, fixed client id) queues the burst meanwhile
                t_pub0, t_pub1, acked = self._publish(broker.url)
                proc, t0 = start(settle=False)
            else:
                t_pub0, t_pub1, acked = self._publish(broker.url)
                t0 = t_pub0
            t_last, stored = self._wait_stored(db)
            cpu, rss = proc_usage(proc.pid)
        finally:
            if proc is not None:
                stop(proc)
            broker.stop()
        secs = t_last - t0
        return Result(name, "nodered", mode, self.n, stored, round(secs, 2), round(stored / secs), self.n - stored,
                      round(acked / (t_pub1 - t_pub0)), [{"process": "node-red", "cpu_s": round(cpu - base, 2),
                                                          "peak_rss_mb": round(rss, 1)}],
                      "join 1000 / 0.5 s, acks on receipt")

    def mosquitto_sub(self, mode: str) -> Result:
        name = f"mosquitto_sub {mode}"
        print(f"- {name}", flush=True)
        broker = self._broker(f"sub{mode}")
        binary = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
        topics = [a for f in self.filters for a in ("-t", f)]
        # As the shared peer harness runs it (MQTT 3.1.1 defaults, the topic printed per message); drain mode
        # adds a persistent session (-c, a fixed id) so the broker queues the burst for it.
        argv = [binary, "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", *topics, "-F", "%t"]
        if mode == "drain":
            argv += ["-c", "-i", "bench-sub"]
        try:
            if mode == "drain":
                subprocess.run([*argv, "-E"], check=True, timeout=30)  # -E: subscribe, then leave
                t_pub0, t_pub1, acked = self._publish(broker.url)
            t0 = time.time()
            sub = subprocess.Popen([*argv, "-C", str(self.messages)], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL)
            assert sub.stdout is not None
            counted = [0]

            def drain() -> None:  # reading stdout as it comes keeps the pipe from filling
                for _line in sub.stdout:  # type: ignore[union-attr]
                    counted[0] += 1

            reader = threading.Thread(target=drain, daemon=True)
            reader.start()
            if mode == "live":
                time.sleep(1.0)
                t_pub0, t_pub1, acked = self._publish(broker.url)
                t0 = t_pub0
            sub.wait(self.args.timeout)
            t_last = time.time()
            reader.join(10)
        finally:
            if "sub" in locals() and sub.poll() is None:
                sub.kill()
            broker.stop()
        secs = t_last - t0
        got = self._readings_in(counted[0])
        return Result(name, "broker", mode, self.n, got, round(secs, 2), round(got / secs),
                      self.n - got, round(acked / (t_pub1 - t_pub0)), [], "broker ceiling")

    def direct_writes(self, writers: int) -> Result:
        name = f"line protocol x{writers}"
        print(f"- {name}", flush=True)
        db = f"bench_lp{writers}"
        create_db(self.influx.url, db)
        lines = self.payloads.lines or [reading(i, self.args.sensors, self.base_ms)[2] for i in range(self.n)]
        batches = ["\n".join(lines[i:i + 5000]) for i in range(0, len(lines), 5000)]
        go, out = self.ctx.Event(), self.ctx.Queue()
        procs = [self.ctx.Process(target=_writer, args=(self.influx.url, db, batches[w::writers], go, out))
                 for w in range(writers)]
        for p in procs:
            p.start()
        time.sleep(0.5)
        go.set()
        parts = [out.get(timeout=600) for _ in procs]
        for p in procs:
            p.join()
        secs = max(r["t1"] for r in parts) - min(r["t0"] for r in parts)
        stored = count_stored(self.influx.url, db)
        return Result(name, "database", "-", self.n, stored, round(secs, 2), round(stored / secs), self.n - stored,
                      None, [], "database ceiling, batches of 5000")

    def run(self) -> list[Result]:
        self.influx.start()
        try:
            peers = ["nodered"] if self.args.node_red and self.args.payloads == "native" else []
            plan = self.args.only or ["lp1", "lp2", "sub", "paho", *peers, *[f"hw{k}" for k in self.args.ingesters]]
            for step in plan:
                for mode in self.args.modes if not step.startswith("lp") else ["-"]:
                    if step.startswith("lp"):
                        self.results.append(self.direct_writes(int(step[2:])))
                    elif step == "sub":
                        self.results.append(self.mosquitto_sub(mode))
                    elif step == "paho":
                        self.results.append(self.paho(mode))
                    elif step == "nodered":
                        self.results.append(self.nodered(mode))
                    elif step.startswith("hw"):
                        self.results.append(self.heatwatch(int(step[2:]), mode))
                    print(f"  {_row(self.results[-1])}", flush=True)
        finally:
            self.influx.stop()
            if not self.args.keep:
                shutil.rmtree(self.work, ignore_errors=True)
        return self.results


def _log_time(p: ServiceProcess, marker: str, offset: int) -> float:
    """Wall-clock time of the first log line with ``marker`` after ``offset`` (structlog ISO UTC stamp)."""
    from datetime import datetime

    for line in p.log_text(offset).splitlines():
        if marker in line:
            stamp = line.split()[0].rstrip("Z")
            return datetime.fromisoformat(stamp + "+00:00").timestamp()
    raise RuntimeError(f"no {marker} in {p.log_path}")


def _row(r: Result) -> str:
    cpu = " ".join(f"{p['cpu_s']:.1f}" for p in r.processes if "cpu_s" in p) or "-"
    rss = " ".join(f"{p['peak_rss_mb']:.0f}" for p in r.processes if "peak_rss_mb" in p) or "-"
    pub = f"{r.publish_rate:>8,}" if r.publish_rate else "       -"
    return (f"{r.name:<24} {r.rate:>10,} {r.loss:>6} {r.seconds:>8.2f} {pub}   {cpu:<17} {rss:<12} {r.note}")


def report(results: list[Result], args: argparse.Namespace, payloads: Payloads | None = None) -> dict:
    header = f"{'what':<24} {'readings/s':>10} {'loss':>6} {'seconds':>8} {'pub/s':>8}   {'CPU s':<17} " \
             f"{'peak RSS MB':<12} note"
    print()
    print(header)
    print("-" * len(header))
    for r in results:
        print(_row(r))
    ratios = {}
    print()
    for r in results:
        if r.kind != "heatwatch":
            continue
        for kind, label in (("paho", "paho 3.1.1 count-only"), ("nodered", "node-red"), ("broker", "mosquitto_sub")):
            peer = next((x for x in results if x.kind == kind and x.mode == r.mode), None)
            if peer and peer.rate:
                ratio = round(r.rate / peer.rate, 2)
                ratios.setdefault(r.name, {})[kind] = ratio
                print(f"{r.name} / {label} {r.mode} = {ratio:.2f}")
    cpu_us = {}
    for r in results:
        cpu = sum(p.get("cpu_s", 0.0) for p in r.processes)
        if r.kind == "heatwatch" and r.received:
            cpu_us[r.name] = round(cpu * 1e6 / r.received, 1)
            print(f"{r.name}: {cpu_us[r.name]:.1f} CPU µs/reading ({args.payloads} payloads)")
    doc = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release(),
                    "loadavg_at_end": os.getloadavg()},
        "params": {k: v for k, v in vars(args).items() if k != "keep"},
        "results": [asdict(r) for r in results],
        "ratios": ratios,
        "cpu_us_per_reading": cpu_us,
        "payloads": payloads.summary() if payloads else None,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"ingest-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(doc, indent=2))
    print(f"\nresults: {path}")
    return doc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=200_000, help="readings per scenario (default 200000)")
    p.add_argument("--sensors", type=int, default=500, help="sensors, half in each town (default 500)")
    p.add_argument("--publishers", type=int, default=1,
                   help="publisher processes (default 1, as the shared peer harness: one raw-socket publisher)")
    p.add_argument("--ingesters", type=int, nargs="+", default=[1, 2, 3], help="ingester counts to run")
    p.add_argument("--batch-size", type=int, default=5000)
    p.add_argument("--batch-interval", type=float, default=0.5)
    p.add_argument("--modes", nargs="+", default=["live", "drain"], choices=["live", "drain"],
                   help="live: consumers run during the burst (first publish to last stored); "
                        "drain: the burst is queued first (consumer connect to last stored)")
    p.add_argument("--broker-autosave", type=int, default=5, help="mosquitto autosave_interval, s (default 5)")
    p.add_argument("--timeout", type=float, default=600, help="seconds a scenario may take")
    p.add_argument("--only", nargs="+", help="scenarios: lp1 lp2 sub paho hw1 hw2 hw3 (default all)")
    p.add_argument("--payloads", choices=["native", "simulator"], default="native",
                   help="native: one small native JSON reading per message (default); simulator: the "
                        "simulator's messages in the sensors' device-profile formats (JSON, SenML, TTS), "
                        "pre-generated; loss and readings/s count readings")
    p.add_argument("--no-registry", action="store_true",
                   help="simulator: do not preload the ingesters' registry; TTS devices are then stored under "
                        "their device ids (application -> town fallback)")
    p.add_argument("--node-red", default=os.environ.get("NODE_RED_DIR"), metavar="DIR",
                   help="a folder where `npm install node-red@4 node-red-contrib-influxdb@0.7` was run: adds the "
                        "Node-RED scenario (native payloads only; default $NODE_RED_DIR)")
    p.add_argument("--keep", action="store_true", help="keep the temporary data and logs")
    args = p.parse_args(argv)
    bench = Bench(args)
    results = bench.run()
    print()
    print_payloads(bench.payloads)
    report(results, args, bench.payloads)
    return 0 if all(r.loss == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
