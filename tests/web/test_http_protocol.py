"""The HTTP server closes connections that take too long to ask, and nothing else.

A real uvicorn server on 127.0.0.1 with short time-outs; clients are raw TCP connections,
so a test decides exactly which bytes arrive and when.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect

from hereabouts.config import HttpLimits
from hereabouts.web.http_protocol import BODY, HEADERS, KEEP_ALIVE, TIMED_OUT
from hereabouts.web.server import HttpServer

SHORT_S = 0.5
"""The time-out under test."""

WAIT_S = 20.0
"""Generous bound on any wait; a connection closed by a 0.5 s clock closes in about that."""

REQUEST = b"GET / HTTP/1.1\r\nhost: test\r\n\r\n"

bodies_seen: list[str] = []


async def root(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def slow(request: Request) -> PlainTextResponse:
    await asyncio.sleep(4 * SHORT_S)
    return PlainTextResponse("slow but whole")


async def echo(request: Request) -> PlainTextResponse:
    message = await request.receive()
    while message["type"] == "http.request" and message.get("more_body"):
        message = await request.receive()
    bodies_seen.append(message["type"])
    return PlainTextResponse("read")


async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        await websocket.send_text(await websocket.receive_text())


APP = Starlette(
    routes=[
        Route("/", root),
        Route("/slow", slow),
        Route("/echo", echo, methods=["POST"]),
        WebSocketRoute("/ws", ws_echo),
    ]
)


async def serve(**limits: float) -> HttpServer:
    server = HttpServer(APP, limits=HttpLimits(**limits))  # type: ignore[arg-type]
    await server.start()
    return server


@pytest.fixture
async def short() -> AsyncIterator[HttpServer]:
    """Every clock at SHORT_S."""
    server = await serve(
        header_timeout_s=SHORT_S, body_timeout_s=SHORT_S, keep_alive_timeout_s=SHORT_S
    )
    try:
        yield server
    finally:
        await server.stop()


async def open_raw(server: HttpServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes (or resets) the connection."""
    data = b""
    async with asyncio.timeout(WAIT_S):
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk


def timed_out(server: HttpServer) -> dict[str, int]:
    return server.counters.by_label(TIMED_OUT)


async def test_a_connection_that_never_asks_is_closed_after_the_header_timeout(
    short: HttpServer,
) -> None:
    reader, writer = await open_raw(short)
    assert await read_until_closed(reader) == b""
    writer.close()
    assert timed_out(short) == {HEADERS: 1}


async def test_dribbling_header_bytes_does_not_restart_the_clock(short: HttpServer) -> None:
    reader, writer = await open_raw(short)
    writer.write(b"GET / HTTP/1.1\r\n")
    closed = asyncio.ensure_future(read_until_closed(reader))
    started = time.monotonic()
    sent = 0
    # One byte every tenth of a second for up to WAIT_S: each would restart a clock that
    # restarted on data, so only a clock that does not restart can close the connection.
    while not closed.done() and time.monotonic() - started < WAIT_S:
        try:
            writer.write(b"x")
            await writer.drain()
        except ConnectionError:
            break
        sent += 1
        await asyncio.sleep(0.1)
    assert closed.done(), "the dribbling connection was never closed"
    assert await closed == b""
    assert sent > 1  # it was still sending when it was cut off
    writer.close()
    assert timed_out(short) == {HEADERS: 1}


async def test_an_idle_kept_alive_connection_is_closed_and_counted(short: HttpServer) -> None:
    reader, writer = await open_raw(short)
    writer.write(REQUEST)
    answer = await read_until_closed(reader)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok")
    writer.close()
    assert timed_out(short) == {KEEP_ALIVE: 1}


async def test_a_next_request_begun_and_abandoned_is_closed_by_the_header_clock() -> None:
    # The keep-alive clock would wait a minute; the first byte of a next request stops it,
    # and the header clock must take over.
    server = await serve(header_timeout_s=SHORT_S, keep_alive_timeout_s=60.0)
    try:
        reader, writer = await open_raw(server)
        writer.write(REQUEST)
        head = await asyncio.wait_for(reader.readuntil(b"ok"), WAIT_S)
        assert head.startswith(b"HTTP/1.1 200")
        writer.write(b"GET / HT")
        assert await read_until_closed(reader) == b""
        writer.close()
        assert timed_out(server) == {HEADERS: 1}
    finally:
        await server.stop()


async def test_a_stalled_body_is_closed_and_the_app_hears_of_it(short: HttpServer) -> None:
    bodies_seen.clear()
    reader, writer = await open_raw(short)
    writer.write(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 100\r\n\r\n0123456789")
    assert await read_until_closed(reader) == b""
    writer.close()
    assert timed_out(short) == {BODY: 1}
    async with asyncio.timeout(WAIT_S):
        while not bodies_seen:
            await asyncio.sleep(0.01)
    assert bodies_seen == ["http.disconnect"]


async def test_requests_made_in_time_are_served_whole(short: HttpServer) -> None:
    async with httpx.AsyncClient(base_url=short.url, timeout=WAIT_S, trust_env=False) as client:
        # A response slower than every clock: waiting for it is not the client's delay.
        assert (await client.get("/slow")).text == "slow but whole"
        assert (await client.post("/echo", content=b"x" * 1000)).text == "read"
        assert (await client.get("/")).text == "ok"
    assert HEADERS not in timed_out(short) and BODY not in timed_out(short)


async def test_a_websocket_outlives_every_clock(short: HttpServer) -> None:
    async with connect(f"ws://127.0.0.1:{short.port}/ws") as ws:
        await asyncio.sleep(4 * SHORT_S)
        await ws.send("still here")
        assert await asyncio.wait_for(ws.recv(), WAIT_S) == "still here"
    assert timed_out(short) == {}


def test_time_outs_must_be_positive() -> None:
    from hereabouts.errors import ConfigError

    for field in ("header_timeout_s", "body_timeout_s", "keep_alive_timeout_s"):
        with pytest.raises(ConfigError, match=field):
            HttpLimits(**{field: 0})  # type: ignore[arg-type]
