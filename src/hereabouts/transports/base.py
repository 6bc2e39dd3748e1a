"""The one interface every plaza transport implements: publish, subscribe, will, close.

A *plaza* is a publish/subscribe space shared by nodes (an MQTT broker, or the in-memory
bus in tests and the simulator). The node runtime talks to it only through
:class:`Transport`, so swapping Mosquitto for the in-memory bus changes nothing above.

Rules every transport follows:

* Used as ``async with transport:``. Entering connects (or starts connecting); leaving is a
  *clean* close, after which the will is **not** sent. Only a crash — a killed process, a
  dropped network — makes the plaza publish the will.
* ``set_will`` must be called before entering; afterwards it raises
  :class:`~hereabouts.transports.errors.WillAfterConnect`. A transport that cannot carry
  wills sets ``supports_will = False`` and raises
  :class:`~hereabouts.transports.errors.WillNotSupported`.
* Subscriptions are *desired state*: a transport that reconnects subscribes again by itself,
  to every filter subscribed and not unsubscribed since.
* A subscriber receives its own publications, as on MQTT, unless it subscribes with
  ``no_local=True``, a request (honoured by MQTT 5 and the in-memory bus, not by MQTT
  3.1.1): a caller must still tolerate its own messages coming back.
* Incoming messages wait in a bounded queue read through :meth:`Transport.messages`. When it
  is full the **oldest** waiting message is dropped and counted under ``queue_full``: for
  presence the newest news is worth most, and a dropped heartbeat is superseded by the
  sender's next one.
* Connection trouble never raises out of a background task; it is visible in
  :attr:`Transport.state` (for ``/healthz``) and :attr:`Transport.counters` (for metrics).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import ClassVar, Self

from hereabouts.transports.errors import (
    PayloadTooLarge,
    TransportClosed,
    TransportConfigError,
    WillAfterConnect,
    WillNotSupported,
)
from hereabouts.transports.topics import validate_filter, validate_topic

DEFAULT_INCOMING_CAPACITY = 10_000
"""Messages the incoming queue holds before it drops the oldest. About one second of the
fastest rate one Python subscriber sustains (9-14k msgs/s measured against Mosquitto), so
the consumer may stall for a second without loss; at ~1 KiB per sealed event the queue
costs at most ~10 MiB."""

DEFAULT_MAX_PAYLOAD_BYTES = 64 * 1024
"""Largest payload sent or accepted, in bytes. Four times the wire layer's 16 KiB event cap,
so the wire layer (which knows what an event is) gives the precise rejection; this cap only
keeps a flood of huge blobs out of the queue. MQTT itself allows 256 MiB."""

DEFAULT_QOS = 1
"""At-least-once. Duplicates are harmless (the ledger deduplicates by event id); losses are
not. QoS 2 would cost two more round trips per message for nothing we need."""

DROP_QUEUE_FULL = "queue_full"
"""Drop reason: the incoming queue was full and the oldest message was discarded."""

DROP_OVERSIZE = "oversize"
"""Drop reason: an incoming payload exceeded ``max_payload_bytes``."""


@dataclass(frozen=True, slots=True)
class Message:
    """One message taken off the plaza."""

    topic: str
    payload: bytes
    retain: bool = False
    """True when the broker replayed a retained message on subscribe."""


@dataclass(slots=True)
class TransportCounters:
    """Monotonic counters a metrics exporter reads. Only the transport writes them."""

    messages_in: int = 0
    """Messages accepted into the incoming queue."""
    messages_out: int = 0
    """Messages the plaza acknowledged (or, at QoS 0, that left our hands)."""
    reconnects: int = 0
    """Connections established after the first one."""
    drops: collections.Counter[str] = field(default_factory=collections.Counter)
    """Incoming messages discarded, by reason (``queue_full``, ``oversize``)."""

    def as_dict(self) -> dict[str, object]:
        """A plain snapshot, safe to serialise."""
        return {
            "messages_in": self.messages_in,
            "messages_out": self.messages_out,
            "reconnects": self.reconnects,
            "drops": dict(self.drops),
        }


@dataclass(frozen=True, slots=True)
class Subscription:
    """How one topic filter is subscribed."""

    qos: int = DEFAULT_QOS
    no_local: bool = False


@dataclass(frozen=True, slots=True)
class ConnectionState:
    """A snapshot of a transport's connection, for ``/healthz`` and logs."""

    connected: bool
    endpoint: str
    """Where the transport connects, e.g. ``mqtt://127.0.0.1:1883`` or ``memory://``."""
    protocol: str | None = None
    """Protocol spoken on the current or last connection (``5``, ``3.1.1``, ``memory``)."""
    last_error: str | None = None
    """Why the last connection attempt failed or the last connection dropped."""
    connections: int = 0
    """Connections established so far; rises by one on every reconnect."""
    changed_at: float | None = None
    """Wall-clock time (``time.time()``) of the last change, for humans reading /healthz."""
    closed: bool = False
    brokers: tuple[str, ...] = ()
    """Every broker this transport may use, in the order it tries them (no credentials);
    ``endpoint`` is the one in use or being tried."""
    missing_subscriptions: tuple[str, ...] = ()
    """Filters wanted but not held by the broker (refused, or no SUBACK): while any is
    missing the transport is not connected, and it retries with backoff."""

    def as_dict(self) -> dict[str, object]:
        """A plain snapshot for a ``/healthz`` JSON body."""
        return dataclasses.asdict(self)


class IncomingQueue:
    """Bounded FIFO between a transport and its reader that drops the oldest when full."""

    def __init__(self, *, capacity: int, counters: TransportCounters) -> None:
        if capacity < 1:
            raise TransportConfigError(f"incoming capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._items: collections.deque[Message] = collections.deque()
        self._ready = asyncio.Event()
        self._closed = False
        self._counters = counters

    def __len__(self) -> int:
        return len(self._items)

    def put(self, message: Message) -> None:
        """Queue ``message`` without blocking, dropping the oldest one if full."""
        if self._closed:
            return
        if len(self._items) >= self.capacity:
            self._items.popleft()
            self._counters.drops[DROP_QUEUE_FULL] += 1
        self._items.append(message)
        self._counters.messages_in += 1
        self._ready.set()

    def take_all(self) -> list[Message]:
        """Every waiting message, oldest first, removed from the queue; never blocks."""
        items = list(self._items)
        self._items.clear()
        return items

    async def get(self) -> Message | None:
        """The next message, or ``None`` once the queue is closed and drained."""
        while True:
            if self._items:
                return self._items.popleft()
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()

    def close(self) -> None:
        """Wake readers; they drain what is left and then stop."""
        self._closed = True
        self._ready.set()


def check_qos(qos: int) -> int:
    """Return ``qos`` if it is 0, 1 or 2, else raise."""
    if qos not in (0, 1, 2):
        raise TransportConfigError(f"qos must be 0, 1 or 2, got {qos!r}")
    return qos


class Transport(ABC):
    """A connection to a plaza. Subclasses implement the ``_``-prefixed hooks."""

    supports_will: ClassVar[bool] = True
    """False for transports with no way to publish on our behalf when we vanish."""

    def __init__(
        self,
        *,
        endpoint: str,
        incoming_capacity: int = DEFAULT_INCOMING_CAPACITY,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        if max_payload_bytes < 1:
            raise TransportConfigError("max_payload_bytes must be positive")
        self.counters = TransportCounters()
        self.max_payload_bytes = max_payload_bytes
        self._incoming = IncomingQueue(capacity=incoming_capacity, counters=self.counters)
        self._will: Message | None = None
        self._will_source: Callable[[int], Message] | None = None
        self._on_connect: list[Callable[[int], None]] = []
        self._on_disconnect: list[Callable[[], None]] = []
        self._started = False
        self._closed = False
        self._connected = asyncio.Event()
        self._state = ConnectionState(connected=False, endpoint=endpoint)

    # --- the public interface ----------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """The current connection state (a frozen snapshot)."""
        return self._state

    @property
    def will(self) -> Message | None:
        """The will registered with :meth:`set_will`, if any."""
        return self._will

    def set_will(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Register the message the plaza publishes (QoS 1) if we vanish without closing."""
        if not self.supports_will:
            raise WillNotSupported(f"{type(self).__name__} cannot carry a will")
        if self._started:
            raise WillAfterConnect("set_will must be called before the transport connects")
        validate_topic(topic)
        self._check_size(payload)
        self._will = Message(topic=topic, payload=bytes(payload), retain=retain)

    def set_will_source(self, source: Callable[[int], Message]) -> None:
        """Like :meth:`set_will`, but ask ``source(n)`` for the will of the n-th connection.

        A presence node signs a will per connection (its ``lost`` event names the session),
        so a will from an old connection can never outrank what the node said since.
        """
        if not self.supports_will:
            raise WillNotSupported(f"{type(self).__name__} cannot carry a will")
        if self._started:
            raise WillAfterConnect("set_will_source must be called before the transport connects")
        self._will_source = source

    def on_connect(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(n)`` each time the n-th connection is established (reconnects too)."""
        self._on_connect.append(listener)

    def on_disconnect(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` each time an established connection is lost."""
        self._on_disconnect.append(listener)

    def _will_for_next_connection(self) -> Message | None:
        if self._will_source is None:
            return self._will
        will = self._will_source(self._state.connections + 1)
        validate_topic(will.topic)
        self._check_size(will.payload)
        self._will = will
        return will

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = DEFAULT_QOS, retain: bool = False
    ) -> None:
        """Publish ``payload`` on ``topic``; raises ``NotConnected`` when the plaza is away."""
        validate_topic(topic)
        check_qos(qos)
        self._check_size(payload)
        if self._closed:
            raise TransportClosed("transport is closed")
        await self._publish(topic, bytes(payload), qos=qos, retain=retain)
        self.counters.messages_out += 1

    def publish_at_most_once(self, topic: str, payload: bytes) -> None:
        """Publish ``payload`` on ``topic`` at QoS 0, now, without waiting for anything.

        For a caller that must not yield to the event loop between deciding and sending (a
        hub handling a socket's frames in one go): the same checks as :meth:`publish`,
        the same ``NotConnected`` when the plaza is away, and the packet leaves with this
        loop turn's other QoS 0 writes."""
        validate_topic(topic)
        self._check_size(payload)
        if self._closed:
            raise TransportClosed("transport is closed")
        self._publish_now(topic, bytes(payload))
        self.counters.messages_out += 1

    async def subscribe(
        self, topic_filter: str, *, qos: int = DEFAULT_QOS, no_local: bool = False
    ) -> None:
        """Receive messages matching ``topic_filter`` (MQTT wildcards), now and after reconnects.

        ``no_local`` asks not to receive this transport's own publications on it (a hub
        that republishes thousands of events a second need not read them back); see the
        module docstring for where it is honoured."""
        validate_filter(topic_filter)
        check_qos(qos)
        if self._closed:
            raise TransportClosed("transport is closed")
        await self._subscribe(topic_filter, Subscription(qos=qos, no_local=no_local))

    async def unsubscribe(self, topic_filter: str) -> None:
        """Stop receiving messages for ``topic_filter`` (forgotten for reconnects too).

        A no-op for a filter never subscribed. Messages already received stay in the queue;
        a few more may arrive while the broker processes the request."""
        validate_filter(topic_filter)
        if self._closed:
            raise TransportClosed("transport is closed")
        await self._unsubscribe(topic_filter)

    async def messages(self) -> AsyncIterator[Message]:
        """Incoming messages, oldest first; ends after :meth:`close` once the queue is drained.

        Meant for one reader. Several readers would each get a share, not a copy.
        """
        while (message := await self._incoming.get()) is not None:
            yield message

    def take_waiting(self) -> list[Message]:
        """Messages already received but not yet read, removed from the queue.

        For a reader that must catch up before a decision (a node about to send a howdy
        first counts the howdys that already arrived); :meth:`messages` goes on after.
        """
        return self._incoming.take_all()

    async def connect(self) -> None:
        """Connect (or start connecting); called by ``async with``. Use at most once."""
        if self._closed:
            raise TransportClosed("a closed transport cannot connect again")
        if self._started:
            return
        self._started = True
        await self._connect()

    async def close(self) -> None:
        """Disconnect cleanly: the will is not published. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._close()
        finally:
            self._set_disconnected(None)
            self._state = dataclasses.replace(self._state, closed=True)
            self._incoming.close()

    async def wait_connected(self, timeout: float | None = None) -> bool:
        """Wait until connected; False if ``timeout`` seconds pass first or it is closed."""
        if self._closed:
            return False
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            return False
        return not self._closed

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- for subclasses ------------------------------------------------------------------

    @abstractmethod
    async def _connect(self) -> None: ...

    @abstractmethod
    async def _close(self) -> None: ...

    @abstractmethod
    async def _publish(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> None: ...

    @abstractmethod
    def _publish_now(self, topic: str, payload: bytes) -> None:
        """QoS 0, not retained, synchronously (see :meth:`publish_at_most_once`)."""

    @abstractmethod
    async def _subscribe(self, topic_filter: str, subscription: Subscription) -> None: ...

    @abstractmethod
    async def _unsubscribe(self, topic_filter: str) -> None: ...

    def restart_connection(self, why: str) -> None:
        """End the current connection and connect again: the caller knows the link is dead
        before the transport can (a node whose own pulses stopped coming back). Transports
        without a connection to lose ignore it."""
        return None

    def _check_size(self, payload: bytes) -> None:
        if len(payload) > self.max_payload_bytes:
            raise PayloadTooLarge(
                f"payload of {len(payload)} bytes exceeds max_payload_bytes="
                f"{self.max_payload_bytes}"
            )

    def _deliver(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Hand an incoming message to the reader (or count why it was dropped)."""
        if len(payload) > self.max_payload_bytes:
            self.counters.drops[DROP_OVERSIZE] += 1
            return
        self._incoming.put(Message(topic=topic, payload=payload, retain=retain))

    def _set_connected(self, *, protocol: str) -> None:
        connections = self._state.connections + 1
        if connections > 1:
            self.counters.reconnects += 1
        self._state = dataclasses.replace(
            self._state,
            connected=True,
            protocol=protocol,
            connections=connections,
            changed_at=time.time(),
        )
        self._connected.set()
        for listener in self._on_connect:
            listener(connections)

    def _set_disconnected(self, error: str | None) -> None:
        self._connected.clear()
        if self._state.connected:
            for listener in self._on_disconnect:
                listener()
        if self._state.connected or error is not None:
            self._state = dataclasses.replace(
                self._state,
                connected=False,
                last_error=error if error is not None else self._state.last_error,
                changed_at=time.time(),
            )
