"""What the MQTT transport tells the operator: the likely cause, one line per try, and
silence when a connection ends because we asked."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from hereabouts.core.backoff import Backoff
from hereabouts.transports.mqtt import (
    MqttSettings,
    MqttTransport,
    likely_cause,
    plain_error,
    unanswered,
)
from tests.fixtures.mosquitto import MosquittoServer, free_port

LOGGER = "hereabouts.transports.mqtt"
QUICK = Backoff(base_s=0.05, cap_s=0.2)


def test_each_failure_names_its_likely_cause() -> None:
    def cause(error: str) -> str:
        return likely_cause(error, timeout_s=10)

    assert cause("MqttError: [Errno 111] Connection refused") == (
        "nothing listens there: is the broker running? is the port right?"
    )
    assert "does not resolve" in cause("MqttError: [Errno -2] Name or service not known")
    assert "no route" in cause("MqttError: [Errno 113] No route to host")
    assert "no answer within 10s" in cause("MqttError: timed out")
    assert "turned us away" in cause("MqttConnectError: [code:135] Not authorized")
    assert "subscribe to it" in cause("SubscriptionRefused: the broker refused the subscription")
    assert "subscribe to it" in cause(
        "SubscriptionRefused: no SUBACK for the subscription to 'x/+' (Operation timed out)"
    )
    assert "--broker-ca" in cause("SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED]")
    assert "is an MQTT broker listening" in cause("MqttError: something else")
    assert cause(None)


def test_attempts_that_got_no_answer_at_all_are_told_apart() -> None:
    # A cut link: retried within MqttSettings.unanswered_cap_s, not the full backoff.
    assert unanswered("MqttError: timed out")
    assert unanswered("MqttError: [Errno 101] Network is unreachable")
    assert unanswered("MqttError: [Errno 113] No route to host")
    assert unanswered("MqttError: [Errno 110] Connection timed out")
    # The broker answered something: the full backoff applies.
    assert not unanswered("MqttError: [Errno 111] Connection refused")
    assert not unanswered("MqttError: Operation timed out")  # no CONNACK: it accepted us
    assert not unanswered("MqttConnectError: [code:135] Not authorized")
    assert not unanswered("SubscriptionRefused: the broker refused the subscription")
    assert not unanswered(None)


def test_errors_are_said_plainly() -> None:
    assert plain_error("MqttError: [Errno 111] Connection refused") == "connection refused"
    assert plain_error("MqttError: timed out") == "timed out"
    assert plain_error(None) == "unknown error"


async def test_an_unreachable_broker_is_one_warning_then_one_line_per_try(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    port = free_port()
    transport = MqttTransport(
        node_name="patient", settings=MqttSettings(port=port, backoff=QUICK, protocol="5")
    )
    async with transport:
        while len([r for r in caplog.records if r.name == LOGGER]) < 5:
            await asyncio.sleep(0.05)
    records = [r for r in caplog.records if r.name == LOGGER][:5]
    first, later = records[0], records[1:]
    assert first.levelno == logging.WARNING
    assert f"cannot reach the broker at mqtt://127.0.0.1:{port}" in first.getMessage()
    assert "is the broker running? is the port right?" in first.getMessage()
    assert all(r.levelno == logging.INFO for r in later)
    tries = [int(re.search(r"\(try (\d+):", r.getMessage()).group(1)) for r in later]  # type: ignore[union-attr]
    assert tries == [2, 3, 4, 5]


async def test_a_quiet_transport_keeps_its_trouble_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    settings = MqttSettings(port=free_port(), backoff=QUICK, protocol="5")
    async with MqttTransport(node_name="second", settings=settings, quiet=True):
        while len([r for r in caplog.records if r.name == LOGGER]) < 3:
            await asyncio.sleep(0.05)
    assert {r.levelno for r in caplog.records if r.name == LOGGER} == {logging.DEBUG}


async def test_a_clean_close_logs_no_loss(
    mosquitto: MosquittoServer, caplog: pytest.LogCaptureFixture
) -> None:
    mosquitto.stop()
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    settings = MqttSettings(port=mosquitto.port, backoff=QUICK, protocol="5")
    transport = MqttTransport(node_name="late", settings=settings)
    async with transport:
        while not any("still cannot reach" in r.getMessage() for r in caplog.records):
            await asyncio.sleep(0.05)
        mosquitto.start()
        assert await transport.wait_connected(30)
        caplog.clear()
    messages = [r for r in caplog.records if r.name == LOGGER]
    assert [r for r in messages if r.levelno >= logging.WARNING] == []
    assert not any("lost" in r.getMessage() for r in messages)


async def test_reaching_the_broker_after_failures_is_logged(
    mosquitto: MosquittoServer, caplog: pytest.LogCaptureFixture
) -> None:
    mosquitto.stop()
    caplog.set_level(logging.INFO, logger=LOGGER)
    settings = MqttSettings(port=mosquitto.port, backoff=QUICK, protocol="5")
    async with MqttTransport(node_name="late", settings=settings) as transport:
        while not any("cannot reach" in r.getMessage() for r in caplog.records):
            await asyncio.sleep(0.05)
        mosquitto.start()
        assert await transport.wait_connected(30)
        assert any(
            "reached the broker at" in r.getMessage() and "failed tries" in r.getMessage()
            for r in caplog.records
        )
