"""The broker's messages get through a busy event loop in a few turns, against a real
Mosquitto: every packet waiting on the socket is read per readable event
(hereabouts.transports.mqtt_read), and the transport takes every message aiomqtt has
queued at once instead of one per three loop turns.

A hub's event loop is busy with its browsers; what matters is how many of its turns the
broker's messages take to get through. Here a task keeps every turn busy for a moment (as
a socket read of heartbeats does) while a burst arrives, and the turns until the last
message is read are counted.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from hereabouts.transports import mqtt_read
from tests.fixtures.mosquitto import MosquittoServer
from tests.transports.test_mqtt import WAIT_S, reader_and_writer

BURST = 1_000


async def busy_turns_to_receive(mosquitto: MosquittoServer) -> int:
    async with reader_and_writer(mosquitto, protocol="5") as (reader, writer):
        await reader.subscribe("many/#", qos=0)
        await writer.publish("many/start", b"", qos=0)
        messages = reader.messages()
        assert (await anext(messages)).topic == "many/start"
        turns = 0
        received = asyncio.Event()

        async def keep_busy() -> None:
            nonlocal turns
            while not received.is_set():
                turns += 1
                time.sleep(0.0005)  # this turn's other work
                await asyncio.sleep(0)

        async def read_all() -> None:
            async for message in messages:
                if message.topic == "many/end":
                    received.set()
                    return

        busy = asyncio.create_task(keep_busy())
        reading = asyncio.create_task(read_all())
        for number in range(BURST):
            await writer.publish(f"many/{number % 5}", b"x" * 300, qos=0)
        await writer.publish("many/end", b"", qos=0)
        async with asyncio.timeout(WAIT_S * 6):
            await reading
        await busy
        return turns


async def test_a_burst_gets_through_a_busy_loop_in_a_few_turns(
    mosquitto: MosquittoServer,
) -> None:
    assert await busy_turns_to_receive(mosquitto) < BURST // 10


async def test_one_packet_per_event_would_take_a_turn_per_message(
    mosquitto: MosquittoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """paho's own bound (one QoS 0 packet per readable event): what the test above rules
    out, and proof that the bound is honoured."""
    monkeypatch.setattr(mqtt_read, "MAX_PACKETS_PER_READ", 1)
    assert await busy_turns_to_receive(mosquitto) >= BURST


def test_a_qos0_publish_is_parsed_as_mqtt_lays_it_out() -> None:
    # Topic length, topic, (MQTT 5: property length), payload.
    assert mqtt_read.parse_at_most_once(b"\x00\x03a/b" + b"hi", mqtt5=False) == ("a/b", b"hi")
    assert mqtt_read.parse_at_most_once(b"\x00\x03a/b\x00" + b"hi", mqtt5=True) == ("a/b", b"hi")
    assert mqtt_read.parse_at_most_once(bytearray(b"\x00\x01t\x00"), mqtt5=True) == ("t", b"")


@pytest.mark.parametrize(
    ("packet", "mqtt5"),
    [
        (b"\x00\x03a/b\x03\x23\x00\x01hi", True),  # properties (a topic alias): paho's
        (b"\x00\x00\x03\x23\x00\x01hi", True),  # an empty topic: an alias, paho's
        (b"\x00\x02\xff\xfehi", False),  # not UTF-8: paho says so in its own way
        (b"\x00\x09a/b", False),  # a topic longer than the packet
        (b"\x00", False),
        (b"\x00\x03a/b", True),  # MQTT 5 without its property length
    ],
)
def test_anything_unusual_is_left_to_paho(packet: bytes, mqtt5: bool) -> None:
    assert mqtt_read.parse_at_most_once(packet, mqtt5=mqtt5) is None


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_qos0_skips_pahos_message_objects_and_qos1_does_not(
    mosquitto: MosquittoServer, protocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import paho.mqtt.client as paho

    handled: list[int] = []
    original = paho.Client._handle_publish

    def spy(self: paho.Client) -> object:
        handled.append(self._in_packet["command"])
        return original(self)

    monkeypatch.setattr(paho.Client, "_handle_publish", spy)
    async with reader_and_writer(mosquitto, protocol=protocol) as (reader, writer):
        await reader.subscribe("mixed/#", qos=1)
        messages = reader.messages()
        await writer.publish("mixed/0", b"at most once", qos=0)
        await writer.publish("mixed/1", b"at least once", qos=1)
        got = [await anext(messages), await anext(messages)]
        assert sorted((m.topic, m.payload) for m in got) == [
            ("mixed/0", b"at most once"),
            ("mixed/1", b"at least once"),
        ]
        assert [command >> 1 & 3 for command in handled] == [1]  # only the QoS 1 one
