"""Broker limits: how many plaza connections one Mosquitto holds, and how many messages it moves.

Everything runs against a Mosquitto this benchmark starts on a free 127.0.0.1 port (the
config docs/deploying.md recommends: no persistence, ``max_packet_size 66560``, Mosquitto's
other defaults) and stops at the end. The clients are raw MQTT 3.1.1 sockets on one asyncio
loop in this process, so thousands cost little here; each speaks only what the measurement
needs (CONNECT, SUBSCRIBE, PUBLISH, PUBACK, DISCONNECT).

* **baseline** (same run, idle broker): one client connecting and subscribing at a time
  (``--baseline-connects``), and one QoS 1 message at a time from one client to another
  (``--pings``), as the plaza's round trip.
* **connections**, for each count C (``--counts``): C clients connect, each with a will
  (QoS 1, ~400 bytes, like a node's pre-signed ``lost``) and a QoS 1 subscription to
  ``hereabouts/v1/plaza/+``, at most ``--concurrency`` handshakes at a time. Reported: the
  wall time until all C hold their subscription, each client's handshake time (TCP connect
  to SUBACK), failures by kind, the broker's resident memory (``VmRSS`` in
  ``/proc/<pid>/status``) idle and with C clients, and its open file descriptors. Then, with
  all C connected: one publish reaching all C subscribers, and one client dropped without a
  DISCONNECT (its will reaching the C - 1 others). Clients leave with a DISCONNECT, so no
  other will fires.
* **throughput**, for QoS 0 and QoS 1 and each S (``--fan-outs``): S subscribers on
  ``hereabouts/v1/plaza/+``; one publisher sends ~400-byte messages (a signed event's size)
  to ``hereabouts/v1/plaza/howdy`` as fast as the broker takes them for ``--seconds``
  (QoS 1: at most ``--window`` unacknowledged). Reported: messages published per second,
  deliveries per second summed over the subscribers (from the first publish to the last
  delivery), deliveries lost (Mosquitto drops what overflows a client's queue,
  ``max_queued_messages`` = 1000 by default), and the CPU share of the broker and of this
  process while it ran: a broker near 100 % is the limit; otherwise the client was.

The soft ``RLIMIT_NOFILE`` is raised to the hard limit before the broker starts (the broker
inherits it); counts that need more descriptors than that are refused up front.

Run: ``.venv/bin/python bench/broker_limits.py [--counts 1000,5000] [--fan-outs 1,10,100]
[--seconds 3] [--json]``. Progress goes to stderr, figures to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import liveness_support
from hereabouts.transports.mqtt import BROKER_MAX_PACKET_BYTES
from hereabouts.transports.topics import PLAZA_ALL, plaza_topic
from liveness_support import percentile

PAYLOAD_BYTES = 400
"""Message size: a signed plaza event (hey_there, howdy) is 350-450 bytes on the wire."""

KEEPALIVE_S = 300
"""Keepalive the held clients declare: long enough that idle clients need no PINGREQ while
measured (nodes use 10 s and ping; a ping every 10 s per node is not what limits a broker)."""

HANDSHAKE_TIMEOUT_S = 30.0
"""Longest a client may take from TCP connect to SUBACK before it counts as failed."""

DRAIN_QUIET_S = 2.0
"""A throughput case ends when no delivery arrived for this long (or all arrived)."""

FAN_OUT_TIMEOUT_S = 30.0
"""Longest wait for one message to reach every held client."""

FD_MARGIN = 200
"""Descriptors kept aside (listeners, logs, the interpreter) when checking a count fits."""

STOP_WAIT_S = 10.0


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- MQTT 3.1.1 packets ------------------------------------------------------------------


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _text(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(raw)) + raw


def connect_packet(client_id: str, will: tuple[str, bytes] | None) -> bytes:
    flags = 0x02  # clean session, as nodes connect
    payload = _text(client_id)
    if will is not None:
        flags |= 0x04 | (1 << 3)  # will, QoS 1
        payload += _text(will[0]) + _text(will[1])
    body = _text("MQTT") + bytes([4, flags]) + struct.pack("!H", KEEPALIVE_S) + payload
    return b"\x10" + _length(len(body)) + body


def subscribe_packet(topic_filter: str, qos: int, packet_id: int = 1) -> bytes:
    body = struct.pack("!H", packet_id) + _text(topic_filter) + bytes([qos])
    return b"\x82" + _length(len(body)) + body


def publish_parts(topic: str, payload: bytes, qos: int) -> tuple[bytes, bytes]:
    """The bytes before and after the packet id (QoS 1) of a PUBLISH; QoS 0 has no id, so
    ``head + tail`` is the whole packet."""
    size = 2 + len(topic.encode()) + (2 if qos else 0) + len(payload)
    head = bytes([0x30 | (qos << 1)]) + _length(size) + _text(topic)
    return head, payload


DISCONNECT = b"\xe0\x00"


class RawClient(asyncio.Protocol):
    """One MQTT 3.1.1 client: connects (with an optional will), optionally subscribes, counts
    the PUBLISH packets it receives (acknowledging QoS 1 ones), and can publish.

    ``ready`` resolves at SUBACK (or CONNACK when it subscribes to nothing) and fails on a
    refusal or a lost connection."""

    def __init__(
        self,
        client_id: str,
        *,
        will: tuple[str, bytes] | None = None,
        subscribe: str | None = None,
        sub_qos: int = 1,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.client_id = client_id
        self.will = will
        self.subscribe = subscribe
        self.sub_qos = sub_qos
        self.ready: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.received = 0
        self.last_at = 0.0
        self.inflight = 0  # our QoS 1 publishes not yet acknowledged
        self.acked = 0
        self._window_free = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(connect_packet(self.client_id, self.will))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"connection lost: {exc or 'closed'}"))
        if not self.closed.done():
            self.closed.set_result(None)
        self._writable.set()
        self._window_free.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        view = memoryview(buf)
        pos, end = 0, len(buf)
        acks: list[bytes] = []
        published = 0
        try:
            while end - pos >= 2:
                kind = view[pos]
                length, shift, at, complete = 0, 0, pos + 1, False
                while at < end and at - pos <= 4:  # remaining length: 1-4 bytes
                    byte = view[at]
                    at += 1
                    length |= (byte & 0x7F) << shift
                    if not byte & 0x80:
                        complete = True
                        break
                    shift += 7
                if not complete or end - at < length:
                    break  # the rest of this packet has not arrived yet
                if kind & 0xF0 == 0x30:
                    published += 1
                    if kind & 0x06:  # QoS 1: acknowledge its packet id
                        id_at = at + 2 + ((view[at] << 8) | view[at + 1])
                        acks.append(b"\x40\x02" + bytes(view[id_at : id_at + 2]))
                elif kind == 0x40:  # PUBACK for one of ours
                    self.inflight -= 1
                    self.acked += 1
                    self._window_free.set()
                elif kind == 0x20:  # CONNACK
                    self._connack(view[at + 1])
                elif kind == 0x90:  # SUBACK
                    if view[at + 2] == 0x80:
                        self._fail("SUBACK refused (0x80)")
                    else:
                        self._ready()
                pos = at + length
        finally:
            view.release()
        del buf[:pos]
        if published:
            self.received += published
            self.last_at = time.monotonic()
        if acks and self.transport is not None:
            self.transport.write(b"".join(acks))

    def _connack(self, code: int) -> None:
        if code != 0:
            self._fail(f"CONNACK refused, code {code}")
        elif self.subscribe is None:
            self._ready()
        else:
            assert self.transport is not None
            self.transport.write(subscribe_packet(self.subscribe, self.sub_qos))

    def _ready(self) -> None:
        if not self.ready.done():
            self.ready.set_result(None)

    def _fail(self, why: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))
        if self.transport is not None:
            self.transport.close()

    # ours

    async def writable(self) -> None:
        """Wait while the socket's send buffer is full (the broker reads slower than we write)."""
        if not self._writable.is_set():
            await self._writable.wait()

    async def window(self, limit: int) -> None:
        """Wait until fewer than ``limit`` of our QoS 1 publishes are unacknowledged."""
        while self.inflight >= limit and not self.closed.done():
            self._window_free.clear()
            await self._window_free.wait()

    def leave(self) -> None:
        """DISCONNECT, then close: the broker discards the will."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(DISCONNECT)
            self.transport.close()

    def drop(self) -> None:
        """Close without DISCONNECT, as a crashed node: the broker publishes the will."""
        if self.transport is not None:
            self.transport.abort()


async def open_client(port: int, client: RawClient, timeout_s: float = HANDSHAKE_TIMEOUT_S) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(loop.create_connection(lambda: client, "127.0.0.1", port), timeout_s)
    try:
        await asyncio.wait_for(asyncio.shield(client.ready), timeout_s)
    except BaseException:
        client.drop()
        raise


async def close_all(clients: list[RawClient]) -> None:
    for client in clients:
        client.leave()
    for client in clients:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(client.closed), STOP_WAIT_S)


# --- the broker -------------------------------------------------------------------------


class Mosquitto(liveness_support.Mosquitto):
    """``mosquitto -c`` on a free loopback port, configured as docs/deploying.md says, with
    what this benchmark reads of it."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, extra_conf=f"max_packet_size {BROKER_MAX_PACKET_BYTES}\n")

    def version(self) -> str:
        done = subprocess.run([self.binary, "-h"], capture_output=True, text=True, check=False)
        first = (done.stdout or done.stderr).splitlines()[:1]
        return first[0].strip() if first else "mosquitto"

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- measurements -----------------------------------------------------------------------


@dataclasses.dataclass
class Baseline:
    connect_s: list[float] = dataclasses.field(default_factory=list)
    round_trip_s: list[float] = dataclasses.field(default_factory=list)
    idle_rss_kib: int = 0


@dataclasses.dataclass
class Held:
    count: int
    connected: int = 0
    failures: dict[str, int] = dataclasses.field(default_factory=dict)
    wall_s: float = 0.0
    handshake_s: list[float] = dataclasses.field(default_factory=list)
    rss_before_kib: int = 0
    rss_kib: int = 0
    broker_fds: int = 0
    fan_out_s: float | None = None
    will_s: float | None = None
    rss_after_kib: int = 0


@dataclasses.dataclass
class Flow:
    qos: int
    subscribers: int
    published: int = 0
    flood_s: float = 0.0
    delivered: int = 0
    delivery_s: float = 0.0
    broker_cpu: float = 0.0
    bench_cpu: float = 0.0
    peak_rss_kib: int = 0

    @property
    def expected(self) -> int:
        return self.published * self.subscribers

    @property
    def lost(self) -> int:
        return self.expected - self.delivered


def will_payload(n: int) -> bytes:
    return (f"lost {n:06d} ".encode() * 40)[:PAYLOAD_BYTES]


async def baseline(broker: Mosquitto, connects: int, pings: int) -> Baseline:
    figures = Baseline(idle_rss_kib=broker.rss_kib())
    topic = plaza_topic("lost")
    for n in range(connects):
        client = RawClient(f"base-{n}", will=(topic, will_payload(n)), subscribe=PLAZA_ALL)
        started = time.monotonic()
        await open_client(broker.port, client)
        figures.connect_s.append(time.monotonic() - started)
        await close_all([client])
    rx = RawClient("base-rx", subscribe=PLAZA_ALL)
    tx = RawClient("base-tx")
    await open_client(broker.port, rx)
    await open_client(broker.port, tx)
    head, body = publish_parts(plaza_topic("howdy"), will_payload(0), 1)
    try:
        for n in range(pings + 10):  # the first ten warm the path up
            before = rx.received
            started = time.monotonic()
            assert tx.transport is not None
            tx.transport.write(head + struct.pack("!H", n % 65535 + 1) + body)
            tx.inflight += 1
            while rx.received == before:
                await asyncio.sleep(0)
                if time.monotonic() - started > 10:
                    raise RuntimeError("baseline: a message did not arrive within 10 s")
            if n >= 10:
                figures.round_trip_s.append(rx.last_at - started)
    finally:
        await close_all([rx, tx])
    return figures


async def hold(broker: Mosquitto, count: int, concurrency: int) -> Held:
    figures = Held(count=count, rss_before_kib=broker.rss_kib())
    clients: list[RawClient] = []
    failures: Counter[str] = Counter()
    gate = asyncio.Semaphore(concurrency)
    topic = plaza_topic("lost")

    async def one(n: int) -> None:
        async with gate:
            client = RawClient(f"held-{count}-{n}", will=(topic, will_payload(n)),
                               subscribe=PLAZA_ALL)
            started = time.monotonic()
            try:
                await open_client(broker.port, client)
            except (OSError, ConnectionError, TimeoutError) as exc:
                failures[type(exc).__name__ + (f" {exc.errno}" if isinstance(exc, OSError)
                                               and exc.errno else "")] += 1
                return
            figures.handshake_s.append(time.monotonic() - started)
            clients.append(client)

    started = time.monotonic()
    await asyncio.gather(*(one(n) for n in range(count)))
    figures.wall_s = time.monotonic() - started
    figures.connected = len(clients)
    figures.failures = dict(failures)
    try:
        await asyncio.sleep(1.0)  # let the broker settle before reading its memory
        figures.rss_kib = broker.rss_kib()
        figures.broker_fds = broker.open_fds()
        if clients:
            figures.fan_out_s = await reach_all(broker, clients)
            victim = clients.pop()
            before = {id(c): c.received for c in clients}
            dropped_at = time.monotonic()
            victim.drop()
            if await wait_for_all(clients, before):
                figures.will_s = max(c.last_at for c in clients) - dropped_at
    finally:
        await close_all(clients)
    await asyncio.sleep(1.0)
    figures.rss_after_kib = broker.rss_kib()
    return figures


async def wait_for_all(clients: list[RawClient], before: dict[int, int]) -> bool:
    deadline = time.monotonic() + FAN_OUT_TIMEOUT_S
    while any(c.received == before[id(c)] for c in clients):
        if time.monotonic() > deadline:
            log(f"  ! not every client got the message within {FAN_OUT_TIMEOUT_S:.0f} s")
            return False
        await asyncio.sleep(0.005)
    return True


async def reach_all(broker: Mosquitto, clients: list[RawClient]) -> float | None:
    """Seconds from one QoS 1 publish until every client in ``clients`` has it."""
    publisher = RawClient("held-publisher")
    await open_client(broker.port, publisher)
    try:
        before = {id(c): c.received for c in clients}
        head, body = publish_parts(plaza_topic("howdy"), will_payload(0), 1)
        assert publisher.transport is not None
        started = time.monotonic()
        publisher.transport.write(head + b"\x00\x01" + body)
        if not await wait_for_all(clients, before):
            return None
        return max(c.last_at for c in clients) - started
    finally:
        await close_all([publisher])


async def flow(broker: Mosquitto, qos: int, subscribers: int, seconds: float,
               window: int) -> Flow:
    figures = Flow(qos=qos, subscribers=subscribers)
    subs = [RawClient(f"sub-{qos}-{subscribers}-{n}", subscribe=PLAZA_ALL, sub_qos=qos)
            for n in range(subscribers)]
    publisher = RawClient(f"pub-{qos}-{subscribers}")
    opened: list[RawClient] = []
    try:
        for client in [*subs, publisher]:
            await open_client(broker.port, client)
            opened.append(client)
        head, body = publish_parts(plaza_topic("howdy"), will_payload(1), qos)
        whole = head + body
        assert publisher.transport is not None
        write = publisher.transport.write
        broker_cpu0, bench_cpu0 = broker.cpu_s(), time.process_time()
        started = time.monotonic()
        stop_at = started + seconds
        packet_id = 0
        sent = 0
        while time.monotonic() < stop_at and not publisher.closed.done():
            for _ in range(64):
                if qos:
                    if publisher.inflight >= window:
                        await publisher.window(window)
                    packet_id = packet_id % 65535 + 1
                    write(head + struct.pack("!H", packet_id) + body)
                    publisher.inflight += 1
                else:
                    write(whole)
                sent += 1
            await publisher.writable()
            await asyncio.sleep(0)
        figures.flood_s = time.monotonic() - started
        figures.published = sent
        # Drain: until every delivery arrived, or none arrived for DRAIN_QUIET_S.
        last_total, quiet_since = -1, time.monotonic()
        while True:
            total = sum(s.received for s in subs)
            now = time.monotonic()
            if total >= sent * subscribers:
                break
            if total != last_total:
                last_total, quiet_since = total, now
            elif now - quiet_since > DRAIN_QUIET_S:
                break
            figures.peak_rss_kib = max(figures.peak_rss_kib, broker.rss_kib())
            await asyncio.sleep(0.05)
        figures.delivered = sum(s.received for s in subs)
        last = max((s.last_at for s in subs), default=started)
        figures.delivery_s = max(last - started, 1e-9)
        figures.broker_cpu = (broker.cpu_s() - broker_cpu0) / figures.delivery_s
        figures.bench_cpu = (time.process_time() - bench_cpu0) / figures.delivery_s
        figures.peak_rss_kib = max(figures.peak_rss_kib, broker.rss_kib())
    finally:
        await close_all(opened)
    return figures


# --- the run and its report -------------------------------------------------------------


@dataclasses.dataclass
class Run:
    broker: str = ""
    fd_limit: int = 0
    baseline: Baseline = dataclasses.field(default_factory=Baseline)
    held: list[Held] = dataclasses.field(default_factory=list)
    flows: list[Flow] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    load: list[float] = dataclasses.field(default_factory=list)  # 1-min load, start and end


async def run_all(args: argparse.Namespace, run: Run) -> None:
    with tempfile.TemporaryDirectory(prefix="broker-limits-") as tmp:
        run.load.append(os.getloadavg()[0])
        broker = Mosquitto(Path(tmp))
        try:
            await broker.wait_listening()
            run.broker = broker.version()
            log(f"{run.broker} on 127.0.0.1:{broker.port} (pid {broker.pid}); "
                f"RLIMIT_NOFILE {run.fd_limit}")
            log("baseline: one client at a time")
            run.baseline = await baseline(broker, args.baseline_connects, args.pings)
            for count in args.counts:
                if count + FD_MARGIN > run.fd_limit:
                    run.skipped.append(f"{count} connections: RLIMIT_NOFILE is {run.fd_limit}")
                    log(f"  skipping {count} connections (RLIMIT_NOFILE {run.fd_limit})")
                    continue
                log(f"connections: {count}")
                held = await hold(broker, count, args.concurrency)
                run.held.append(held)
                log(f"  {held.connected}/{count} connected in {held.wall_s:.1f} s")
            for qos in (0, 1):
                for fan_out in args.fan_outs:
                    log(f"throughput: QoS {qos}, {fan_out} subscriber(s), {args.seconds:g} s")
                    figures = await flow(broker, qos, fan_out, args.seconds, args.window)
                    run.flows.append(figures)
                    log(f"  {figures.delivered / figures.delivery_s:,.0f} deliveries/s")
        finally:
            broker.stop()
            run.load.append(os.getloadavg()[0])


def summary(run: Run) -> dict[str, object]:
    base = run.baseline
    return {
        "broker": run.broker,
        "fd_limit": run.fd_limit,
        "payload_bytes": PAYLOAD_BYTES,
        "cpus": os.cpu_count(),
        "load_1min": run.load,
        "baseline": {
            "idle_rss_kib": base.idle_rss_kib,
            "connect_ms_p50": percentile(base.connect_s, 50) * 1000,
            "connect_ms_p95": percentile(base.connect_s, 95) * 1000,
            "round_trip_ms_p50": percentile(base.round_trip_s, 50) * 1000,
            "round_trip_ms_p95": percentile(base.round_trip_s, 95) * 1000,
        },
        "connections": [
            {
                "count": h.count,
                "connected": h.connected,
                "failures": h.failures,
                "wall_s": h.wall_s,
                "handshake_ms_p50": percentile(h.handshake_s, 50) * 1000,
                "handshake_ms_p95": percentile(h.handshake_s, 95) * 1000,
                "handshake_ms_max": max(h.handshake_s, default=float("nan")) * 1000,
                "rss_before_kib": h.rss_before_kib,
                "rss_kib": h.rss_kib,
                "rss_after_kib": h.rss_after_kib,
                # Against the idle broker: Mosquitto keeps the memory of clients gone
                # (rss_after_kib), so the previous count's level is no baseline.
                "kib_per_connection": (h.rss_kib - base.idle_rss_kib) / max(h.connected, 1),
                "broker_fds": h.broker_fds,
                "fan_out_ms": None if h.fan_out_s is None else h.fan_out_s * 1000,
                "will_ms": None if h.will_s is None else h.will_s * 1000,
            }
            for h in run.held
        ],
        "throughput": [
            {
                "qos": f.qos,
                "subscribers": f.subscribers,
                "published": f.published,
                "published_per_s": f.published / f.flood_s if f.flood_s else 0.0,
                "delivered": f.delivered,
                "expected": f.expected,
                "lost": f.lost,
                "deliveries_per_s": f.delivered / f.delivery_s,
                "broker_cpu": f.broker_cpu,
                "bench_cpu": f.bench_cpu,
                "peak_rss_kib": f.peak_rss_kib,
            }
            for f in run.flows
        ],
        "skipped": run.skipped,
    }


def report(data: dict[str, object]) -> None:
    base = data["baseline"]
    assert isinstance(base, dict)
    load = data["load_1min"]
    assert isinstance(load, list)
    print(f"\n{data['broker']}, payload {PAYLOAD_BYTES} bytes, RLIMIT_NOFILE {data['fd_limit']}, "
          f"{data['cpus']} CPUs, 1-min load " + " → ".join(f"{x:.2f}" for x in load))
    print(f"baseline (idle broker, one client at a time): connect+subscribe p50 "
          f"{base['connect_ms_p50']:.2f} ms, p95 {base['connect_ms_p95']:.2f} ms; "
          f"QoS 1 round trip p50 {base['round_trip_ms_p50']:.3f} ms, "
          f"p95 {base['round_trip_ms_p95']:.3f} ms; "
          f"broker RSS {base['idle_rss_kib'] / 1024:.1f} MiB")
    rows = data["connections"]
    assert isinstance(rows, list)
    if rows:
        print(f"\n{'connections':>11} {'held':>6} {'wall':>7} {'handshake p50/p95/max (ms)':>28} "
              f"{'broker RSS':>11} {'KiB/conn':>9} {'fds':>6} {'1 msg to all':>13} "
              f"{'will to all':>12}")
        for h in rows:
            fan = "-" if h["fan_out_ms"] is None else f"{h['fan_out_ms']:.0f} ms"
            will = "-" if h["will_ms"] is None else f"{h['will_ms']:.0f} ms"
            shakes = (f"{h['handshake_ms_p50']:.1f} / {h['handshake_ms_p95']:.1f} / "
                      f"{h['handshake_ms_max']:.0f}")
            print(f"{h['count']:>11} {h['connected']:>6} {h['wall_s']:>6.1f}s {shakes:>28} "
                  f"{h['rss_kib'] / 1024:>7.1f} MiB {h['kib_per_connection']:>9.1f} "
                  f"{h['broker_fds']:>6} {fan:>13} {will:>12}")
            if h["failures"]:
                print(f"{'':>11} failures: {h['failures']}")
    flows = data["throughput"]
    assert isinstance(flows, list)
    if flows:
        print(f"\n{'QoS':>3} {'subs':>5} {'published/s':>12} {'deliveries/s':>13} "
              f"{'lost':>9} {'broker CPU':>11} {'bench CPU':>10} {'peak RSS':>10}")
        for f in flows:
            lost = f"{f['lost'] / f['expected']:.1%}" if f["expected"] else "-"
            print(f"{f['qos']:>3} {f['subscribers']:>5} {f['published_per_s']:>12,.0f} "
                  f"{f['deliveries_per_s']:>13,.0f} {lost:>9} {f['broker_cpu']:>10.0%} "
                  f"{f['bench_cpu']:>10.0%} {f['peak_rss_kib'] / 1024:>6.1f} MiB")
    for note in data["skipped"] or []:  # type: ignore[attr-defined]
        print(f"skipped: {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="1000,5000",
                        help="concurrent connections to hold, comma-separated (1000,5000)")
    parser.add_argument("--concurrency", type=int, default=100,
                        help="handshakes in flight at once while connecting (100)")
    parser.add_argument("--fan-outs", default="1,10,100",
                        help="subscribers per throughput case, comma-separated (1,10,100)")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="publishing time per throughput case (3)")
    parser.add_argument("--window", type=int, default=100,
                        help="QoS 1 publishes in flight, unacknowledged (100)")
    parser.add_argument("--baseline-connects", type=int, default=50,
                        help="one-at-a-time connects in the baseline (50)")
    parser.add_argument("--pings", type=int, default=200, help="baseline round trips (200)")
    parser.add_argument("--timeout", type=float, default=600.0, help="whole run, seconds (600)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    args.counts = [int(c) for c in args.counts.split(",") if c]
    args.fan_outs = [int(s) for s in args.fan_outs.split(",") if s]
    if min([*args.counts, *args.fan_outs], default=1) < 1:
        parser.error("counts and fan-outs must be at least 1")

    run = Run(fd_limit=raise_fd_limit())
    started = time.monotonic()
    try:
        asyncio.run(asyncio.wait_for(run_all(args, run), args.timeout))
    except TimeoutError:
        log(f"timed out after {args.timeout:.0f} s; the figures below are partial")
    log(f"done in {time.monotonic() - started:.0f} s")
    data = summary(run)
    if args.json:
        print(json.dumps(data))
    else:
        report(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
