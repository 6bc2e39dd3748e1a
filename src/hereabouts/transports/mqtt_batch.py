"""QoS 0 publications, encoded here and written to the broker once per event-loop turn.

Through paho, every QoS 0 PUBLISH gets a message-info object with its own lock; aiomqtt
then has the event loop wake a writer that sends each packet with its own system call
and reports each one as published with two freshly built MQTT 5 objects. For a browser
hub republishing thousands of heartbeats a second that was about a quarter of its time
(docs/benchmarks.md). QoS 0 needs none of it: nobody waits for an acknowledgement.

:class:`AtMostOnceBatch` encodes each PUBLISH itself (a few bytes of header in front of
the topic and payload), gathers the packets of one loop turn, and hands them to paho as
a single outgoing write. paho still owns the socket: its queue keeps this write in order
with everything else it sends, and its writer handles partial writes, a full socket
(it waits for the socket to drain) and the keepalive clock.

What this leans on: paho's outgoing queue ``_out_packet`` (a deque of dictionaries with
the keys of :func:`_outgoing`), ``_sock`` (None once the connection is gone) and
``_registered_write`` (True while a writer is registered with the event loop, or about to
be), plus its public ``loop_write()``. The MQTT transport tests publish through this
module against a real Mosquitto, so a paho that changes them fails there.

Order: a QoS 0 packet leaves at the end of the loop turn it was published in, so a QoS 1
publication made later in the same turn may overtake it. MQTT orders messages per QoS
level only, so no subscriber may rely on more.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from hereabouts.transports.errors import Backlogged

log = logging.getLogger(__name__)

PUBLISH_QOS0: Final = 0x30
"""First byte of a PUBLISH packet with QoS 0 and no DUP flag; bit 0 is RETAIN."""

MAX_PENDING_WRITES: Final = 1024
"""Writes waiting in paho's queue (about one per loop turn, each a batch) before new QoS 0
publications are refused. A broker that stops reading must not make us buffer without
bound; at most once allows dropping, and the caller counts it."""

_BATCHED_WRITE: Final = 0
"""The ``command`` given to a batch in paho's queue. paho acts on a written packet only
for PUBLISH (it reports QoS 0 ones as published) and DISCONNECT; 0 is neither, so a batch
is just bytes on the wire."""


def remaining_length(size: int) -> bytes:
    """MQTT's variable-length integer: 7 bits per byte, high bit set while more follow."""
    out = bytearray()
    while True:
        size, digit = divmod(size, 128)
        if size:
            out.append(digit | 0x80)
        else:
            out.append(digit)
            return bytes(out)


def publish_packet(topic: bytes, payload: bytes, *, retain: bool, mqtt5: bool) -> bytes:
    """A complete QoS 0 PUBLISH packet. MQTT 5 adds an empty property list (one zero byte)
    after the topic; QoS 0 carries no packet identifier in either version."""
    properties = b"\x00" if mqtt5 else b""
    head = len(topic).to_bytes(2, "big") + topic + properties
    return (
        bytes((PUBLISH_QOS0 | retain,))
        + remaining_length(len(head) + len(payload))
        + head
        + payload
    )


def _outgoing(data: bytes) -> dict[str, Any]:
    return {
        "command": _BATCHED_WRITE,
        "mid": 0,
        "qos": 0,
        "pos": 0,
        "to_process": len(data),
        "packet": data,
        "info": None,
    }


class AtMostOnceBatch:
    """QoS 0 packets of one connection, written together at the end of each loop turn.

    One per connection: ``paho`` is the paho client aiomqtt drives for it (reached as
    aiomqtt's ``_client``), ``mqtt5`` the protocol version it speaks.
    """

    def __init__(self, paho: Any, *, mqtt5: bool) -> None:
        self.paho = paho
        self._mqtt5 = mqtt5
        self._packets: list[bytes] = []
        self._flush_scheduled = False

    def add(self, topic: str, payload: bytes, *, retain: bool) -> None:
        """Queue one publication for this loop turn; :class:`Backlogged` if paho's queue is
        full. Must be called from the event loop's thread."""
        if len(self.paho._out_packet) >= MAX_PENDING_WRITES:
            raise Backlogged(f"the broker is not reading: {MAX_PENDING_WRITES} writes wait")
        self._packets.append(
            publish_packet(topic.encode("utf-8"), payload, retain=retain, mqtt5=self._mqtt5)
        )
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Hand this turn's packets to paho as one write and let it send what it can now."""
        self._flush_scheduled = False
        packets, self._packets = self._packets, []
        if not packets:
            return
        paho = self.paho
        if paho._sock is None:  # the connection ended within this turn: at most once
            log.debug("%d QoS 0 packets dropped with their connection", len(packets))
            return
        paho._out_packet.append(_outgoing(b"".join(packets)))
        if paho._registered_write:
            # A writer is registered, or its registration is on its way through the loop:
            # it sends this too. Writing here would let paho unregister it before the
            # registration lands, leaving a writer on an always-writable socket.
            return
        try:
            paho.loop_write()
        except Exception as exc:  # a broken socket: the connection's reader sees it too
            log.debug("QoS 0 write failed: %s", type(exc).__name__)


__all__ = [
    "MAX_PENDING_WRITES",
    "AtMostOnceBatch",
    "publish_packet",
    "remaining_length",
]
