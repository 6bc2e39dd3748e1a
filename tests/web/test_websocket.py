"""The HTTP server's WebSocket protocol reads ahead, and still loses and reorders nothing."""

from __future__ import annotations

import asyncio

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect

from hereabouts.web.server import HttpServer
from hereabouts.web.websocket import ReadAheadWebSocketProtocol

MESSAGES = 300


async def test_a_flood_into_a_slow_app_arrives_whole_and_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    paused_after: list[bool] = []  # whether reading was paused after each message
    original = ReadAheadWebSocketProtocol.send_receive_event_to_app

    def spy(self: ReadAheadWebSocketProtocol) -> None:
        original(self)
        paused_after.append(self.read_paused)

    monkeypatch.setattr(ReadAheadWebSocketProtocol, "send_receive_event_to_app", spy)
    received: list[str] = []
    done = asyncio.Event()

    async def slow(websocket: WebSocket) -> None:
        await websocket.accept()
        while len(received) < MESSAGES:
            received.append(await websocket.receive_text())
            if len(received) % 10 == 0:
                await asyncio.sleep(0.01)  # falls behind: the socket must pause, not drop
        await websocket.send_text("done")
        await websocket.close()
        done.set()

    app = Starlette(routes=[WebSocketRoute("/ws", slow)])
    async with HttpServer(app) as server, connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
        for n in range(MESSAGES):
            await ws.send(f"m{n}")
        assert await asyncio.wait_for(ws.recv(), 30) == "done"
        await asyncio.wait_for(done.wait(), 30)
    assert received == [f"m{n}" for n in range(MESSAGES)]
    # The app fell behind, so reading paused at times, but not after every message.
    assert any(paused_after) and not all(paused_after)
