"""Whom the hub believes: a connection's Origin, its address's budgets, proof of work.

A real HTTP server and real WebSocket clients that set their ``Origin`` header and
their source address (127.0.0.x; Linux routes all of 127.0.0.0/8 to loopback), so the
hub sees what it sees in production: the handshake's header and the peer's address.
Every test runs against a hub in the test's process and against two hub worker processes
(:mod:`tests.sites.hubs`), to which the server hands each socket by the client's address.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from hereabouts.config import HubConfig, SitesConfig
from hereabouts.core.admission import POW_TAG, leading_zero_bits
from hereabouts.identity import Identity
from hereabouts.sites import room_key
from tests.sites.hubs import Plaza, ServedHub, serve_hub
from tests.sites.support import browser_sealed, event_frame, eventually, watch_frame

CONFIG = SitesConfig(
    did_duration_s=60.0,
    heartbeat_interval_s=1.0,
    stale_timeout_s=3.0,
    rotation_spread_s=0.2,
    max_clock_skew_s=0.5,
)
GOOD = "https://good.example"
EVIL = "https://evil.example"
GOOD_LOBBY = room_key(GOOD, "lobby")
EVIL_LOBBY = room_key(EVIL, "lobby")
DURATION_MS = round(CONFIG.did_duration_s * 1000)


@dataclass
class Client:
    """One WebSocket client: the frames the hub sent it, and how it was closed."""

    ws: ClientConnection
    frames: list[dict[str, object]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in self.ws:
                self.frames.append(json.loads(message))

    @property
    def hello(self) -> dict[str, object]:
        return self.frames[0]

    def errors(self) -> list[object]:
        return [f["reason"] for f in self.frames if f["type"] == "error"]

    def count(self, key: str) -> object:
        counts = [f["rooms"] for f in self.frames if f["type"] == "counts"]
        seen = [rooms[key]["count"] for rooms in counts if key in rooms]  # type: ignore[index,operator]
        return seen[-1] if seen else None

    async def heartbeat(self, key: Identity, room: str, *, pow: str | None = None) -> None:
        sealed = browser_sealed("site_heartbeat", key, room, duration_ms=DURATION_MS)
        await self.ws.send(event_frame(sealed, pow=pow))

    async def leave(self, key: Identity, room: str) -> None:
        sealed = browser_sealed("site_leave", key, room, duration_ms=DURATION_MS)
        await self.ws.send(event_frame(sealed))


@dataclass
class Rig:
    hub: ServedHub

    @property
    def url(self) -> str:
        return self.hub.url

    @property
    def port(self) -> int:
        return self.hub.server.port

    @contextlib.asynccontextmanager
    async def client(
        self, origin: str | None = GOOD, address: str = "127.0.0.1"
    ) -> AsyncIterator[Client]:
        """A connection that got its hello (fails otherwise)."""
        async with connect(self.url, origin=origin, local_addr=(address, 0)) as ws:
            client = Client(ws)
            client.task = asyncio.create_task(client.read())
            await eventually(lambda: bool(client.frames), timeout_s=5)
            assert client.hello["type"] == "hello"
            try:
                yield client
            finally:
                await ws.close()
                await client.task

    async def refused(
        self, origin: str | None = GOOD, address: str = "127.0.0.1"
    ) -> tuple[int, str]:
        """Connect, expect the hub to close before hello: (close code, reason)."""
        async with connect(self.url, origin=origin, local_addr=(address, 0)) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                frame = await asyncio.wait_for(ws.recv(), timeout=10)
                raise AssertionError(f"the hub answered {frame}")
        assert closed.value.rcvd is not None
        return closed.value.rcvd.code, closed.value.rcvd.reason


MakeRig = Callable[..., AbstractAsyncContextManager[Rig]]


@pytest.fixture
def rig(hub_plaza: Plaza, hub_mode: str) -> MakeRig:
    """``rig(HubConfig(...), listen_host=...)``: a hub served both ways."""

    @contextlib.asynccontextmanager
    async def make(
        settings: HubConfig | None = None, *, listen_host: str = "127.0.0.1"
    ) -> AsyncIterator[Rig]:
        async with serve_hub(
            hub_plaza, hub_mode, config=CONFIG, hub=settings, listen_host=listen_host
        ) as served:
            yield Rig(hub=served)

    return make


# --- origin ----------------------------------------------------------------------------------


async def test_a_page_counts_only_in_rooms_of_its_own_origin(rig: MakeRig) -> None:
    async with rig() as r, r.client(GOOD, "127.0.0.2") as watcher, r.client(EVIL) as evil:
        await watcher.ws.send(watch_frame(GOOD, "lobby"))
        await eventually(lambda: watcher.count(GOOD_LOBBY) == 0)
        # The evil page claims the good site's origin in its keys (as data-origin would).
        await evil.ws.send(watch_frame(EVIL, "lobby", keys_of=GOOD))
        await evil.heartbeat(Identity.generate(), GOOD_LOBBY)
        await eventually(lambda: evil.errors() == ["wrong_origin", "room_not_watched"])
        # A key that is its own is fine: counted in its own room, not in the good one.
        await evil.ws.send(watch_frame(EVIL, "lobby"))
        await evil.heartbeat(Identity.generate(), EVIL_LOBBY)
        await eventually(lambda: evil.count(EVIL_LOBBY) == 1)
        await asyncio.sleep(0.2)
        assert watcher.count(GOOD_LOBBY) == 0
        await r.hub.settle()
        rejects = r.hub.counters.by_label("site_hub_rejects")
        assert rejects == {"wrong_origin": 1, "room_not_watched": 1}


async def test_room_names_are_checked(rig: MakeRig) -> None:
    async with rig() as r, r.client() as c:
        frame = {"type": "watch", "rooms": [{"name": "a\u0007b", "key": GOOD_LOBBY}]}
        await c.ws.send(json.dumps(frame))
        await c.ws.send(json.dumps({"type": "watch", "rooms": [GOOD_LOBBY]}))  # keys alone
        await eventually(lambda: c.errors() == ["bad_room", "bad_frame"])


async def test_handshakes_without_a_usable_origin_are_refused(rig: MakeRig) -> None:
    async with rig() as r:
        assert await r.refused(origin=None) == (1008, "origin_missing")
        assert await r.refused(origin="null") == (1008, "origin_invalid")
        await r.hub.settle()
        counters = r.hub.counters
        assert counters.get("site_hub_connections", "refused") == 2
        assert counters.get("site_hub_connections", "opened") == 0
        assert counters.by_label("site_hub_rejects") == {"origin_missing": 1, "origin_invalid": 1}


async def test_only_listed_origins_connect(rig: MakeRig) -> None:
    async with rig(HubConfig(allowed_origins=(GOOD,)), listen_host="0.0.0.0") as r:
        assert await r.refused(origin=EVIL) == (1008, "origin_not_allowed")
        async with r.client(GOOD) as c:
            await c.ws.send(watch_frame(GOOD, "lobby"))
            await eventually(lambda: c.count(GOOD_LOBBY) == 0)
        described = [report["origins"] for report in r.hub.hub_health()]
        assert described and all(
            origins == {"any_origin": False, "allowed_origins": 1, "aliases": 0}
            for origins in described
        )


async def test_a_hub_beyond_loopback_with_no_list_serves_only_itself(
    rig: MakeRig, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    async with rig(listen_host="0.0.0.0") as r:
        assert await r.refused(origin=GOOD) == (1008, "origin_not_allowed")
        # But its own pages (the demo page) are served: their origin names the hub.
        async with r.client(origin=f"http://127.0.0.1:{r.port}"):
            pass
    # Logged by the hub, or by every hub worker on its standard error (the test's).
    logged = [rec.getMessage() for rec in caplog.records] + capfd.readouterr().err.splitlines()
    assert any("serves no origin but its own" in line for line in logged)


async def test_an_alias_counts_a_second_name_in_the_first_ones_rooms(rig: MakeRig) -> None:
    www = "https://www.good.example"
    settings = HubConfig(allowed_origins=(GOOD, www), origin_aliases=((www, GOOD),))
    async with rig(settings) as r, r.client(www) as c:
        await c.ws.send(watch_frame(www, "lobby"))  # its own keys are not what it counts in
        await eventually(lambda: c.errors() == ["wrong_origin"])
        await c.ws.send(watch_frame(www, "lobby", keys_of=GOOD))
        await c.heartbeat(Identity.generate(), GOOD_LOBBY)
        await eventually(lambda: c.count(GOOD_LOBBY) == 1)


# --- per-address budgets ---------------------------------------------------------------------


async def test_connections_per_address_are_bounded_and_other_addresses_connect(
    rig: MakeRig,
) -> None:
    async with rig(HubConfig(max_connections_per_address=2)) as r:
        async with r.client(address="127.0.0.2"), r.client(address="127.0.0.2"):
            assert await r.refused(address="127.0.0.2") == (1013, "address_busy")
            async with r.client(address="127.0.0.3"):
                await eventually(lambda: r.hub.total("addresses") == 2)
        # Slots come back when connections close.
        async with r.client(address="127.0.0.2"):
            pass
        await r.hub.settle()
        assert r.hub.counters.get("site_hub_rejects", "address_busy") == 1


async def test_the_address_event_budget_survives_reconnects(rig: MakeRig) -> None:
    settings = HubConfig(address_events_per_s=0.01, address_event_burst=3)
    async with rig(settings) as r:
        counters = r.hub.counters

        def handled() -> int:
            return counters.get("site_events_in", "heartbeat") + counters.get(
                "site_hub_rejects", "address_rate_limited"
            )

        for sent in (2, 4):
            async with r.client(address="127.0.0.2") as c:
                await c.ws.send(watch_frame(GOOD, "lobby"))
                await c.heartbeat(Identity.generate(), GOOD_LOBBY)
                await c.heartbeat(Identity.generate(), GOOD_LOBBY)
                await eventually(lambda sent=sent: handled() == sent)
        # Three tokens in all: the fourth event, on a fresh connection, is refused.
        assert counters.get("site_events_in", "heartbeat") == 3
        assert counters.get("site_hub_rejects", "address_rate_limited") == 1
        async with r.client(address="127.0.0.3") as other:  # another address is not affected
            await other.ws.send(watch_frame(GOOD, "lobby"))
            await other.heartbeat(Identity.generate(), GOOD_LOBBY)
            await eventually(lambda: other.count(GOOD_LOBBY) == 4)


async def test_one_address_raises_a_room_by_its_join_budget_at_most(rig: MakeRig) -> None:
    async with rig(HubConfig(joins_per_address=3)) as r:
        keys = [Identity.generate() for _ in range(3)]
        async with r.client(address="127.0.0.2") as c:
            await c.ws.send(watch_frame(GOOD, "lobby"))
            for key in keys:
                await c.heartbeat(key, GOOD_LOBBY)
            await eventually(lambda: c.count(GOOD_LOBBY) == 3)
            await c.heartbeat(Identity.generate(), GOOD_LOBBY)
            await eventually(lambda: c.errors() == ["join_budget"])
        # Reconnecting changes nothing; the DIDs already counted may go on beating.
        async with r.client(address="127.0.0.2") as c:
            await c.ws.send(watch_frame(GOOD, "lobby"))
            await c.heartbeat(Identity.generate(), GOOD_LOBBY)
            await c.heartbeat(keys[0], GOOD_LOBBY)
            await eventually(lambda: r.hub.counters.get("site_events_in", "heartbeat") == 4)
            assert c.errors() == ["join_budget"]
            # A counted visitor leaving gives its join back.
            await c.leave(keys[1], GOOD_LOBBY)
            await eventually(lambda: c.count(GOOD_LOBBY) == 2)
            await c.heartbeat(Identity.generate(), GOOD_LOBBY)
            await eventually(lambda: c.count(GOOD_LOBBY) == 3)
        # Another address has a budget of its own in the same room.
        async with r.client(address="127.0.0.3") as other:
            await other.ws.send(watch_frame(GOOD, "lobby"))
            await other.heartbeat(Identity.generate(), GOOD_LOBBY)
            await eventually(lambda: other.count(GOOD_LOBBY) == 4)
        await r.hub.settle()
        assert r.hub.counters.get("site_hub_rejects", "join_budget") == 2


# --- proof of work ---------------------------------------------------------------------------


def solve(challenge: bytes, did: str, bits: int) -> str:
    for n in itertools.count():
        digest = hashlib.sha256(POW_TAG + challenge + did.encode() + str(n).encode()).digest()
        if leading_zero_bits(digest) >= bits:
            return str(n)
    raise AssertionError("unreachable")


def challenge_of(hello: dict[str, object]) -> bytes:
    text = str(hello["pow_challenge"])
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def test_a_new_key_needs_proof_of_work_when_the_hub_asks(rig: MakeRig) -> None:
    bits = 10
    async with rig(HubConfig(pow_bits=bits)) as r, r.client() as c, r.client() as d:
        assert c.hello["pow_bits"] == bits
        challenge = challenge_of(c.hello)
        assert len(challenge) == 16 and challenge != challenge_of(d.hello)
        await c.ws.send(watch_frame(GOOD, "lobby"))
        key = Identity.generate()
        await c.heartbeat(key, GOOD_LOBBY)
        await eventually(lambda: c.errors() == ["pow_required"])
        await c.heartbeat(key, GOOD_LOBBY, pow=solve(challenge_of(d.hello), key.did, bits))
        await eventually(lambda: c.errors() == ["pow_required", "pow_invalid"])
        await c.heartbeat(key, GOOD_LOBBY, pow=solve(challenge, key.did, bits))
        await eventually(lambda: c.count(GOOD_LOBBY) == 1)
        # Counted now: its next heartbeats need no proof.
        await asyncio.sleep(0.01)  # a new timestamp, so a new event
        await c.heartbeat(key, GOOD_LOBBY)
        await eventually(lambda: r.hub.counters.get("site_events_in", "heartbeat") == 2)
        assert len(c.errors()) == 2


async def test_no_proof_of_work_by_default(rig: MakeRig) -> None:
    async with rig() as r, r.client() as c:
        assert c.hello["pow_bits"] == 0 and "pow_challenge" not in c.hello
