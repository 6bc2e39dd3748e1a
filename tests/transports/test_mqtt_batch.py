"""QoS 0 publications written once per loop turn (hereabouts.transports.mqtt_batch).

The encoding is checked against bytes worked out by hand from the MQTT 3.1.1 and 5.0
specifications; everything else runs against a real Mosquitto.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from hereabouts.transports import mqtt_batch
from hereabouts.transports.errors import Backlogged, NotConnected
from hereabouts.transports.mqtt import MqttTransport
from hereabouts.transports.mqtt_batch import publish_packet, remaining_length
from tests.fixtures.mosquitto import MosquittoServer
from tests.transports.test_mqtt import WAIT_S, next_message, reader_and_writer

PROTOCOLS = ["5", "3.1.1"]


@pytest.mark.parametrize(
    ("size", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
        (268_435_455, b"\xff\xff\xff\x7f"),
    ],
)
def test_remaining_length_is_mqtts_variable_byte_integer(size: int, encoded: bytes) -> None:
    assert remaining_length(size) == encoded


def test_publish_packets_byte_for_byte() -> None:
    # PUBLISH, QoS 0: type 3 in the high nibble, RETAIN in bit 0; remaining length; topic
    # as a two-byte length and its bytes; MQTT 5 only: property length 0; the payload.
    assert publish_packet(b"a/b", b"hi", retain=False, mqtt5=True) == (
        b"\x30\x08" + b"\x00\x03a/b" + b"\x00" + b"hi"
    )
    assert publish_packet(b"a/b", b"hi", retain=True, mqtt5=False) == (
        b"\x31\x07" + b"\x00\x03a/b" + b"hi"
    )
    big = publish_packet(b"t", b"x" * 200, retain=False, mqtt5=True)
    assert big[:3] == b"\x30\xcc\x01"  # 2 + 1 + 1 + 200 = 204 = 0x4c | 0x80, 0x01
    assert len(big) == 3 + 204


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_burst_in_one_turn_arrives_whole_and_in_order(
    mosquitto: MosquittoServer, protocol: str
) -> None:
    async with reader_and_writer(mosquitto, protocol=protocol) as (reader, writer):
        await reader.subscribe("burst/#", qos=0)
        sizes = [0, 1, 127, 128, 16_384, 60_000]  # across remaining-length byte counts
        payloads = [os.urandom(sizes[i % len(sizes)]) for i in range(300)]
        for number, payload in enumerate(payloads):  # no await yields: one loop turn
            await writer.publish(f"burst/{number % 7}", payload, qos=0)
        received = [await next_message(reader) for _ in payloads]
        assert [m.payload for m in received] == payloads
        assert [m.topic for m in received] == [f"burst/{n % 7}" for n in range(300)]

        await writer.publish("kept/one", b"retained", qos=0, retain=True)
        await writer.publish("burst/end", b"", qos=0)
        assert (await next_message(reader)).topic == "burst/end"
        await reader.subscribe("kept/+", qos=0)
        kept = await next_message(reader)
        assert (kept.topic, kept.payload, kept.retain) == ("kept/one", b"retained", True)


async def test_qos0_then_qos1_in_one_turn_leaves_the_loop_idle(
    mosquitto: MosquittoServer,
) -> None:
    """The QoS 1 publication asks for a writer after the QoS 0 write is scheduled; the
    write must leave that writer to paho, or it stays registered on a socket that is always
    writable and the event loop spins."""
    async with reader_and_writer(mosquitto) as (reader, writer):
        await reader.subscribe("mixed/+", qos=1)
        for round_number in range(20):
            await writer.publish("mixed/zero", b"%d" % round_number, qos=0)
            await writer.publish("mixed/one", b"%d" % round_number, qos=1)
        seen = {(m.topic, m.payload) for m in [await next_message(reader) for _ in range(40)]}
        assert len(seen) == 40

        started = time.process_time()
        await asyncio.sleep(2.0)
        # An idle process uses milliseconds here; a spinning loop uses a whole core.
        assert time.process_time() - started < 0.5


async def test_a_broker_that_stops_reading_gets_refusals_not_a_growing_queue(
    mosquitto: MosquittoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mqtt_batch, "MAX_PENDING_WRITES", 8)
    async with reader_and_writer(mosquitto) as (reader, writer):
        await reader.subscribe("stalled/+", qos=0)
        assert mosquitto.process is not None
        pid = mosquitto.process.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            refused = await _publish_until_refused(writer, b"x" * 60_000)
            assert isinstance(refused, Backlogged)
            assert refused.reason == "broker_backlogged"
        finally:
            os.kill(pid, signal.SIGCONT)

        # Once the broker reads again, the queue drains and publishing works again.
        async def publish_again() -> None:
            while True:
                try:
                    await writer.publish("stalled/after", b"after", qos=0)
                    return
                except NotConnected:
                    await asyncio.sleep(0.05)

        await asyncio.wait_for(publish_again(), WAIT_S)
        while (await next_message(reader)).topic != "stalled/after":
            pass


async def _publish_until_refused(writer: MqttTransport, payload: bytes) -> NotConnected:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while loop.time() < deadline:
        try:
            await writer.publish("stalled/during", payload, qos=0)
        except NotConnected as exc:
            return exc
        await asyncio.sleep(0)  # one write per loop turn
    raise AssertionError("the kernel's socket buffers never filled")
