"""Which MQTT packet code for the ingester: parse + acknowledge, per message, measured (docs/ingest.md).

    .venv/bin/python -m bench.ingest.codec                 # 200k QoS 1 PUBLISH packets, best of 3
    .venv/bin/python -m bench.ingest.codec -n 50000 --repeat 5

Two measurements, both of QoS 1 PUBLISH packets shaped as the native readings (``heat/<town>/<sensor>``,
a ~70-byte JSON object):

* **codec, in memory**: CPU µs to parse each packet out of a buffer and make its PUBACK — ``mqtt5`` (Rust)
  against the smallest pure-Python parser one could write with ``struct`` (what a client of our own without a
  maintained codec would carry). paho-mqtt and gmqtt keep their parsers inside their clients: they are
  measured by the second part.
* **client receive path, over loopback**: a stub broker (this module, a plain socket) accepts one client,
  answers CONNECT and SUBSCRIBE, sends the N packets as fast as the socket takes them and counts the PUBACKs
  coming back; each client runs in its own process and counts the messages. Reported: the client process's
  CPU µs per message and the wall-clock rate. Clients: heatwatch's (``ingest/client.py``: mqtt5 under
  uvloop, one write of PUBACKs per batch), paho-mqtt 2.x (MQTT 5 and 3.1.1, automatic acks), gmqtt (MQTT 5,
  asyncio, pure-Python parser) when installed (``pip install -e '.[bench]'``).

No broker, no database: this isolates the packet code. The end-to-end figures are ``bench.ingest``'s.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import socket
import struct
import threading
import time

import mqtt5

TOWNS = ("vitre", "saint-omer")


def messages(n: int) -> list[tuple[str, bytes]]:
    base = int(time.time() * 1000)
    return [(f"heat/{TOWNS[i % 2]}/b{i % 500:04d}",
             b'{"ts":%d,"temperature":%.2f,"humidity":%.1f}' % (base + i, 15 + i % 20 * 0.37, 40 + i % 50))
            for i in range(n)]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def publish_v311(topic: str, payload: bytes, pid: int) -> bytes:
    t = topic.encode()
    body = struct.pack("!H", len(t)) + t + struct.pack("!H", pid) + payload
    return b"\x32" + _varint(len(body)) + body


def publish_v5(topic: str, payload: bytes, pid: int) -> bytes:
    return mqtt5.PublishPacket(topic, payload, qos=mqtt5.QoS.AT_LEAST_ONCE, packet_id=pid).write()


# --- codec, in memory ---------------------------------------------------------------------------------------


def parse_mqtt5(buf: bytes) -> int:
    """mqtt5.read each packet (every field decoded and checked), then read what a consumer reads."""
    read = mqtt5.read
    view = memoryview(buf)
    pos, end, n = 0, len(buf), 0
    while pos < end:
        packet, k = read(view[pos:])
        pos += k
        packet.topic, packet.payload, packet.packet_id  # noqa: B018 - what a consumer reads
        n += 1
    return n


_H = struct.Struct("!H")


def parse_struct(buf: bytes) -> int:
    """The smallest pure-Python MQTT 5 PUBLISH parser: fixed header, topic, packet id, properties skipped;
    no check of anything (packet type, flags, UTF-8, property lengths above 127)."""
    pos, end, n = 0, len(buf), 0
    unpack = _H.unpack_from
    while pos < end:
        mult, length, i = 1, 0, pos + 1
        while True:
            b = buf[i]
            length += (b & 0x7F) * mult
            i += 1
            if not b & 0x80:
                break
            mult *= 128
        tlen = unpack(buf, i)[0]
        topic = buf[i + 2:i + 2 + tlen].decode()
        j = i + 2 + tlen
        pid = unpack(buf, j)[0]
        payload = buf[j + 3 + buf[j + 2]:i + length]
        pos = i + length
        n += 1
        del topic, payload, pid
    return n


_ACK = struct.Struct("!BBH")
_TABLE = b"\0\0\0\0" + b"".join(mqtt5.PubAckPacket(i).write() for i in range(1, 65536))


def acks_codec(pids: list[int]) -> int:
    return len(b"".join([mqtt5.PubAckPacket(p).write() for p in pids]))


def acks_table(pids: list[int]) -> int:
    t = _TABLE
    return len(b"".join([t[4 * p:4 * p + 4] for p in pids]))


def acks_struct(pids: list[int]) -> int:
    pack = _ACK.pack
    return len(b"".join([pack(0x40, 2, p) for p in pids]))


def best_cpu_us(fn, arg: object, n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn(arg)
        best = min(best, time.process_time() - t0)
    return best * 1e6 / n


# --- client receive path over loopback ------------------------------------------------------------------------


def _packet_len(buf: bytes | bytearray, at: int = 0) -> tuple[int, int]:
    """(header length, total length) of the packet at ``at``; IndexError while incomplete."""
    mult, length, i = 1, 0, at + 1
    while True:
        b = buf[i]
        length += (b & 0x7F) * mult
        i += 1
        if not b & 0x80:
            return i - at, i - at + length
        mult *= 128


def _read_packet(conn: socket.socket, buf: bytes) -> tuple[bytes, bytes]:
    while True:
        try:
            _h, total = _packet_len(buf)
            if len(buf) >= total:
                return buf[:total], buf[total:]
        except IndexError:
            pass
        data = conn.recv(65536)
        if not data:
            raise ConnectionError("client left")
        buf += data


def stub_broker(sock: socket.socket, packets: bytes, n: int, v5: bool, out: mp.Queue) -> None:  # type: ignore[type-arg]
    conn, _ = sock.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _connect, buf = _read_packet(conn, b"")
    conn.sendall(b"\x20\x03\x00\x00\x00" if v5 else b"\x20\x02\x00\x00")
    while True:
        pkt, buf = _read_packet(conn, buf)
        if pkt[0] == 0x82:
            break
    h, _ = _packet_len(pkt)
    pid = pkt[h:h + 2]
    conn.sendall(b"\x90\x04" + pid + b"\x00\x01" if v5 else b"\x90\x03" + pid + b"\x01")
    acks = [0]

    def count_acks() -> None:
        data = bytearray(buf)
        while acks[0] < n:
            pos = 0
            try:
                while True:
                    _h, total = _packet_len(data, pos)
                    if len(data) < pos + total:
                        break
                    if data[pos] == 0x40:
                        acks[0] += 1
                    pos += total
            except IndexError:
                pass
            del data[:pos]
            chunk = conn.recv(1 << 20)
            if not chunk:
                return
            data += chunk

    reader = threading.Thread(target=count_acks, daemon=True)
    reader.start()
    t0 = time.time()
    conn.sendall(packets)
    reader.join(300)
    out.put({"seconds": time.time() - t0, "acks": acks[0]})
    conn.close()


def client_heatwatch(port: int, n: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    import uvloop

    from heatwatch.core.settings import MqttUrl
    from heatwatch.ingest.client import MqttClient

    async def main() -> None:
        c = MqttClient(MqttUrl.parse(f"mqtt://127.0.0.1:{port}"), "codec-bench", ["heat/#"], session_expiry_s=60,
                       receive_maximum=65535)
        c.start()
        got = 0
        while got < n:
            c.wait_for(1)
            await c.arrived.wait()
            groups = c.take(65535)
            got += sum(len(g.packets) for g in groups)
            c.ack(c.pubacks(groups))
        await asyncio.sleep(0.2)

    uvloop.run(main())
    out.put(resource.getrusage(resource.RUSAGE_SELF))


def client_paho(port: int, n: int, out: mp.Queue, v5: bool) -> None:  # type: ignore[type-arg]
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="codec-bench",
                    protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
    done = threading.Event()
    got = [0]

    def on_message(*_a: object) -> None:
        got[0] += 1
        if got[0] >= n:
            done.set()

    c.on_message = on_message
    c.on_connect = lambda cl, *_a: cl.subscribe("heat/#", qos=1)
    c.connect("127.0.0.1", port)
    c.loop_start()
    done.wait(300)
    time.sleep(0.2)
    c.loop_stop()
    out.put(resource.getrusage(resource.RUSAGE_SELF))


def client_gmqtt(port: int, n: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    import gmqtt

    async def main() -> None:
        c = gmqtt.Client("codec-bench")
        done = asyncio.Event()
        got = [0]

        def on_message(*_a: object) -> int:
            got[0] += 1
            if got[0] >= n:
                done.set()
            return 0

        c.on_message = on_message
        c.on_connect = lambda cl, *_a: cl.subscribe("heat/#", qos=1)
        await c.connect("127.0.0.1", port, version=5)
        await asyncio.wait_for(done.wait(), 300)
        await asyncio.sleep(0.2)

    asyncio.run(main())
    out.put(resource.getrusage(resource.RUSAGE_SELF))


def run_client(name: str, target, args: tuple, n: int, msgs: list[tuple[str, bytes]], v5: bool) -> dict:
    ctx = mp.get_context("spawn")  # a clean process: each client's imports and nothing else
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    port = sock.getsockname()[1]
    make = publish_v5 if v5 else publish_v311
    packets = b"".join(make(t, b, i % 65535 + 1) for i, (t, b) in enumerate(msgs))
    q_broker, q_client = ctx.Queue(), ctx.Queue()
    stub = threading.Thread(target=stub_broker, args=(sock, packets, n, v5, q_broker), daemon=True)
    stub.start()
    idle = ctx.Process(target=_idle_usage, args=(target, q_client))  # the client's start-up, for subtraction
    idle.start()
    base = q_client.get(timeout=60)
    idle.join()
    proc = ctx.Process(target=target, args=(port, n, q_client, *args))
    proc.start()
    r = q_broker.get(timeout=600)
    usage = q_client.get(timeout=60)
    proc.join(30)
    sock.close()
    cpu = (usage.ru_utime + usage.ru_stime) - (base.ru_utime + base.ru_stime)
    return {"client": name, "cpu_us": cpu * 1e6 / n, "rate": r["acks"] / r["seconds"], "acks": r["acks"]}


def _idle_usage(target, out: mp.Queue) -> None:  # type: ignore[type-arg]
    """CPU of importing what the client imports (its start-up), measured alone."""
    if target is client_heatwatch:
        import uvloop  # noqa: F401

        import heatwatch.ingest.client  # noqa: F401
    elif target is client_paho:
        import paho.mqtt.client  # noqa: F401
    else:
        import gmqtt  # noqa: F401
    out.put(resource.getrusage(resource.RUSAGE_SELF))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=3, help="passes of the in-memory part; the best is kept")
    args = p.parse_args(argv)
    msgs = messages(args.n)
    print(f"{args.n:,} QoS 1 PUBLISH packets, {sum(len(b) for _, b in msgs) / args.n:.0f}-byte payloads "
          f"(load {os.getloadavg()[0]:.1f})")
    buf5 = b"".join(publish_v5(t, b, i % 65535 + 1) for i, (t, b) in enumerate(msgs))
    assert parse_mqtt5(buf5) == parse_struct(buf5) == args.n
    pids = [i % 65535 + 1 for i in range(args.n)]
    print("codec, in memory (CPU µs/message, best of passes):")
    for name, fn, arg in (("parse: mqtt5 (Rust)", parse_mqtt5, buf5),
                          ("parse: minimal pure Python", parse_struct, buf5),
                          ("PUBACK: mqtt5 write each", acks_codec, pids),
                          ("PUBACK: slice of a table", acks_table, pids),
                          ("PUBACK: struct.pack each", acks_struct, pids)):
        print(f"  {name:<28} {best_cpu_us(fn, arg, args.n, args.repeat):6.2f}")
    print("client receive path over loopback (client CPU µs/message, messages/s acknowledged):")
    clients = [("heatwatch (mqtt5, uvloop)", client_heatwatch, (), True),
               ("paho-mqtt 2.x, MQTT 5", client_paho, (True,), True),
               ("paho-mqtt 2.x, MQTT 3.1.1", client_paho, (False,), False)]
    try:
        import gmqtt  # noqa: F401

        clients.append(("gmqtt, MQTT 5", client_gmqtt, (), True))
    except ImportError:
        print("  (gmqtt not installed: pip install -e '.[bench]')")
    for name, target, extra, v5 in clients:
        r = run_client(name, target, extra, args.n, msgs, v5)
        ok = "" if r["acks"] >= args.n else f"  only {r['acks']} acks"
        print(f"  {name:<28} {r['cpu_us']:6.2f} µs {r['rate']:>10,.0f}/s{ok}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
