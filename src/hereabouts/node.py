"""The peer-presence node: wires identity, plaza, ledger and the core objects together.

``async with Node(config) as node:`` connects to the plaza, announces itself and keeps an
ONLINE / OFFLINE / MISSING view of every peer until the block ends, when it says ``chau``.
Protocol decisions live in :mod:`hereabouts.core`; this module only carries them out:

* **Start.** Replay the ledger; register a will that is a pre-signed ``lost`` event for this
  boot *and connection* (a reconnect signs a new one, so an old will can never outrank
  later news); connect; wait the discovery jitter; publish ``hey_there``.
* **Receive.** Every message goes through :class:`~hereabouts.ingest.Ingestor` (verify,
  rate limit, topic check, TOFU, ledger, projection). Only hey_there events that arrive on
  the plaza's hey_there topic can trigger a howdy; the neighbours listed in a howdy are
  ingested as events but never welcomed again.
* **Timers.** One task sleeps until the earliest of: a peer's MISSING deadline, a planned
  howdy, the end of the boot window.
* **Heartbeats.** ``newspaper`` at the adaptive cadence; one more right after a reconnect.
* **Stop.** Publish ``chau`` (QoS 1), then disconnect cleanly so the will is not sent.
* **Stealth.** Listen and build the full view; publish nothing at all, not even a will.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import random
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import msgspec
from prometheus_client.registry import CollectorRegistry

from hereabouts.config import Config, production
from hereabouts.core.cadence import NewspaperCadence
from hereabouts.core.effects import Status, StatusChanged
from hereabouts.core.howdy import Candidate, HowdyCoordinator
from hereabouts.core.projection import PeerView, Projection
from hereabouts.core.ratelimit import RateLimiter
from hereabouts.errors import ConfigError, HereaboutsError, RateLimited, TopicMismatch
from hereabouts.events import (
    AnyEvent,
    Chau,
    HeyThere,
    Howdy,
    Lost,
    Newspaper,
    NewspaperStatus,
    SignedEvent,
)
from hereabouts.fanout import Fanout
from hereabouts.identity import Identity, load_or_create_identity
from hereabouts.ingest import Accepted, Ingestor
from hereabouts.keyring import KEYRING_FILE_NAME, Keyring
from hereabouts.ledger import LEDGER_FILE_NAME, Ledger, SqliteLedger
from hereabouts.metrics import Counters
from hereabouts.node_metrics import NodeCollector
from hereabouts.tasks import BackgroundTasks
from hereabouts.transports.base import Message, Transport
from hereabouts.transports.broker import EmbeddedBroker, ensure_local_broker
from hereabouts.transports.mqtt import MqttSettings, MqttTransport, ProtocolChoice, packet_limit
from hereabouts.transports.topics import plaza_kind, plaza_topic
from hereabouts.wire import seal, unseal

log = logging.getLogger(__name__)

PLAZA_FILTER = "hereabouts/v1/plaza/+"
CHANGES_QUEUE = 1000
"""Status changes buffered per ``changes()`` subscriber; a slower reader loses the oldest."""


def parse_broker_url(url: str) -> tuple[str, int]:
    """``mqtt://host[:port]`` → (host, port)."""
    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise ConfigError(f"broker URL must look like mqtt://host:port, got {url!r}")
    return parts.hostname, parts.port or 1883


class Node:
    """One presence node. Keyword-only options; every default comes from ``config``."""

    def __init__(
        self,
        config: Config | None = None,
        *,
        name: str | None = None,
        identity: Identity | None = None,
        transport: Transport | None = None,
        ledger: Ledger | None = None,
        keyring: Keyring | None = None,
        stealth: bool | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        log_changes: bool = True,
    ) -> None:
        """``identity``, ``transport``, ``ledger`` and ``keyring`` default to the ones in
        ``config.home`` and on ``config.node.broker_url`` (or the embedded broker); pass
        your own to run several nodes in one process. ``clock`` returns Unix seconds;
        ``log_changes=False`` keeps status changes out of the INFO log (demo peers)."""
        self.config = config or production()
        node_config = self.config.node
        self.name = name or node_config.name or socket.gethostname() or "node"
        self.stealth = node_config.stealth if stealth is None else stealth
        self._clock = clock
        self._rng = rng or random.Random()
        self._identity = identity
        self._transport = transport
        self._ledger = ledger
        self._keyring = keyring
        self._owns_stores = ledger is None
        self._broker: EmbeddedBroker | None = None
        self.boot_id = secrets.token_hex(8)
        self.started_at_ms = self._now_ms()
        self.counters = Counters()
        self.registry = CollectorRegistry()
        self._background = BackgroundTasks()
        self._changes: Fanout[StatusChanged] = Fanout(
            capacity=CHANGES_QUEUE,
            on_drop=lambda: self.counters.add("changes_dropped", "slow_subscriber"),
        )
        self._howdy_due: list[tuple[int, str]] = []
        self._wake = asyncio.Event()
        self._latest_hey_there: dict[str, SignedEvent] = {}
        self._session = 0
        self._announced = asyncio.Event()
        self._howdys_to_us = 0
        self._boot_end_ms: int | None = None
        self._running = False
        self._log_changes = log_changes

    # --- public view ----------------------------------------------------------------------

    @property
    def did(self) -> str:
        return self.identity.did

    @property
    def identity(self) -> Identity:
        if self._identity is None:
            raise RuntimeError("the node's identity is loaded when the node starts")
        return self._identity

    @property
    def transport(self) -> Transport:
        assert self._transport is not None, "the transport is set up when the node starts"
        return self._transport

    def peers(self) -> list[PeerView]:
        """Every known peer (and this node) as seen now."""
        return self.projection.peers(self._now_ms())

    def status_of(self, did: str) -> Status | None:
        return self.projection.status(did, self._now_ms())

    async def changes(self) -> AsyncIterator[StatusChanged]:
        """Status changes from now on, until the node stops. One queue per call."""
        async for change in self._changes.subscribe():
            yield change

    def health(self) -> dict[str, object]:
        state = self.transport.state
        by_status: dict[str, int] = {s.value: 0 for s in Status}
        for view in self.peers():
            by_status[view.status.value] += 1
        return {
            "ok": state.connected,
            "name": self.name,
            "did": self.did,
            "stealth": self.stealth,
            "booting": self.projection.booting,
            "broker": state.as_dict(),
            "peers": by_status,
            "ledger_events": len(self.ingestor.ledger),
        }

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Open stores, connect, and start the background tasks (announcing after jitter)."""
        config = self.config
        home = config.home
        if self._identity is None:
            self._identity, _ = load_or_create_identity(home)
        if self._ledger is None:
            self._ledger = SqliteLedger(home / LEDGER_FILE_NAME)
        if self._keyring is None:
            self._keyring = Keyring(home / KEYRING_FILE_NAME)
        self.projection = Projection(config.projection, started_at_ms=self.started_at_ms)
        self._limiter = RateLimiter(
            rate_per_s=config.node.rate_limit_per_s, burst=config.node.rate_limit_burst
        )
        self.ingestor = Ingestor(
            ledger=self._ledger,
            projection=self.projection,
            keyring=self._keyring,
            limits=config.wire,
            retention_s=config.ledger.retention_s,
            counters=self.counters,
        )
        self.howdy = HowdyCoordinator(
            config.howdy, self_did=self.did, max_event_bytes=config.wire.max_event_bytes
        )
        self.cadence = NewspaperCadence(config.heartbeat)
        now = self._now_ms()
        replayed = self.ingestor.replay(now)
        for signed in self._ledger.replay():
            if isinstance(signed.event, HeyThere):
                self._remember_hey_there(signed)
                self.howdy.on_hey_there(signed, now)  # learns known boots; stale, so no reply
        log.info("%s (%s) starting; %d events replayed", self.name, self.did, replayed)
        if self._transport is None:
            self._transport = await self._default_transport()
        NodeCollector(self).register(self.registry)
        self.counters.register(self.registry)
        transport = self._transport
        if not self.stealth:
            transport.set_will_source(self._will_for_connection)
        transport.on_connect(self._on_connected)
        await transport.subscribe(PLAZA_FILTER)
        await transport.connect()
        self._running = True
        self._spawn(self._receive_loop(), "receive")
        self._spawn(self._timer_loop(), "timers")
        self._spawn(self._prune_loop(), "retention")
        if not self.stealth:
            self._spawn(self._announce_then_heartbeat(), "announce")
        else:
            self._announced.set()
            first_sync_ms = int(config.node.first_sync_s * 1000)
            self._schedule_boot_end(self._now_ms() + first_sync_ms)

    async def stop(self) -> None:
        """Say chau (unless stealthy), disconnect cleanly, stop tasks, close what we own."""
        if not self._running:
            return
        self._running = False
        if not self.stealth and self._announced.is_set():
            await self._publish_event(self._event(Chau))
        await self._background.cancel_all()
        await self.transport.close()
        self._changes.close()
        if self._owns_stores and self._ledger is not None and self._keyring is not None:
            self._ledger.close()
            self._keyring.close()
        if self._broker is not None:
            await self._broker.close()

    async def wait_announced(self) -> None:
        """Until our hey_there has been published (immediately for a stealth node)."""
        await self._announced.wait()

    # --- set-up helpers -------------------------------------------------------------------

    async def _default_transport(self) -> Transport:
        node = self.config.node
        protocol: ProtocolChoice = "auto"
        if node.broker_url is None:
            self._broker = await ensure_local_broker(port=node.embedded_broker_port)
            host, port = "127.0.0.1", node.embedded_broker_port
            protocol = "3.1.1"  # the embedded broker (amqtt) speaks only 3.1.1
        else:
            host, port = parse_broker_url(node.broker_url)
        settings = MqttSettings(
            host=host,
            port=port,
            keepalive_s=node.keepalive_s,
            protocol=protocol,
            # The broker keeps back, unsent, what the wire layer would refuse anyway.
            max_packet_bytes=packet_limit(self.config.wire.max_event_bytes),
        )
        return MqttTransport(node_name=self.name, settings=settings, rng=self._rng)

    def _will_for_connection(self, connection: int) -> Message:
        lost = self._event(Lost, session=connection)
        return Message(topic=plaza_topic("lost"), payload=seal(lost, self.identity))

    def _on_connected(self, connection: int) -> None:
        self._session = connection
        if connection > 1 and self._announced.is_set() and not self.stealth:
            # Speak in the new session at once, so a late will of the old one is outranked.
            self._spawn(self._publish_event(self._newspaper()), "reconnected-newspaper")

    def _spawn(self, coroutine: Coroutine[Any, Any, object], name: str) -> None:
        self._background.spawn(coroutine, name=f"{self.name}:{name}")

    # --- making and sending events --------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _event(self, kind: type[AnyEvent], **fields: object) -> AnyEvent:
        header: dict[str, object] = {
            "name": self.name,
            "did": self.did,
            "boot_id": self.boot_id,
            "session": self._session,
            "at_ms": self._now_ms(),
        }
        header.update(fields)
        return kind(**header)  # type: ignore[arg-type]

    def _newspaper(self) -> AnyEvent:
        online = sum(1 for v in self.peers() if v.status is Status.ONLINE and v.did != self.did)
        status = NewspaperStatus(
            online_peers=online,
            uptime_s=max(0, (self._now_ms() - self.started_at_ms) // 1000),
            next_in_s=int(self.cadence.next_in_s),
        )
        return self._event(Newspaper, status=status)

    async def _publish_event(self, event: AnyEvent) -> SignedEvent | None:
        """Seal, take into our own view, publish; a plaza outage is logged, never raised."""
        data = seal(event, self.identity, limits=self.config.wire)
        signed = unseal(data, check_clock=False)
        self._accepted(self.ingestor.ingest(data, self._now_ms()), from_plaza=False)
        try:
            await self.transport.publish(plaza_topic(signed.kind), data)
        except HereaboutsError as exc:  # NotConnected, TransportClosed, ...
            self.counters.add("publish_failed", signed.kind)
            log.warning("could not publish %s: %s", signed.kind, exc)
            return None
        self.counters.add("events_out", signed.kind)
        return signed

    async def _announce_then_heartbeat(self) -> None:
        jitter_s = self._rng.random() * self.config.node.discovery_jitter_max_s
        await asyncio.sleep(jitter_s)
        await self.transport.wait_connected()
        hey_there = self._event(HeyThere, started_at_ms=self.started_at_ms, transport="plaza")
        while await self._publish_event(hey_there) is None:
            await asyncio.sleep(1.0)
            await self.transport.wait_connected()
        self._announced.set()
        first_sync_ms = int(self.config.node.first_sync_s * 1000)
        self._schedule_boot_end(self._now_ms() + first_sync_ms)
        announced_at = hey_there.at_ms
        # Re-announce (same boot, so nobody welcomes us again) at half the retention window:
        # a hey_there older than retention is refused by nodes that meet us later (inside a
        # howdy), and they would never learn our endpoints.
        reannounce_ms = int(self.config.ledger.retention_s * 1000) // 2
        while True:
            delay_ms = self.cadence.next_delay_ms(self._now_ms(), self._rng.random())
            await asyncio.sleep(delay_ms / 1000)
            if self._now_ms() - announced_at >= reannounce_ms:
                renewed = self._event(
                    HeyThere, started_at_ms=self.started_at_ms, transport="plaza"
                )
                if await self._publish_event(renewed) is not None:
                    announced_at = renewed.at_ms
            await self._publish_event(self._newspaper())

    # --- receiving ------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        async for message in self.transport.messages():
            self._receive_message(message)

    def _receive_message(self, message: Message) -> None:
        kind = plaza_kind(message.topic)
        try:
            self._receive(message.payload, kind)
        except HereaboutsError:
            raise  # local errors (storage) must surface
        except Exception:  # a bug must not silence the node; count and carry on
            self.counters.add("handler_errors", kind or "unknown")
            log.exception("error handling a %s message", kind)

    def _receive(self, payload: bytes, topic_kind: str | None) -> None:
        now = self._now_ms()
        outcome = self.ingestor.ingest(
            payload, now, gate=lambda signed: self._gate(signed, topic_kind, now)
        )
        if not isinstance(outcome, Accepted):
            log.debug("refused a message on %s: %s", topic_kind, outcome.error)
            return
        self._accepted(outcome, from_plaza=True)

    def _gate(self, signed: SignedEvent, topic_kind: str | None, now_ms: int) -> None:
        if topic_kind != signed.kind:
            raise TopicMismatch(f"{signed.kind} event on the {topic_kind} topic")
        if not self._limiter.allow(signed.did, now_ms):
            raise RateLimited(f"{signed.event.name!r} exceeds its rate limit")

    def _accepted(self, outcome: object, *, from_plaza: bool) -> None:
        if not isinstance(outcome, Accepted):
            return
        signed = outcome.event
        self._broadcast(outcome.changes)
        if not outcome.new:
            return
        event = signed.event
        now = self._now_ms()
        if isinstance(event, HeyThere):
            self._remember_hey_there(signed)
            if from_plaza:
                online = sum(1 for v in self.projection.peers(now) if v.status is Status.ONLINE)
                due = self.howdy.on_hey_there(signed, now, online_peers=online)
                if due is not None and not self.stealth:
                    heapq.heappush(self._howdy_due, (due.at_ms, due.hey_there_id))
                    self._wake.set()
        elif isinstance(event, Howdy) and from_plaza:
            self._take_howdy(signed, event, now)

    def _take_howdy(self, signed: SignedEvent, howdy: Howdy, now_ms: int) -> None:
        vouched = []
        for raw in howdy.neighbours:
            outcome = self.ingestor.ingest(bytes(raw), now_ms)
            if isinstance(outcome, Accepted) and isinstance(outcome.event.event, HeyThere):
                vouched.append(outcome.event.did)
                self._accepted(outcome, from_plaza=False)
        self.howdy.on_howdy(signed, now_ms, neighbour_dids=vouched)
        if howdy.to_did == self.did:
            self._howdys_to_us += 1
            if self._howdys_to_us >= self.config.howdy.max_howdys:
                self._schedule_boot_end(now_ms)

    def _remember_hey_there(self, signed: SignedEvent) -> None:
        held = self._latest_hey_there.get(signed.did)
        if held is None or signed.order_key > held.order_key:
            self._latest_hey_there[signed.did] = signed

    def _broadcast(self, changes: list[StatusChanged]) -> None:
        if not changes:
            return
        if any(c.did != self.did for c in changes):
            self.cadence.note_change(self._now_ms())
        for change in changes:
            if self._log_changes:
                log.info("%s is %s (%s)", change.name or "a peer", change.new.value, change.cause)
            self._changes.publish(change)

    # --- timers ---------------------------------------------------------------------------

    def _schedule_boot_end(self, at_ms: int) -> None:
        """End the boot window at ``at_ms`` (or earlier, if already planned earlier)."""
        if self._boot_end_ms is None or at_ms < self._boot_end_ms:
            self._boot_end_ms = at_ms
        self._wake.set()

    def _next_wake_ms(self) -> int | None:
        candidates = [t for t in (self.projection.next_deadline(),) if t is not None]
        if self._howdy_due:
            candidates.append(self._howdy_due[0][0])
        if self.projection.booting and self._boot_end_ms is not None:
            candidates.append(self._boot_end_ms)
        return min(candidates) if candidates else None

    async def _timer_loop(self) -> None:
        while True:
            wake_ms = self._next_wake_ms()
            timeout = None if wake_ms is None else max(0.0, (wake_ms - self._now_ms()) / 1000)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            await self._fire_timers(self._now_ms())

    async def _fire_timers(self, now_ms: int) -> None:
        boot_end = self._boot_end_ms
        if self.projection.booting and boot_end is not None and boot_end <= now_ms:
            self._broadcast(self.projection.end_boot_window(now_ms))
        self._broadcast(self.projection.tick(now_ms))
        if self._howdy_due and self._howdy_due[0][0] <= now_ms:
            # Count the howdys that already arrived before deciding whether to add one.
            for message in self.transport.take_waiting():
                self._receive_message(message)
        while self._howdy_due and self._howdy_due[0][0] <= now_ms:
            _, hey_there_id = heapq.heappop(self._howdy_due)
            reply = self.howdy.on_timer(hey_there_id, now_ms, self._candidates(now_ms))
            if reply is None:
                continue
            howdy = self._event(
                Howdy,
                to_did=reply.to_did,
                answers=reply.hey_there_id,
                neighbours=[msgspec.Raw(raw) for raw in reply.neighbours],
            )
            await self._publish_event(howdy)

    def _candidates(self, now_ms: int) -> list[Candidate]:
        candidates = []
        for view in self.projection.peers(now_ms):
            hey_there = self._latest_hey_there.get(view.did)
            if hey_there is not None:
                candidates.append(
                    Candidate(
                        did=view.did,
                        status=view.status,
                        last_event_at_ms=view.last_event_at_ms,
                        hey_there=hey_there.raw,
                    )
                )
        return candidates

    async def _prune_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.node.prune_every_s)
            dropped = self.ingestor.prune(self._now_ms())
            if dropped:
                log.info("retention dropped %d old events", dropped)
