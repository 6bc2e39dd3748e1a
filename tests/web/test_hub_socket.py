"""The hub's WebSocket path past ASGI: what the socket layer itself decides.

Fragmented messages, frames sent right behind a ``watch``, silent connections, and whose
address a connection is budgeted under (the TCP peer's, or a trusted proxy's forwarded
one). The frame protocol itself is tested in tests/sites/test_hub.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from hereabouts.config import HttpLimits, HubConfig, SitesConfig
from hereabouts.identity import Identity
from hereabouts.sites import room_key
from hereabouts.sites.hub import SiteHub
from hereabouts.transports.memory import MemoryBus
from hereabouts.web.forwarded import TrustedProxies
from hereabouts.web.hub_socket import HubSockets
from hereabouts.web.server import HttpServer
from hereabouts.web.site import SOCKET_PATH, build_site_routes
from tests.sites.support import browser_sealed, event_frame, eventually, watch_frame

CONFIG = SitesConfig(
    did_duration_s=60.0,
    heartbeat_interval_s=1.0,
    stale_timeout_s=3.0,
    rotation_spread_s=0.2,
    max_clock_skew_s=0.5,
)
ORIGIN = "https://socket-test.example"
LOBBY = room_key(ORIGIN, "lobby")


@contextlib.asynccontextmanager
async def served(
    *,
    hub: HubConfig | None = None,
    limits: HttpLimits | None = None,
    keepalive_s: float = 20.0,
) -> AsyncIterator[tuple[SiteHub, HttpServer, HubSockets]]:
    bus = MemoryBus()
    async with SiteHub(
        transport=bus.transport(name="hub"),
        config=CONFIG,
        hub=hub or HubConfig(),
        listen_host="127.0.0.1",
    ) as site_hub:
        sockets = HubSockets(site_hub, keepalive_s=keepalive_s)
        async with HttpServer(
            Starlette(routes=build_site_routes()),
            limits=limits,
            upgrades={SOCKET_PATH: sockets.adopt},
        ) as server:
            yield site_hub, server, sockets


def url(server: HttpServer) -> str:
    return f"ws://127.0.0.1:{server.port}{SOCKET_PATH}"


async def counts_of(ws: ClientConnection, key: str, wanted: int) -> None:
    """Read frames until ``key``'s count is ``wanted``."""
    async with asyncio.timeout(10):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "counts" and frame["rooms"].get(key, {}).get("count") == wanted:
                return


async def test_a_fragmented_message_is_put_together_and_counted() -> None:
    async with served() as (hub, server, _), connect(url(server), origin=ORIGIN) as ws:
        await ws.recv()  # hello
        await ws.send(watch_frame(ORIGIN, "lobby"))
        frame = event_frame(browser_sealed("site_heartbeat", Identity.generate(), LOBBY))
        third = len(frame) // 3
        await ws.send([frame[:third], frame[third : 2 * third], frame[2 * third :]])
        await counts_of(ws, LOBBY, 1)
        assert hub.counters.get("site_events_in", "heartbeat") == 1


async def test_fragments_adding_up_past_the_frame_limit_are_closed_with_1009() -> None:
    async with served() as (hub, server, _), connect(url(server), origin=ORIGIN) as ws:
        await ws.recv()
        with pytest.raises(ConnectionClosed) as closed:
            await ws.send(["x" * 5000, "y" * 5000])
            async with asyncio.timeout(10):
                while True:
                    await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        assert hub.counters.get("site_hub_rejects", "frame_too_large") == 1


async def test_frames_right_behind_a_watch_wait_for_it_in_order() -> None:
    """The widget sends its ``watch`` and its first heartbeats without waiting: the
    heartbeats must be counted after the watch is in place, not refused as unwatched."""
    async with served() as (hub, server, _):
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        async with connect(url(server), origin=ORIGIN) as ws:
            await ws.recv()
            frames = [watch_frame(ORIGIN, "lobby")] + [
                event_frame(browser_sealed("site_heartbeat", Identity.generate(), LOBBY))
                for _ in range(8)
            ]
            # One write, so they all arrive in one socket read behind the watch.
            protocol = ws.protocol
            for text in frames:
                protocol.send_frame(Frame(Opcode.TEXT, text.encode()))
            ws.transport.write(b"".join(protocol.data_to_send()))
            await counts_of(ws, LOBBY, 8)
        writer.close()
        assert hub.counters.by_label("site_hub_rejects") == {}


async def test_a_silent_connection_is_pinged_and_one_that_never_answers_is_dropped() -> None:
    async with served(keepalive_s=0.3) as (hub, server, sockets):
        # A client that answers pings stays.
        async with connect(url(server), origin=ORIGIN, ping_interval=None) as ws:
            await ws.recv()
            await asyncio.sleep(1.5)
            assert sockets.open == 1
            assert hub.connections == 1
        # A raw socket that completed the handshake and then says nothing, not even pong.
        raw = socket.create_connection(("127.0.0.1", server.port))
        raw.sendall(
            b"GET /v1/site HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\nOrigin: " + ORIGIN.encode() + b"\r\n\r\n"
        )
        await eventually(lambda: hub.connections == 1)
        await eventually(lambda: hub.connections == 0, timeout_s=5)
        assert hub.counters.get("site_hub_connections", "timed_out") == 1
        raw.close()


async def test_budgets_key_on_the_forwarded_address_only_behind_a_trusted_proxy() -> None:
    one_each = HubConfig(max_connections_per_address=1)

    async def outcome(server: HttpServer, forwarded: str) -> str:
        headers = {"X-Forwarded-For": forwarded}
        async with connect(url(server), origin=ORIGIN, additional_headers=headers) as ws:
            try:
                return str(json.loads(await asyncio.wait_for(ws.recv(), 10))["type"])
            except ConnectionClosed as closed:
                return closed.rcvd.reason if closed.rcvd else "closed"

    async with (
        served(hub=one_each) as (_, server, _sockets),
        connect(url(server), origin=ORIGIN) as first,
    ):
        await first.recv()
        # Not a trusted proxy: the header is ignored, both are 127.0.0.1.
        assert await outcome(server, "203.0.113.7") == "address_busy"
    trusting = HttpLimits(trusted_proxies=("127.0.0.1",))
    async with (
        served(hub=one_each, limits=trusting) as (_, server, _sockets),
        connect(
            url(server), origin=ORIGIN, additional_headers={"X-Forwarded-For": "203.0.113.7"}
        ) as first,
    ):
        await first.recv()
        assert await outcome(server, "203.0.113.8") == "hello"
        assert await outcome(server, "203.0.113.7") == "address_busy"


def test_the_forwarded_client_is_the_last_hop_that_is_not_a_listed_proxy() -> None:
    proxies = TrustedProxies(["10.0.0.0/8", "192.0.2.1"])
    assert proxies.client("10.1.2.3", [b"198.51.100.4, 10.9.9.9"]) == "198.51.100.4"
    assert proxies.client("10.1.2.3", [b"198.51.100.4", b"192.0.2.1:443"]) == "198.51.100.4"
    assert proxies.client("10.1.2.3", [b"[2001:db8::1]:80"]) == "2001:db8::1"
    # A client forging hops in front of the real one is still seen as itself.
    assert proxies.client("10.1.2.3", [b"1.1.1.1, 203.0.113.9"]) == "203.0.113.9"
    assert proxies.client("10.1.2.3", []) == "10.1.2.3"
    assert proxies.client("198.51.100.4", [b"1.1.1.1"]) == "198.51.100.4"  # not a proxy
    assert not TrustedProxies([])
