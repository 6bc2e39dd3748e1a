"""MqttTransport against a Mosquitto that wants TLS, a password and obeys an ACL file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hereabouts.core.backoff import Backoff
from hereabouts.transports.mqtt import MqttSettings, MqttTransport, ProtocolChoice
from hereabouts.transports.topics import plaza_topic
from tests.transports.secure_broker import (
    make_ca,
    make_client_cert,
    rules_broker,
    secure_broker,
)
from tests.transports.test_mqtt import WAIT_S, eventually, next_message

PASSWORD = "correct-horse-42"
PLAZA = "hereabouts/v1/plaza/+"
FAST = Backoff(base_s=0.05, cap_s=0.5)


def settings_for(port: int, **options: object) -> MqttSettings:
    return MqttSettings(port=port, backoff=FAST, timeout_s=5.0, **options)  # type: ignore[arg-type]


async def test_tls_and_a_password_carry_messages(tmp_path: Path) -> None:
    tls = make_ca(tmp_path / "ca")
    with secure_broker(tmp_path / "broker", users={"alice": PASSWORD}, tls=tls) as broker:
        settings = settings_for(
            broker.port, tls=True, ca_file=str(tls.ca), username="alice", password=PASSWORD
        )
        async with (
            MqttTransport(node_name="reader", settings=settings) as reader,
            MqttTransport(node_name="writer", settings=settings) as writer,
        ):
            assert reader.state.connected, reader.state
            assert reader.state.endpoint == f"mqtts://127.0.0.1:{broker.port}"
            await reader.subscribe(PLAZA)
            await writer.publish(plaza_topic("newspaper"), b"over tls")
            assert (await next_message(reader)).payload == b"over tls"


async def test_a_broker_that_wants_a_client_certificate_gets_one(tmp_path: Path) -> None:
    tls = make_ca(tmp_path / "ca")
    cert, key = make_client_cert(tmp_path / "ca", tls)
    with secure_broker(
        tmp_path / "broker", users={"alice": PASSWORD}, tls=tls, require_certificate=True
    ) as broker:
        common = {"tls": True, "ca_file": str(tls.ca), "username": "alice", "password": PASSWORD}
        without = settings_for(broker.port, **common)
        async with MqttTransport(node_name="n", settings=without) as transport:
            assert not transport.state.connected
        with_cert = settings_for(broker.port, cert_file=str(cert), key_file=str(key), **common)
        async with MqttTransport(node_name="n", settings=with_cert) as transport:
            assert transport.state.connected, transport.state


async def test_without_the_ca_the_certificate_is_refused(tmp_path: Path) -> None:
    tls = make_ca(tmp_path / "ca")
    with secure_broker(tmp_path / "broker", users={"alice": PASSWORD}, tls=tls) as broker:
        settings = settings_for(broker.port, tls=True, username="alice", password=PASSWORD)
        async with MqttTransport(node_name="n", settings=settings) as transport:
            assert not transport.state.connected
            assert "CERTIFICATE_VERIFY_FAILED" in (transport.state.last_error or "")


async def test_a_wrong_password_is_a_clear_retried_failure_that_never_shows_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with secure_broker(tmp_path / "broker", users={"alice": PASSWORD}) as broker:
        wrong = "wrong-battery-7"
        settings = settings_for(broker.port, username="alice", password=wrong)
        assert wrong not in repr(settings)
        async with MqttTransport(node_name="n", settings=settings) as transport:
            await eventually(lambda: transport._failed_attempts >= 3, "three failed attempts")
            state = transport.state
            assert not state.connected
            assert "not authorized" in (state.last_error or "").lower(), state.last_error
            shown = json.dumps(state.as_dict()) + caplog.text
            assert wrong not in shown and PASSWORD not in shown


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_a_refused_subscription_is_retried_until_the_broker_allows_it(
    tmp_path: Path, protocol: ProtocolChoice
) -> None:
    """A denied SUBSCRIBE (SUBACK 0x87 in MQTT 5, 0x80 in 3.1.1) is a failed attempt: the
    transport is not connected while the filter is missing, says which, retries, and holds
    it once the broker allows it, without being restarted."""
    with rules_broker(tmp_path / "broker", user=("alice", PASSWORD)) as broker:
        broker.deny("hereabouts/v1/plaza/#")
        settings = settings_for(
            broker.port, username="alice", password=PASSWORD, protocol=protocol
        )
        async with MqttTransport(node_name="n", settings=settings) as transport:
            await transport.subscribe(PLAZA)
            await eventually(lambda: transport._failed_attempts >= 2, "two refusals")
            state = transport.state
            assert not state.connected
            assert state.missing_subscriptions == (PLAZA,)
            code = "Not authorized" if protocol == "5" else "Unspecified error"
            assert "refused" in (state.last_error or ""), state.last_error
            assert code in (state.last_error or ""), state.last_error

            broker.allow("hereabouts/v1/plaza/#")
            assert await transport.wait_connected(WAIT_S)
            assert transport.state.missing_subscriptions == ()
            await transport.publish(plaza_topic("newspaper"), b"heard")
            assert (await next_message(transport)).payload == b"heard"


async def test_a_subscription_refused_while_connected_reconnects_until_it_holds(
    tmp_path: Path,
) -> None:
    with rules_broker(tmp_path / "broker", user=("alice", PASSWORD)) as broker:
        broker.deny("hereabouts/v1/site/#")
        settings = settings_for(broker.port, username="alice", password=PASSWORD)
        async with MqttTransport(node_name="n", settings=settings) as transport:
            await transport.subscribe(PLAZA)
            assert transport.state.connected
            room = "hereabouts/v1/site/room"
            await transport.subscribe(room)  # refused: not raised, but the link is not whole
            await eventually(
                lambda: transport.state.missing_subscriptions == (room,)
                and not transport.state.connected,
                "the missing room filter to be reported",
            )
            broker.allow("hereabouts/v1/site/#")
            await eventually(
                lambda: transport.state.connected and not transport.state.missing_subscriptions,
                "the room filter to hold",
            )
            await transport.publish(room, b"counted")
            assert (await next_message(transport)).payload == b"counted"
