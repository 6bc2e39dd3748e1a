"""The event stream's bookkeeping without HTTP: backlog limits and endings."""

from __future__ import annotations

import asyncio

import pytest

from hereabouts.core.effects import Status, StatusChanged
from hereabouts.web.payload import peers_json
from hereabouts.web.stream import EventStreams
from tests.web.conftest import BRAVO, T_MS, TIMEOUT_S, FakeNode, eventually, neighbourhood


def change(n: int) -> StatusChanged:
    return StatusChanged(
        did=BRAVO, name="bravo", old=Status.ONLINE, new=Status.MISSING, at_ms=T_MS + n,
        cause="timeout",
    )


async def test_a_client_too_far_behind_gets_a_fresh_snapshot() -> None:
    node = FakeNode(views=neighbourhood())
    streams = EventStreams(keepalive_s=TIMEOUT_S, buffer=2)
    stream = streams.open(node, lambda: peers_json(node))
    events = stream.events()
    async with asyncio.timeout(TIMEOUT_S):
        assert "event: snapshot" in await anext(events)
        for n in range(5):  # more than the buffer, faster than the client reads
            stream.offer(change(n))
        assert (await anext(events)).startswith("event: snapshot")
        stream.offer(change(9))
        assert (await anext(events)).startswith("event: change")
        streams.close_all()
        with pytest.raises(StopAsyncIteration):
            await anext(events)
    await eventually(lambda: not node.subscribers, "the subscription is released")
    assert len(streams) == 0


async def test_a_stream_opened_while_closing_ends_after_its_snapshot() -> None:
    node = FakeNode(views=neighbourhood())
    streams = EventStreams(keepalive_s=TIMEOUT_S, buffer=8)
    streams.close_all()
    chunks = []
    async with asyncio.timeout(TIMEOUT_S):
        async for chunk in streams.open(node, lambda: peers_json(node)).events():
            chunks.append(chunk)
    assert len(chunks) == 1 and "event: snapshot" in chunks[0]


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError):
        EventStreams(keepalive_s=0, buffer=1)
    with pytest.raises(ValueError):
        EventStreams(keepalive_s=1, buffer=0)
