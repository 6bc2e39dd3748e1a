"""MqttTransport against a real Mosquitto: round trips, wills, reconnects, client ids."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from hereabouts.core.backoff import Backoff
from hereabouts.transports.base import Message
from hereabouts.transports.errors import NotConnected, WillAfterConnect
from hereabouts.transports.mqtt import MqttSettings, MqttTransport, make_client_id
from hereabouts.transports.topics import PLAZA_ALL, plaza_topic
from tests.fixtures.mosquitto import MosquittoServer

WAIT_S = 30.0
"""Generous: every wait below normally ends in milliseconds."""

WILL_CLIENT = Path(__file__).with_name("will_client.py")


def fast_settings(server: MosquittoServer, **overrides: object) -> MqttSettings:
    """Short backoff so reconnect tests take well under a second of retrying."""
    options: dict[str, object] = {
        "port": server.port,
        "backoff": Backoff(base_s=0.05, cap_s=0.5),
    }
    options.update(overrides)
    return MqttSettings(**options)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def reader_and_writer(
    server: MosquittoServer, **overrides: object
) -> AsyncIterator[tuple[MqttTransport, MqttTransport]]:
    """Two connected transports on ``server``: one to subscribe, one to publish."""
    settings = fast_settings(server, **overrides)
    async with (
        MqttTransport(node_name="reader", settings=settings) as reader,
        MqttTransport(node_name="writer", settings=settings) as writer,
    ):
        yield reader, writer


async def eventually(check: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def reconnected(a: MqttTransport, b: MqttTransport, connections: int) -> None:
    """Wait until both have made their ``connections``-th connection and are connected."""
    await eventually(
        lambda: a.state.connections == b.state.connections == connections
        and a.state.connected
        and b.state.connected,
        "both to reconnect",
    )


async def next_message(transport: MqttTransport, timeout: float = WAIT_S) -> Message:
    async def first() -> Message:
        async for message in transport.messages():
            return message
        raise AssertionError("message stream ended")

    return await asyncio.wait_for(first(), timeout)


async def messages_until(transport: MqttTransport, topic: str) -> list[Message]:
    """Every message received up to and including the first one on ``topic``."""
    seen: list[Message] = []
    while True:
        message = await next_message(transport)
        seen.append(message)
        if message.topic == topic:
            return seen


async def test_round_trip_over_mqtt5(mosquitto: MosquittoServer) -> None:
    settings = fast_settings(mosquitto)
    async with (
        MqttTransport(node_name="alice", settings=settings) as alice,
        MqttTransport(node_name="bob", settings=settings) as bob,
    ):
        assert alice.state.connected
        assert alice.state.protocol == "5"
        await alice.subscribe(PLAZA_ALL)
        await bob.publish(plaza_topic("hey_there"), b"\x00signed bytes\xff")
        message = await next_message(alice)
        assert message.topic == plaza_topic("hey_there")
        assert message.payload == b"\x00signed bytes\xff"
        assert bob.counters.messages_out == 1
        assert alice.counters.messages_in == 1
    assert not alice.state.connected
    assert alice.state.closed


async def test_subscriptions_made_before_connecting_are_applied(
    mosquitto: MosquittoServer,
) -> None:
    settings = fast_settings(mosquitto)
    early = MqttTransport(node_name="early", settings=settings)
    await early.subscribe("t/#")
    async with early, MqttTransport(node_name="pub", settings=settings) as pub:
        await pub.publish("t/1", b"x")
        assert (await next_message(early)).payload == b"x"


async def test_will_is_published_when_the_process_is_killed(
    mosquitto: MosquittoServer,
) -> None:
    async with MqttTransport(node_name="watcher", settings=fast_settings(mosquitto)) as watcher:
        await watcher.subscribe(PLAZA_ALL)
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            str(WILL_CLIENT),
            str(mosquitto.port),
            plaza_topic("lost"),
            "will-child is lost",
            "wait",
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), WAIT_S)
            assert line.strip() == b"READY", line
            child.send_signal(signal.SIGKILL)
            await asyncio.wait_for(child.wait(), WAIT_S)
            message = await next_message(watcher)
            assert message.topic == plaza_topic("lost")
            assert message.payload == b"will-child is lost"
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()


async def test_will_is_not_published_after_a_clean_close(mosquitto: MosquittoServer) -> None:
    async with MqttTransport(node_name="watcher", settings=fast_settings(mosquitto)) as watcher:
        await watcher.subscribe(PLAZA_ALL)
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            str(WILL_CLIENT),
            str(mosquitto.port),
            plaza_topic("lost"),
            "must not appear",
            "close",
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            output, _ = await asyncio.wait_for(child.communicate(), WAIT_S)
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
        assert child.returncode == 0, output
        assert output.split() == [b"READY", b"CLOSED"]
        # The broker handled the child's DISCONNECT before the child exited; a will would
        # therefore reach us before this sentinel, which we publish only now.
        await watcher.publish(plaza_topic("sentinel"), b"end")
        seen = await messages_until(watcher, plaza_topic("sentinel"))
        assert [m.topic for m in seen] == [plaza_topic("sentinel")]


async def test_reconnects_and_resubscribes_after_broker_restart(
    mosquitto: MosquittoServer,
) -> None:
    settings = fast_settings(mosquitto)
    async with (
        MqttTransport(node_name="sub", settings=settings) as sub,
        MqttTransport(node_name="pub", settings=settings) as pub,
    ):
        await sub.subscribe("room/+")
        await pub.publish("room/1", b"before")
        assert (await next_message(sub)).payload == b"before"

        mosquitto.stop()
        await eventually(lambda: not sub.state.connected, "sub to notice the outage")
        await eventually(lambda: not pub.state.connected, "pub to notice the outage")
        assert sub.state.last_error
        with pytest.raises(NotConnected):
            await pub.publish("room/1", b"into the void")

        mosquitto.start()  # same port; Mosquitto has no persistence, so subscriptions are gone
        assert await sub.wait_connected(WAIT_S)
        assert await pub.wait_connected(WAIT_S)
        assert sub.state.connections == 2
        assert sub.counters.reconnects == 1

        await pub.publish("room/2", b"after")
        message = await next_message(sub)
        assert (message.topic, message.payload) == ("room/2", b"after")


async def test_a_connection_restarted_on_request_comes_back_with_its_subscriptions(
    mosquitto: MosquittoServer,
) -> None:
    """What a node does when its own pulses stop coming back: end the connection now."""
    settings = fast_settings(mosquitto)
    async with (
        MqttTransport(node_name="sub", settings=settings) as sub,
        MqttTransport(node_name="pub", settings=settings) as pub,
    ):
        await sub.subscribe("room/+")
        sub.restart_connection("a test says the link is dead")
        await eventually(lambda: sub.state.connections == 2, "sub to connect again")
        assert sub.state.connected and sub.state.missing_subscriptions == ()
        assert "a test says the link is dead" in (sub.state.last_error or "")
        await pub.publish("room/1", b"after")
        assert (await next_message(sub)).payload == b"after"
        sub.restart_connection("while connected only")  # asked twice: restarts once
        sub.restart_connection("while connected only")
        await eventually(lambda: sub.state.connections == 3, "sub to connect again")
        await asyncio.sleep(0.3)
        assert sub.state.connections == 3


async def test_starts_while_the_broker_is_down(mosquitto: MosquittoServer) -> None:
    mosquitto.stop()
    transport = MqttTransport(node_name="patient", settings=fast_settings(mosquitto))
    async with transport:  # never raises for an unreachable broker
        assert not transport.state.connected
        assert transport.state.last_error
        mosquitto.start()
        assert await transport.wait_connected(WAIT_S)
        assert transport.state.connections == 1
        assert transport.counters.reconnects == 0


async def test_two_nodes_with_one_name_do_not_kick_each_other(
    mosquitto: MosquittoServer,
) -> None:
    settings = fast_settings(mosquitto)
    async with (
        MqttTransport(node_name="twin", settings=settings) as first,
        MqttTransport(node_name="twin", settings=settings) as second,
    ):
        assert first.client_id != second.client_id
        assert first.client_id.startswith("hereabouts-twin-")
        await first.subscribe("twins/first")
        await second.subscribe("twins/second")
        await second.publish("twins/first", b"hello first")
        await first.publish("twins/second", b"hello second")
        assert (await next_message(first)).payload == b"hello first"
        assert (await next_message(second)).payload == b"hello second"
        # Had the broker taken over a session, one of them would have reconnected.
        assert first.state.connected and first.state.connections == 1
        assert second.state.connected and second.state.connections == 1


async def test_set_will_after_connect_is_refused(mosquitto: MosquittoServer) -> None:
    async with MqttTransport(node_name="late", settings=fast_settings(mosquitto)) as node:
        with pytest.raises(WillAfterConnect):
            node.set_will(plaza_topic("lost"), b"too late")


def test_client_ids_are_safe_and_labelled() -> None:
    assert make_client_id("node 1/α", "ab12") == "hereabouts-node_1__-ab12"
    assert make_client_id("", "ab12") == "hereabouts-node-ab12"
    assert len(make_client_id("x" * 500, "ab12")) <= 60


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_no_local_keeps_our_own_publications_away_on_mqtt5(
    mosquitto: MosquittoServer, protocol: str
) -> None:
    settings = fast_settings(mosquitto, protocol=protocol)
    async with (
        MqttTransport(node_name="hub", settings=settings) as hub,
        MqttTransport(node_name="other", settings=settings) as other,
    ):
        await hub.subscribe("room/+", no_local=True)
        await hub.publish("room/1", b"ours")
        await other.publish("room/1", b"theirs")
        seen = await messages_until(hub, "room/1")
        if protocol == "5":
            assert [m.payload for m in seen] == [b"theirs"]
        else:  # 3.1.1 cannot ask: our own message comes back first
            assert [m.payload for m in seen] == [b"ours"]
            assert (await next_message(hub)).payload == b"theirs"
        # And after a reconnect, the option is restored with the subscription.
        mosquitto.restart()
        await reconnected(hub, other, 2)
        await hub.publish("room/2", b"ours again")
        await other.publish("room/2", b"theirs again")
        seen = await messages_until(hub, "room/2")
        expected = [b"theirs again"] if protocol == "5" else [b"ours again"]
        assert [m.payload for m in seen] == expected
