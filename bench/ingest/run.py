"""Ingest benchmark: heatwatch end to end against the raw ceilings, side by side in one run (DESIGN §8).

    .venv/bin/python -m bench.ingest                 # 200k readings, 500 sensors, full run
    .venv/bin/python -m bench.ingest -n 20000        # quick look

Starts its own mosquitto and influxd (heatwatch.stack.embedded, the limits the tests use), then for
each scenario a fresh broker (so no persistent session of an earlier scenario queues copies) and:

* heatwatch with 1, 2 and 3 ingester processes (a shared subscription from 2 on): readings/s from the
  first publish to the last reading stored, loss, CPU seconds and peak RSS of each ingester;
* a paho-mqtt subscriber that only counts (QoS 1, persistent session): the Python receive ceiling;
* ``mosquitto_sub -q 1 -C N`` counting: the broker ceiling;
* direct line-protocol writes in batches of 5000 with httpx, 1 and 2 writers: the database ceiling.

Every scenario publishes the same N readings (both towns, ``heat/<town>/<sensor>`` native JSON) at full
speed, QoS 1, from several publisher processes (paho publishes only a few thousand messages/s per
process); the consumer runs while they publish. Results: a table on stdout and JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from heatwatch.stack.children import ServiceProcess
from heatwatch.stack.embedded import Influxd, Mosquitto

TOWNS = ("vitre", "saint-omer")
RESULTS = Path(__file__).resolve().parents[1] / "results"
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
    line = f"reading,city={town},sensor={sensor} temperature={t!r},humidity={rh!r},source=\"bench\" {ts}"
    return f"heat/{town}/{sensor}", payload, line


# --- processes that publish, count and write -------------------------------------------------------


def _publisher(url: str, n: int, n_sensors: int, base_ms: int, part: int, parts: int,
               go: mp.Event, out: mp.Queue) -> None:  # type: ignore[valid-type]
    from heatwatch.core.mqtt import make_client
    from heatwatch.core.settings import MqttUrl

    msgs = [reading(i, n_sensors, base_ms)[:2] for i in range(part, n, parts)]
    target = MqttUrl.parse(url)
    client = make_client(target, "")
    # paho keeps at most this many unacknowledged and queues the rest itself: no per-message wait.
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    acked = [0]
    done = threading.Event()

    def on_publish(*_a: object) -> None:
        acked[0] += 1
        if acked[0] == len(msgs):
            done.set()

    client.on_publish = on_publish
    client.connect(target.host, target.port)
    client.loop_start()
    go.wait()
    t0 = time.time()
    for topic, payload in msgs:
        client.publish(topic, payload, qos=1)
    ok = done.wait(600)
    t1 = time.time()
    client.disconnect()
    client.loop_stop()
    out.put({"part": part, "sent": len(msgs), "acked": acked[0], "ok": ok, "t0": t0, "t1": t1})


def _paho_counter(url: str, n: int, client_id: str, ready: mp.Event, out: mp.Queue,  # type: ignore[valid-type]
                  register_only: bool = False) -> None:
    """The Python receive ceiling: QoS 1, persistent session, automatic acks, count and nothing else.

    ``register_only`` subscribes and leaves, so the broker queues the burst for the session."""
    from paho.mqtt.subscribeoptions import SubscribeOptions

    from heatwatch.core.mqtt import connect_properties, make_client
    from heatwatch.core.settings import MqttUrl

    target = MqttUrl.parse(url)
    client = make_client(target, client_id)
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

    def on_connect(c: object, *_a: object) -> None:
        connected[0] = time.time()
        c.subscribe([("heat/#", SubscribeOptions(qos=1))])  # type: ignore[attr-defined]

    client.on_message = on_message
    client.on_subscribe = lambda *_a: ready.set()
    client.on_connect = on_connect
    client.connect(target.host, target.port, clean_start=False,
                   properties=connect_properties(session_expiry_s=3600, receive_maximum=65535))
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
        self.work = Path(tempfile.mkdtemp(prefix="heatwatch-bench-"))
        self.influx = Influxd(self.work / "influxd")
        self.base_ms = int(time.time() * 1000) - 3 * 24 * 3600 * 1000
        self.results: list[Result] = []
        self.ctx = mp.get_context("fork")

    # One scenario: a fresh broker, the consumers started, then the publishers at full speed.
    def _broker(self, name: str) -> Mosquitto:
        # The production save period (deploy/mosquitto.conf), not the tests' 1 s: saving rewrites every
        # queued message, which with a 200k burst queued would be most of the broker's work.
        return Mosquitto(self.work / f"mosquitto-{name}",
                         extra_conf=f"autosave_interval {self.args.broker_autosave}\n").start()

    def _publish(self, url: str) -> tuple[float, float, int]:
        go = self.ctx.Event()
        out = self.ctx.Queue()
        procs = [self.ctx.Process(target=_publisher, args=(url, self.n, self.args.sensors, self.base_ms, p,
                                                           self.args.publishers, go, out))
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
        if acked != self.n:
            print(f"  publishers: only {acked}/{self.n} PUBACKed", file=sys.stderr)
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
                "HEATWATCH_SUBSCRIPTIONS": '[{"filter":"heat/+/+","format":"json"}]',
                "HEATWATCH_LOG_LEVEL": "INFO",  # the ready marker is an INFO line; there are few of them
            }
            if k > 1:
                env["HEATWATCH_MQTT_SHARED_GROUP"] = "heatwatch"
            p = ServiceProcess(["ingest"], env, self.work / f"ingest-{k}-{mode}-{i}.log", name=f"ingest-{i}")
            procs.append(p.start(ready_marker="mqtt.subscribed", timeout=60))
        try:
            if mode == "drain":
                # Sessions stay on the broker while the ingesters are down: the burst queues for them.
                for p in procs:
                    p.stop()
                t_pub0, t_pub1, acked = self._publish(broker.url)
                offsets = [p.log_path.stat().st_size for p in procs]
                for p in procs:
                    p.start(ready_marker="mqtt.connected", timeout=60)
                t0 = min(_log_time(p, "mqtt.connected", off) for p, off in zip(procs, offsets, strict=True))
                base = {p.pid: 0.0 for p in procs}
            else:
                base = {p.pid: proc_usage(p.pid)[0] for p in procs if p.pid}  # start-up is not ingest work
                t_pub0, t_pub1, acked = self._publish(broker.url)
                t0 = t_pub0
            t_last, stored = self._wait_stored(db)
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
                      round(acked / (t_pub1 - t_pub0)), usage, f"batch {self.args.batch_size}")

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
        name = f"paho count-only {mode}"
        print(f"- {name}", flush=True)
        broker = self._broker(f"paho{mode}")
        ready, out = self.ctx.Event(), self.ctx.Queue()
        try:
            if mode == "drain":
                reg = self.ctx.Process(target=_paho_counter, args=(broker.url, self.n, "bench-paho", ready, out, True))
                reg.start()
                reg.join(30)
                ready.clear()
                t_pub0, t_pub1, acked = self._publish(broker.url)
            proc = self.ctx.Process(target=_paho_counter, args=(broker.url, self.n, "bench-paho", ready, out))
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
        return Result(name, "paho", mode, self.n, r["count"], round(secs, 2), round(r["count"] / secs),
                      self.n - r["count"], round(acked / (t_pub1 - t_pub0)), [], "Python receive ceiling, 1 process")

    def mosquitto_sub(self, mode: str) -> Result:
        name = f"mosquitto_sub {mode}"
        print(f"- {name}", flush=True)
        broker = self._broker(f"sub{mode}")
        binary = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
        argv = [binary, "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-t", "heat/#", "-c",
                "-i", "bench-sub", "-V", "mqttv5", "-x", "3600"]
        try:
            if mode == "drain":
                subprocess.run([*argv, "-E"], check=True, timeout=30)  # -E: subscribe, then leave
                t_pub0, t_pub1, acked = self._publish(broker.url)
            t0 = time.time()
            sub = subprocess.Popen([*argv, "-C", str(self.n)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
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
        return Result(name, "broker", mode, self.n, counted[0], round(secs, 2), round(counted[0] / secs),
                      self.n - counted[0], round(acked / (t_pub1 - t_pub0)), [], "broker ceiling")

    def direct_writes(self, writers: int) -> Result:
        name = f"line protocol x{writers}"
        print(f"- {name}", flush=True)
        db = f"bench_lp{writers}"
        create_db(self.influx.url, db)
        lines = [reading(i, self.args.sensors, self.base_ms)[2] for i in range(self.n)]
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
            plan = self.args.only or ["lp1", "lp2", "sub", "paho", *[f"hw{k}" for k in self.args.ingesters]]
            for step in plan:
                for mode in self.args.modes if not step.startswith("lp") else ["-"]:
                    if step.startswith("lp"):
                        self.results.append(self.direct_writes(int(step[2:])))
                    elif step == "sub":
                        self.results.append(self.mosquitto_sub(mode))
                    elif step == "paho":
                        self.results.append(self.paho(mode))
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


def report(results: list[Result], args: argparse.Namespace) -> dict:
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
        paho = next((x for x in results if x.kind == "paho" and x.mode == r.mode), None)
        if r.kind == "heatwatch" and paho and paho.rate:
            ratios[r.name] = round(r.rate / paho.rate, 2)
            print(f"{r.name} / paho count-only {r.mode} = {ratios[r.name]:.2f}")
    doc = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release(),
                    "loadavg_at_end": os.getloadavg()},
        "params": {k: v for k, v in vars(args).items() if k != "keep"},
        "results": [asdict(r) for r in results],
        "ratios_vs_paho": ratios,
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
    p.add_argument("--publishers", type=int, default=4, help="publisher processes (default 4)")
    p.add_argument("--ingesters", type=int, nargs="+", default=[1, 2, 3], help="ingester counts to run")
    p.add_argument("--batch-size", type=int, default=5000)
    p.add_argument("--batch-interval", type=float, default=0.5)
    p.add_argument("--modes", nargs="+", default=["live", "drain"], choices=["live", "drain"],
                   help="live: consumers run during the burst (first publish to last stored); "
                        "drain: the burst is queued first (consumer connect to last stored)")
    p.add_argument("--broker-autosave", type=int, default=5, help="mosquitto autosave_interval, s (default 5)")
    p.add_argument("--timeout", type=float, default=600, help="seconds a scenario may take")
    p.add_argument("--only", nargs="+", help="scenarios: lp1 lp2 sub paho hw1 hw2 hw3 (default all)")
    p.add_argument("--keep", action="store_true", help="keep the temporary data and logs")
    args = p.parse_args(argv)
    results = Bench(args).run()
    report(results, args)
    return 0 if all(r.loss == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
