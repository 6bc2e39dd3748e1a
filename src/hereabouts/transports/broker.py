"""The zero-setup plaza: an in-process amqtt broker on 127.0.0.1, shared by local nodes.

:func:`ensure_local_broker` first asks the port whether an MQTT broker already answers
there (a real CONNECT / CONNACK exchange, not just a TCP connect). If one does — a
Mosquitto, or the embedded broker of another hereabouts process — it is joined and the
returned handle owns nothing. Otherwise an amqtt broker is started in this process. So the
first node on a machine hosts the plaza and every later node joins it.

Caveats, stated once:

* The embedded broker binds to 127.0.0.1 **only**; nodes on other machines cannot reach it.
  Past one machine run Mosquitto, EMQX or VerneMQ and point nodes at it.
* amqtt speaks MQTT 3.1.1 only. :class:`~hereabouts.transports.mqtt.MqttTransport` notices
  the refusal of MQTT 5 and falls back by itself.
* When the hosting process exits, the plaza goes with it; the other nodes reconnect with
  backoff and one of them must be restarted to host again. For a plaza that outlives any
  node, run Mosquitto.
* amqtt logs every connection at INFO; its loggers are set to WARNING here.
* amqtt has no packet size limit of its own and would read a 100 MB PUBLISH whole. The
  embedded broker reads each client through a bounded adapter
  (:class:`BoundedStreamReader`): a packet whose payload is larger than
  :data:`EMBEDDED_MAX_PACKET_BYTES` ends its sender's connection before it is read, and
  amqtt logs one warning naming the sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import secrets
import struct
from types import TracebackType
from typing import Any, Self

from hereabouts.transports.errors import BrokerPortTaken, BrokerUnavailable, TransportConfigError
from hereabouts.transports.mqtt import BROKER_MAX_PACKET_BYTES, DEFAULT_PORT

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
"""The only address the embedded broker binds to. Deliberately not configurable."""

PROBE_TIMEOUT_S = 2.0
"""How long the probe waits for a CONNACK. A local broker answers in milliseconds; a
listener that stays silent for two seconds is not a broker we want to join."""

BIND_RACE_RETRIES = 20
"""If two processes start at once, the loser of the bind race probes again this many times
(every 0.1 s) for the winner to come up before giving up."""

SHUTDOWN_TIMEOUT_S = 5.0
"""Upper bound on amqtt's own shutdown; it normally takes milliseconds."""

EMBEDDED_MAX_PACKET_BYTES = BROKER_MAX_PACKET_BYTES
"""Largest single read the embedded broker makes for a client: 64 KiB of payload plus the
PUBLISH overhead (66,560 bytes). Events are at most 16 KiB, but the broker serves every
local node whatever its own limits, so it refuses only what no transport with default
settings would send. Every other field of an MQTT packet (topic, client id, will) carries
a two-byte length, so no legitimate read comes near it."""

_AMQTT_LOGGERS = ("amqtt", "transitions")


def quiet_amqtt_logging() -> None:
    """Raise amqtt's loggers to WARNING: at INFO it logs every connection and session."""
    for name in _AMQTT_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _connect_packet(client_id: str) -> bytes:
    """A minimal MQTT 3.1.1 CONNECT (clean session, 10 s keepalive, no will, no auth)."""
    ident = client_id.encode("ascii")
    variable = b"\x00\x04MQTT" + bytes([4, 0x02]) + struct.pack("!H", 10)
    payload = struct.pack("!H", len(ident)) + ident
    body = variable + payload
    return bytes([0x10, len(body)]) + body  # body < 128 bytes: one length byte


async def probe_mqtt(port: int, *, host: str = LOOPBACK, timeout_s: float = PROBE_TIMEOUT_S) -> str:
    """What listens on ``host:port``: ``"mqtt"``, ``"other"`` (not MQTT), or ``"nothing"``.

    Any CONNACK counts as a broker, even one refusing us (bad protocol, auth required): we
    must not start a second broker beside it, and the transport will report the refusal.
    """
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError):
        return "nothing"
    try:
        writer.write(_connect_packet(f"hereabouts-probe-{secrets.token_hex(4)}"))
        await writer.drain()
        head = await asyncio.wait_for(reader.readexactly(4), timeout_s)
        if head[0] != 0x20 or head[1] != 0x02:
            return "other"
        if head[3] == 0:
            writer.write(b"\xe0\x00")  # DISCONNECT: leave cleanly
            await writer.drain()
        return "mqtt"
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return "other"
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def _broker_config(port: int) -> dict[str, Any]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{LOOPBACK}:{port}"}},
        # Only anonymous auth: no $SYS publisher, no packet/event loggers.
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


class PacketTooLarge(Exception):
    """A client of the embedded broker sent a packet over the limit. Deliberately not one
    of the errors amqtt's reader forgives, so it ends that client's connection."""


class BoundedStreamReader:
    """amqtt's stream adapter, refusing any read larger than ``limit`` before making it.

    amqtt reads a PUBLISH payload with one ``read(n)`` of the whole remaining length,
    which it decoded from the fixed header; refusing that call is refusing the packet
    before a byte of its payload is buffered.

    :meth:`connect_protocol_level` reads ahead to a CONNECT's protocol level; what it read
    is handed out again, first, by the following reads.
    """

    def __init__(self, reader: asyncio.StreamReader, *, limit: int) -> None:
        self._reader = reader
        self._limit = limit
        self._replay = b""

    async def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self._limit:
            raise PacketTooLarge(f"a packet needs a read of {n} bytes; the limit is {self._limit}")
        if not self._replay:
            return await self._reader.readexactly(n)
        data, self._replay = self._replay[:n], self._replay[n:]
        if len(data) < n:
            data += await self._reader.readexactly(n - len(data))
        return data

    def feed_eof(self) -> None:
        self._reader.feed_eof()

    async def connect_protocol_level(self) -> int | None:
        """The protocol level of the CONNECT that opens the stream (4 for MQTT 3.1.1, 5 for
        MQTT 5), or None if the stream does not open with one; the bytes read are kept
        for replay. Raises ``IncompleteReadError`` if the client leaves first."""
        head = bytearray()

        async def take(n: int) -> bytes:
            data = await self._reader.readexactly(n)
            head.extend(data)
            return data

        try:
            if (await take(1))[0] != _CONNECT:
                return None
            for _ in range(4):  # the remaining length: 1 to 4 bytes
                if not (await take(1))[0] & 0x80:
                    break
            name_length = int.from_bytes(await take(2), "big")
            if name_length > _LONGEST_PROTOCOL_NAME:
                return None
            await take(name_length)
            return (await take(1))[0]
        finally:
            self._replay = bytes(head)


_CONNECT = 0x10
"""First byte of every CONNECT packet."""

_LONGEST_PROTOCOL_NAME = 6
"""``MQIsdp`` (MQTT 3.1); MQTT 3.1.1 and 5 say ``MQTT``."""

_MQTT5_LEVEL = 5

_REFUSE_PROTOCOL = b"\x20\x02\x00\x01"
"""CONNACK "unacceptable protocol version" in MQTT 3.1.1's format, as amqtt sends it."""


class EmbeddedBroker:
    """A handle on the local plaza: either a broker this process runs, or one it joined."""

    def __init__(self, *, port: int, broker: Any | None) -> None:
        self.host = LOOPBACK
        self.port = port
        self._broker = broker

    @property
    def owned(self) -> bool:
        """True if this process runs the broker (and closing the handle stops it)."""
        return self._broker is not None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def close(self) -> None:
        """Stop the broker if this process runs it; a joined broker is left alone."""
        broker, self._broker = self._broker, None
        if broker is None:
            return
        _drop_connections(broker)
        try:
            await asyncio.wait_for(broker.shutdown(), SHUTDOWN_TIMEOUT_S)
        except Exception as exc:  # shutting down must not mask the caller's own error
            log.warning("embedded broker on port %d did not shut down cleanly: %r", self.port, exc)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def _start_amqtt(port: int) -> Any:
    # Imported here: amqtt pulls in a state machine library and plugin loading that a node
    # joining an existing broker never needs.
    from amqtt.adapters import StreamWriterAdapter
    from amqtt.broker import Broker

    class BoundedBroker(Broker):  # type: ignore[misc]
        """amqtt's broker, reading every TCP client through :class:`BoundedStreamReader`.

        It answers an MQTT 5 CONNECT itself: amqtt does not parse the CONNECT properties
        MQTT 5 adds (a Maximum Packet Size, say), misreads what follows as a client id of
        some thousand bytes, and waits for them instead of refusing the version, so a
        client that would fall back to 3.1.1 waited for its own time-out first.
        """

        async def stream_connected(
            self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
        ) -> None:
            bounded = BoundedStreamReader(reader, limit=EMBEDDED_MAX_PACKET_BYTES)
            try:
                level = await bounded.connect_protocol_level()
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()
                return
            if level == _MQTT5_LEVEL:
                writer.write(_REFUSE_PROTOCOL)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
                writer.close()
                return
            await self.external_connected(bounded, StreamWriterAdapter(writer), listener_name)

    broker = BoundedBroker(_broker_config(port))
    await broker.start()
    return broker


def _drop_connections(broker: Any) -> None:
    """Stop listening and abort every client connection of an amqtt broker.

    Works around a hang seen with amqtt 0.12 on Python 3.11: ``Broker.shutdown()`` cancels
    each client's reader task and waits for it, but the reader sits in ``asyncio.wait_for``,
    which on 3.11 can swallow a cancellation that races with incoming data; the reader then
    waits for the next packet (up to a keepalive) and shutdown waits with it. With the
    sockets aborted first, every reader sees end-of-file at once and finishes by itself.
    Uses amqtt internals, so each step is optional.
    """
    for server in getattr(broker, "_servers", {}).values():
        instance = getattr(server, "instance", None)
        if isinstance(instance, asyncio.Server):
            instance.close()
    for _session, handler in list(getattr(broker, "_sessions", {}).values()):
        stream = getattr(getattr(handler, "writer", None), "_writer", None)
        if isinstance(stream, asyncio.StreamWriter):
            stream.transport.abort()


def _is_addr_in_use(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
            return True
        cause = cause.__cause__ or cause.__context__
    return False


async def ensure_local_broker(*, port: int = DEFAULT_PORT) -> EmbeddedBroker:
    """Join the MQTT broker on ``127.0.0.1:port``, or start one in this process.

    Returns a handle whose :attr:`~EmbeddedBroker.owned` says which happened; use it as
    ``async with await ensure_local_broker() as plaza:``. Raises
    :class:`~hereabouts.transports.errors.BrokerPortTaken` if something that is not MQTT
    holds the port, :class:`~hereabouts.transports.errors.BrokerUnavailable` if the broker
    cannot be started for another reason.
    """
    if not 0 < port < 65_536:
        raise TransportConfigError(f"port must be in 1..65535, got {port}")
    quiet_amqtt_logging()
    found = await probe_mqtt(port)
    if found == "mqtt":
        log.info("joining the MQTT broker already on %s:%d", LOOPBACK, port)
        return EmbeddedBroker(port=port, broker=None)
    if found == "other":
        raise BrokerPortTaken(f"{LOOPBACK}:{port} is taken by something that is not MQTT")
    try:
        broker = await _start_amqtt(port)
    except Exception as exc:
        if not _is_addr_in_use(exc):
            raise BrokerUnavailable(f"cannot start a broker on {LOOPBACK}:{port}: {exc}") from exc
        # Another process won the bind race; wait for its broker to answer, then join it.
        for _ in range(BIND_RACE_RETRIES):
            found = await probe_mqtt(port)
            if found == "mqtt":
                return EmbeddedBroker(port=port, broker=None)
            await asyncio.sleep(0.1)
        raise BrokerPortTaken(f"{LOOPBACK}:{port} is bound but no MQTT broker answers") from exc
    log.info("started the embedded MQTT broker on %s:%d", LOOPBACK, port)
    return EmbeddedBroker(port=port, broker=broker)
