"""Reading the broker's messages quickly: every packet waiting, and QoS 0 without paho's objects.

aiomqtt registers paho's socket with the event loop and calls paho's ``loop_read()`` when
it is readable. For QoS 0 traffic ``loop_read`` handles one packet per call (its bound is
the number of QoS 1 and 2 messages in flight, at least one), so a client receives at most
one QoS 0 message per turn of the event loop, however many are waiting. A hub worker
that counts its siblings' heartbeats from the plaza receives hundreds a second while its
loop turns are taken by its browsers: the broker's messages queued up in the socket until
they were older than the stale timeout and were refused (docs/benchmarks.md).

:func:`read_waiting` is paho's ``loop_read`` with a larger bound: it reads packets until
the socket has none (paho's ``MQTT_ERR_AGAIN``) or :data:`MAX_PACKETS_PER_READ` have been
handled, so one busy connection cannot hold the loop for long either.

:func:`deliver_at_most_once` takes each complete QoS 0 PUBLISH from paho before paho
handles it and gives its topic and payload straight to the transport. paho builds, for
every incoming message, an ``MQTTMessage`` with a message-info object holding a
``threading.Condition``, and under MQTT 5 a ``Properties`` object, then aiomqtt wraps it
once more: for a hub worker reading its siblings' heartbeats that was more CPU per message
than the signature check the sibling saved it (docs/benchmarks.md). A QoS 0 message needs
none of it: no acknowledgement, no state. Anything else (QoS 1 and 2, a message carrying
MQTT 5 properties such as a topic alias, a topic that is not UTF-8) goes to paho as before.

What this leans on: paho's ``_sock``, ``_packet_read()`` and ``_loop_rc_handle()``, the
three names its own ``loop_read`` uses, and ``_in_packet`` (its ``command`` byte and its
``packet``, the bytes after the fixed header) and ``_packet_handle()``, which
``_packet_read`` calls for each complete packet. The MQTT transport tests read through it
against a real Mosquitto, so a paho that changes them fails there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

MAX_PACKETS_PER_READ: Final = 256
"""Packets handled per readable event at most. At a few microseconds of parsing each, a
turn of the event loop stays well under a millisecond for the broker's share."""


def read_waiting(client: paho.Client) -> MQTTErrorCode:
    """Handle the packets waiting on ``client``'s socket (see the module docstring)."""
    for _ in range(MAX_PACKETS_PER_READ):
        if client._sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        rc = client._packet_read()
        if rc > 0:
            return client._loop_rc_handle(rc)
        if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
            break
    return MQTTErrorCode.MQTT_ERR_SUCCESS


def read_everything_waiting(client: paho.Client) -> None:
    """Make ``client.loop_read()`` (what aiomqtt calls) read every waiting packet."""
    client.loop_read = lambda max_packets=1: read_waiting(client)  # type: ignore[method-assign]


class Deliver(Protocol):
    def __call__(self, topic: str, payload: bytes, *, retain: bool = False) -> None: ...


PUBLISH_QOS0_MASK: Final = 0xF6
"""The bits of a fixed header's first byte that say PUBLISH at QoS 0: the packet type and
the two QoS bits (DUP and RETAIN may be anything)."""

PUBLISH_QOS0: Final = 0x30


def parse_at_most_once(packet: bytes | bytearray, *, mqtt5: bool) -> tuple[str, bytes] | None:
    """(topic, payload) of a QoS 0 PUBLISH's variable header and payload, or None when it
    is anything this fast path leaves to paho (properties, an empty or non-UTF-8 topic, a
    malformed length)."""
    if len(packet) < 2:
        return None
    end = 2 + int.from_bytes(packet[:2], "big")
    if end > len(packet):
        return None
    if mqtt5:
        if end >= len(packet) or packet[end] != 0:  # properties present (or malformed)
            return None
        start = end + 1
    else:
        start = end
    try:
        topic = packet[2:end].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not topic:
        return None
    return topic, bytes(packet[start:])


def deliver_at_most_once(client: paho.Client, deliver: Deliver, *, mqtt5: bool) -> None:
    """Hand ``client``'s incoming QoS 0 messages to ``deliver`` without paho's handling."""
    handle: Callable[[], MQTTErrorCode] = client._packet_handle

    def handle_packet() -> MQTTErrorCode:
        incoming = client._in_packet
        command = incoming["command"]
        if command & PUBLISH_QOS0_MASK == PUBLISH_QOS0:
            parsed = parse_at_most_once(incoming["packet"], mqtt5=mqtt5)
            if parsed is not None:
                deliver(parsed[0], parsed[1], retain=bool(command & 1))
                return MQTTErrorCode.MQTT_ERR_SUCCESS
        return handle()

    client._packet_handle = handle_packet  # type: ignore[method-assign]
