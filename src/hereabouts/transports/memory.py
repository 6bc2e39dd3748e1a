"""An in-process plaza: many transports on one bus, with MQTT's matching, retain and wills.

The bus ships in the package (not only in tests) so that tests, the simulator and users can
run many nodes in one process without a broker. It mimics what a node can observe of an
MQTT broker, and nothing more:

* Wildcard subscriptions (``+``, ``#``) match exactly as on Mosquitto (shared code in
  :mod:`hereabouts.transports.topics`), including the ``$``-topic rule.
* A publisher subscribed to its own topic receives its own message, as on MQTT.
* Retained messages are stored per topic, replayed to later subscribers, and cleared by
  publishing an empty retained payload.
* :meth:`MemoryTransport.kill` simulates a crash: the bus publishes the will. A clean
  :meth:`~hereabouts.transports.base.Transport.close` does not.

Delivery is synchronous and in publish order: when ``publish`` returns, every subscriber's
queue already holds the message. QoS is accepted and ignored (nothing is lost on a bus that
lives in one process, except by a full queue, which is counted as usual).
"""

from __future__ import annotations

import dataclasses

from hereabouts.transports.base import (
    DEFAULT_INCOMING_CAPACITY,
    DEFAULT_MAX_PAYLOAD_BYTES,
    Subscription,
    Transport,
)
from hereabouts.transports.errors import NotConnected
from hereabouts.transports.topics import topic_matches

MEMORY_PROTOCOL = "memory"


class MemoryBus:
    """One shared plaza in memory. Create transports with :meth:`transport`."""

    def __init__(self) -> None:
        self._attached: dict[int, MemoryTransport] = {}
        self._retained: dict[str, bytes] = {}

    def transport(
        self,
        *,
        name: str = "node",
        incoming_capacity: int = DEFAULT_INCOMING_CAPACITY,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> MemoryTransport:
        """A new, not yet connected transport on this bus. ``name`` only labels it."""
        return MemoryTransport(
            self,
            name=name,
            incoming_capacity=incoming_capacity,
            max_payload_bytes=max_payload_bytes,
        )

    @property
    def attached(self) -> list[MemoryTransport]:
        """Transports currently connected to the bus, in connection order."""
        return list(self._attached.values())

    def retained(self, topic: str) -> bytes | None:
        """The retained payload on ``topic``, if any."""
        return self._retained.get(topic)

    # --- used by MemoryTransport -------------------------------------------------------------

    def _attach(self, transport: MemoryTransport) -> None:
        self._attached[id(transport)] = transport

    def _detach(self, transport: MemoryTransport) -> None:
        self._attached.pop(id(transport), None)

    def _route(
        self, topic: str, payload: bytes, *, retain: bool, sender: MemoryTransport | None = None
    ) -> None:
        if retain:
            if payload:
                self._retained[topic] = payload
            else:
                self._retained.pop(topic, None)
        for transport in list(self._attached.values()):
            if transport._wants(topic, own=transport is sender):
                # MQTT clears the retain flag on live delivery; only replays carry it.
                transport._deliver(topic, payload, retain=False)

    def _replay_retained(self, transport: MemoryTransport, topic_filter: str) -> None:
        for topic, payload in self._retained.items():
            if topic_matches(topic_filter, topic):
                transport._deliver(topic, payload, retain=True)


class MemoryTransport(Transport):
    """A transport attached to a :class:`MemoryBus`. Build it with :meth:`MemoryBus.transport`."""

    def __init__(
        self,
        bus: MemoryBus,
        *,
        name: str = "node",
        incoming_capacity: int = DEFAULT_INCOMING_CAPACITY,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        super().__init__(
            endpoint=f"memory://{name}",
            incoming_capacity=incoming_capacity,
            max_payload_bytes=max_payload_bytes,
        )
        self.name = name
        self._bus = bus
        self._filters: dict[str, Subscription] = {}

    def _wants(self, topic: str, *, own: bool) -> bool:
        return any(
            topic_matches(f, topic) and not (own and s.no_local) for f, s in self._filters.items()
        )

    async def _connect(self) -> None:
        self._will_for_next_connection()
        self._bus._attach(self)
        self._set_connected(protocol=MEMORY_PROTOCOL)
        # Filters recorded before connecting are "sent" now, as MQTT does on CONNECT.
        for topic_filter in self._filters:
            self._bus._replay_retained(self, topic_filter)

    async def _close(self) -> None:
        self._bus._detach(self)

    async def _publish(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> None:
        if not self.state.connected:
            raise NotConnected(f"{self.name} is not attached to the bus")
        self._bus._route(topic, payload, retain=retain, sender=self)

    def _publish_now(self, topic: str, payload: bytes) -> None:
        if not self.state.connected:
            raise NotConnected(f"{self.name} is not attached to the bus")
        self._bus._route(topic, payload, retain=False, sender=self)

    async def _subscribe(self, topic_filter: str, subscription: Subscription) -> None:
        is_new = topic_filter not in self._filters
        self._filters[topic_filter] = subscription
        if is_new and self.state.connected:
            self._bus._replay_retained(self, topic_filter)

    async def _unsubscribe(self, topic_filter: str) -> None:
        self._filters.pop(topic_filter, None)

    def kill(self) -> None:
        """Vanish as if the process crashed: detach and let the bus publish our will.

        Afterwards the transport is closed (``messages()`` ends, ``publish`` raises).
        """
        if self._closed:
            return
        was_attached = self.state.connected
        self._closed = True
        self._bus._detach(self)
        self._set_disconnected("killed")
        self._state = dataclasses.replace(self._state, closed=True)
        self._incoming.close()
        if was_attached and self._will is not None:
            will = self._will
            self._bus._route(will.topic, will.payload, retain=will.retain)
