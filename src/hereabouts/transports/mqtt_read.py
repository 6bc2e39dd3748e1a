"""Reading every MQTT packet a socket read makes available, not one per event-loop turn.

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

What this leans on: paho's ``_sock``, ``_packet_read()`` and ``_loop_rc_handle()``, the
three names its own ``loop_read`` uses. The MQTT transport tests read through it against a
real Mosquitto, so a paho that changes them fails there.
"""

from __future__ import annotations

from typing import Final

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
