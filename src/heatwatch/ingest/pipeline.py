"""Message → line protocol: pick the decoder by topic, decode, validate, bind to the town, note unknown sensors.

A sensor belongs to one town: a reading of a registered sensor that arrives under another town
(``heat/saint-omer/vitre-centre-01`` when the registry places it in Vitré) is dead-lettered
``town_mismatch``, never stored under the wrong town. A sensor the registry does not know may not
be called like a town or a reserved topic word (``bad_topic``): registering it would make its
topics ambiguous.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import orjson
from paho.mqtt.client import topic_matches_sub

from ..core.deadletters import DeadLetter
from ..core.errors import ConfigError, DecodeError
from ..core.model import RESERVED_IDS, Reading
from ..core.settings import Subscription
from .client import Received
from .decoders import DECODERS, Context, Decoded, Decoder, DeviceLookup, native
from .reasons import Reason
from .validate import Validator


@dataclass(slots=True)
class Processed:
    lines: list[str] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    readings: int = 0
    ignored: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    # Newest reading of each sensor in the batch, for the live feed.
    latest: dict[tuple[str, str], Reading] = field(default_factory=dict)


@dataclass(slots=True)
class _Message:
    topic: str
    payload: bytes
    received_ms: int


def _IGNORE(payload: bytes, ctx: Context) -> Decoded:
    raise AssertionError("ignored topics are never decoded")


class Pipeline:
    def __init__(
        self,
        subscriptions: Sequence[Subscription],
        validator: Validator,
        *,
        max_payload_bytes: int,
        devices: DeviceLookup | None = None,
        decoders: Mapping[str, Decoder] = DECODERS,
        on_sensor: Callable[[str, str], None] | None = None,
        ignore: Sequence[str] = (),
    ) -> None:
        unknown = sorted({s.format for s in subscriptions} - decoders.keys())
        if unknown:
            raise ConfigError(f"no decoder for format(s) {unknown}; known: {sorted(decoders)}")
        self._subs = [(s.filter, decoders[s.format]) for s in subscriptions]
        self._ignore = list(ignore)
        self._by_topic: dict[str, Decoder | None] = {}
        # Native JSON topics whose messages may take the fast path (False: never, e.g. an unknown town).
        self._fast: dict[str, native.FastRoute | None] = {}
        self._backlog_ms = validator.backlog_ms
        self.validator = validator
        self.max_payload_bytes = max_payload_bytes
        self.devices = devices
        self._homes: Callable[[], Mapping[str, str]] | None = getattr(devices, "homes", None)
        self._not_sensor_ids = frozenset(validator.towns) | RESERVED_IDS
        self._on_sensor = on_sensor
        self._seen: set[tuple[str, str]] = set()

    def decoder_for(self, topic: str) -> Decoder | None:
        try:
            return self._by_topic[topic]
        except KeyError:
            if any(topic_matches_sub(f, topic) for f in self._ignore):
                found = _IGNORE
            else:
                found = next((d for f, d in self._subs if topic_matches_sub(f, topic)), None)
            if len(self._by_topic) < 100_000:  # one entry per sensor topic; bounded all the same
                self._by_topic[topic] = found
            return found

    def _fast_route(self, topic: str) -> native.FastRoute | None:
        route = None
        if self.decoder_for(topic) is native.decode:
            try:
                town, sensor = native.topic_town_sensor(Context(topic, 0))
            except DecodeError:
                town = sensor = ""
            if town in self.validator.towns:
                route = native.FastRoute(town, sensor, backlog_ms=self._backlog_ms,
                                         registrable=sensor not in self._not_sensor_ids
                                         and sensor.lower() not in RESERVED_IDS)
        if len(self._fast) < 100_000:
            self._fast[topic] = route
        return route

    def process(self, groups: Sequence[Received]) -> Processed:
        """Line protocol, dead letters and counts of a batch, in arrival order.

        Native JSON messages of the common shape take :class:`native.FastRoute` (no Reading object, no
        per-message context); every other message, and any native one the fast path declines, the general
        path (:meth:`_one`), which gives the same lines and a reason for every rejection."""
        out = Processed()
        # Which town each registered sensor belongs to, read once per batch (ensure() adds to it in place).
        homes = self._homes() if self._homes is not None else None
        fast = self._fast
        lines = out.lines
        append = lines.append
        loads = orjson.loads
        maxb = self.max_payload_bytes
        newest: dict[native.FastRoute, tuple[int, dict, int]] = {}  # the live feed's, per fast route
        fast_n = 0
        for g in groups:
            received_ms = g.received_ms
            for p in g.packets:
                topic = p.topic
                payload = p.payload
                route = fast.get(topic, False)
                if route is False:
                    route = self._fast_route(topic)
                if route is not None and len(payload) <= maxb:
                    try:
                        obj = loads(payload)
                    except orjson.JSONDecodeError:
                        obj = None
                    if type(obj) is dict and (done := route.line(obj, received_ms)) is not None:
                        home = homes.get(route.sensor) if homes is not None else route.town
                        if home == route.town or (home is None and route.registrable):
                            line, ms = done
                            append(line)
                            fast_n += 1
                            last = newest.get(route)
                            if last is None or ms >= last[0]:
                                newest[route] = (ms, obj, received_ms)
                            continue
                m = _Message(topic, payload, received_ms)
                try:
                    self._one(m, out, homes)
                except DecodeError as exc:
                    self._reject(out, m, exc)
        if fast_n:
            out.readings += fast_n
            self._fast_done(newest, out)
        return out

    def _fast_done(self, newest: dict[native.FastRoute, tuple[int, dict, int]], out: Processed) -> None:
        """What the general path does per reading, done once per sensor of the batch: the newest reading for
        the live feed, and registering sensors seen for the first time."""
        latest = out.latest
        for route, (ms, obj, received_ms) in newest.items():
            key = route.key
            r = latest.get(key)
            if r is None or ms >= r.ts_ms:
                latest[key] = native.record(obj, route.town, route.sensor, Context("", received_ms))
            if self._on_sensor is not None and key not in self._seen:
                self._seen.add(key)
                self._on_sensor(*key)

    def _one(self, m: _Message, out: Processed, homes: Mapping[str, str] | None) -> None:
        if len(m.payload) > self.max_payload_bytes:
            raise DecodeError(Reason.oversized, f"{len(m.payload)} bytes > {self.max_payload_bytes}")
        decoder = self.decoder_for(m.topic)
        if decoder is _IGNORE:
            out.ignored += 1
            return
        if decoder is None:
            raise DecodeError(Reason.bad_topic, f"no decoder subscribed for {m.topic[:200]}")
        decoded = decoder(m.payload, Context(m.topic, m.received_ms, self.devices))
        for exc in decoded.rejects:
            self._reject(out, m, exc)
        check = self.validator.check
        for r in decoded.readings:
            try:
                check(r, m.received_ms)
                if homes is not None:
                    home = homes.get(r.sensor)
                    if home is None:
                        if r.sensor in self._not_sensor_ids or r.sensor.lower() in RESERVED_IDS:
                            raise DecodeError(Reason.bad_topic, f"sensor id {r.sensor!r} is a town id or a reserved "
                                                                "word: it cannot be registered")
                    elif home != r.town:
                        raise DecodeError(Reason.town_mismatch, f"sensor {r.sensor!r} is registered in {home!r}, "
                                                                f"its reading came under {r.town!r}")
            except DecodeError as exc:
                self._reject(out, m, exc)
                continue
            out.lines.append(r.to_line())
            out.readings += 1
            key = (r.town, r.sensor)
            newest = out.latest.get(key)
            if newest is None or r.ts_ms >= newest.ts_ms:
                out.latest[key] = r
            if self._on_sensor is not None and (r.town, r.sensor) not in self._seen:
                self._seen.add((r.town, r.sensor))
                self._on_sensor(r.town, r.sensor)

    @staticmethod
    def _reject(out: Processed, m: _Message, exc: DecodeError) -> None:
        out.rejected[exc.reason] += 1
        out.dead.append(DeadLetter(m.topic, m.payload, str(exc.reason), exc.detail, m.received_ms))
