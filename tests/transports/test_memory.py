"""The in-memory bus: MQTT matching, retain, wills on kill only, bounded queues."""

from __future__ import annotations

import asyncio

import pytest

from hereabouts.transports.base import DROP_OVERSIZE, DROP_QUEUE_FULL, Message, Transport
from hereabouts.transports.errors import (
    InvalidTopic,
    NotConnected,
    PayloadTooLarge,
    TransportClosed,
    TransportConfigError,
    WillAfterConnect,
)
from hereabouts.transports.memory import MemoryBus
from hereabouts.transports.topics import PLAZA_ALL, plaza_topic

WAIT_S = 5.0


def drain(transport: Transport) -> list[Message]:
    """Everything queued right now (the bus delivers synchronously)."""
    taken: list[Message] = []
    while len(transport._incoming):
        item = transport._incoming._items.popleft()
        taken.append(item)
    return taken


async def next_message(transport: Transport) -> Message:
    async def first() -> Message:
        async for message in transport.messages():
            return message
        raise AssertionError("message stream ended")

    return await asyncio.wait_for(first(), WAIT_S)


async def test_wildcards_route_like_mqtt() -> None:
    bus = MemoryBus()
    async with (
        bus.transport(name="pub") as pub,
        bus.transport(name="plaza") as plaza,
        bus.transport(name="everything") as everything,
        bus.transport(name="news") as news,
    ):
        await plaza.subscribe(PLAZA_ALL)
        await everything.subscribe("#")
        await news.subscribe(plaza_topic("newspaper"))

        await pub.publish(plaza_topic("hey_there"), b"hi")
        await pub.publish(plaza_topic("newspaper"), b"news")
        await pub.publish("hereabouts/v1/site/room1", b"visitor")

        assert [m.payload for m in drain(plaza)] == [b"hi", b"news"]
        assert [m.payload for m in drain(everything)] == [b"hi", b"news", b"visitor"]
        assert [m.payload for m in drain(news)] == [b"news"]
        assert drain(pub) == []
        assert pub.counters.messages_out == 3
        assert everything.counters.messages_in == 3


async def test_publisher_hears_itself_like_on_mqtt() -> None:
    bus = MemoryBus()
    async with bus.transport() as node:
        await node.subscribe("a/+")
        await node.publish("a/b", b"echo")
        assert (await next_message(node)).payload == b"echo"


async def test_will_is_delivered_when_killed() -> None:
    bus = MemoryBus()
    async with bus.transport(name="watcher") as watcher:
        await watcher.subscribe(plaza_topic("lost"))
        doomed = bus.transport(name="doomed")
        doomed.set_will(plaza_topic("lost"), b"doomed is gone")
        await doomed.connect()
        doomed.kill()
        message = await next_message(watcher)
        assert message == Message(topic=plaza_topic("lost"), payload=b"doomed is gone")
        assert doomed.state.closed
        assert doomed.state.last_error == "killed"
        assert doomed not in bus.attached
        with pytest.raises(TransportClosed):
            await doomed.publish("x", b"")


async def test_will_is_not_delivered_on_clean_close() -> None:
    bus = MemoryBus()
    async with bus.transport(name="watcher") as watcher:
        await watcher.subscribe("#")
        polite = bus.transport(name="polite")
        polite.set_will(plaza_topic("lost"), b"should not appear")
        async with polite:
            pass
        polite.kill()  # killing an already closed transport does nothing
        assert drain(watcher) == []


async def test_set_will_after_connect_is_refused() -> None:
    bus = MemoryBus()
    async with bus.transport() as node:
        with pytest.raises(WillAfterConnect):
            node.set_will("a", b"late")


async def test_full_queue_drops_oldest_and_counts() -> None:
    bus = MemoryBus()
    async with bus.transport() as pub, bus.transport(incoming_capacity=3) as slow:
        await slow.subscribe("t/#")
        for i in range(10):
            await pub.publish(f"t/{i}", str(i).encode())
        kept = drain(slow)
        assert [m.payload for m in kept] == [b"7", b"8", b"9"]
        assert slow.counters.drops[DROP_QUEUE_FULL] == 7
        assert slow.counters.messages_in == 10
        assert slow.counters.as_dict()["drops"] == {DROP_QUEUE_FULL: 7}


async def test_oversize_is_refused_out_and_dropped_in() -> None:
    bus = MemoryBus()
    async with bus.transport() as big, bus.transport(max_payload_bytes=4) as small:
        await small.subscribe("#")
        with pytest.raises(PayloadTooLarge):
            await small.publish("t", b"12345")
        await big.publish("t", b"12345")
        await big.publish("t", b"1234")
        assert [m.payload for m in drain(small)] == [b"1234"]
        assert small.counters.drops[DROP_OVERSIZE] == 1


async def test_retained_messages_replay_to_late_subscribers() -> None:
    bus = MemoryBus()
    async with bus.transport() as pub:
        await pub.publish("hereabouts/v1/site/r1", b"3 here", retain=True)
        await pub.publish("hereabouts/v1/site/r2", b"1 here", retain=True)
        await pub.publish("hereabouts/v1/site/r2", b"", retain=True)  # clears r2
        assert bus.retained("hereabouts/v1/site/r1") == b"3 here"
        assert bus.retained("hereabouts/v1/site/r2") is None
        late = bus.transport()
        await late.subscribe("hereabouts/v1/site/+")  # before connecting: replayed on connect
        async with late:
            assert drain(late) == [
                Message(topic="hereabouts/v1/site/r1", payload=b"3 here", retain=True)
            ]


async def test_messages_iterator_ends_after_close() -> None:
    bus = MemoryBus()
    node = bus.transport()
    async with node:
        await node.subscribe("a")
        await node.publish("a", b"1")

    async def collect() -> list[bytes]:
        return [m.payload async for m in node.messages()]

    assert await asyncio.wait_for(collect(), WAIT_S) == [b"1"]
    assert not await node.wait_connected(timeout=0.01)


async def test_state_reports_connection() -> None:
    bus = MemoryBus()
    node = bus.transport(name="n1")
    assert not node.state.connected
    with pytest.raises(NotConnected):
        await node.publish("a", b"")
    async with node:
        assert node.state.connected
        assert node.state.protocol == "memory"
        assert node.state.endpoint == "memory://n1"
        assert await node.wait_connected(timeout=WAIT_S)
        assert bus.attached == [node]
        health = node.state.as_dict()
        assert health["connected"] is True
        assert health["connections"] == 1
    assert not node.state.connected
    assert node.state.closed
    with pytest.raises(TransportClosed):
        await node.connect()


async def test_bad_arguments_are_typed_errors() -> None:
    bus = MemoryBus()
    async with bus.transport() as node:
        with pytest.raises(InvalidTopic):
            await node.publish("a/+", b"")
        with pytest.raises(InvalidTopic):
            await node.subscribe("a/#/b")
        with pytest.raises(TransportConfigError):
            await node.publish("a", b"", qos=3)
    with pytest.raises(TransportConfigError):
        bus.transport(incoming_capacity=0)


async def test_no_local_keeps_a_subscribers_own_publications_away() -> None:
    bus = MemoryBus()
    async with bus.transport(name="hub") as hub, bus.transport(name="other") as other:
        await hub.subscribe("room/+", no_local=True)
        await other.subscribe("room/+")
        await hub.publish("room/1", b"ours")
        await other.publish("room/1", b"theirs")
        assert [m.payload for m in drain(hub)] == [b"theirs"]
        assert [m.payload for m in drain(other)] == [b"ours", b"theirs"]
