"""The channel between ``hereabouts up`` and one of its hub worker processes.

One Unix ``SOCK_SEQPACKET`` socket pair per worker, made by the parent and inherited by
the worker: every message is one datagram (no framing to get wrong), and a browser's
connection travels as a file descriptor beside the message that describes it
(``SCM_RIGHTS``). Messages are msgpack arrays whose first item says what they are:

parent → worker

* ``["start", settings]`` — once, first: :class:`WorkerSettings` as msgpack;
* ``["connection", client_host, request]`` with one descriptor — a browser's connection
  whose WebSocket upgrade ``request`` (bytes) the parent has read and not answered.

worker → parent

* ``["ready", pid]`` — the worker's hub is up (its plaza connection may still be on its way);
* ``["report", report]`` — every :data:`REPORT_INTERVAL_S`: the hub's health, its counters
  and the counts of the rooms it is watched in (:class:`WorkerReport`).

The parent closing its end tells the worker to stop (so does SIGTERM); the worker
closing its end (it exited) tells the parent. Both ends are trusted: the parent started
the worker, and the socket pair has no name anyone else could connect to.
"""

from __future__ import annotations

import array
import socket
from typing import Any, Final

import msgspec

from hereabouts.config import HubConfig, SitesConfig, WireLimits
from hereabouts.transports.mqtt import MqttSettings

MAX_MESSAGE_BYTES: Final = 262_144
"""Largest message either way. An upgrade request is at most h11's 16 KiB of headers; a
report is a few hundred bytes plus about 60 per watched room (a hub watches at most
``max_rooms``, 10,000 by default: about 600 KiB). Reports list at most
:data:`MAX_REPORTED_ROOMS` rooms, the busiest, to stay inside this."""

MAX_REPORTED_ROOMS: Final = 2_000
"""Rooms a report carries counts of (for the dashboard and ``/metrics``): the ones with
the most visitors. A worker's health and counters are always reported whole."""

REPORT_INTERVAL_S: Final = 1.0
"""How often a worker reports to the parent. ``/healthz`` and ``/metrics`` of the parent
are at most this old for the hub's part; a worker silent for
:data:`REPORT_STALE_S` is reported unhealthy."""

REPORT_STALE_S: Final = 5.0
"""A worker whose last report is older than this is not doing its job (its event loop is
stuck, or it is gone)."""


class WorkerSettings(msgspec.Struct, frozen=True):
    """Everything a worker needs to run its hub, from the parent's configuration."""

    index: int
    node_name: str
    mqtt: MqttSettings
    sites: SitesConfig
    hub: HubConfig
    wire: WireLimits
    listen_host: str
    log_level: int


class WorkerReport(msgspec.Struct, frozen=True):
    """What a worker tells the parent every second."""

    pid: int
    health: dict[str, Any]
    counters: list[tuple[str, str, int]]
    """Every counter as (name, label value, value), totals since the worker started."""
    rooms: dict[str, tuple[int | None, int | None]]
    """Room key -> (count, fewer_than) as :class:`~hereabouts.sites.counts.RoomCount`."""


_encoder: Final = msgspec.msgpack.Encoder()


def encode(*items: object) -> bytes:
    return _encoder.encode(list(items))


def decode(data: bytes) -> list[Any]:
    message = msgspec.msgpack.decode(data)
    if not isinstance(message, list) or not message or not isinstance(message[0], str):
        raise ValueError("not a channel message")
    return message


def send(channel: socket.socket, data: bytes, fd: int | None = None) -> None:
    """Send one message (and a descriptor); ``BlockingIOError`` when the other side is
    not reading and the socket's buffer is full."""
    if fd is None:
        channel.send(data)
    else:
        channel.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])


def receive(channel: socket.socket) -> tuple[bytes, list[int]] | None:
    """One message and the descriptors that came with it; None when the other end has
    closed; ``BlockingIOError`` when nothing is waiting."""
    data, fds, _flags, _address = socket.recv_fds(channel, MAX_MESSAGE_BYTES, 4)
    if not data and not fds:
        return None
    return data, list(fds)
