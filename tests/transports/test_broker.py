"""The embedded amqtt broker: start or join, loopback only, and the MQTT 3.1.1 fallback."""

from __future__ import annotations

import asyncio
import sys

import pytest

from hereabouts.core.backoff import Backoff
from hereabouts.transports.broker import LOOPBACK, ensure_local_broker, probe_mqtt
from hereabouts.transports.errors import BrokerPortTaken, TransportConfigError
from hereabouts.transports.mqtt import MqttSettings, MqttTransport
from hereabouts.transports.topics import plaza_topic
from tests.fixtures.mosquitto import MosquittoServer, free_port

WAIT_S = 30.0

JOIN_SCRIPT = """
import asyncio, sys
from hereabouts.transports.broker import ensure_local_broker

async def main():
    handle = await ensure_local_broker(port=int(sys.argv[1]))
    print("owned" if handle.owned else "joined", flush=True)
    await handle.close()

asyncio.run(main())
"""


def settings_for(port: int) -> MqttSettings:
    return MqttSettings(port=port, backoff=Backoff(base_s=0.05, cap_s=0.5))


async def next_payload(transport: MqttTransport) -> bytes:
    async def first() -> bytes:
        async for message in transport.messages():
            return message.payload
        raise AssertionError("message stream ended")

    return await asyncio.wait_for(first(), WAIT_S)


async def test_start_then_join_then_stop() -> None:
    port = free_port()
    first = await ensure_local_broker(port=port)
    try:
        assert first.owned
        assert first.host == LOOPBACK
        second = await ensure_local_broker(port=port)
        assert not second.owned
        await second.close()  # a joined handle owns nothing: the broker keeps running
        assert await probe_mqtt(port) == "mqtt"
    finally:
        await first.close()
    assert await probe_mqtt(port) == "nothing"


async def test_a_second_process_joins_the_first() -> None:
    port = free_port()
    async with await ensure_local_broker(port=port) as plaza:
        assert plaza.owned
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", JOIN_SCRIPT, str(port), stdout=asyncio.subprocess.PIPE
        )
        try:
            output, _ = await asyncio.wait_for(child.communicate(), WAIT_S)
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
        assert output.strip() == b"joined"
        assert await probe_mqtt(port) == "mqtt"


async def test_falls_back_to_mqtt311_and_remembers() -> None:
    port = free_port()
    plaza = await ensure_local_broker(port=port)
    try:
        async with (
            MqttTransport(node_name="a", settings=settings_for(port)) as a,
            MqttTransport(node_name="b", settings=settings_for(port)) as b,
        ):
            assert a.state.connected, a.state.last_error
            assert a.state.protocol == "3.1.1"
            await a.subscribe(plaza_topic("newspaper"))
            await b.publish(plaza_topic("newspaper"), b"today")
            assert await next_payload(a) == b"today"

            # Restart the broker: the transport comes back on 3.1.1 without asking again.
            await plaza.close()
            for _ in range(int(WAIT_S / 0.02)):
                if not a.state.connected:
                    break
                await asyncio.sleep(0.02)
            assert not a.state.connected
            plaza = await ensure_local_broker(port=port)
            assert plaza.owned
            assert await a.wait_connected(WAIT_S)
            assert await b.wait_connected(WAIT_S)
            assert a.state.protocol == "3.1.1"
            assert a.state.connections == 2
            await b.publish(plaza_topic("newspaper"), b"tomorrow")
            assert await next_payload(a) == b"tomorrow"
    finally:
        await plaza.close()


async def test_pinned_mqtt5_does_not_fall_back() -> None:
    port = free_port()
    async with await ensure_local_broker(port=port):
        settings = MqttSettings(port=port, protocol="5", backoff=Backoff(base_s=5, cap_s=5))
        async with MqttTransport(node_name="strict", settings=settings) as strict:
            assert not strict.state.connected
            assert "protocol" in (strict.state.last_error or "").lower()


async def test_joins_a_running_mosquitto(mosquitto: MosquittoServer) -> None:
    handle = await ensure_local_broker(port=mosquitto.port)
    assert not handle.owned
    await handle.close()
    assert mosquitto.running


async def test_refuses_a_port_held_by_something_else() -> None:
    async def not_mqtt(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(not_mqtt, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert await probe_mqtt(port) == "other"
        with pytest.raises(BrokerPortTaken):
            await ensure_local_broker(port=port)
    finally:
        server.close()
        await server.wait_closed()


async def test_bad_port_is_a_config_error() -> None:
    with pytest.raises(TransportConfigError):
        await ensure_local_broker(port=0)
