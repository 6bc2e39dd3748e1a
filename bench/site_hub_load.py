"""The load process of ``bench/site_hub.py``: many browsers' widgets, one lean process.

It opens WebSocket connections to a hub (or to the baseline sink) on 127.0.0.1 and does
per frame what a widget does: a fresh ``site_heartbeat`` body (fields in ``JSON.stringify``
order, compact), an Ed25519 signature over ``SIGNING_TAG ‖ body``, the body spliced into
the envelope as text. Each handshake carries the ``Origin`` of the benchmark's site, as a
browser's does, and each ``watch`` names its rooms with their keys. Keys are fresh per room
per epoch, and heartbeats follow the widget's schedule: every interval; after each epoch
boundary the first one at a random instant of the rotation spread, the second at a random
instant of the interval after it (a fresh phase). Like a browser, it offers
permessage-deflate; the hub decides.

Layout of the load: each connection watches ``k`` rooms and holds one participant (DID) in
each. Connections come in blocks of ``room_size``; the connections of one block watch the
same ``k`` rooms, so every room has ``room_size`` visitors and as many watchers.

Kept lean, because it shares two cores with the hub and the broker: the WebSocket client
is the ``websockets`` library's sans-I/O protocol on a bare asyncio ``Protocol`` (no task
per connection), one scheduler task sends every heartbeat off a heap, signing calls
libsodium's binding directly, and keys for the next epoch are made ahead of its boundary.
Frames from the hub are only tallied, except on the two probe connections.

The probe measures count latency: a prober connection joins a room of its own (first
heartbeat of a fresh DID) and later leaves it (signed ``site_leave``); a separate watcher
connection of that room notes when a ``counts`` frame shows the change. Both ends are in
this process, so one ``time.monotonic()`` clock times them.

Driven by ``bench/site_hub.py``: one JSON command per line on stdin, one JSON reply per line
on stdout (``connect``, ``start``, ``stats``, ``probe_start``, ``probe_take``, ``flood``,
``quit``); diagnostics on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import heapq
import json
import os
import random
import sys
import time
from collections import Counter, deque
from typing import Any
from urllib.parse import urlsplit

import msgspec
import nacl.bindings
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.typing import Origin
from websockets.uri import parse_uri

from hereabouts.core.rotation import HeartbeatPlan
from hereabouts.identity import did_from_public_key
from hereabouts.sites import room_key
from hereabouts.wire import SIGNING_TAG

ORIGIN = "https://bench.hereabouts.example"
"""The site every connection belongs to (its handshake's ``Origin``)."""
PROBE_TIMEOUT_S = 10.0
"""Longest wait for the watcher to see a probe's change; a miss is recorded at this value."""
PROBE_GAP_S = 0.25
"""Pause after each probe change is seen (or missed), before the next one."""
CONNECT_CONCURRENCY = 64
"""WebSocket handshakes in flight at once while connecting."""
KEYS_AHEAD_S = 90.0
"""Start making the next epoch's keys this long before its boundary."""
YIELD_EVERY = 64
"""Frames sent between yields to the event loop, so received frames (the probe's) are read
promptly even while the scheduler is behind."""
FLOOD_BUFFER_BYTES = 65_536
"""In flood mode, a connection whose unsent bytes exceed this is skipped for a round."""

_decode = msgspec.json.decode


def log(text: str) -> None:
    print(f"load: {text}", file=sys.stderr, flush=True)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Key:
    """An ephemeral Ed25519 key of one participant for one epoch."""

    __slots__ = ("did", "epoch", "secret")

    def __init__(self, epoch: int) -> None:
        public, self.secret = nacl.bindings.crypto_sign_seed_keypair(os.urandom(32))
        self.did = did_from_public_key(public).encode()
        self.epoch = epoch


def sealed_frame(kind: bytes, key: Key, room: bytes, epoch: int, at_ms: int) -> bytes:
    """An ``event`` frame as the widget builds it (see ``tests/sites/test_hub.py``)."""
    body = b'{"kind":"%s","did":"%s","room_key":"%s","epoch":%d,"at_ms":%d}' % (
        kind,
        key.did,
        room,
        epoch,
        at_ms,
    )
    signature = nacl.bindings.crypto_sign(SIGNING_TAG + body, key.secret)[:64]
    return b'{"type":"event","sealed":{"body":%s,"signer":"%s","sig":"%s"}}' % (
        body,
        key.did,
        base64.b64encode(signature),
    )


class Connection(asyncio.Protocol):
    """One browser's WebSocket: the sans-I/O client on a plain asyncio transport."""

    def __init__(self, load: Load, url: str, *, rooms: list[bytes]) -> None:
        self.load = load
        # Offered as browsers offer it; the hub may decline.
        self.ws = ClientProtocol(
            parse_uri(url), origin=Origin(ORIGIN), extensions=[ClientPerMessageDeflateFactory()]
        )
        self.rooms = rooms
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.counts: dict[str, int | None] = {}
        self.changed = asyncio.Event()
        self.watching = False  # True for the probe's watcher: parse every counts frame
        self.open = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.ws.send_request(self.ws.connect())
        self.flush()

    def data_received(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT:
                    self.frame(bytes(event.data))
            elif isinstance(event, Response):
                if self.ws.handshake_exc is not None:
                    self.settle(f"handshake: {self.ws.handshake_exc}")
                else:
                    self.open = True
                    self.load.compressed = bool(self.ws.extensions)
                    names = self.load.room_names
                    self.send(
                        b'{"type":"watch","rooms":[%s]}'
                        % b",".join(
                            b'{"name":"%s","key":"%s"}' % (names[room], room) for room in self.rooms
                        )
                    )
        self.flush()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self.flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.open:
            self.load.closed[str(self.ws.close_code)] += 1
        self.open = False
        self.settle(f"closed ({self.ws.close_code})")

    # frames
    def frame(self, data: bytes) -> None:
        load = self.load
        if data.startswith(b'{"type":"counts"'):
            load.count_frames += 1
            if not self.ready.done():
                self.settle("")
            if self.watching:
                rooms = _decode(data)["rooms"]
                self.counts.update({key: value["count"] for key, value in rooms.items()})
                self.changed.set()
        elif data.startswith(b'{"type":"error"'):
            reason = str(_decode(data)["reason"])
            load.errors[reason] += 1
            if not self.ready.done():
                self.settle(reason)
        elif data.startswith(b'{"type":"hello"'):
            load.hello = data

    def settle(self, outcome: str) -> None:
        if not self.ready.done():
            self.ready.set_result(outcome)

    def send(self, frame: bytes) -> None:
        if self.open:
            self.ws.send_text(frame)
            self.flush()

    def flush(self) -> None:
        if self.transport is None:
            return
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)
            elif self.transport.can_write_eof():
                self.transport.write_eof()

    def buffered(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class Participant:
    """One DID in one room on one connection, with its next heartbeat's due time."""

    __slots__ = ("connection", "key", "room")

    def __init__(self, connection: Connection, room: bytes) -> None:
        self.connection = connection
        self.room = room
        self.key: Key | None = None


class Load:
    """Every connection, the heartbeat scheduler, the key pool and the probe."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.url: str = args.url
        parts = urlsplit(self.url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.interval_ms: int = args.interval_ms
        self.duration_ms: int = args.duration_ms
        self.spread_ms: int = args.spread_ms
        self.sources: list[str] = args.sources.split(",")
        self.opened = 0  # connections opened so far (which source is next)
        self.connections: list[Connection] = []
        self.participants: list[Participant] = []
        self.scheduled = 0  # participants[:scheduled] have heartbeats on the heap
        self.heap: list[tuple[int, int]] = []  # (due ms, participant index)
        self.wakeup = asyncio.Event()
        self.keys: deque[Key] = deque()
        self.sent = Counter[str]()
        self.errors = Counter[str]()
        self.closed = Counter[str]()
        self.count_frames = 0
        self.lags_ms: list[int] = []
        self.per_second = Counter[int]()  # heartbeats sent, by Unix second
        self.first_beats = 0  # participants that have sent their first heartbeat
        self.hello = b""
        self.compressed = False  # permessage-deflate negotiated
        self.probe_samples: list[tuple[str, float, float | None]] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.rng = random.Random()
        self.plan = HeartbeatPlan(
            interval_ms=self.interval_ms,
            duration_ms=self.duration_ms,
            spread_ms=self.spread_ms,
            uniform=self.rng,
        )
        self._rooms: dict[int, bytes] = {}
        self.room_names: dict[bytes, bytes] = {}  # room key -> room name

    # --- rooms and connections ----------------------------------------------------------

    def room(self, index: int) -> bytes:
        key = self._rooms.get(index)
        if key is None:
            name = f"room-{index}"
            key = self._rooms[index] = room_key(ORIGIN, name).encode()
            self.room_names[key] = name.encode()
        return key

    async def open_connection(self, rooms: list[bytes]) -> tuple[Connection, str]:
        loop = asyncio.get_running_loop()
        connection = Connection(self, self.url, rooms=rooms)
        source = self.sources[self.opened % len(self.sources)]
        self.opened += 1
        try:
            await loop.create_connection(
                lambda: connection, self.host, self.port, local_addr=(source, 0)
            )
            outcome = await asyncio.wait_for(asyncio.shield(connection.ready), 60.0)
        except (OSError, TimeoutError) as exc:
            connection.close()
            return connection, f"connect: {type(exc).__name__}"
        return connection, outcome

    async def connect(
        self, participants: int, per_connection: int, room_size: int
    ) -> dict[str, Any]:
        """Open connections until ``participants`` (rounded up to whole connections)."""
        wanted = -(-participants // per_connection)
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        failures = Counter[str]()

        async def one(number: int) -> Connection | None:
            block = number // room_size
            rooms = [self.room(block * per_connection + j) for j in range(per_connection)]
            async with gate:
                connection, outcome = await self.open_connection(rooms)
            if outcome:
                failures[outcome] += 1
                connection.close()
                return None
            return connection

        started = time.monotonic()
        opened = await asyncio.gather(*(one(n) for n in range(len(self.connections), wanted)))
        for connection in opened:
            if connection is not None:
                self.connections.append(connection)
                self.participants += [Participant(connection, room) for room in connection.rooms]
        return {
            "connections": len(self.connections),
            "participants": len(self.participants),
            "failures": dict(failures),
            "seconds": time.monotonic() - started,
        }

    # --- heartbeats -------------------------------------------------------------------------

    def start(self) -> dict[str, Any]:
        """Schedule the first heartbeat of every new participant, spread over one interval
        (visitors arriving over ten seconds, not all in one millisecond)."""
        now = now_ms()
        for index in range(self.scheduled, len(self.participants)):
            heapq.heappush(self.heap, (now + self.rng.randrange(self.interval_ms), index))
        added = len(self.participants) - self.scheduled
        self.scheduled = len(self.participants)
        self.wakeup.set()
        return {"scheduled": self.scheduled, "added": added}

    def fresh_key(self, epoch: int) -> Key:
        while self.keys:
            key = self.keys.popleft()
            if key.epoch == epoch:
                return key
        return Key(epoch)

    def beat(self, participant: Participant, at: int) -> None:
        epoch = at // self.duration_ms
        key = participant.key
        if key is None:
            self.first_beats += 1
        if key is None or key.epoch != epoch:
            key = participant.key = self.fresh_key(epoch)
        participant.connection.send(
            sealed_frame(b"site_heartbeat", key, participant.room, epoch, at)
        )
        self.sent["heartbeat"] += 1
        self.per_second[at // 1000] += 1

    def next_due(self, sent_at: int) -> int:
        """The widget's rule, the shipped one (``core/rotation.py``, which ``widget.js``
        follows draw for draw)."""
        return self.plan.next_after(sent_at)

    async def scheduler(self) -> None:
        heap, participants = self.heap, self.participants
        while True:
            now = now_ms()
            sent = 0
            while heap and heap[0][0] <= now:
                due, index = heapq.heappop(heap)
                self.lags_ms.append(now - due)
                self.beat(participants[index], now)
                heapq.heappush(heap, (self.next_due(now), index))
                sent += 1
                if sent % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                    now = now_ms()
            self.wakeup.clear()
            delay = (heap[0][0] - now_ms()) / 1000 if heap else 1.0
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), min(delay, 1.0))
            else:
                await asyncio.sleep(0)

    async def key_maker(self) -> None:
        """Before each boundary, make the next epoch's keys in small batches."""
        while True:
            now = now_ms()
            next_epoch = now // self.duration_ms + 1
            until_boundary_s = (next_epoch * self.duration_ms - now) / 1000
            if until_boundary_s > KEYS_AHEAD_S:
                await asyncio.sleep(min(until_boundary_s - KEYS_AHEAD_S, 5.0))
                continue
            ready = sum(1 for key in self.keys if key.epoch == next_epoch)
            if ready >= len(self.participants):
                await asyncio.sleep(1.0)
                continue
            for _ in range(min(256, len(self.participants) - ready)):
                self.keys.append(Key(next_epoch))
            await asyncio.sleep(0.01)

    # --- flood (baseline) -------------------------------------------------------------------

    async def keys_now(self) -> dict[str, Any]:
        """Give every participant its key for this epoch now, outside any timed window."""
        epoch = now_ms() // self.duration_ms
        for number, participant in enumerate(self.participants):
            if participant.key is None or participant.key.epoch != epoch:
                participant.key = self.fresh_key(epoch)
                self.first_beats += 1
            if number % 1024 == 0:
                await asyncio.sleep(0)
        return {"keys": len(self.participants)}

    async def flood(self, seconds: float) -> dict[str, Any]:
        """Send heartbeats as fast as this process can, round robin over participants,
        skipping connections with a backlog: the most the generator and stack carry."""
        deadline = time.monotonic() + seconds
        sent = 0
        while time.monotonic() < deadline:
            for participant in self.participants:
                if participant.connection.buffered() > FLOOD_BUFFER_BYTES:
                    continue
                self.beat(participant, now_ms())
                sent += 1
                if sent % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                    if time.monotonic() >= deadline:
                        break
        return {"sent": sent}

    # --- probe ------------------------------------------------------------------------------

    async def probe_start(self) -> dict[str, Any]:
        room = room_key(ORIGIN, "probe").encode()
        self.room_names[room] = b"probe"
        watcher, outcome = await self.open_connection([room])
        prober, outcome2 = await self.open_connection([room])
        if outcome or outcome2:
            return {"error": outcome or outcome2}
        watcher.watching = True
        self.tasks.append(asyncio.create_task(self.probe(prober, watcher, room), name="probe"))
        return {"ok": True}

    async def probe(self, prober: Connection, watcher: Connection, room: bytes) -> None:
        key_name = room.decode()

        async def seen(count: int, kind: str, sent_at: float, wall: float) -> None:
            deadline = sent_at + PROBE_TIMEOUT_S
            while watcher.counts.get(key_name) != count:
                watcher.changed.clear()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.probe_samples.append((kind, wall, None))
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(watcher.changed.wait(), remaining)
            self.probe_samples.append((kind, wall, time.monotonic() - sent_at))

        while prober.open and watcher.open:
            at = now_ms()
            epoch = at // self.duration_ms
            key = Key(epoch)
            sent_at = time.monotonic()
            prober.send(sealed_frame(b"site_heartbeat", key, room, epoch, at))
            await seen(1, "join", sent_at, at / 1000)
            await asyncio.sleep(PROBE_GAP_S)
            at = now_ms()
            sent_at = time.monotonic()
            prober.send(sealed_frame(b"site_leave", key, room, key.epoch, at))
            await seen(0, "leave", sent_at, at / 1000)
            await asyncio.sleep(PROBE_GAP_S)

    def probe_take(self) -> dict[str, Any]:
        samples, self.probe_samples = self.probe_samples, []
        return {"samples": samples}

    # --- reporting ----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        lags, self.lags_ms = self.lags_ms, []
        lags.sort()
        this_second = now_ms() // 1000
        per_second, self.per_second = self.per_second, Counter()
        self.per_second[this_second] = per_second.pop(this_second, 0)
        times = os.times()
        return {
            "monotonic": time.monotonic(),
            "sent": dict(self.sent),
            "first_beats": self.first_beats,
            "errors": dict(self.errors),
            "closed": dict(self.closed),
            "count_frames": self.count_frames,
            "open": sum(1 for c in self.connections if c.open),
            "cpu_s": times.user + times.system,
            "lag_ms": {
                "n": len(lags),
                "p50": lags[len(lags) // 2] if lags else None,
                "p95": lags[int(len(lags) * 0.95)] if lags else None,
                "max": lags[-1] if lags else None,
            },
            "backlog_bytes": sum(c.buffered() for c in self.connections),
            "peak_per_s": max(per_second.values(), default=0),
            "compressed": self.compressed,
        }

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for connection in self.connections:
            connection.close()


async def serve(args: argparse.Namespace) -> None:
    load = Load(args)
    load.tasks += [
        asyncio.create_task(load.scheduler(), name="scheduler"),
        asyncio.create_task(load.key_maker(), name="key-maker"),
    ]
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := await reader.readline():
            command = json.loads(line)
            name = command.pop("cmd")
            reply: dict[str, Any]
            if name == "connect":
                reply = await load.connect(**command)
            elif name == "start":
                reply = load.start()
            elif name == "stats":
                reply = load.stats()
            elif name == "probe_start":
                reply = await load.probe_start()
            elif name == "probe_take":
                reply = load.probe_take()
            elif name == "keys":
                reply = await load.keys_now()
            elif name == "flood":
                reply = await load.flood(**command)
            elif name == "quit":
                break
            else:
                reply = {"error": f"unknown command {name}"}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
    finally:
        load.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="ws://127.0.0.1:PORT/v1/site")
    parser.add_argument("--interval-ms", type=int, default=10_000)
    parser.add_argument("--duration-ms", type=int, default=300_000)
    parser.add_argument("--spread-ms", type=int, default=1_000)
    parser.add_argument(
        "--sources",
        default="127.0.0.1",
        help="source addresses of the connections, comma-separated, used in turn",
    )
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
