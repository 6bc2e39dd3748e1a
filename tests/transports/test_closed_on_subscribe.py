"""A broker that closes the connection on SUBSCRIBE, as RabbitMQ 3.10 does on a denied one.

It answers CONNECT with CONNACK, then hangs up on the first SUBSCRIBE without a SUBACK. The
transport must count that attempt as failed, say that the subscription was never confirmed
(pointing at the access rules, not at a firewall), retry, and leave nothing behind: before,
closing it afterwards logged asyncio's "Future exception was never retrieved ...
MqttCodeError('Unexpected disconnection')" at ERROR with a traceback.
"""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from hereabouts.core.backoff import Backoff
from hereabouts.transports.mqtt import MqttSettings, MqttTransport, likely_cause

CONNACK = bytes([0x20, 0x02, 0x00, 0x00])
SUBSCRIBE = 0x80


class HangsUpOnSubscribe:
    """The smallest broker that lets clients in and hangs up on their first SUBSCRIBE."""

    def __init__(self) -> None:
        self.subscribes = 0
        self.server: asyncio.Server | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readexactly(1)
                length, shift = 0, 0
                while True:  # the remaining length, seven bits a byte
                    byte = (await reader.readexactly(1))[0]
                    length |= (byte & 0x7F) << shift
                    shift += 7
                    if not byte & 0x80:
                        break
                await reader.readexactly(length)
                if head[0] & 0xF0 == 0x10:  # CONNECT
                    writer.write(CONNACK)
                    await writer.drain()
                elif head[0] & 0xF0 == SUBSCRIBE:
                    self.subscribes += 1
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def test_a_subscription_the_broker_hangs_up_on_is_retried_reported_and_leaves_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    broker = HangsUpOnSubscribe()
    async with broker as port:
        settings = MqttSettings(
            port=port, protocol="3.1.1", timeout_s=2.0, backoff=Backoff(base_s=0.05, cap_s=0.1)
        )
        transport = MqttTransport(node_name="denied", settings=settings)
        await transport.subscribe("hereabouts/v1/plaza/+")
        async with transport:
            while broker.subscribes < 2:  # retried
                await asyncio.sleep(0.05)
            state = transport.state
            assert not state.connected
            assert state.missing_subscriptions == ("hereabouts/v1/plaza/+",)
            assert state.last_error is not None
            assert "access rules" in likely_cause(state.last_error, timeout_s=2.0)
        await asyncio.sleep(0.1)
    gc.collect()
    await asyncio.sleep(0.1)
    never = [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]
    assert never == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
