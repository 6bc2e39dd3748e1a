"""Unsubscribing: no more messages on the filter, and no resubscription after a reconnect."""

from __future__ import annotations

import pytest

from hereabouts.transports.base import Transport
from hereabouts.transports.errors import InvalidTopic, TransportClosed
from hereabouts.transports.memory import MemoryBus
from tests.fixtures.mosquitto import MosquittoServer
from tests.transports.test_mqtt import eventually, messages_until, reader_and_writer, reconnected


async def _only_the_marker_arrives(reader: Transport, writer: Transport, marker: str) -> None:
    """Publish on the dropped filter, then on ``marker``: the reader gets the marker alone."""
    await writer.publish("room/dropped", b"should not arrive")
    await writer.publish(marker, b"marker")
    seen = await messages_until(reader, marker)  # type: ignore[arg-type]
    assert [m.topic for m in seen] == [marker]


async def test_memory_bus_unsubscribe() -> None:
    bus = MemoryBus()
    async with bus.transport(name="reader") as reader, bus.transport(name="writer") as writer:
        await reader.subscribe("room/dropped")
        await reader.subscribe("room/kept")
        await reader.unsubscribe("room/dropped")
        await reader.unsubscribe("room/never-subscribed")  # a no-op
        await _only_the_marker_arrives(reader, writer, "room/kept")
        with pytest.raises(InvalidTopic):
            await reader.unsubscribe("room/#/bad")
    with pytest.raises(TransportClosed):
        await reader.unsubscribe("room/kept")


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_mqtt_unsubscribe_survives_reconnects(
    mosquitto: MosquittoServer, protocol: str
) -> None:
    async with reader_and_writer(mosquitto, protocol=protocol) as (reader, writer):
        await reader.subscribe("room/dropped")
        await reader.subscribe("room/kept")
        await reader.unsubscribe("room/dropped")
        await _only_the_marker_arrives(reader, writer, "room/kept")

        # The broker forgets everything (clean sessions); the reader must not ask again.
        mosquitto.restart()
        await reconnected(reader, writer, 2)
        await _only_the_marker_arrives(reader, writer, "room/kept")


async def test_mqtt_unsubscribe_while_disconnected_is_remembered(
    mosquitto: MosquittoServer,
) -> None:
    async with reader_and_writer(mosquitto) as (reader, writer):
        await reader.subscribe("room/dropped")
        await reader.subscribe("room/kept")
        mosquitto.stop()
        await eventually(lambda: not reader.state.connected, "the reader to notice")
        await reader.unsubscribe("room/dropped")
        mosquitto.start()
        await reconnected(reader, writer, 2)
        await _only_the_marker_arrives(reader, writer, "room/kept")
