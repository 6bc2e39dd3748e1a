"""MqttTransport over a list of brokers: the next one is tried at once when one fails."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hereabouts.core.backoff import Backoff
from hereabouts.transports.mqtt import MqttSettings, MqttTransport
from hereabouts.transports.topics import PLAZA_ALL, plaza_topic
from tests.fixtures.mosquitto import MosquittoServer, free_port
from tests.transports.test_mqtt import eventually, next_message


@pytest.fixture
def second(mosquitto_binary: str, tmp_path: Path) -> Iterator[MosquittoServer]:
    """Another Mosquitto, as a second member would be."""
    workdir = tmp_path / "second"
    workdir.mkdir()
    server = MosquittoServer(binary=mosquitto_binary, workdir=workdir, port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


class AlmostOne:
    """A jitter source that always draws (nearly) the longest delay."""

    def random(self) -> float:
        return 0.999


def listing(*ports: int, **options: object) -> MqttSettings:
    first, *others = ports
    return MqttSettings(
        port=first,
        failover=tuple(("127.0.0.1", port) for port in others),
        backoff=Backoff(base_s=0.05, cap_s=0.5),
        **options,  # type: ignore[arg-type]
    )


async def test_a_dead_first_broker_is_passed_over_at_once(
    mosquitto: MosquittoServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "hereabouts.transports.mqtt")
    dead = free_port()
    started = time.monotonic()
    settings = listing(dead, mosquitto.port, protocol="3.1.1")
    async with MqttTransport(node_name="n", settings=settings) as transport:
        assert await transport.wait_connected(10)
        elapsed = time.monotonic() - started
        state = transport.state
        assert state.endpoint == f"mqtt://127.0.0.1:{mosquitto.port}"
        assert state.brokers == (
            f"mqtt://127.0.0.1:{dead}", f"mqtt://127.0.0.1:{mosquitto.port}"
        )
        assert state.protocol == "3.1.1"
        # The first broker's error names it, not the broker now in use beside it.
        assert state.last_error is not None
        assert state.last_error.endswith(f"(at mqtt://127.0.0.1:{dead})"), state.last_error
        print(f"\nconnected through the second broker {elapsed:.3f}s after start")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert f"127.0.0.1:{dead}" in warnings[0] and "nothing listens there" in warnings[0]
    assert f"Trying mqtt://127.0.0.1:{mosquitto.port}" in warnings[0]


async def test_auto_protocol_does_not_give_up_mqtt5_for_a_refused_connection(
    mosquitto: MosquittoServer,
) -> None:
    """Nothing listening says nothing about the MQTT version: the second broker still gets
    MQTT 5 (and with it No Local)."""
    async with MqttTransport(
        node_name="n", settings=listing(free_port(), mosquitto.port)
    ) as transport:
        assert await transport.wait_connected(10)
        assert transport.state.protocol == "5"


async def test_losing_the_broker_in_use_moves_to_the_next(
    mosquitto: MosquittoServer, second: MosquittoServer
) -> None:
    settings = listing(mosquitto.port, second.port)
    async with (
        MqttTransport(node_name="mover", settings=settings) as mover,
        MqttTransport(
            node_name="stayer", settings=listing(second.port)
        ) as stayer,
    ):
        await mover.subscribe(PLAZA_ALL)
        assert mover.state.endpoint == f"mqtt://127.0.0.1:{mosquitto.port}"
        mosquitto.kill()
        await eventually(
            lambda: mover.state.connected
            and mover.state.endpoint == f"mqtt://127.0.0.1:{second.port}",
            "the move to the second broker",
        )
        await stayer.publish(plaza_topic("newspaper"), b"on the second")
        assert (await next_message(mover)).payload == b"on the second"
        # The first comes back; nothing moves while the second holds.
        mosquitto.start()
        assert mover.state.endpoint == f"mqtt://127.0.0.1:{second.port}"


async def test_a_move_to_another_broker_takes_a_fresh_client_id_and_a_reconnect_does_not(
    mosquitto: MosquittoServer, second: MosquittoServer
) -> None:
    """RabbitMQ names a QoS 1 subscriber's durable queue after its client id and keeps it on
    the member that made it, so the old id cannot subscribe elsewhere while that member is
    lost (tests/cluster/test_rabbitmq_cluster.py); on the same broker the id stays, so that
    the new connection takes over a half-open old one."""
    settings = dataclasses.replace(
        listing(mosquitto.port, second.port), backoff=Backoff(base_s=0.5, cap_s=0.5)
    )
    # Every retry waits the whole 0.5 s, and the restart below takes milliseconds, so the
    # retry after the first loss finds the same broker up again.
    async with MqttTransport(node_name="mover", settings=settings, rng=AlmostOne()) as mover:
        assert await mover.wait_connected(10)
        first_id = mover.client_id
        mosquitto.restart()
        await eventually(
            lambda: mover.state.connected and mover.state.connections >= 2, "a reconnect"
        )
        assert mover.state.endpoint == f"mqtt://127.0.0.1:{mosquitto.port}"
        assert mover.client_id == first_id
        mosquitto.kill()
        await eventually(
            lambda: mover.state.connected
            and mover.state.endpoint == f"mqtt://127.0.0.1:{second.port}",
            "the move to the second broker",
        )
        assert mover.client_id != first_id
        assert mover.client_id.startswith("hereabouts-mover-")
