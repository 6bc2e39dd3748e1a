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
