"""Transports: how events get onto and off the plaza (MQTT, or an in-memory bus).

Everything above this package talks to :class:`~hereabouts.transports.base.Transport` only.
Implementations: :class:`~hereabouts.transports.memory.MemoryBus` /
:class:`~hereabouts.transports.memory.MemoryTransport` (one process, tests, simulator) and
:class:`~hereabouts.transports.mqtt.MqttTransport` (any MQTT broker). The zero-setup broker
lives in :mod:`hereabouts.transports.broker`; topic names in
:mod:`hereabouts.transports.topics`. See ``docs/transports.md``.
"""

from hereabouts.transports.base import ConnectionState, Message, Transport, TransportCounters
from hereabouts.transports.memory import MemoryBus, MemoryTransport

__all__ = [
    "ConnectionState",
    "MemoryBus",
    "MemoryTransport",
    "Message",
    "Transport",
    "TransportCounters",
]
