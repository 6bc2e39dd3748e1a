"""Helpers shared by the site-presence tests: a fast config, a raw wire recorder, events
signed the way the widget signs them, a simulated widget, and the acceptance tests'
stall-aware sampler."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from hereabouts.config import SitesConfig
from hereabouts.core.rotation import HeartbeatPlan, epoch_of
from hereabouts.identity import Identity
from hereabouts.sites.rooms import room_key
from hereabouts.transports.base import Message, Transport
from hereabouts.transports.topics import SITE_ALL
from hereabouts.wire import SIGNING_TAG

FAST = SitesConfig(
    did_duration_s=2.0,
    heartbeat_interval_s=0.2,
    stale_timeout_s=0.8,
    rotation_spread_s=0.1,
    max_clock_skew_s=0.1,
)
"""A 2 s epoch with heartbeats every 0.2 s: several rotations in a few seconds."""

ACCEPTANCE = SitesConfig(
    did_duration_s=2.0,
    heartbeat_interval_s=1.0,
    stale_timeout_s=3.0,
    rotation_spread_s=0.1,
    max_clock_skew_s=0.8,
)
"""The acceptance tests' 2 s epochs: three rotations in six seconds. Heartbeats every
second keep fifty observers of fifty visitors (2,500 verified messages a second, all in
one process) within one CPU. The skew allowance also covers delivery latency, which there
includes dozens of observers sharing one CPU (and, for browsers, a hop through a hub) to
process the burst of new heartbeats that follows each boundary."""


CATCH_UP_S = ACCEPTANCE.settle_s
"""After a stall, how long the late heartbeats are given to arrive before samples are judged
again: the delivery allowance the protocol itself gives after a boundary."""

STALL_S = 0.25
"""A sampling pause this much longer than asked for means the test process stood still."""


class Sampler:
    """Paces the acceptance tests' samples and tells which ones follow a stall.

    Every visitor, hub and observer of those tests lives in the test process. When the
    process stands still (the host took the CPU away for most of a second), every
    visitor's heartbeat due meanwhile goes out late, later than the protocol's skew
    allowance, so for a moment the true count is not what the visitors' schedules say.
    Samples taken within ``catch_up_s`` of a stall are therefore not judged; they are
    counted, and the tests require most samples to be judged.
    """

    def __init__(self, every_s: float, *, catch_up_s: float) -> None:
        self.every_s = every_s
        self.catch_up_s = catch_up_s
        self.stalls: list[float] = []
        self.samples = 0
        self.skipped = 0
        self._quiet_until = 0.0

    async def judged(self) -> bool:
        """Wait one period; False while catching up from a stall of this process."""
        loop = asyncio.get_running_loop()
        before = loop.time()
        await asyncio.sleep(self.every_s)
        now = loop.time()
        if now - before - self.every_s > STALL_S:
            self.stalls.append(round(now - before, 3))
            self._quiet_until = now + self.catch_up_s
        self.samples += 1
        if now < self._quiet_until:
            self.skipped += 1
            return False
        return True

    def check(self) -> None:
        """Fail unless at least three samples in four were judged."""
        assert self.skipped * 4 <= self.samples, (
            f"the test process stalled too often to judge counts: {self.stalls}"
        )


@dataclass
class WireRecorder:
    """A plain subscriber to every site topic that keeps every message it sees."""

    transport: Transport
    messages: list[Message] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> WireRecorder:
        await self.transport.connect()
        await self.transport.subscribe(SITE_ALL)
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.transport.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _read(self) -> None:
        async for message in self.transport.messages():
            self.messages.append(message)

    def bodies(self) -> list[dict[str, object]]:
        return [json.loads(m.payload)["body"] for m in self.messages]

    def dids(self) -> set[str]:
        return {str(b["did"]) for b in self.bodies()}


async def eventually(
    check: Callable[[], bool], *, timeout_s: float = 10.0, step_s: float = 0.02
) -> None:
    """Wait until ``check()`` holds; fail after ``timeout_s``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step_s)


def now_ms() -> int:
    return int(time.time() * 1000)


def browser_sealed(
    kind: str,
    key: Identity,
    room: str,
    *,
    at_ms: int | None = None,
    duration_ms: int = 60_000,
) -> str:
    """A sealed envelope as the widget builds it (see static/widget.js ``seal``):
    ``JSON.stringify`` field order, compact separators, the body bytes spliced into the
    envelope as text. ``duration_ms`` must be the hub's epoch length."""
    at = now_ms() if at_ms is None else at_ms
    epoch = at // duration_ms
    body = json.dumps(
        {"kind": kind, "did": key.did, "room_key": room, "epoch": epoch, "at_ms": at},
        separators=(",", ":"),
    )
    sig = base64.b64encode(key.sign(SIGNING_TAG + body.encode())).decode()
    return f'{{"body":{body},"signer":{json.dumps(key.did)},"sig":"{sig}"}}'


def event_frame(sealed: str, *, pow: str | None = None) -> str:
    extra = "" if pow is None else f',"pow":"{pow}"'
    return f'{{"type":"event","sealed":{sealed}{extra}}}'


def watch_frame(origin: str, *names: str, keys_of: str | None = None) -> str:
    """A ``watch`` of rooms ``names`` as the widget sends it: each room's name with its key,
    computed for ``keys_of`` (default ``origin``, as the widget on a page of ``origin``)."""
    rooms = [{"name": name, "key": room_key(keys_of or origin, name)} for name in names]
    return json.dumps({"type": "watch", "rooms": rooms})


class SimulatedWidget:
    """One browser visitor in one room, behaving as ``widget.js`` does: its own socket to
    a hub (the page's ``origin`` on the handshake, from ``address`` when given), the cadence
    from the hub's hello, a fresh key per epoch with a random restart after each boundary
    (:class:`HeartbeatPlan`, the schedule the widget implements), and a signed leave when it
    goes. ``count`` is the room's count as last pushed by the hub."""

    def __init__(
        self,
        url: str,
        origin: str,
        room: str,
        *,
        rng: random.Random,
        address: str | None = None,
    ) -> None:
        self.url = url
        self.origin = origin
        self.room = room
        self.room_key = room_key(origin, room)
        self.address = address
        self._rng = rng
        self.count: object = None
        self.errors: list[str] = []
        self._ws: ClientConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._key: Identity | None = None
        self._key_epoch = -1
        self._duration_ms = 0

    async def start(self) -> None:
        local = {} if self.address is None else {"local_addr": (self.address, 0)}
        self._ws = await connect(self.url, origin=self.origin, **local)
        hello = json.loads(await self._ws.recv())
        self._duration_ms = int(hello["did_duration_ms"])
        plan = HeartbeatPlan(
            interval_ms=int(hello["heartbeat_interval_ms"]),
            duration_ms=self._duration_ms,
            spread_ms=int(hello["rotation_spread_ms"]),
            uniform=self._rng,
        )
        await self._ws.send(watch_frame(self.origin, self.room))
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._beat(plan))]

    async def leave(self) -> None:
        """Stop beating, send a signed leave, close the socket."""
        for task in self._tasks[1:]:
            task.cancel()
        if self._ws is not None and self._key is not None:
            await self._send("site_leave", now_ms())
        await self.close()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._ws is not None:
            await self._ws.close()

    async def _send(self, kind: str, at: int) -> None:
        assert self._ws is not None and self._key is not None
        sealed = browser_sealed(
            kind, self._key, self.room_key, at_ms=at, duration_ms=self._duration_ms
        )
        await self._ws.send(event_frame(sealed))

    async def _beat(self, plan: HeartbeatPlan) -> None:
        while True:
            at = now_ms()
            epoch = epoch_of(at, self._duration_ms)
            if self._key is None or self._key_epoch != epoch:
                self._key, self._key_epoch = Identity.generate(), epoch
            await self._send("site_heartbeat", at)
            await asyncio.sleep(max(0, plan.next_after(at) - now_ms()) / 1000)

    async def _read(self) -> None:
        assert self._ws is not None
        with contextlib.suppress(ConnectionClosed):
            async for message in self._ws:
                frame = json.loads(message)
                if frame["type"] == "counts" and self.room_key in frame["rooms"]:
                    self.count = frame["rooms"][self.room_key]["count"]
                elif frame["type"] == "error":
                    self.errors.append(frame["reason"])
