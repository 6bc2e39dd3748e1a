"""Attacks on the browser hub of a real ``hereabouts up``: other origins, reconnect floods,
slot hoarding.

Each test runs its own ``hereabouts up`` process (``UpProcess``: its own home, port and
embedded broker) and attacks it over real WebSockets from loopback source addresses
(127.0.0.2, 127.0.0.3, …), with the ``Origin`` header set explicitly, as a script outside a
browser can. What is measured is printed (run with ``-s``) and bounded by assertions:

* **another origin** — a connection whose Origin is evil.example is not counted in a room
  of good.example: refused at the handshake when the operator lists origins, refused at
  ``watch`` (``wrong_origin``) when it names good.example's keys; the count stays 0;
* **reconnect flood** — one address reconnecting for ten seconds, each connection sending
  a burst of heartbeats under fresh keys, raises the room by at most its join budget;
* **slot hoarding** — one address opening many connections holds at most its connection
  budget, and a second address still connects and is counted.

Every attack runs against ``hereabouts up`` and ``hereabouts up --workers 2``: with two
hub worker processes each address is served by one worker, so its budgets hold exactly as
in one process. There ``/metrics`` shows the sum of the workers' counters as they last
reported (every second), so the tests read it once it has caught up (:func:`metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from hereabouts.config import HubConfig
from hereabouts.identity import Identity
from hereabouts.sites import room_key
from hereabouts.sites.worker_channel import REPORT_INTERVAL_S
from tests.adversarial.processes import UpProcess
from tests.sites.support import browser_sealed, event_frame, watch_frame

GOOD = "https://good.example"
OTHER = "https://other.example"
EVIL = "https://evil.example"
GOOD_LOBBY = room_key(GOOD, "lobby")

DEFAULTS = HubConfig()
FLOOD_S = 10.0
"""How long the reconnect flood runs: before the budgets, one address filled a room with
fifteen thousand visitors in this time."""
METRICS_WAIT_S = 20.0
"""How long :func:`metrics` waits for what it is told to (workers report every second)."""
BURST = 32
"""Heartbeats per connection in the flood: the per-connection burst, all of which a fresh
connection used to be granted."""


@pytest.fixture(params=[1, 2], ids=["1-process", "2-workers"])
def workers(request: pytest.FixtureRequest) -> int:
    """``hereabouts up --workers`` of the attacked node."""
    return int(request.param)


def socket_url(up: UpProcess) -> str:
    return up.url.replace("http://", "ws://") + "/v1/site"


@contextlib.asynccontextmanager
async def browser(
    up: UpProcess, origin: str, address: str
) -> AsyncIterator[tuple[ClientConnection, dict[str, object]]]:
    """A connection the hub admitted, with its hello."""
    async with connect(socket_url(up), origin=origin, local_addr=(address, 0)) as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert hello["type"] == "hello", hello
        yield ws, hello


async def frames_until(ws: ClientConnection, done: object, timeout_s: float = 10.0) -> list[dict]:
    """Frames from ``ws`` until ``done(frame)`` is true for one (returned last)."""
    seen: list[dict] = []
    async with asyncio.timeout(timeout_s):
        while True:
            frame = json.loads(await ws.recv())
            seen.append(frame)
            if done(frame):  # type: ignore[operator]
                return seen


class RoomWatcher:
    """A good.example visitor's page watching the lobby: the count as the hub pushes it."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.count: object = None
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in self.ws:
                frame = json.loads(message)
                if frame["type"] == "counts" and GOOD_LOBBY in frame["rooms"]:
                    self.count = frame["rooms"][GOOD_LOBBY]["count"]

    async def settled(self, quiet_s: float = 1.0) -> object:
        """The count once it has not moved for ``quiet_s``."""
        while True:
            before = self.count
            await asyncio.sleep(quiet_s)
            if self.count == before:
                return before


async def metrics(
    up: UpProcess, name: str, until: Callable[[dict[str, float]], bool] | None = None
) -> dict[str, float]:
    """The samples of counter ``hereabouts_<name>_total`` by label value, once
    ``until(samples)`` holds. A hub in worker processes shows their counters as they last
    reported: then the samples are read again two reports later, so that everything the
    workers had done before this call is in them."""
    samples: dict[str, float] = {}

    async def read() -> None:
        samples.clear()
        samples.update(await counter_samples(up, name))

    await read()
    deadline = time.monotonic() + METRICS_WAIT_S
    while until is not None and not until(samples) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        await read()
    if await hub_workers(up):
        await asyncio.sleep(2 * REPORT_INTERVAL_S + 0.2)
        await read()
    return dict(samples)


async def counter_samples(up: UpProcess, name: str) -> dict[str, float]:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{up.url}/metrics")).text
    prefix = f"hereabouts_{name}_total{{"
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            labels, value = line[len(prefix) :].rsplit(" ", 1)
            samples[labels.split('"')[1]] = float(value)
    return samples


async def health(up: UpProcess) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        body: dict[str, Any] = (await client.get(f"{up.url}/healthz")).json()
    return body


async def hub_workers(up: UpProcess) -> list[dict[str, Any]]:
    """The hub workers ``/healthz`` reports (none when the hub is in the node's process)."""
    sites = (await health(up)).get("sites", {})
    return list(sites.get("workers", []))


async def hub_cpu_seconds(up: UpProcess) -> float:
    """CPU time of the node and of its hub workers so far."""
    pids = [w["pid"] for w in await hub_workers(up) if w["pid"] is not None]
    return up.cpu_seconds() + sum(cpu_seconds_of(pid) for pid in pids)


def cpu_seconds_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_another_origin_is_not_counted_in_a_sites_rooms(
    tmp_path: Path, workers: int
) -> None:
    env = {"PRESENCE_HUB_ALLOWED_ORIGINS": f"{GOOD},{OTHER}"}
    async with (
        UpProcess(tmp_path / "up", "--workers", str(workers), env=env) as up,
        browser(up, GOOD, "127.0.0.2") as (watching, hello),
    ):
        duration = int(hello["did_duration_ms"])  # type: ignore[call-overload]
        watcher = RoomWatcher(watching)
        await watching.send(watch_frame(GOOD, "lobby"))

        # evil.example is not served: refused at the handshake, before any frame.
        refused: list[tuple[int, str]] = []
        for _ in range(5):
            async with connect(socket_url(up), origin=EVIL, local_addr=("127.0.0.3", 0)) as ws:
                try:
                    await asyncio.wait_for(ws.recv(), 10)
                except ConnectionClosed as closed:
                    assert closed.rcvd is not None
                    refused.append((closed.rcvd.code, closed.rcvd.reason))
        assert refused == [(1008, "origin_not_allowed")] * 5

        # A served origin naming good.example's keys (data-origin="https://good.example"
        # on its pages) is refused at watch, and its heartbeats for the room go nowhere.
        async with browser(up, OTHER, "127.0.0.4") as (ws, _):
            await ws.send(watch_frame(OTHER, "lobby", keys_of=GOOD))
            await ws.send(json.dumps({"type": "watch", "rooms": [GOOD_LOBBY]}))  # keys only
            for _ in range(5):
                sealed = browser_sealed(
                    "site_heartbeat", Identity.generate(), GOOD_LOBBY, duration_ms=duration
                )
                await ws.send(event_frame(sealed))
            errors = [
                f["reason"]
                for f in await frames_until(
                    ws, lambda f: f["type"] == "error" and f["reason"] == "room_not_watched"
                )
                if f["type"] == "error"
            ]
            assert errors[:2] == ["wrong_origin", "bad_frame"]

        count = await watcher.settled()
        rejects = await metrics(
            up, "site_hub_rejects", lambda r: r.get("origin_not_allowed", 0) >= 5
        )
        heartbeats = (await metrics(up, "site_events_in")).get("heartbeat", 0)
        print(
            f"\nanother origin: good.example's lobby shows {count} after 5 evil.example "
            f"handshakes and 5 heartbeats from other.example; rejects {rejects}"
        )
        assert count == 0
        assert heartbeats == 0
        assert rejects["origin_not_allowed"] == 5
        assert rejects["wrong_origin"] == 1
        assert rejects["room_not_watched"] >= 1
        await watching.close()


async def test_reconnecting_cannot_push_a_room_past_the_join_budget(
    tmp_path: Path, workers: int
) -> None:
    async with (
        UpProcess(tmp_path / "up", "--workers", str(workers)) as up,
        browser(up, GOOD, "127.0.0.2") as (watching, hello),
    ):
        duration = int(hello["did_duration_ms"])  # type: ignore[call-overload]
        watcher = RoomWatcher(watching)
        await watching.send(watch_frame(GOOD, "lobby"))
        closes: Counter[str] = Counter()
        connections = sent = 0
        cpu_before, started = await hub_cpu_seconds(up), time.monotonic()
        while time.monotonic() - started < FLOOD_S:
            try:
                # Frames from the hub are not read; an unbounded queue keeps the client
                # reading the socket anyway, so its closing handshake completes at once.
                async with connect(
                    socket_url(up), origin=GOOD, local_addr=("127.0.0.3", 0), max_queue=None
                ) as ws:
                    await asyncio.wait_for(ws.recv(), 10)  # hello
                    connections += 1
                    await ws.send(watch_frame(GOOD, "lobby"))
                    for _ in range(BURST):
                        sealed = browser_sealed(
                            "site_heartbeat", Identity.generate(), GOOD_LOBBY, duration_ms=duration
                        )
                        await ws.send(event_frame(sealed))
                        sent += 1
            except ConnectionClosed as closed:
                closes[str(closed.rcvd.code if closed.rcvd else None)] += 1
            except InvalidStatus:
                closes["http"] += 1
        flood_s = time.monotonic() - started
        hub_cpu_s = await hub_cpu_seconds(up) - cpu_before
        count = await watcher.settled()
        rejects = await metrics(
            up,
            "site_hub_rejects",
            lambda r: r.get("join_budget", 0) + r.get("address_rate_limited", 0) > 0,
        )
        counted = (await metrics(up, "site_events_in")).get("heartbeat", 0)
        print(
            f"\nreconnect flood from one address: {connections} connections, {sent} "
            f"heartbeats in {flood_s:.1f} s; {counted:.0f} counted; the room shows {count} "
            f"(join budget {DEFAULTS.joins_per_address}); rejects {rejects}; closes "
            f"{dict(closes)}; hub CPU {hub_cpu_s:.1f} s"
        )
        assert connections > 10, "the flood did not reconnect: it tested nothing"
        assert isinstance(count, int) and 0 < count <= DEFAULTS.joins_per_address
        assert rejects.get("join_budget", 0) + rejects.get("address_rate_limited", 0) > 0
        await watching.close()


async def test_one_address_cannot_take_every_slot(tmp_path: Path, workers: int) -> None:
    # 64 slots for each process that serves browsers: a worker holds its share of the
    # hub's slots, and one address is one worker's (see test_hub_workers.py for a share
    # no larger than the address budget).
    slots = 64 * workers
    attempts = 64 + 16
    env = {"PRESENCE_HUB_MAX_CONNECTIONS": str(slots)}
    async with (
        UpProcess(tmp_path / "up", "--workers", str(workers), env=env) as up,
        contextlib.AsyncExitStack() as stack,
    ):
        held = 0
        refused: Counter[tuple[int, str]] = Counter()
        for _ in range(attempts):
            ws = await stack.enter_async_context(
                connect(socket_url(up), origin=GOOD, local_addr=("127.0.0.2", 0))
            )
            try:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                assert frame["type"] == "hello"
                held += 1
            except ConnectionClosed as closed:
                assert closed.rcvd is not None
                refused[(closed.rcvd.code, closed.rcvd.reason)] += 1

        # Somebody else, from another address, still gets in and is counted.
        async with browser(up, GOOD, "127.0.0.3") as (ws, hello):
            await ws.send(watch_frame(GOOD, "lobby"))
            sealed = browser_sealed(
                "site_heartbeat",
                Identity.generate(),
                GOOD_LOBBY,
                duration_ms=int(hello["did_duration_ms"]),  # type: ignore[call-overload]
            )
            await ws.send(event_frame(sealed))
            counts = await frames_until(
                ws, lambda f: f["type"] == "counts" and f["rooms"][GOOD_LOBBY]["count"] == 1
            )
        connections = await metrics(
            up, "site_hub_connections", lambda c: c.get("refused", 0) >= attempts - held
        )
        handed = [w["connections_handed"] for w in await hub_workers(up)]
        print(
            f"\nslot hoarding: one address opened {attempts} connections to a hub of "
            f"{slots} slots and holds {held}; refused {dict(refused)}; a second address "
            f"connected and was counted ({len(counts)} frames); connections {connections}"
        )
        assert held == DEFAULTS.max_connections_per_address
        assert refused == {(1013, "address_busy"): attempts - held}
        assert connections["refused"] == attempts - held
        if workers > 1:  # the second address got in on the hoarding address's worker
            assert sorted(handed) == [0] * (workers - 1) + [attempts + 1], handed
