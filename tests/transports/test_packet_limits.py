"""Plaza packet size limits: declared over MQTT 5, enforced by brokers, survived on 3.1.1."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hereabouts.core.backoff import Backoff
from hereabouts.transports.base import DEFAULT_MAX_PAYLOAD_BYTES, DROP_OVERSIZE, Message
from hereabouts.transports.broker import (
    EMBEDDED_MAX_PACKET_BYTES,
    _connect_packet,
    ensure_local_broker,
)
from hereabouts.transports.errors import NotConnected, TransportConfigError
from hereabouts.transports.mqtt import (
    BROKER_MAX_PACKET_BYTES,
    PUBLISH_OVERHEAD_BYTES,
    MqttSettings,
    MqttTransport,
    packet_limit,
)
from hereabouts.transports.mqtt_batch import remaining_length
from hereabouts.transports.topics import PLAZA_ALL, plaza_topic
from tests.fixtures.mosquitto import MAX_PACKET_SIZE, MosquittoServer, free_port

WAIT_S = 30.0

BIG = plaza_topic("newspaper")
SMALL = plaza_topic("hey_there")


def settings(port: int, **overrides: object) -> MqttSettings:
    options: dict[str, object] = {"port": port, "backoff": Backoff(base_s=0.05, cap_s=0.5)}
    options.update(overrides)
    return MqttSettings(**options)  # type: ignore[arg-type]


async def messages_until(transport: MqttTransport, topic: str) -> list[Message]:
    """Every message received up to and including the first one on ``topic``."""

    async def collect() -> list[Message]:
        seen: list[Message] = []
        async for message in transport.messages():
            seen.append(message)
            if message.topic == topic:
                return seen
        raise AssertionError("message stream ended")

    return await asyncio.wait_for(collect(), WAIT_S)


def test_the_declared_limit_is_the_payload_plus_the_publish_overhead() -> None:
    assert packet_limit(16 * 1024) == 17_408  # what a node declares
    assert MqttSettings().packet_limit == DEFAULT_MAX_PAYLOAD_BYTES + PUBLISH_OVERHEAD_BYTES
    assert BROKER_MAX_PACKET_BYTES == MqttSettings().packet_limit == 66_560
    assert EMBEDDED_MAX_PACKET_BYTES == MAX_PACKET_SIZE == BROKER_MAX_PACKET_BYTES
    assert MqttSettings(max_packet_bytes=4096).packet_limit == 4096
    with pytest.raises(TransportConfigError, match="max_packet_bytes"):
        MqttSettings(max_packet_bytes=10)


async def test_an_mqtt5_broker_keeps_back_what_is_over_our_declared_limit(
    mosquitto: MosquittoServer,
) -> None:
    port = mosquitto.port
    async with (
        MqttTransport(node_name="small", settings=settings(port, max_packet_bytes=2048)) as small,
        MqttTransport(node_name="control", settings=settings(port)) as control,
        MqttTransport(node_name="writer", settings=settings(port)) as writer,
    ):
        assert small.state.protocol == "5"
        await small.subscribe(PLAZA_ALL)
        await control.subscribe(PLAZA_ALL)
        await writer.publish(BIG, b"x" * 8192)
        await writer.publish(SMALL, b"after")
        # The broker took the big message (the control reader got it) and kept it from
        # the reader that declared 2 KiB: that reader never read it, so never counted it.
        assert [m.topic for m in await messages_until(control, SMALL)] == [BIG, SMALL]
        assert [m.payload for m in await messages_until(small, SMALL)] == [b"after"]
        assert small.counters.drops[DROP_OVERSIZE] == 0
        assert small.state.connections == 1


async def test_over_mqtt311_an_oversized_message_is_read_then_dropped_and_counted(
    mosquitto: MosquittoServer,
) -> None:
    port = mosquitto.port
    reader_settings = settings(port, protocol="3.1.1", max_payload_bytes=1024)
    async with (
        MqttTransport(node_name="reader", settings=reader_settings) as reader,
        MqttTransport(node_name="writer", settings=settings(port)) as writer,
    ):
        assert reader.state.protocol == "3.1.1"
        await reader.subscribe(PLAZA_ALL)
        await writer.publish(BIG, b"x" * 8192)
        await writer.publish(SMALL, b"after")
        assert [m.payload for m in await messages_until(reader, SMALL)] == [b"after"]
        assert reader.counters.drops[DROP_OVERSIZE] == 1
        assert reader.state.connections == 1  # read past, not disconnected


async def test_the_documented_mosquitto_config_refuses_larger_packets(
    mosquitto: MosquittoServer,
) -> None:
    assert f"max_packet_size {MAX_PACKET_SIZE}" in mosquitto.config_path.read_text()
    port = mosquitto.port
    roomy = settings(port, max_payload_bytes=2 * MAX_PACKET_SIZE)  # would send more
    async with (
        MqttTransport(node_name="reader", settings=settings(port)) as reader,
        MqttTransport(node_name="writer", settings=roomy) as writer,
    ):
        await reader.subscribe(PLAZA_ALL)
        with pytest.raises(NotConnected):
            await writer.publish(BIG, b"x" * MAX_PACKET_SIZE)
        assert await writer.wait_connected(WAIT_S)  # the writer comes back
        await writer.publish(SMALL, b"after")
        assert [m.payload for m in await messages_until(reader, SMALL)] == [b"after"]


async def test_mosquitto_can_run_without_a_packet_limit(
    mosquitto_binary: str, tmp_path: Path
) -> None:
    server = MosquittoServer(
        binary=mosquitto_binary, workdir=tmp_path, port=free_port(), max_packet_size=None
    )
    assert "max_packet_size" not in server.config_path.read_text()


async def test_the_embedded_broker_ends_a_client_that_sends_past_its_limit() -> None:
    port = free_port()
    async with (
        await ensure_local_broker(port=port),
        MqttTransport(node_name="reader", settings=settings(port)) as reader,
        MqttTransport(node_name="writer", settings=settings(port)) as writer,
    ):
        await reader.subscribe(PLAZA_ALL)
        attacker_in, attacker_out = await asyncio.open_connection("127.0.0.1", port)
        try:
            attacker_out.write(_connect_packet("attacker"))
            assert (await asyncio.wait_for(attacker_in.readexactly(4), WAIT_S))[3] == 0
            # A QoS 1 PUBLISH announcing 40 MB, of which only the first 100 kB are sent:
            # the broker must hang up on the announcement, without waiting for the rest.
            topic = BIG.encode()
            head = len(topic).to_bytes(2, "big") + topic + b"\x00\x01"
            size = 40_000_000
            attacker_out.write(b"\x32" + remaining_length(len(head) + size) + head + b"x" * 100_000)
            assert await asyncio.wait_for(attacker_in.read(), WAIT_S) == b""
        finally:
            attacker_out.close()
        # Just under the limit still passes, and the plaza goes on.
        await writer.publish(BIG, b"y" * (EMBEDDED_MAX_PACKET_BYTES - PUBLISH_OVERHEAD_BYTES))
        await writer.publish(SMALL, b"after")
        seen = await messages_until(reader, SMALL)
        assert [len(m.payload) for m in seen] == [DEFAULT_MAX_PAYLOAD_BYTES, 5]
