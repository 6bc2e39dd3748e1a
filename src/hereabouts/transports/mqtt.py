"""The plaza over MQTT (aiomqtt): reconnects forever, fails over, re-subscribes, falls back.

Where it connects: ``settings.host:port`` first, then each of ``settings.failover`` (a
cluster's members; :meth:`MqttSettings.from_url` takes them from a ``--broker`` URL), over
TLS when ``settings.tls`` (``mqtts://``), logged in when ``settings.username`` is set. The
password is never logged and never in :attr:`~Transport.state`.

How a connection lives:

* Entering ``async with MqttTransport(...)`` starts one background task and returns once
  the first connection attempt has finished, successfully or not. It never raises for a
  broker that is down: the task keeps trying and :attr:`~Transport.state` says why it fails.
* Each attempt speaks MQTT 5. If the broker answers CONNACK "unsupported protocol
  version" (amqtt, old brokers), the transport retries at once with MQTT 3.1.1 and keeps
  using 3.1.1 for the rest of its life (``settings.protocol`` pins either version). A first
  attempt that ends in silence also switches version for the next one (some brokers drop
  an MQTT 5 CONNECT unanswered); one that says nothing about the version (nothing
  listening, TLS, a login refused) does not.
* When an attempt on one broker fails, the next broker of the list is tried at once; after
  a full pass without success, and after a lost connection, the task waits
  ``uniform(0, min(cap, base * 2**attempt))`` (:class:`~hereabouts.core.backoff.Backoff`,
  full jitter) and tries again, forever. The attempt counter resets once a connection is
  established. A lost connection is retried on the same broker first. Each move to
  another broker of the list takes a fresh client id (see :meth:`MqttTransport._use_host`).
* Every failed attempt is logged once, on one line: the first (WARNING) with the URL and
  the likely cause (:func:`likely_cause`: "nothing listens there: is the broker running?
  is the port right?"), later ones (INFO) with their number and the next delay, and the
  first success after failures (INFO). A transport made with ``quiet=True`` logs all of
  that at DEBUG: for a second connection of one process to the same broker, whose outages
  the first one already reports.
* A clean close is not a loss: nothing is logged when the connection ends because we asked.
* On every (re)connection the transport subscribes again to every filter it was asked for,
  *before* it reports itself connected; sessions are clean, so the broker forgets them. A
  refused filter (a SUBACK failure code) or a missing SUBACK fails the attempt, and one
  refused while connected ends the connection: the transport is connected only while it
  holds every filter, and ``state.missing_subscriptions`` names those it lacks.
* ``publish`` while disconnected raises :class:`~hereabouts.transports.errors.NotConnected`
  (no outgoing queue; see that class for why).
* The will is published with QoS 1 when the broker loses us without a DISCONNECT. A clean
  close sends DISCONNECT (reason "normal"), so the will is discarded.
* MQTT 5 connections declare a Maximum Packet Size (``settings.packet_limit``): a
  compliant broker drops any larger message meant for us instead of sending it, so we
  never read it. MQTT 3.1.1 has no way to say so, and paho reads every packet whole before
  anything can judge it; what is too big is then dropped and counted (``oversize``), after
  it has been read. Against a 3.1.1 broker the broker's own packet limit is the defence
  (docs/transports.md).

Client ids are ``hereabouts-<node name>-<12 random hex digits>``, fresh per transport
instance and kept across its reconnects. Two nodes that share a name therefore never take
over each other's session (MQTT disconnects the older client when a client id is reused),
while a reconnecting node does take over its own half-dead session after a partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import random
import re
import secrets
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any, Literal

import aiomqtt
from aiomqtt import MqttError, ProtocolVersion
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from hereabouts.broker_url import BrokerHost, BrokerUrl
from hereabouts.core.backoff import Backoff, UniformSource
from hereabouts.transports.base import (
    DEFAULT_INCOMING_CAPACITY,
    DEFAULT_MAX_PAYLOAD_BYTES,
    Subscription,
    Transport,
)
from hereabouts.transports.errors import NotConnected, SubscriptionRefused, TransportConfigError
from hereabouts.transports.mqtt_batch import AtMostOnceBatch
from hereabouts.transports.mqtt_read import deliver_at_most_once, read_everything_waiting

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
"""Loopback: the zero-setup broker (embedded amqtt or a local Mosquitto) lives here."""

DEFAULT_PORT = 1883
"""The IANA-registered MQTT port, so a stock Mosquitto works with no options at all."""

ProtocolChoice = Literal["auto", "5", "3.1.1"]

#: CONNACK codes meaning "I do not speak that protocol version": 1 in MQTT 3.1.1, 0x84 in
#: MQTT 5. paho reports either, depending on how the broker phrased its refusal.
_REFUSED_PROTOCOL_CODES = frozenset({1, 0x84})

PENDING_CALLS_WARNING = 5000
"""aiomqtt warns when more publishes than this wait for their packet to leave. Its default
(10) is normal traffic for a browser hub republishing thousands of events a second; a
backlog of thousands still deserves the warning."""

#: Failure marker in a MQTT 3.1.1 SUBACK.
_SUBACK_FAILURE = 0x80

PUBLISH_OVERHEAD_BYTES = 1024
"""Room a PUBLISH needs around its payload, for :func:`packet_limit`. A PUBLISH that
reaches us is a fixed header (at most 5 bytes), the topic (2 bytes of length, then
``hereabouts/v1/plaza/newspaper`` is 29 bytes and a site room's topic under 100), a packet
id (2) and, in MQTT 5, the properties a broker adds (subscription identifier, message
expiry: about 10 bytes): under 150 bytes for our own traffic. 1 KiB leaves room for longer
topics and a few user properties, and costs 6% on top of a 16 KiB event."""

MAX_MQTT_PACKET_BYTES = 268_435_455
"""The protocol's own ceiling (a four-byte remaining length), about 256 MiB."""

MIN_PACKET_BYTES = 128
"""The smallest Maximum Packet Size we declare: below it, control packets (a SUBACK for
many filters, a CONNACK with properties) might not fit."""


def packet_limit(max_payload_bytes: int) -> int:
    """The largest MQTT packet worth reading for payloads of at most ``max_payload_bytes``:
    the payload plus :data:`PUBLISH_OVERHEAD_BYTES`. For the wire layer's 16 KiB events,
    17,408 bytes: the Maximum Packet Size a node declares."""
    return max_payload_bytes + PUBLISH_OVERHEAD_BYTES


BROKER_MAX_PACKET_BYTES = packet_limit(DEFAULT_MAX_PAYLOAD_BYTES)
"""The packet limit for a plaza broker: 66,560 bytes, what a transport with default
settings may send or accept. The embedded broker enforces it, and the Mosquitto config in
docs/transports.md sets it as ``max_packet_size``: the broker hangs up on a client that
sends more, before reading it. Nodes declare less (events are at most 16 KiB); the broker
limit stays at the transport's, so it protects brokers and MQTT 3.1.1 clients from huge
packets without second-guessing each client's own limit."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MqttSettings:
    """Where and how an :class:`MqttTransport` connects."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    protocol: ProtocolChoice = "auto"
    """``auto`` tries MQTT 5 and falls back to 3.1.1 once; ``5`` or ``3.1.1`` pin a version."""

    keepalive_s: int = 10
    """MQTT keepalive. The broker declares us lost (and publishes our will) after 1.5 x this
    without traffic (19-20 s after a SIGSTOP on Mosquitto, whose check runs on a coarse
    tick); a node's pulses find hangs and cuts sooner and call :meth:`restart_connection`.
    Each ping costs two tiny packets per node per 10 s."""

    timeout_s: float = 10.0
    """How long to wait for CONNACK, SUBACK and PUBACK before treating the link as broken."""

    connect_timeout_s: float = 3.0
    """How long the TCP (and TLS) handshake may take. Three seconds cover the kernel's first
    SYN retry (at 1 s) on a lossy link; a link that returns after a cut is then found by the
    next attempt within seconds, where a long time-out would hold an attempt that cannot
    succeed (the kernel's next SYN retries come 3 s and 7 s in)."""

    unanswered_cap_s: float = 1.0
    """The backoff's ceiling while attempts get no answer at all (the TCP handshake timed
    out, "network unreachable", "no route to host"): most likely the link is cut, nothing
    reaches the broker and retrying often costs it nothing, while the node is back within
    seconds of the link's return. Attempts the broker answers (refused, a bad login, no
    CONNACK in ``timeout_s``) back off up to ``backoff.cap_s``. The price: a broker so
    overloaded that its kernel drops our SYNs is tried by each client about every
    ``connect_timeout_s + unanswered_cap_s / 2`` seconds, not every 15 s."""

    backoff: Backoff = field(default_factory=Backoff)
    """Reconnect delays; by default ``uniform(0, min(30 s, 1 s * 2**attempt))``."""

    incoming_capacity: int = DEFAULT_INCOMING_CAPACITY
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    max_packet_bytes: int | None = None
    """MQTT 5 Maximum Packet Size, sent in CONNECT: a compliant broker never sends us a
    larger packet (it drops the message for us, and only for us). ``None``:
    ``packet_limit(max_payload_bytes)``. A node sets it from the wire layer's event limit
    (:attr:`hereabouts.config.WireLimits.max_event_bytes`), so the broker keeps back what
    the node would refuse anyway. Not sent over MQTT 3.1.1, which has no such field."""

    failover: tuple[tuple[str, int], ...] = ()
    """More brokers, tried in order after ``host:port`` (a cluster's other members): when an
    attempt on one fails, the next is tried at once; the backoff applies between full passes
    over the list (see the module docstring)."""

    tls: bool = False
    """Speak TLS (``mqtts://``), checking the broker's certificate and host name against the
    system's certificate authorities, or ``ca_file``'s."""

    ca_file: str | None = None
    """PEM certificate authorities to trust instead of the system's (``--broker-ca``)."""

    cert_file: str | None = None
    """A PEM client certificate to present (``--broker-cert``); needs ``key_file``."""

    key_file: str | None = None
    """The PEM private key of ``cert_file`` (``--broker-key``)."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    """Sent in CONNECT; never logged, never in ``/healthz`` (``repr`` leaves it out)."""

    @classmethod
    def from_url(cls, url: BrokerUrl, **options: Any) -> MqttSettings:
        """Settings for a parsed broker URL: its hosts in order, TLS, user, password and
        protocol; ``options`` sets the rest (keepalive, TLS files, ...)."""
        first, *others = url.hosts
        return cls(
            host=first.host,
            port=first.port,
            failover=tuple((h.host, h.port) for h in others),
            tls=url.tls,
            username=url.username,
            password=url.password,
            protocol=url.protocol,
            **options,
        )

    @property
    def addresses(self) -> tuple[tuple[str, int], ...]:
        """Every broker, in the order they are tried."""
        return ((self.host, self.port), *self.failover)

    def endpoint(self, index: int = 0) -> str:
        """``mqtt[s]://host:port`` of the ``index``-th broker (no user, no password)."""
        host, port = self.addresses[index % len(self.addresses)]
        return f"{'mqtts' if self.tls else 'mqtt'}://{BrokerHost(host, port)}"

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS context for ``mqtts://`` (None for plain TCP), or a
        :class:`~hereabouts.transports.errors.TransportConfigError` for unusable files."""
        if not self.tls:
            return None
        try:
            context = ssl.create_default_context(cafile=self.ca_file)
            if self.cert_file is not None:
                context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError, ValueError) as exc:
            files = ", ".join(f for f in (self.ca_file, self.cert_file, self.key_file) if f)
            raise TransportConfigError(
                f"cannot use the broker TLS files ({files}): {exc}"
            ) from None
        return context

    @property
    def packet_limit(self) -> int:
        """The Maximum Packet Size this transport declares over MQTT 5."""
        if self.max_packet_bytes is not None:
            return self.max_packet_bytes
        return packet_limit(self.max_payload_bytes)

    def __post_init__(self) -> None:
        for _, port in self.addresses:
            if not 0 < port < 65_536:
                raise TransportConfigError(f"port must be in 1..65535, got {port}")
        if not self.tls and (self.ca_file or self.cert_file or self.key_file):
            raise TransportConfigError("ca_file, cert_file and key_file need tls=True")
        if (self.cert_file is None) != (self.key_file is None):
            raise TransportConfigError("cert_file and key_file go together")
        if self.protocol not in ("auto", "5", "3.1.1"):
            raise TransportConfigError(f"protocol must be auto, 5 or 3.1.1: {self.protocol!r}")
        if not 1 <= self.keepalive_s <= 65_535:
            raise TransportConfigError("keepalive_s must be in 1..65535")
        if not self.timeout_s > 0:
            raise TransportConfigError("timeout_s must be positive")
        if not self.connect_timeout_s > 0:
            raise TransportConfigError("connect_timeout_s must be positive")
        if not self.unanswered_cap_s > 0:
            raise TransportConfigError("unanswered_cap_s must be positive")
        if not MIN_PACKET_BYTES <= self.packet_limit <= MAX_MQTT_PACKET_BYTES:
            raise TransportConfigError(
                f"max_packet_bytes must be in {MIN_PACKET_BYTES}..{MAX_MQTT_PACKET_BYTES}"
            )


def make_client_id(node_name: str, token: str) -> str:
    """``hereabouts-<name>-<token>``, with the name reduced to characters every broker takes."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", node_name)[:40] or "node"
    return f"hereabouts-{safe}-{token}"


def _describe(exc: BaseException) -> str:
    """One line for logs and /healthz, including the cause aiomqtt wraps its errors around."""
    text = f"{type(exc).__name__}: {str(exc) or repr(exc)}"
    cause = exc.__cause__
    if cause is not None and str(cause):
        text += f" ({cause})"
    return text


_ERRNO = re.compile(r"\[Errno (-?\d+)\]\s*")
_UNRESOLVED = frozenset(
    getattr(socket, name) for name in ("EAI_NONAME", "EAI_AGAIN", "EAI_NODATA", "EAI_FAIL")
    if hasattr(socket, name)
)


def likely_cause(error: str | None, *, timeout_s: float) -> str:
    """What a failed connection attempt (``error`` as :func:`_describe` wrote it) most
    likely means, said as the question the operator should ask."""
    text = error or ""
    match = _ERRNO.search(text)
    code = int(match.group(1)) if match else None
    if code == errno.ECONNREFUSED:
        return "nothing listens there: is the broker running? is the port right?"
    if code in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "no route to that host: is the address right? is the network up?"
    if code in _UNRESOLVED:
        return "that host name does not resolve: is it spelled right?"
    if text.startswith("SubscriptionRefused"):  # refused, or never confirmed
        return "do the broker's access rules (ACLs) let this user subscribe to it?"
    if "timed out" in text.lower():
        return (
            f"no answer within {timeout_s:g}s: is a firewall dropping the connection, "
            "or is it not an MQTT broker?"
        )
    if text.startswith("MqttConnectError"):
        return "the broker turned us away: do its access rules (users, ACLs) let us in?"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "the broker's certificate is not trusted: is --broker-ca its CA?"
    return "is the address right, and is an MQTT broker listening there?"


def unanswered(error: str | None) -> bool:
    """Whether a failed attempt (``error`` as :func:`_describe` wrote it) got no answer at
    all: the TCP handshake timed out or the network has no route (a cut link). A CONNACK
    that never came is an answer of sorts (the broker accepted the connection)."""
    text = error or ""
    match = _ERRNO.search(text)
    if match and int(match.group(1)) in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT):
        return True
    return text.removeprefix("MqttError: ").strip() == "timed out"


def plain_error(error: str | None) -> str:
    """``MqttError: [Errno 111] Connection refused`` → ``connection refused``."""
    text = (error or "unknown error").removeprefix("MqttError: ")
    text = _ERRNO.sub("", text, count=1)
    return text[:1].lower() + text[1:]


def _refused_protocol(exc: MqttConnectError) -> bool:
    code = exc.rc
    value = code if isinstance(code, int) else getattr(code, "value", None)
    return value in _REFUSED_PROTOCOL_CODES


def _suback_failed(granted: Any) -> bool:
    for item in granted:
        if isinstance(item, int):
            if item >= _SUBACK_FAILURE:
                return True
        elif getattr(item, "is_failure", False):
            return True
    return False


def _suback_codes(granted: Any) -> str:
    """The SUBACK reason codes, for logs and /healthz: ``0x80`` or ``Not authorized``."""
    codes = []
    for item in granted:
        codes.append(f"{item:#04x}" if isinstance(item, int) else str(item))
    return "SUBACK " + ", ".join(codes)


def _may_mean_wrong_version(error: str | None) -> bool:
    """Whether a failed first attempt might have failed for speaking the wrong MQTT version:
    not when nothing listened, the name did not resolve, TLS failed, or the broker answered
    (a CONNACK refusal or a SUBACK speaks our version)."""
    text = error or ""
    match = _ERRNO.search(text)
    if match and int(match.group(1)) in (
        errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, *_UNRESOLVED
    ):
        return False
    return not text.startswith(("MqttConnectError", "SubscriptionRefused", "SSL")) and (
        "CERTIFICATE" not in text.upper()
    )


def _as_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return b"" if payload is None else str(payload).encode("utf-8")


class MqttTransport(Transport):
    """A plaza transport over an MQTT broker."""

    def __init__(
        self,
        *,
        node_name: str,
        settings: MqttSettings | None = None,
        rng: UniformSource | None = None,
        quiet: bool = False,
    ) -> None:
        """``node_name`` labels the client id; ``rng`` draws backoff jitter (tests seed it);
        ``quiet`` logs connection trouble at DEBUG only (another connection of this process
        to the same broker reports it)."""
        self.settings = settings = settings or MqttSettings()
        super().__init__(
            endpoint=settings.endpoint(0),
            incoming_capacity=settings.incoming_capacity,
            max_payload_bytes=settings.max_payload_bytes,
        )
        self._tls_context = settings.tls_context()  # bad files fail here, not on each try
        self._host_index = 0
        """Which of ``settings.addresses`` the current (or next) attempt connects to."""
        self._state = dataclasses.replace(
            self._state, brokers=tuple(settings.endpoint(i) for i in range(len(settings.addresses)))
        )
        self._missing: dict[str, str] = {}
        """Filters wanted but not subscribed on the broker, with why (refused, no answer)."""
        self._resubscribe = asyncio.Event()
        """Set when a live SUBSCRIBE failed, or :meth:`restart_connection` was asked: the
        session ends and the next one restores it."""
        self._restart_why: str | None = None
        self.node_name = node_name
        self.client_id = make_client_id(node_name, secrets.token_hex(6))
        self._rng: UniformSource = rng if rng is not None else random.Random()
        self._protocol = (
            ProtocolVersion.V311 if settings.protocol == "3.1.1" else ProtocolVersion.V5
        )
        self._may_fall_back = settings.protocol == "auto"
        self._filters: dict[str, Subscription] = {}
        self._client: aiomqtt.Client | None = None
        self._at_most_once: AtMostOnceBatch | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._first_attempt = asyncio.Event()
        self._quiet = quiet
        self._failed_attempts = 0
        """Failed attempts since the last established connection, for the logs."""

    @property
    def protocol_name(self) -> str:
        """``5`` or ``3.1.1``: the version the next connection attempt will speak."""
        return "5" if self._protocol == ProtocolVersion.V5 else "3.1.1"

    # --- Transport hooks -----------------------------------------------------------------

    async def _connect(self) -> None:
        self._runner = asyncio.create_task(self._run(), name=f"mqtt-{self.client_id}")
        await self._first_attempt.wait()

    async def _close(self) -> None:
        self._stop.set()
        runner = self._runner
        if runner is None:
            return
        try:
            # The runner sends DISCONNECT and waits for the socket to close.
            await asyncio.wait_for(asyncio.shield(runner), self.settings.timeout_s + 1)
        except TimeoutError:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner

    async def _publish(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> None:
        client = self._client
        if client is None or not self.state.connected:
            raise NotConnected(f"not connected to {self.state.endpoint}: {self.state.last_error}")
        if qos == 0:
            self._publish_at_most_once(client, topic, payload, retain=retain)
            return
        try:
            await client.publish(
                topic, payload, qos=qos, retain=retain, timeout=self.settings.timeout_s
            )
        except MqttError as exc:
            raise NotConnected(f"publish to {self.state.endpoint} failed: {exc}") from exc

    def _publish_now(self, topic: str, payload: bytes) -> None:
        client = self._client
        if client is None or not self.state.connected:
            raise NotConnected(f"not connected to {self.state.endpoint}: {self.state.last_error}")
        self._publish_at_most_once(client, topic, payload, retain=False)

    def _publish_at_most_once(
        self, client: aiomqtt.Client, topic: str, payload: bytes, *, retain: bool
    ) -> None:
        """QoS 0: queue the packet for this loop turn's single write and return.

        aiomqtt's ``publish`` would wait, with a task, an event and a timer, until the
        packet has left our socket, and paho's would build and report each packet on its
        own. For "at most once" neither says anything the broker would confirm, and
        together they were a large share of a browser hub's time at thousands of events a
        second: :mod:`~hereabouts.transports.mqtt_batch` writes them in one piece instead.
        """
        batch = self._at_most_once
        if batch is None or batch.paho is not client._client:
            # paho is reached through aiomqtt's ``_client``, the client aiomqtt drives.
            batch = self._at_most_once = AtMostOnceBatch(
                client._client, mqtt5=self._protocol == ProtocolVersion.V5
            )
        batch.add(topic, payload, retain=retain)

    async def _subscribe(self, topic_filter: str, subscription: Subscription) -> None:
        self._filters[topic_filter] = subscription
        client = self._client
        if client is None or not self.state.connected:
            return  # sent by the runner on the next connection
        try:
            granted = await self._send_subscribe(client, topic_filter, subscription)
        except MqttError as exc:
            # The link broke, or the broker did not answer: either way this connection
            # lacks the filter, so it ends and the next one subscribes again.
            self._subscription_failed(topic_filter, f"no SUBACK: {exc}")
            return
        if _suback_failed(granted):
            self._subscription_failed(topic_filter, f"refused ({_suback_codes(granted)})")

    def _subscription_failed(self, topic_filter: str, why: str) -> None:
        """A filter the connection should carry is missing: say so and end the session."""
        if topic_filter not in self._filters:
            return  # unsubscribed meanwhile
        self._set_missing({**self._missing, topic_filter: why})
        log.warning(
            "%s: subscription to %r %s; reconnecting to restore it",
            self.state.endpoint,
            topic_filter,
            why,
        )
        self._resubscribe.set()

    def restart_connection(self, why: str) -> None:
        if self._client is None or not self.state.connected or self._resubscribe.is_set():
            return
        log.warning("%s: %s; connecting again", self.state.endpoint, why)
        self._restart_why = why
        self._resubscribe.set()

    def _set_missing(self, missing: dict[str, str]) -> None:
        self._missing = missing
        self._state = dataclasses.replace(
            self._state, missing_subscriptions=tuple(sorted(missing))
        )

    async def _unsubscribe(self, topic_filter: str) -> None:
        if topic_filter in self._missing:
            self._set_missing({k: v for k, v in self._missing.items() if k != topic_filter})
        if self._filters.pop(topic_filter, None) is None:
            return
        client = self._client
        if client is None or not self.state.connected:
            return  # the next connection starts clean and never subscribes to it
        try:
            await client.unsubscribe(topic_filter, timeout=self.settings.timeout_s)
        except MqttError as exc:
            # The link just broke; the next session starts clean without this filter.
            log.debug("unsubscribe %s lost with the connection: %s", topic_filter, exc)

    # --- the background task -------------------------------------------------------------

    async def _run(self) -> None:
        """Connect, serve, and reconnect with backoff until close(); never raises."""
        attempt = 0
        tried = 0  # hosts that failed in the current pass over the list
        hosts = len(self.settings.addresses)
        try:
            while not self._stop.is_set():
                established, error = await self._session()
                self._first_attempt.set()
                if self._stop.is_set():
                    break
                if established:
                    attempt = 0
                    tried = 0
                    self._failed_attempts = 0
                else:
                    self._failed_attempts += 1
                    tried += 1
                if (
                    not established
                    and self._may_fall_back
                    and self.state.connections == 0
                    and _may_mean_wrong_version(error)
                ):
                    # Some 3.1.1-only brokers (amqtt) drop an MQTT 5 CONNECT that carries a
                    # will instead of refusing it, so a silent failure before we ever got in
                    # may mean "wrong version" too: alternate until one attempt succeeds.
                    self._protocol = (
                        ProtocolVersion.V311
                        if self._protocol == ProtocolVersion.V5
                        else ProtocolVersion.V5
                    )
                if not established and hosts > 1:
                    failed = self.state.endpoint
                    self._use_host(self._host_index + 1)
                    if tried < hosts:  # the rest of this pass first, at once
                        self._log_failover(failed, error)
                        continue
                    tried = 0
                try:
                    delay = self.settings.backoff.delay_from(self._rng, attempt)
                    if unanswered(error):  # a cut link: see MqttSettings.unanswered_cap_s
                        delay = min(delay, self._rng.random() * self.settings.unanswered_cap_s)
                    self._log_retry(established=established, error=error, delay=delay)
                except Exception as exc:  # a broken RNG must not end the reconnect loop
                    delay = self.settings.backoff.cap_s
                    log.error("backoff failed (%s); retrying in %.2fs", _describe(exc), delay)
                attempt += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
        finally:
            self._first_attempt.set()

    def _use_host(self, index: int) -> None:
        index %= len(self.settings.addresses)
        if index != self._host_index:
            # A new client id on another broker: RabbitMQ keeps a QoS 1 subscriber's queue
            # durable, named after the client id and homed on the member it was made on, so
            # on a lost member that name can be declared nowhere else until the member
            # returns. The same broker keeps the old id, whose takeover ends a half-open
            # earlier connection at once; the ``session`` count in our events outranks any
            # will a connection under an older id leaves behind.
            self.client_id = make_client_id(self.node_name, secrets.token_hex(6))
        self._host_index = index
        self._state = dataclasses.replace(
            self._state, endpoint=self.settings.endpoint(self._host_index)
        )

    def _log_failover(self, failed: str, error: str | None) -> None:
        """One line per host that failed within a pass; the next one is tried at once. The
        first of an outage is a WARNING with the likely cause, as in :meth:`_log_retry`."""
        if self._failed_attempts == 1:
            log.log(
                logging.DEBUG if self._quiet else logging.WARNING,
                "cannot reach the broker at %s (%s): %s Trying %s",
                failed,
                plain_error(error),
                likely_cause(error, timeout_s=self.settings.timeout_s),
                self.state.endpoint,
            )
            return
        log.log(
            logging.DEBUG if self._quiet else logging.INFO,
            "cannot reach the broker at %s (try %d: %s); trying %s",
            failed,
            self._failed_attempts,
            plain_error(error),
            self.state.endpoint,
        )

    def _log_retry(self, *, established: bool, error: str | None, delay: float) -> None:
        """One line per backoff step (see the module docstring)."""
        where = self.state.endpoint
        if len(self.settings.addresses) > 1 and not established:
            where = f"any of {', '.join(self.state.brokers)}"
        warning = logging.DEBUG if self._quiet else logging.WARNING
        info = logging.DEBUG if self._quiet else logging.INFO
        if established:
            log.log(warning, "lost %s (%s); reconnecting in %.2fs", where, error, delay)
        elif self._failed_attempts == 1:
            log.log(
                warning,
                "cannot reach the broker at %s (%s): %s Retrying in %.1fs, then less and "
                "less often (at most %gs apart), one line per try",
                where,
                plain_error(error),
                likely_cause(error, timeout_s=self.settings.timeout_s),
                delay,
                self.settings.backoff.cap_s,
            )
        else:
            log.log(
                info,
                "still cannot reach %s (try %d: %s); next try in %.1fs",
                where,
                self._failed_attempts,
                plain_error(error),
                delay,
            )

    async def _session(self) -> tuple[bool, str | None]:
        """One connection from CONNECT to its end: (was it established, why it ended)."""
        established = False
        error: str | None = None
        try:
            try:
                await self._serve(self._new_client())
                established = True
            except MqttConnectError as exc:
                if not (self._may_fall_back and _refused_protocol(exc)):
                    raise
                self._may_fall_back = False
                self._protocol = ProtocolVersion.V311
                log.info("%s does not speak MQTT 5; using MQTT 3.1.1", self.state.endpoint)
                await self._serve(self._new_client())
                established = True
        except _Lost as lost:
            established, error = True, _describe(lost.cause)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the task must survive anything the network throws at it
            error = _describe(exc)
        finally:
            self._client = None
            self._at_most_once = None
            # Name the broker that failed: with several, ``endpoint`` moves on to the next
            # at once, and an error read beside it would seem to be that one's.
            where = f" (at {self.state.endpoint})" if len(self.settings.addresses) > 1 else ""
            self._set_disconnected(None if error is None else error + where)
        return established, error

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Connect ``client``, restore subscriptions, pump messages until stop or loss."""
        async with client:
            # A failure before we report "connected" counts as a failed attempt, not a loss.
            await self._restore_subscriptions(client)
            self._client = client
            self._set_connected(protocol=self.protocol_name)
            self._first_attempt.set()
            info = logging.DEBUG if self._quiet else logging.INFO
            if self.state.connections > 1:
                where, protocol = self.state.endpoint, self.protocol_name
                log.log(info, "reconnected to %s (MQTT %s)", where, protocol)
            elif self._failed_attempts:
                log.log(
                    info,
                    "reached the broker at %s (MQTT %s) after %d failed tries",
                    self.state.endpoint,
                    self.protocol_name,
                    self._failed_attempts,
                )
            try:
                await self._pump_until_stopped(client)
            except (MqttError, OSError, SubscriptionRefused) as exc:
                raise _Lost(exc) from exc

    async def _restore_subscriptions(self, client: aiomqtt.Client) -> None:
        """Subscribe to every wanted filter; a refusal or a missing SUBACK fails the attempt
        (:class:`SubscriptionRefused`), so the transport never says "connected" without
        them, and ``state.missing_subscriptions`` names what is missing until it holds."""
        self._resubscribe.clear()
        done: set[str] = set()
        # Loop until stable: subscribe() and unsubscribe() may change the filters while we
        # await SUBACKs, and they only reach the broker themselves once we are connected.
        while True:
            pending = [f for f in self._filters if f not in done]
            dropped = [f for f in done if f not in self._filters]
            if not pending and not dropped:
                return
            for topic_filter in pending:
                subscription = self._filters.get(topic_filter)
                if subscription is None:
                    continue
                try:
                    granted = await self._send_subscribe(client, topic_filter, subscription)
                except MqttError as exc:
                    # The broker let us in, then never confirmed the filter: RabbitMQ closes
                    # the connection on a SUBSCRIBE its rules deny, without a failure code.
                    self._set_missing({**self._missing, topic_filter: f"no SUBACK: {exc}"})
                    raise SubscriptionRefused(
                        f"no SUBACK for the subscription to {topic_filter!r} ({exc})"
                    ) from exc
                if _suback_failed(granted):
                    why = f"refused ({_suback_codes(granted)})"
                    self._set_missing({**self._missing, topic_filter: why})
                    raise SubscriptionRefused(
                        f"the broker refused the subscription to {topic_filter!r} "
                        f"({_suback_codes(granted)})"
                    )
                done.add(topic_filter)
                if topic_filter in self._missing:
                    self._set_missing(
                        {k: v for k, v in self._missing.items() if k != topic_filter}
                    )
            for topic_filter in dropped:
                done.discard(topic_filter)
                await client.unsubscribe(topic_filter, timeout=self.settings.timeout_s)

    async def _pump_until_stopped(self, client: aiomqtt.Client) -> None:
        pump = asyncio.create_task(self._pump(client), name=f"mqtt-pump-{self.client_id}")
        stopper = asyncio.create_task(self._stop.wait())
        resubscribe = asyncio.create_task(self._resubscribe.wait())
        try:
            await asyncio.wait(
                {pump, stopper, resubscribe}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopper.cancel()
            resubscribe.cancel()
            if not pump.done():
                pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump  # re-raises MqttError when the connection was lost
        if self._resubscribe.is_set() and not self._stop.is_set():
            why, self._restart_why = self._restart_why, None
            if why is not None and not self._missing:
                raise ConnectionAbortedError(why)
            missing = ", ".join(repr(f) for f in self._missing) or "a filter"
            raise SubscriptionRefused(f"subscription to {missing} failed")

    async def _pump(self, client: aiomqtt.Client) -> None:
        # aiomqtt's iterator makes a task and waits on it for every message: three loop
        # turns each. What else is already queued is taken at once (aiomqtt's ``_queue``,
        # which its iterator reads), so a busy loop does not fall behind the broker.
        waiting = client._queue
        async for first in client.messages:
            message = first
            while True:
                self._deliver(
                    message.topic.value, _as_bytes(message.payload), retain=message.retain
                )
                try:
                    message = waiting.get_nowait()
                except asyncio.QueueEmpty:
                    break

    async def _send_subscribe(
        self, client: aiomqtt.Client, topic_filter: str, subscription: Subscription
    ) -> Any:
        """SUBSCRIBE, with MQTT 5's No Local option when asked (3.1.1 has no way to say it)."""
        if subscription.no_local and self._protocol == ProtocolVersion.V5:
            options = SubscribeOptions(qos=subscription.qos, noLocal=True)
            return await client.subscribe(
                topic_filter, options=options, timeout=self.settings.timeout_s
            )
        return await client.subscribe(
            topic_filter, subscription.qos, timeout=self.settings.timeout_s
        )

    def _new_client(self) -> aiomqtt.Client:
        s = self.settings
        will = None
        message = self._will_for_next_connection()
        if message is not None:
            will = aiomqtt.Will(
                topic=message.topic, payload=message.payload, qos=1, retain=message.retain
            )
        properties = None
        if self._protocol == ProtocolVersion.V5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.MaximumPacketSize = s.packet_limit
        host, port = s.addresses[self._host_index]
        client = _Client(
            host,
            port,
            identifier=self.client_id,
            protocol=self._protocol,
            properties=properties,
            # MQTT 5 expresses a clean session as clean_start (aiomqtt's default).
            clean_session=True if self._protocol == ProtocolVersion.V311 else None,
            will=will,
            keepalive=s.keepalive_s,
            timeout=s.timeout_s,
            username=s.username,
            password=s.password,
            tls_context=self._tls_context,
            logger=_PAHO_LOG,  # type: ignore[arg-type]  # an adapter logs as a Logger does
        )
        client.pending_calls_threshold = PENDING_CALLS_WARNING
        client._client.connect_timeout = s.connect_timeout_s  # paho's TCP and TLS handshake
        read_everything_waiting(client._client)  # not one message per event-loop turn
        deliver_at_most_once(  # QoS 0 without paho's and aiomqtt's objects
            client._client, self._deliver, mqtt5=self._protocol == ProtocolVersion.V5
        )
        return client


class _Lost(Exception):
    """An established connection ended; carries the underlying error."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _Client(aiomqtt.Client):
    """aiomqtt's client, with paho's write interest registered only on a live socket.

    paho asks for write readiness (``on_socket_register_write``) when it has bytes to send,
    and aiomqtt defers the registration with ``call_soon_threadsafe``, since paho may call
    from a thread. If paho finds the connection dead before that deferred call runs (a
    process resumed after SIGSTOP sends its overdue heartbeat and reads the broker's EOF in
    one loop turn), it closes the socket, and the deferred ``add_writer`` hits a closed file
    descriptor: asyncio logged ``KeyError: '13 is not registered'`` / ``Bad file
    descriptor`` at ERROR with a traceback, or (had the number been reused meanwhile)
    watched another socket. Here the deferred call first checks that the socket is still
    paho's current one.

    And a connection the broker drops while we still set it up (RabbitMQ hangs up on a
    SUBSCRIBE its rules deny) leaves aiomqtt's "disconnected" future holding the error with
    nobody to read it: leaving the client reads it, since the failed attempt already says
    why, where asyncio logged "Future exception was never retrieved" with a traceback.
    """

    async def __aexit__(self, *exc_info: Any) -> None:
        gone = self._disconnected
        if gone.done() and not gone.cancelled():
            gone.exception()  # read, so not reported as lost; the attempt's error says it
        await super().__aexit__(*exc_info)

    def _on_socket_register_write(
        self, client: Any, userdata: Any, sock: Any
    ) -> None:
        def write() -> None:
            try:
                client.loop_write()
            except Exception as exc:  # a broken link: end the connection, as aiomqtt does
                if not self._disconnected.done():
                    self._disconnected.set_exception(exc)

        def register() -> None:
            if client.socket() is sock and sock.fileno() >= 0:
                self._loop.add_writer(sock.fileno(), write)

        self._loop.call_soon_threadsafe(register)


class _PahoLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """paho's own log, with its reports of a broken socket moved to DEBUG.

    When a link breaks, paho logs ``failed to receive on socket: ...`` at ERROR, and the
    transport then says ``lost ...; reconnecting`` at WARNING with the same cause: one
    event, two lines, one of them an ERROR for something the transport handles. The
    transport's line is the one kept (``--verbose`` shows both)."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if level >= logging.ERROR and isinstance(msg, str) and msg.startswith(_LINK_FAILURES):
            level = logging.DEBUG
        super().log(level, msg, *args, **kwargs)


_LINK_FAILURES = ("failed to receive on socket", "timeout on socket")
_PAHO_LOG = _PahoLog(logging.getLogger(f"{__name__}.client"), {})
