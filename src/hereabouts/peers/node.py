"""The peer-presence node: wires identity, plaza, ledger, trust and the core objects together.

``async with Node(config) as node:`` connects to the plaza, announces itself and keeps an
ONLINE / OFFLINE / MISSING view of every peer until the block ends, when it says ``chau``.
Protocol decisions live in :mod:`hereabouts.core`; whom to believe in
:mod:`hereabouts.core.keys` and :mod:`hereabouts.peers.membership`; this module carries
them out:

* **Start.** Read back proven keys (keyring) and the network membership (``<home>/network``);
  replay the ledger; register a will that is a pre-signed ``lost`` event for this boot *and
  connection*; connect; wait the discovery jitter; publish ``hey_there`` (with our
  credential in an invited network).
* **Receive.** Every message goes through :class:`~hereabouts.peers.ingest.Ingestor`
  (verify, admit, rate limit, topic check, ledger, projection). Only hey_theres that arrive
  on the plaza's hey_there topic can trigger a howdy; the neighbours in a howdy are taken in
  as their own events and never welcomed again. Events signed with our own key by another
  process are refused and reported (``/healthz``, the log).
* **Timers.** One task sleeps until the earliest of: a peer's MISSING deadline, a planned
  howdy, the end of the first sync.
* **Upkeep.** Every few seconds: forget silent keys, write proven keys back, retry messages
  held while storage failed.
* **Heartbeats.** ``newspaper`` at the adaptive cadence; one more right after a reconnect.
* **Stop.** Publish ``chau`` (QoS 1), then disconnect cleanly so the will is not sent.
* **Stealth.** Listen and build the full view; publish nothing at all, not even a will.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import logging
import random
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from types import TracebackType
from typing import Any, Final, Self

import msgspec
from prometheus_client.registry import CollectorRegistry

from hereabouts.broker_url import BrokerUrl, combine_broker_urls
from hereabouts.config import Config, production
from hereabouts.core import rendezvous
from hereabouts.core.cadence import NewspaperCadence
from hereabouts.core.effects import Status, StatusChanged, Vouch
from hereabouts.core.howdy import Candidate, HowdyCoordinator
from hereabouts.core.keys import KeyBook
from hereabouts.core.projection import PeerView, Projection
from hereabouts.core.ratelimit import RateLimiter
from hereabouts.core.reconcile import Item
from hereabouts.errors import (
    EventRejected,
    HereaboutsError,
    RateLimited,
    RemoteError,
    StorageError,
    TopicMismatch,
)
from hereabouts.events import (
    AnyEvent,
    Chau,
    HeyThere,
    Howdy,
    Lost,
    Neighbour,
    Newspaper,
    NewspaperStatus,
    SignedEvent,
    Unreachable,
    check_name,
)
from hereabouts.fanout import Fanout
from hereabouts.home import HomeLock, hold_home
from hereabouts.identity import Identity, load_or_create_identity
from hereabouts.ledger import LEDGER_FILE_NAME, Ledger, SqliteLedger
from hereabouts.metrics import Counters
from hereabouts.peers.faults import RETRY_EVERY_S, Held, KeyClash, StorageFaults
from hereabouts.peers.ingest import Accepted, Ingestor
from hereabouts.peers.keyring import KEYRING_FILE_NAME, Keyring
from hereabouts.peers.membership import (
    Membership,
    decode_revocation,
    encode_revocation,
    revocation_key,
)
from hereabouts.peers.mesh.observe import Observer
from hereabouts.peers.mesh.runtime import Mesh
from hereabouts.peers.metrics import NodeCollector
from hereabouts.peers.network import load_membership, load_network_key, save_revocations
from hereabouts.peers.pulse import Pulses
from hereabouts.tasks import BackgroundTasks
from hereabouts.transports.base import Message, Transport
from hereabouts.transports.broker import EmbeddedBroker, ensure_local_broker
from hereabouts.transports.mqtt import MqttSettings, MqttTransport, packet_limit
from hereabouts.transports.topics import (
    PULSE_PREFIX,
    REVOKED_ALL,
    REVOKED_PREFIX,
    plaza_kind,
    plaza_topic,
    revoked_topic,
)
from hereabouts.wire import seal, unseal

log = logging.getLogger(__name__)

MESH: Final = "<mesh>"
"""The "topic" of events that came over the mesh: it has no topics to check."""

PLAZA_FILTER = "hereabouts/v1/plaza/+"
BRIDGE_QUEUE: Final = 1000
"""Mesh-only nodes' events waiting for the plaza (hybrid nodes); past this they are dropped
and counted: the mesh still carries them."""

BRIDGES: Final = 2
"""Hybrid nodes that republish each mesh-only node's events on the plaza (rendezvous
hashing picks them), so the plaza sees each such event at most this many times."""

LOST_GRACE_ROUNDS: Final = 2
"""Rounds a hybrid peer that answered a probe has to outrank its connection's will."""

MAX_HELD_WILLS: Final = 256
"""Wills held while their hybrid emitters are probed; past this they are taken at once."""

FAREWELL_PEERS: Final = 3
"""Mesh peers a stopping mesh node hands its chau to directly (rounds have stopped)."""
RECEIVE_SLICE: Final = 64
"""Messages read from a backlog before other tasks get a turn: a burst of thousands must
not hold our own pulses back for seconds (peers would take us for hung)."""

CHANGES_QUEUE = 1000
"""Status changes buffered per ``changes()`` subscriber; a slower reader loses the oldest."""

UPKEEP_EVERY_S: Final = 5.0
"""How often silent keys are forgotten. They are forgotten minutes to days after falling
silent, so a few seconds late costs nothing."""

KEYRING_FLUSH_S: Final = 60.0
"""How often proven keys' records are written back: at worst a minute of "last heard"
times is lost in a crash, which only delays forgetting."""

CLASH_GRACE_MS: Final = 5_000
"""Events of our own key from another boot dated this soon after our start are a previous
run of ours saying goodbye, not another process."""


class _Claim(msgspec.Struct):
    """What a sealed event claims before it is verified: for cheap triage only (whom to
    probe, whether to admit), never for a decision about what is true."""

    did: str
    kind: str
    at_ms: int


class _ClaimedEnvelope(msgspec.Struct):
    body: _Claim


def _claimed(payload: bytes) -> _Claim | None:
    """DID, kind and time a sealed event claims, unverified; None if it does not parse."""
    try:
        return msgspec.json.decode(payload, type=_ClaimedEnvelope).body
    except msgspec.DecodeError:
        return None


class KeyShared(EventRejected):
    """An event signed with this node's own key by another process (another boot id)."""

    reason = "key_shared"


def parse_broker_url(url: str, env: Mapping[str, str] | None = None) -> BrokerUrl:
    """A ``--broker`` URL, parsed (:mod:`hereabouts.broker_url`), its password taken from
    ``HEREABOUTS_BROKER_PASSWORD`` in ``env`` (default: the process environment) when the
    URL names a user without one."""
    return combine_broker_urls([url], env=env)


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
        membership: Membership | None = None,
        stealth: bool | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        log_changes: bool = True,
        serves_mesh: bool = False,
    ) -> None:
        """``identity``, ``transport``, ``ledger`` and ``keyring`` default to the ones in
        ``config.home`` and on ``config.node.broker_url`` (or the embedded broker); pass
        your own to run several nodes in one process. ``membership`` makes the node a member
        of an invited network; by default it is read from ``config.home`` when the identity
        is too, and otherwise the network is open. ``clock`` returns Unix seconds;
        ``log_changes=False`` keeps status changes out of the INFO log (demo peers).
        ``serves_mesh``: the caller serves the mesh endpoint and will call
        :meth:`advertise_mesh` once it listens; sync rounds start then."""
        self.config = config or production()
        node_config = self.config.node
        self.name = check_name(name or node_config.name or socket.gethostname() or "node")
        self.stealth = node_config.stealth if stealth is None else stealth
        self._clock = clock
        self._rng = rng or random.Random()
        self._identity = identity
        self._home_membership = identity is None and membership is None
        self.membership = membership
        self._transport = transport
        self._ledger = ledger
        self._keyring = keyring
        self._owns_stores = ledger is None
        self._broker: EmbeddedBroker | None = None
        self._home_lock: HomeLock | None = None
        self.boot_id = secrets.token_hex(8)
        self.started_at_ms = self._now_ms()
        self.counters = Counters()
        self.registry = CollectorRegistry()
        self._background = BackgroundTasks()
        self._changes: Fanout[StatusChanged] = Fanout(
            capacity=CHANGES_QUEUE,
            on_drop=lambda: self.counters.add("changes_dropped", "slow_subscriber"),
        )
        self._upkeep_due = asyncio.Event()
        self._storage = StorageFaults(self.counters, on_failure=self._upkeep_due.set)
        self._clash = KeyClash(self.counters)
        self._howdy_due: list[tuple[int, str]] = []
        self._wake = asyncio.Event()
        self._session = 0
        self._connected_since_ms: int | None = None  # our current plaza connection began
        self._announced = asyncio.Event()
        self._spoke = False  # an event of ours went to the plaza: peers may count us ONLINE
        self._howdys_to_us = 0
        self._sync_due_ms: int | None = None
        self._synced = False
        self._running = False
        self._log_changes = log_changes
        self.mesh: Mesh | None = None
        self._held_wills: set[str] = set()
        self._serves_mesh = serves_mesh
        self._endpoints: dict[str, str] = {}
        self._hey_there_event: AnyEvent | None = None
        self._bridge_out: asyncio.Queue[bytes] = asyncio.Queue(maxsize=BRIDGE_QUEUE)
        self.pulses: Pulses | None = None

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
        assert self._transport is not None, "no plaza: not started yet, or in mesh mode"
        return self._transport

    @property
    def has_plaza(self) -> bool:
        """Whether this node uses the MQTT plaza (not in mesh mode)."""
        return self.config.mesh.plaza

    @property
    def mode(self) -> str:
        """``plaza``, ``mesh`` or ``hybrid`` (see :class:`~hereabouts.config.MeshConfig`)."""
        return self.config.mesh.mode

    def peers(self) -> list[PeerView]:
        """Every known peer (and this node) as seen now, names labelled (see
        :mod:`hereabouts.core.keys`: a name another key holds is shown with a fingerprint)."""
        return [self._labelled(view) for view in self.projection.peers(self._now_ms())]

    def status_of(self, did: str) -> Status | None:
        return self.projection.status(did, self._now_ms())

    def online_count(self) -> int:
        """Peers (this node included) whose last reported status is ONLINE; O(1)."""
        return self.projection.count(Status.ONLINE)

    async def changes(self) -> AsyncIterator[StatusChanged]:
        """Status changes from now on, until the node stops. One queue per call. A peer
        the node forgets comes as a change with cause ``forgotten``."""
        async for change in self._changes.subscribe():
            yield change

    def health(self) -> dict[str, object]:
        now = self._now_ms()
        parts: dict[str, dict[str, object]] = {
            "tasks": self._background.report(),
            "storage": self._storage.report(now),
            "identity": self._clash.report(now),
            "network": (
                {"ok": True, "mode": "open"}
                if self.membership is None
                else self.membership.own_status(now)
            ),
        }
        keys = self.ingestor.keys
        plaza: dict[str, object] = {}
        if self._transport is not None:
            state = self._transport.state
            plaza["broker"] = state.as_dict()
            # In hybrid mode the mesh carries the news while the broker is away.
            if self.mesh is None and not state.connected:
                parts["plaza"] = {"ok": False, "why": "not connected to the broker"}
        if self.pulses is not None:
            pulse = self.pulses.health()
            if self.mesh is not None:
                pulse["ok"] = True  # hybrid: the mesh still carries the news
            parts["pulse"] = pulse
        if self.mesh is not None:
            parts["mesh"] = self.mesh.health(now)
        return {
            "ok": all(bool(part["ok"]) for part in parts.values()),
            "name": self.name,
            "did": self.did,
            "mode": self.mode,
            "stealth": self.stealth,
            "booting": not self._synced,
            **plaza,
            "peers": {s.value: self.projection.count(s) for s in Status},
            "keys": {
                "known": len(keys),
                "proven": keys.proven_count(),
                "unproven": keys.unproven_count(),
            },
            **parts,
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
        """Open stores, connect, and start the background tasks (announcing after jitter).

        A node that reads its identity, ledger or keyring from ``config.home`` holds the
        home's lock while it runs (:mod:`hereabouts.home`): a home another process or node
        holds raises :class:`~hereabouts.home.HomeInUse`."""
        if self._identity is None or self._ledger is None or self._keyring is None:
            self._home_lock = hold_home(self.config.home)
        try:
            await self._start()
        except BaseException:
            self._release_home()
            raise

    def _release_home(self) -> None:
        if self._home_lock is not None:
            self._home_lock.release()
            self._home_lock = None

    async def _start(self) -> None:
        config = self.config
        home = config.home
        if self._identity is None:
            self._identity, _ = load_or_create_identity(home)
        if self._home_membership:
            self.membership = load_membership(home, self._identity)
        if self._ledger is None:
            self._ledger = SqliteLedger(home / LEDGER_FILE_NAME)
        if self._keyring is None:
            self._keyring = Keyring(home / KEYRING_FILE_NAME)
        now = self._now_ms()
        keys = KeyBook(
            config.trust,
            silence_ms=self._key_silence_ms(),
            max_howdys=config.howdy.max_howdys,
        )
        keys.load(self._keyring.load(), now)
        # Fresh keys, however many, observe nobody: failure reports count from proven keys.
        self.projection = Projection(
            config.projection,
            observer_on_plaza=config.mesh.plaza,
            may_observe=keys.proven,
            observers_generation=lambda: keys.generation,
        )
        self._limiter = RateLimiter(
            rate_per_s=config.node.rate_limit_per_s,
            burst=config.node.rate_limit_burst,
            max_keys=config.trust.max_keys,
        )
        self.ingestor = Ingestor(
            ledger=self._ledger,
            projection=self.projection,
            keys=keys,
            membership=self.membership,
            limits=config.wire,
            retention_s=config.ledger.retention_s,
            counters=self.counters,
            on_forget=self._forgotten,
        )
        if self.membership is not None:
            keys.heard(self.did, self.name, now, member=True)
        else:
            keys.vouch_for_self(self.did, self.name, now)
        self.howdy = HowdyCoordinator(
            config.howdy, self_did=self.did, max_event_bytes=config.wire.max_event_bytes
        )
        self.cadence = NewspaperCadence(config.heartbeat)
        replayed = self.ingestor.replay(now, on_event=self._replayed)
        log.info("%s (%s) starting; %d events replayed", self.name, self.did, replayed)
        if config.mesh.on:
            self.mesh = Mesh(
                self,
                config.mesh,
                wire=config.wire,
                counters=self.counters,
                clock_ms=self._now_ms,
                rng=self._rng,
                home=home if self._home_lock is not None else None,
            )
            self.mesh.serves = self._serves_mesh
        if self._transport is None and config.mesh.plaza:
            self._transport = await self._default_transport()
        NodeCollector(self).register(self.registry)
        self.counters.register(self.registry)
        transport = self._transport
        if transport is not None:
            if not self.stealth:
                transport.set_will_source(self._will_for_connection)
            transport.on_connect(self._on_connected)
            if self.mesh is not None:  # hybrid: judge by the mesh while the plaza is away
                transport.on_disconnect(lambda: self._plaza_reachable(False))
            await transport.subscribe(PLAZA_FILTER)
            if self.membership is not None:
                await transport.subscribe(REVOKED_ALL)
            if config.pulse.enabled:
                self.pulses = Pulses(
                    config.pulse,
                    identity=self.identity,
                    boot_id=self.boot_id,
                    transport=transport,
                    projection=self.projection,
                    counters=self.counters,
                    clock_ms=self._now_ms,
                    on_changes=self._broadcast,
                    stealth=self.stealth,
                    trusted=keys.proven,
                )
                await self.pulses.subscribe()
            await transport.connect()
        self._running = True
        if transport is not None:
            self._spawn(self._receive_loop(), "receive", essential=True)
            self._spawn(self._publish_revocations(), "revocations")
            if self.pulses is not None:
                self._spawn(self.pulses.run(), "pulse", essential=True)
        self._spawn(self._timer_loop(), "timers", essential=True)
        self._spawn(self._upkeep_loop(), "upkeep", essential=True)
        self._spawn(self._prune_loop(), "retention", essential=True)
        if self.mesh is not None:
            self._spawn(self.mesh.run(), "mesh", essential=True)
            if not self.stealth:
                self._spawn(self._observe_loop(self.mesh), "observer", essential=True)
            if transport is not None:
                self._spawn(self._bridge_loop(), "bridge", essential=True)
        if not self.stealth:
            # In our own view at once (peers() lists us from now on); on the plaza after the
            # discovery jitter.
            hey_there = self._hey_there()
            self._take_in_own(hey_there)
            self._spawn(self._announce_then_heartbeat(), "announce", essential=True)
        else:
            self._announced.set()
            self._plan_sync_end(self._now_ms() + int(config.node.first_sync_s * 1000))

    async def stop(self) -> None:
        """Say chau (unless stealthy), disconnect cleanly, stop tasks, close what we own."""
        if not self._running:
            return
        self._running = False
        # The timers stop first: a howdy or newspaper sent after our chau would show us
        # ONLINE again in every view until MISSING (found by three runs of ``up``).
        await self._background.cancel_all()
        if not self.stealth and self._spoke:
            chau = await self._publish_event(self._event(Chau))
            if self.mesh is not None and chau is not None:
                await self.mesh.farewell(chau.raw, FAREWELL_PEERS)
        if self.mesh is not None:
            self.mesh.save_peers()
        if self._transport is not None:
            await self._transport.close()
        self._changes.close()
        self._flush_keyring()
        if self._owns_stores and self._ledger is not None and self._keyring is not None:
            self._ledger.close()
            self._keyring.close()
        if self._broker is not None:
            await self._broker.close()
        self._release_home()

    async def wait_announced(self) -> None:
        """Until our hey_there has been published (immediately for a stealth node)."""
        await self._announced.wait()

    # --- set-up helpers -------------------------------------------------------------------

    async def _default_transport(self) -> Transport:
        node = self.config.node
        options: dict[str, Any] = {
            "keepalive_s": node.keepalive_s,
            # The broker keeps back, unsent, what the wire layer would refuse anyway.
            "max_packet_bytes": packet_limit(self.config.wire.max_event_bytes),
        }
        if node.broker_url is None:
            self._broker = await ensure_local_broker(port=node.embedded_broker_port)
            settings = MqttSettings(
                host="127.0.0.1",
                port=node.embedded_broker_port,
                protocol="3.1.1",  # the embedded broker (amqtt) speaks only 3.1.1
                **options,
            )
        else:
            settings = MqttSettings.from_url(
                parse_broker_url(node.broker_url),
                ca_file=node.broker_ca,
                cert_file=node.broker_cert,
                key_file=node.broker_key,
                **options,
            )
        return MqttTransport(node_name=self.name, settings=settings, rng=self._rng)

    def _will_for_connection(self, connection: int) -> Message:
        lost = self._event(Lost, session=connection)
        return Message(topic=plaza_topic("lost"), payload=seal(lost, self.identity))

    def _key_silence_ms(self) -> int:
        """How long a new (unproven) key may be silent before it is forgotten: the longest
        MISSING threshold this node applies. On the mesh a peer's news comes in bursts; a
        key forgotten at the plaza's threshold would lose its proof clock between bursts
        and never prove itself (found by the partition test)."""
        projection = self.config.projection
        longest = max(
            projection.plaza_missing_after_s,
            projection.mesh_missing_after_s if self.config.mesh.on else 0.0,
        )
        return int(longest * 1000)

    def _plaza_reachable(self, reachable: bool) -> None:
        """A hybrid node's plaza connection came or went."""
        self._broadcast(self.projection.observe_from_plaza(reachable, self._now_ms()))
        self._wake.set()  # deadlines moved
        if not reachable:
            self._speak_in_next_session()

    def _speak_in_next_session(self) -> None:
        """Our plaza connection died (or its will reached us) while the mesh still carries
        us: the broker may publish that connection's will, a lost for its session. Say
        something at once in the next session, which outranks it (the next connection will
        be that session, see :meth:`_on_connected`). Taken into our own view before
        returning, so not even our own view shows us MISSING."""
        if self.stealth or not self._running or not self._announced.is_set():
            return
        connection = 0 if self._transport is None else self._transport.state.connections
        if self._session > connection:
            return  # already speaking past that connection
        self._session = connection + 1
        data = self._take_in_own(self._newspaper())
        self._spawn(self._send(data), "next-session")

    def _on_connected(self, connection: int) -> None:
        self._session = connection
        self._connected_since_ms = self._now_ms()
        if self.mesh is not None:
            self._plaza_reachable(True)
        if connection > 1 and self._announced.is_set() and not self.stealth:
            # Speak in the new session at once: it outranks a late will of the old one. On
            # the plaza alone, announce ourselves again, and peers that stayed connected
            # answer with howdys naming who arrived while we were away (same boot: nobody
            # counts it as a restart). A hybrid node heard the news over the mesh.
            again = self._hey_there() if self.mesh is None else self._newspaper()
            self._spawn(self._publish_event(again), "reconnected")

    def _spawn(
        self, coroutine: Coroutine[Any, Any, object], name: str, *, essential: bool = False
    ) -> None:
        self._background.spawn(coroutine, name=f"{self.name}:{name}", essential=essential)

    def _replayed(self, signed: SignedEvent) -> None:
        if isinstance(signed.event, HeyThere):
            self.howdy.on_hey_there(signed, self._now_ms())  # learns boots; stale: no reply

    # --- making and sending events --------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def now_ms(self) -> int:
        """This node's clock, in Unix milliseconds."""
        return self._now_ms()

    def _event(self, kind: type[AnyEvent], **fields: object) -> AnyEvent:
        header: dict[str, object] = {
            "name": self.name,
            "did": self.did,
            "boot_id": self.boot_id,
            "session": self._session,
            "at_ms": self._now_ms(),
            "credential": None if self.membership is None else self.membership.own,
        }
        header.update(fields)
        return kind(**header)  # type: ignore[arg-type]

    def _hey_there(self) -> AnyEvent:
        event = self._event(
            HeyThere,
            started_at_ms=self.started_at_ms,
            transport=self.mode,
            endpoints=dict(self._endpoints),
        )
        self._hey_there_event = event
        return event

    def advertise_mesh(self, url: str) -> None:
        """Serve the mesh at ``url`` (known once the HTTP server listens): it goes into our
        hey_there (renewed now if one was made already, same boot, so nobody welcomes us
        twice) and we never call ourselves."""
        if self.mesh is None:
            raise RuntimeError("this node is not on the mesh")
        self.mesh.set_url(url)
        self._endpoints["mesh"] = self.mesh.url or url
        if self._running and not self.stealth:
            self._take_in_own(self._hey_there())
            if self._announced.is_set():
                self._spawn(self._publish_event(self._hey_there_event), "hey_there")  # type: ignore[arg-type]

    def _newspaper(self) -> AnyEvent:
        online = self.online_count()
        if self.projection.reported(self.did) is Status.ONLINE:
            online -= 1
        status = NewspaperStatus(
            online_peers=max(0, online),
            uptime_s=max(0, (self._now_ms() - self.started_at_ms) // 1000),
            next_in_s=int(self.cadence.next_in_s),
        )
        return self._event(Newspaper, status=status)

    def _take_in_own(self, event: AnyEvent) -> bytes:
        """Seal one of our events and take it into our own view; the sealed bytes back."""
        data = seal(event, self.identity, limits=self.config.wire)
        now = self._now_ms()
        try:
            self._accepted(self.ingestor.ingest(data, now), from_plaza=False)
        except StorageError as exc:  # others still need to hear from us
            self._storage.failed("own_event", exc, now)
        return data

    async def _publish_event(self, event: AnyEvent) -> SignedEvent | None:
        """Seal, take into our own view, publish; a plaza outage is logged, never raised.

        Once stopping, only the chau goes out: nothing of ours may follow it."""
        if not self._running and not isinstance(event, Chau):
            return None
        return await self._send(self._take_in_own(event))

    async def _send(self, data: bytes) -> SignedEvent | None:
        """Publish one of our sealed events, already in our own view."""
        signed = unseal(data, check_clock=False)
        self._spoke = True
        if self._transport is None:  # mesh mode: the mesh spreads it from our ledger
            self.counters.add("events_out", signed.kind)
            return signed
        try:
            await self._transport.publish(plaza_topic(signed.kind), data)
        except HereaboutsError as exc:  # NotConnected, TransportClosed, ...
            self.counters.add("publish_failed", signed.kind)
            log.warning("could not publish %s: %s", signed.kind, exc)
            # In hybrid mode the event is in our ledger, so the mesh still carries it.
            return signed if self.mesh is not None else None
        self.counters.add("events_out", signed.kind)
        return signed

    async def _announce_then_heartbeat(self) -> None:
        """Publish our latest hey_there (already in our own view) after the discovery
        jitter, then heartbeat until stopped."""
        jitter_s = self._rng.random() * self.config.node.discovery_jitter_max_s
        await asyncio.sleep(jitter_s)
        if self._transport is not None:
            await self._transport.wait_connected()
        while await self._publish_event(self._hey_there_event) is None:  # type: ignore[arg-type]
            await asyncio.sleep(1.0)
            if self._transport is not None:
                await self._transport.wait_connected()
        hey_there = self._hey_there_event
        assert hey_there is not None
        if self.pulses is not None:
            self.pulses.send_soon()  # peers know our key now: let them start watching us
        self._announced.set()
        self._wake.set()  # replies held back until now may be due
        self._plan_sync_end(self._now_ms() + int(self.config.node.first_sync_s * 1000))
        announced_at = hey_there.at_ms
        # Re-announce (same boot, so nobody welcomes us again) at half the retention window:
        # a hey_there older than retention is refused by nodes that meet us later (inside a
        # howdy), and they would never learn our endpoints.
        reannounce_ms = int(self.config.ledger.retention_s * 1000) // 2
        while True:
            delay_ms = self.cadence.next_delay_ms(self._now_ms(), self._rng.random())
            await asyncio.sleep(delay_ms / 1000)
            if self._now_ms() - announced_at >= reannounce_ms:
                renewed = self._hey_there()
                if await self._publish_event(renewed) is not None:
                    announced_at = renewed.at_ms
            await self._publish_event(self._newspaper())

    # --- receiving ------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        taken = 0
        async for message in self.transport.messages():
            self._receive_message(message)
            taken += 1
            if taken % RECEIVE_SLICE == 0:
                # A backlog is read without suspending; let timers and our pulses run.
                await asyncio.sleep(0)

    def _receive_message(self, message: Message, *, probe: bool = True) -> None:
        """One plaza message (``probe=False``: a will already held for a probe)."""
        if message.topic.startswith(PULSE_PREFIX + "/"):
            if self.pulses is not None:
                self.pulses.take(message)
            return
        if message.topic.startswith(REVOKED_PREFIX + "/"):
            self._take_revocation(message.payload)
            return
        kind = plaza_kind(message.topic)
        if probe and kind == "lost" and self._probe_first(message, _claimed(message.payload)):
            return
        try:
            self._receive(message.payload, kind)
        except StorageError as exc:  # a full disk: hold the message, retry, tell /healthz
            self._storage.failed("ledger", exc, self._now_ms(), Held(message.payload, kind))
        except Exception:  # a bug must not silence the node; count and carry on
            self.counters.add("handler_errors", kind or "unknown")
            log.exception("error handling a %s message", kind)

    def _probe_first(self, message: Message, claim: _Claim | None) -> bool:
        """A hybrid peer's will says its plaza connection died, not that it did: the mesh
        may still reach it. Ask it over the mesh before believing the will (True: the will
        is held meanwhile). A crashed peer refuses the connection at once, a hung one
        times out; either way the will is then taken in and the peer is MISSING. An alive
        one answers, and the will is taken in after ``LOST_GRACE_ROUNDS`` rounds, by which
        time its next session's news (it speaks again as soon as it notices, see
        :meth:`_plaza_reachable`) outranks it."""
        mesh = self.mesh
        if mesh is None or len(self._held_wills) >= MAX_HELD_WILLS:
            return False
        if claim is None or claim.kind != "lost":
            return False
        did = claim.did
        if self.projection.transport_of(did) != "hybrid":
            return False
        if did == self.did:
            self._speak_in_next_session()  # our own will: we know we are alive
            return False
        peer = mesh.peers.by_did(did)
        if peer is None:
            return False
        self._held_wills.add(did)
        self._spawn(self._probe_then_take(message, did), "will-probe")
        return True

    async def _probe_then_take(self, message: Message, did: str) -> None:
        mesh = self.mesh
        assert mesh is not None
        try:
            if await mesh.probe(did):
                self.counters.add("wills_probed", "answered")
                await asyncio.sleep(LOST_GRACE_ROUNDS * mesh.config.round_s)
                await mesh.probe(did)  # pull what it said since
            else:
                self.counters.add("wills_probed", "silent")
        finally:
            self._held_wills.discard(did)
            self._receive_message(message, probe=False)

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
        if topic_kind != MESH and topic_kind != signed.kind:
            raise TopicMismatch(f"{signed.kind} event on the {topic_kind} topic")
        event = signed.event
        if (
            signed.did == self.did
            and event.boot_id != self.boot_id
            and event.at_ms > self.started_at_ms + CLASH_GRACE_MS
        ):
            self._clash.saw(event.boot_id, signed.kind, now_ms)
            raise KeyShared("an event signed with this node's key by another process")
        if not self._limiter.allow(signed.did, now_ms):
            raise RateLimited(f"{signed.event.name!r} exceeds its rate limit")

    def _accepted(self, outcome: object, *, from_plaza: bool) -> None:
        if not isinstance(outcome, Accepted):
            return
        signed = outcome.event
        self._broadcast(outcome.changes)
        event = signed.event
        now = self._now_ms()
        if self.mesh is not None and outcome.new and isinstance(event, HeyThere):
            self.mesh.learn(signed.did, event.endpoints)
        if self.pulses is not None and outcome.new and isinstance(event, HeyThere):
            # It announced itself anew (a restart, a reconnect): whatever its pulses said
            # before, it is watched again from its next one.
            self.pulses.forget(signed.did)
        if not (from_plaza and outcome.new):
            # A replay is no arrival. A newcomer's own hey_there cannot reach us first inside
            # a howdy: nobody replies before it has announced itself (_fire_timers).
            return
        if isinstance(event, HeyThere):
            if event.transport == "mesh":
                return  # bridged from the mesh: the mesh is how it learns who is here
            due = self.howdy.on_hey_there(
                signed,
                now,
                online_peers=self.online_count(),
                connected_since_ms=self._connected_since_ms,
            )
            if due is not None and not self.stealth:
                heapq.heappush(self._howdy_due, (due.at_ms, due.hey_there_id))
                self._wake.set()
        elif isinstance(event, Howdy):
            self._take_howdy(signed, event, now)

    def _take_howdy(self, signed: SignedEvent, howdy: Howdy, now_ms: int) -> None:
        vouched = []
        for neighbour in howdy.neighbours:
            outcome = self.ingestor.ingest(bytes(neighbour.hey_there), now_ms)
            if not (isinstance(outcome, Accepted) and isinstance(outcome.event.event, HeyThere)):
                continue
            vouched.append(outcome.event.did)
            self._accepted(outcome, from_plaza=False)
            latest_event = neighbour.latest_event
            if latest_event is not None:
                self._accepted(self.ingestor.ingest(latest_event, now_ms), from_plaza=False)
        heard_at = self.howdy.arrival_ms(howdy.answers)
        trusted = heard_at is not None and self.ingestor.keys.trusted_responder(
            signed.did, heard_at
        )
        self.howdy.on_howdy(signed, now_ms, neighbour_dids=vouched, trusted=trusted)
        if howdy.to_did == self.did:
            self._howdys_to_us += 1
            if self._howdys_to_us >= self.config.howdy.max_howdys:
                self._plan_sync_end(now_ms)

    def _take_revocation(self, payload: bytes) -> None:
        membership = self.membership
        if membership is None:
            return
        try:
            revocation = decode_revocation(payload)
            if membership.revoked(revocation.member):
                return
            removed = membership.revoke(revocation)
        except RemoteError as exc:
            self.counters.add("revocations_rejected", exc.reason)
            return
        self.counters.add("revocations", "accepted")
        log.warning("the network revoked %s (%d members removed)", revocation.member, len(removed))
        for did in removed:
            self.ingestor.forget(did, "revoked", self._now_ms())
        try:
            save_revocations(self.config.home, membership.revocations())
        except StorageError as exc:
            self._storage.failed("revocations", exc, self._now_ms())

    async def _publish_revocations(self) -> None:
        """The network key's holder keeps every revocation retained on the plaza."""
        if self.membership is None or not self._home_membership:
            return
        if load_network_key(self.config.home) is None:
            return
        await self.transport.wait_connected()
        for revocation in self.membership.revocations():
            topic = revoked_topic(revocation_key(revocation.member))
            with contextlib.suppress(HereaboutsError):
                await self.transport.publish(
                    topic, encode_revocation(revocation), qos=1, retain=True
                )

    # --- the mesh's view of this node (MeshHost) ------------------------------------------

    def mesh_versions(self) -> dict[str, int]:
        return self.projection.versions()

    def mesh_evidence(self, did: str) -> list[Item]:
        ledger = self.ingestor.ledger
        items = []
        for at_ms, event_id, kind in self.projection.marks(did):
            data = ledger.get(event_id)
            if data is not None:
                items.append(
                    Item(at_ms=at_ms, event_id=event_id, kind=kind, size=len(data), data=data)
                )
        return items

    def mesh_raw(self, event_id: str) -> bytes | None:
        return self.ingestor.ledger.get(event_id)

    def mesh_missing(self, did: str) -> bool:
        return self.projection.reported(did) is Status.MISSING

    def mesh_take_in(self, data: bytes, now_ms: int) -> str:
        """One sealed event from the mesh, through the plaza's ingest path (verify, admit,
        rate limit, ledger, projection): ``new``, ``known`` or why it was refused. A hybrid
        peer's will is held while the peer is probed, as from the plaza (``held``)."""
        claim = _claimed(data)
        if self._probe_first(Message(topic=plaza_topic("lost"), payload=data), claim):
            return "held"
        if (
            claim is not None
            and now_ms - claim.at_ms > self._key_silence_ms()
            and not self.ingestor.keys.known(claim.did)
        ):
            # A key we do not know whose latest news is older than we keep silent keys:
            # it would be forgotten at once, and re-learnt from the next peer that still
            # holds it (a churn of admissions the partition test saw).
            return "stale_unknown"
        try:
            outcome = self.ingestor.ingest(
                data, now_ms, gate=lambda signed: self._gate(signed, MESH, now_ms)
            )
        except StorageError as exc:
            self._storage.failed("ledger", exc, now_ms)
            return "storage"
        if not isinstance(outcome, Accepted):
            return outcome.reason
        self._accepted(outcome, from_plaza=False)
        if not outcome.new:
            return "known"
        if self._transport is not None and self._should_bridge(outcome.event):
            try:
                self._bridge_out.put_nowait(data)
            except asyncio.QueueFull:
                self.counters.add("bridge_dropped", "queue_full")
        return "new"

    def _should_bridge(self, signed: SignedEvent) -> bool:
        """A mesh-only node's event, first heard here over the mesh: republish it on the
        plaza if we are one of its :data:`BRIDGES` hybrid bridges (rendezvous hashing over
        the hybrid nodes we see ONLINE, ourselves included)."""
        if self.projection.transport_of(signed.did) != "mesh":
            return False
        hybrids = self.projection.online_with_transport("hybrid")
        return self.did in rendezvous.chosen(rendezvous.BRIDGE, signed.did, hybrids, BRIDGES)

    async def _observe_loop(self, mesh: Mesh) -> None:
        """Watch the mesh nodes we are an assigned observer of, once a round."""
        observer = Observer(
            did=self.did,
            projection=self.projection,
            mesh=mesh,
            report=self._report_unreachable,
            report_after_s=self.config.mesh.report_after_s,
            counters=self.counters,
        )
        while True:
            await asyncio.sleep(mesh.next_round_s())
            try:
                await observer.round(self._now_ms())
            except StorageError as exc:
                self._storage.failed("own_event", exc, self._now_ms())
            except Exception:  # one bad round must not end the duty
                self.counters.add("handler_errors", "observer")
                log.exception("an observer round failed")

    async def _report_unreachable(self, did: str, last_seen_ms: int) -> None:
        await self._publish_event(
            self._event(Unreachable, subject_did=did, last_seen_ms=last_seen_ms)
        )

    async def _bridge_loop(self) -> None:
        transport = self.transport
        while True:
            data = await self._bridge_out.get()
            signed = unseal(data, check_clock=False)
            try:
                await transport.publish(plaza_topic(signed.kind), data)
            except HereaboutsError:
                self.counters.add("bridge_dropped", "plaza_unreachable")
            else:
                self.counters.add("bridged", signed.kind)

    # --- views and changes ----------------------------------------------------------------

    def _labelled(self, view: PeerView) -> PeerView:
        keys = self.ingestor.keys
        label = keys.label(view.did, bound=self.membership is not None)
        record = keys.record(view.did)
        trust = (
            "new"
            if record is None or not record.proven
            else ("member" if record.member else "proven")
        )
        return dataclasses.replace(
            view,
            name=label.text,
            claimed_name=view.name,
            name_status=label.status,
            fingerprint=label.fingerprint,
            trust=trust,
        )

    def _label(self, did: str) -> str:
        return self.ingestor.keys.label(did, bound=self.membership is not None).text

    def _broadcast(self, changes: list[StatusChanged]) -> None:
        if not changes:
            return
        if any(c.did != self.did and c.cause != "pulse" for c in changes):
            # News to spread (a pulse-made change is each node's own observation: no).
            self.cadence.note_change(self._now_ms())
        for change in changes:
            change = dataclasses.replace(change, name=self._label(change.did))
            if self._log_changes:
                log.info("%s is %s (%s)", change.name or "a peer", change.new.value, change.cause)
            if change.new is Status.OFFLINE and self.pulses is not None:
                self.pulses.forget(change.did)  # it left: its pulses stopped for a reason
            self._changes.publish(change)

    def _forgotten(self, change: StatusChanged) -> None:
        """A peer was forgotten (silent, pushed out of the quarantine, revoked)."""
        if self.pulses is not None:
            self.pulses.forget(change.did)
        if self._log_changes:
            log.info("%s forgotten", change.name or "a peer")
        self._changes.publish(change)

    # --- timers ---------------------------------------------------------------------------

    def _plan_sync_end(self, at_ms: int) -> None:
        """The first sync counts as done at ``at_ms`` (or earlier, if already planned)."""
        if self._sync_due_ms is None or at_ms < self._sync_due_ms:
            self._sync_due_ms = at_ms
        self._wake.set()

    def _next_wake_ms(self) -> int | None:
        candidates = [t for t in (self.projection.next_deadline(),) if t is not None]
        if self._howdy_due and self._announced.is_set():  # replies wait for our hey_there
            candidates.append(self._howdy_due[0][0])
        if not self._synced and self._sync_due_ms is not None:
            candidates.append(self._sync_due_ms)
        return min(candidates) if candidates else None

    async def _timer_loop(self) -> None:
        while True:
            wake_ms = self._next_wake_ms()
            timeout = None if wake_ms is None else max(0.0, (wake_ms - self._now_ms()) / 1000)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            try:
                await self._fire_timers(self._now_ms())
            except StorageError as exc:
                self._storage.failed("timers", exc, self._now_ms())
            except Exception:  # one bad timer must not stop every later one
                self.counters.add("handler_errors", "timers")
                log.exception("error handling a timer")

    async def _fire_timers(self, now_ms: int) -> None:
        if not self._synced and self._sync_due_ms is not None and self._sync_due_ms <= now_ms:
            self._synced = True
        self._broadcast(self.projection.tick(now_ms))
        if self._howdy_due and self._howdy_due[0][0] <= now_ms and self._transport is not None:
            # Count the howdys that already arrived before deciding whether to add one.
            for message in self._transport.take_waiting():
                self._receive_message(message)
        while self._howdy_due and self._howdy_due[0][0] <= now_ms:
            if not self._announced.is_set():
                break  # nobody welcomes others before it has said hey_there itself
            _, hey_there_id = heapq.heappop(self._howdy_due)
            reply = self.howdy.on_timer(
                hey_there_id, now_ms, self._candidates(), lambda did: self._evidence(did, now_ms)
            )
            if reply is None:
                continue
            howdy = self._event(
                Howdy,
                to_did=reply.to_did,
                answers=reply.hey_there_id,
                neighbours=[
                    Neighbour(
                        hey_there=msgspec.Raw(vouch.hey_there),
                        latest=msgspec.Raw(vouch.latest or b"null"),
                    )
                    for vouch in reply.neighbours
                ],
            )
            await self._publish_event(howdy)

    def _candidates(self) -> Iterator[Candidate]:
        projection, keys = self.projection, self.ingestor.keys
        for did in projection.dids():
            status = projection.reported(did)
            if status is not None:
                yield Candidate(
                    did=did,
                    status=status,
                    last_event_at_ms=projection.last_event_ms(did),
                    trusted=keys.proven(did),
                )

    def _evidence(self, did: str, now_ms: int) -> Vouch | None:
        hey_there_id, latest_id = self.projection.evidence(did, now_ms)
        if hey_there_id is None:
            return None
        ledger = self.ingestor.ledger
        hey_there = ledger.get(hey_there_id)
        if hey_there is None:
            return None
        latest = None if latest_id is None else ledger.get(latest_id)
        return Vouch(hey_there=hey_there, latest=latest)

    async def _upkeep_loop(self) -> None:
        flushed = time.monotonic()
        while True:
            failing = self._storage.failing or bool(self._storage.held)
            self._upkeep_due.clear()
            with contextlib.suppress(TimeoutError):  # a storage failure wakes us early
                await asyncio.wait_for(
                    self._upkeep_due.wait(), RETRY_EVERY_S if failing else UPKEEP_EVERY_S
                )
            if self._upkeep_due.is_set():
                await asyncio.sleep(RETRY_EVERY_S)  # first retry a second after a failure
            failing = self._storage.failing or bool(self._storage.held)
            now = self._now_ms()
            try:
                self.ingestor.expire(now)
            except StorageError as exc:
                self._storage.failed("forget", exc, now)
            if failing:
                self._retry_held()
            if time.monotonic() - flushed >= KEYRING_FLUSH_S:
                self._flush_keyring()
                flushed = time.monotonic()

    def _retry_held(self) -> None:
        """Take in what storage could not hold, oldest first; once all of it is in (and a
        probe write works), storage counts as recovered."""
        held = self._storage.held
        while held:
            item = held[0]
            try:
                self._receive(item.payload, item.kind)
            except StorageError as exc:
                self._storage.failed("ledger", exc, self._now_ms())
                return
            except Exception:
                self.counters.add("handler_errors", item.kind or "unknown")
                log.exception("error handling a held %s message", item.kind)
            held.popleft()
        try:
            self.ingestor.ledger.probe_write()
        except StorageError as exc:
            self._storage.failed("probe", exc, self._now_ms())
            return
        self._storage.recovered()

    def _flush_keyring(self) -> None:
        if self._keyring is None:
            return
        changed, dropped = self.ingestor.keys.dirty()
        try:
            self._keyring.save(changed, dropped)
        except StorageError as exc:
            self._storage.failed("keyring", exc, self._now_ms())

    async def _prune_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.node.prune_every_s)
            try:
                dropped = self.ingestor.prune(self._now_ms())
            except StorageError as exc:
                self._storage.failed("prune", exc, self._now_ms())
                continue
            if dropped:
                log.info("retention dropped %d old events", dropped)
