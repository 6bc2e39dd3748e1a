"""The connection cap: past it, connections are refused at once; every slot comes back."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from prometheus_client.core import CollectorRegistry
from prometheus_client.exposition import generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect

from hereabouts.config import HttpLimits
from hereabouts.metrics import Counters
from hereabouts.web.admission import (
    AT_CAPACITY,
    OUT_OF_FILES,
    REFUSAL_RESPONSE,
    REFUSED,
    ConnectionGate,
    GatedListener,
    open_files_limit,
)
from hereabouts.web.server import HttpServer

CAP = 3
WAIT_S = 20.0


async def root(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        await websocket.send_text(await websocket.receive_text())


APP = Starlette(routes=[Route("/", root), WebSocketRoute("/ws", ws_echo)])


@pytest.fixture
async def capped() -> AsyncIterator[HttpServer]:
    """At most CAP connections; clocks long enough never to close one during a test."""
    limits = HttpLimits(max_connections=CAP, header_timeout_s=60.0, keep_alive_timeout_s=60.0)
    async with HttpServer(APP, limits=limits) as server:
        yield server


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not condition():
            await asyncio.sleep(0.01)


async def hold(server: HttpServer) -> asyncio.StreamWriter:
    """A connection that never sends a byte, once the server has admitted it."""
    before = server.open_connections
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    await until(lambda: server.open_connections > before)
    return writer


async def refusal(server: HttpServer) -> bytes:
    """What a client that only reads hears from a full server, up to its closing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        async with asyncio.timeout(WAIT_S):
            return await reader.read()
    finally:
        writer.close()


async def get_root(server: HttpServer) -> str:
    async with httpx.AsyncClient(timeout=WAIT_S, trust_env=False) as client:
        return (await client.get(f"{server.url}/")).text


async def test_past_the_cap_a_connection_gets_a_503_and_is_closed(capped: HttpServer) -> None:
    held = [await hold(capped) for _ in range(CAP)]
    assert capped.open_connections == CAP
    assert await refusal(capped) == REFUSAL_RESPONSE
    assert capped.counters.by_label(REFUSED) == {AT_CAPACITY: 1}
    assert capped.open_connections == CAP  # the refused one never took a slot
    held.pop().close()
    await until(lambda: capped.open_connections < CAP)
    assert await get_root(capped) == "ok"
    for writer in held:
        writer.close()
    await until(lambda: capped.open_connections == 0)


async def test_websockets_hold_slots_like_any_connection(capped: HttpServer) -> None:
    url = f"ws://127.0.0.1:{capped.port}/ws"
    async with connect(url) as first, connect(url) as second, connect(url) as third:
        for ws in (first, second, third):
            await ws.send("hi")
            assert await ws.recv() == "hi"
        assert capped.open_connections == CAP
        assert await refusal(capped) == REFUSAL_RESPONSE
    await until(lambda: capped.open_connections == 0)
    assert await get_root(capped) == "ok"


async def test_every_slot_comes_back_after_a_storm(capped: HttpServer) -> None:
    async def knock() -> None:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", capped.port)
        except OSError:
            return
        await asyncio.sleep(0.05)
        writer.close()

    await asyncio.gather(*(knock() for _ in range(200)))
    await until(lambda: capped.open_connections == 0)
    assert capped.counters.get(REFUSED, AT_CAPACITY) > 0
    assert await get_root(capped) == "ok"


async def test_open_connections_and_the_cap_are_exported(capped: HttpServer) -> None:
    registry = CollectorRegistry()
    capped.counters.register(registry)
    registry.register(capped.collector())
    held = [await hold(capped) for _ in range(CAP)]
    await refusal(capped)
    text = generate_latest(registry).decode()
    assert f"hereabouts_http_connections {float(CAP)}" in text
    assert f"hereabouts_http_connections_limit {float(CAP)}" in text
    assert 'hereabouts_http_refused_total{reason="at_capacity"} 1.0' in text
    for writer in held:
        writer.close()


async def test_by_default_the_cap_follows_the_open_files_limit() -> None:
    async with HttpServer(APP) as server:
        assert server.connection_limit == HttpLimits().connection_cap(open_files_limit())


async def test_out_of_descriptors_the_waiting_connection_is_refused_not_left_queued() -> None:
    # The process's descriptors are all taken (we pretend, for one accept): the listener
    # spends its spare descriptor on refusing the client instead of failing the accept.
    gate = ConnectionGate(limit=10, counters=Counters())
    listener = GatedListener()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.guard(gate)
    real_accept = listener._accept  # type: ignore[attr-defined]
    calls = 0

    def out_of_files_once() -> tuple[int, object]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError(errno.EMFILE, "Too many open files")
        return real_accept()  # type: ignore[no-any-return]

    listener._accept = out_of_files_once  # type: ignore[attr-defined]
    reader, writer = await asyncio.open_connection(*listener.getsockname())
    try:
        listener.setblocking(False)
        await asyncio.sleep(0.1)  # the connection is waiting in the kernel's queue
        with pytest.raises(BlockingIOError):
            listener.accept()  # refuses the waiting client, then finds nobody else
        assert await asyncio.wait_for(reader.read(), WAIT_S) == REFUSAL_RESPONSE
        assert gate.counters.by_label(REFUSED) == {OUT_OF_FILES: 1}
        assert gate.open == 0
        assert listener._spare is not None  # taken back for next time
    finally:
        writer.close()
        listener.close()


def test_a_gate_needs_room_for_one() -> None:
    with pytest.raises(ValueError):
        ConnectionGate(limit=0, counters=Counters())
