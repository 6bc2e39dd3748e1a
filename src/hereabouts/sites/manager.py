"""PresenceManager: one visitor's site presence over any plaza transport.

Usage (aiomqtt-style: the manager owns its transport and its background tasks)::

    async with PresenceManager(transport=transport, home=home) as presence:
        presence.consent.grant("https://example.com")
        await presence.join("https://example.com", room="lobby")
        async for notice in presence.notices():
            ...

What it guarantees, and where:

* **Nothing is published without consent or in ghost mode.** Every publication goes
  through :meth:`_may_publish`, checked right before sealing; ``join`` refuses with
  :class:`~hereabouts.sites.errors.GhostModeOn` or
  :class:`~hereabouts.sites.errors.ConsentRequired` before touching the transport.
  Revoking consent or turning ghost mode on stops heartbeats synchronously and sends one
  signed leave per room (the only messages ghost mode ever lets out, and only as it turns on).
* **Ephemeral identities.** A fresh Ed25519 key per room per epoch, generated when the
  first heartbeat of that epoch is due and dropped when the next epoch's replaces it; keys
  are never stored, so never reused. The schedule is
  :class:`~hereabouts.core.rotation.HeartbeatPlan`.
* **Verify at the edge.** Every message on a watched room's topic is unsealed (signature,
  size, clock) and checked against its topic; refusals are counted by reason and logged at
  DEBUG without their text (which may name a DID).
* **Counting** is :class:`~hereabouts.core.sites.SiteCounter`; this module only feeds it
  messages and the time, and turns its changes into notices (after the k floor).
* **Logs** name rooms by a room-key prefix, never by origin, and never name a DID.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from hereabouts.config import SitesConfig, WireLimits, resolve_home
from hereabouts.core.rotation import HeartbeatPlan, epoch_of
from hereabouts.core.sites import CountChanged, SiteCounter, SiteTiming
from hereabouts.errors import RemoteError, TopicMismatch
from hereabouts.fanout import Fanout
from hereabouts.identity import Identity
from hereabouts.metrics import Counters
from hereabouts.sites.consent import Consent
from hereabouts.sites.counts import RoomCount
from hereabouts.sites.errors import ConsentRequired, GhostModeOn, ManagerNotRunning
from hereabouts.sites.events import SITE_EVENTS, AnySiteEvent, SiteHeartbeat, SiteLeave
from hereabouts.sites.metrics import RoomCountCollector, site_counters
from hereabouts.sites.notices import (
    NOTICE_NAMES,
    PresenceCountChanged,
    PresenceJoined,
    PresenceLeft,
    PresenceNotice,
)
from hereabouts.sites.recent import RecentIds
from hereabouts.sites.rooms import DEFAULT_ROOM, Room
from hereabouts.sites.store import SiteStore
from hereabouts.sites.ticking import tick_forever
from hereabouts.tasks import BackgroundTasks
from hereabouts.transports.base import Transport
from hereabouts.transports.errors import NotConnected
from hereabouts.transports.topics import site_room, site_topic
from hereabouts.wire import Opened, seal_as, unseal_as

log = logging.getLogger(__name__)

NOTICE_QUEUE_SIZE = 1000
"""Notices one ``notices()`` reader may fall behind by before the oldest are dropped: a
count notice is superseded by the next one, so the newest are worth most."""

LEAVE_TIMEOUT_S = 5.0
"""How long closing waits for the signed leaves to be acknowledged by the plaza."""

HEARTBEAT_QOS = 0
"""Heartbeats go at most once: a lost one is superseded by the next, an interval later, long
before the stale timeout; QoS 1 would double the packets of the busiest message."""

LEAVE_QOS = 1
"""A leave is sent once and ends a count at once, so it is worth an acknowledgement."""

VERIFIED_MEMORY = 65_536
"""Event ids (SHA-256 of signed body bytes) remembered as verified, per process. Managers in
one process (a hub serving many visitors, a test) receive the same bytes once each; the
signature of bytes verified before need not be checked again (see ``wire.unseal``). 64 Ki
ids cost about 8 MiB and cover a few heartbeat intervals of thousands of visitors."""


verified_ids = RecentIds(VERIFIED_MEMORY)
"""The process-wide set of event ids whose signatures have verified."""


def open_site_event(
    payload: bytes, room_key: str, *, now_ms: int, limits: WireLimits
) -> Opened[AnySiteEvent]:
    """Verify a site event that arrived on ``room_key``'s topic, or raise the reason.

    Shared by every reader of site topics (managers and browser hubs), so that an event one
    of them verified costs the others in this process only a hash (``verified_ids``).
    """
    opened = unseal_as(
        SITE_EVENTS, payload, now_ms=now_ms, limits=limits, known=verified_ids.__contains__
    )
    verified_ids.add(opened.id)
    if opened.event.room_key != room_key:
        raise TopicMismatch("site event names another room than its topic")
    return opened

Callback = Callable[[PresenceNotice], object]


def _short(room_key: str) -> str:
    return room_key[:8]


@dataclass(slots=True, eq=False)
class _Membership:
    """Our presence in one room: the current ephemeral key and the heartbeat task."""

    room: Room
    plan: HeartbeatPlan
    key: Identity | None = None
    key_epoch: int = -1
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class PresenceManager:
    """Join rooms, count visitors, and keep the visitor's consent and ghost choices."""

    def __init__(
        self,
        *,
        transport: Transport,
        home: str | Path | None = None,
        config: SitesConfig | None = None,
        store: SiteStore | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        wire_limits: WireLimits | None = None,
        counters: Counters | None = None,
    ) -> None:
        """
        ``transport`` — the plaza (in-memory bus, MQTT); connected on entry, closed on exit.
        ``home`` — where ``sites.sqlite3`` lives (default: the hereabouts home); ignored when
        ``store`` is given. ``config`` — default :meth:`SitesConfig.from_env`. ``clock`` —
        Unix seconds (epochs are wall-clock). ``rng`` — for heartbeat spreads (default: the
        OS source, so the new phase after a boundary cannot be predicted). ``counters`` —
        where metrics are counted.
        """
        self.config = config if config is not None else SitesConfig.from_env()
        self._transport = transport
        self._home = resolve_home(home)
        self._store = store
        self._owns_store = store is None
        self._clock = clock
        self._rng = rng if rng is not None else random.SystemRandom()
        self._limits = wire_limits if wire_limits is not None else WireLimits()
        self.counters = site_counters(counters)
        self._counter = SiteCounter(SiteTiming.from_config(self.config))
        self._watched: dict[str, Room] = {}
        self._subscribed: set[str] = set()
        self._joined: dict[str, _Membership] = {}
        self._reported: dict[str, RoomCount] = {}
        self._callbacks: dict[str, list[Callback]] = {name: [] for name in NOTICE_NAMES}
        self._notices: Fanout[PresenceNotice] = Fanout(capacity=NOTICE_QUEUE_SIZE)
        self._background = BackgroundTasks()  # reader, ticker, one heartbeat per room
        self._leaves = BackgroundTasks()  # leaves in flight, awaited by flush()
        self._running = False
        self._consent: Consent | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._store is None:
            self._store = SiteStore.in_home(
                self._home, ghost_default=self.config.ghost_mode_default
            )
        self._consent = Consent(self._store, on_revoke=self._revoked)
        await self._transport.connect()
        self._background.spawn(self._read(), name="site-presence-reader")
        self._background.spawn(self._tick(), name="site-presence-ticker")
        self._running = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            for membership in list(self._joined.values()):
                self._drop(membership, "closed")
            await self.flush(timeout_s=LEAVE_TIMEOUT_S)
        finally:
            self._running = False
            await self._leaves.cancel_all()
            await self._background.cancel_all()
            await self._transport.close()
            self._notices.close()
            if self._owns_store and self._store is not None:
                self._store.close()
                self._store = None

    async def flush(self, *, timeout_s: float | None = None) -> None:
        """Wait until leaves sent in the background (revoke, ghost) have been published."""
        await self._leaves.wait(timeout_s)

    @property
    def transport(self) -> Transport:
        """The plaza this manager publishes on and listens to."""
        return self._transport

    # --- consent and ghost mode --------------------------------------------------------------

    @property
    def consent(self) -> Consent:
        if self._consent is None:
            raise ManagerNotRunning("use the manager inside 'async with'")
        return self._consent

    @property
    def ghost(self) -> bool:
        """Ghost mode: while on, nothing at all is published and ``join`` is refused."""
        return self._require_store().ghost

    def set_ghost(self, on: bool) -> None:
        """Switch ghost mode (persisted at once). Turning it on leaves every room now."""
        store = self._require_store()
        if store.ghost == on:
            return
        store.set_ghost(on)
        self.counters.add("site_ghost_toggles", "on" if on else "off")
        log.info("site presence ghost mode %s", "on" if on else "off")
        if on:
            for membership in list(self._joined.values()):
                self._drop(membership, "ghost")

    # --- rooms -------------------------------------------------------------------------------

    async def join(self, origin: str, room: str = DEFAULT_ROOM) -> str:
        """Be counted in ``room`` at ``origin``; returns its room key.

        Raises :class:`GhostModeOn` or :class:`ConsentRequired` (publishing nothing).
        Joining a room already joined does nothing.
        """
        self._require_running()
        target = Room.of(origin, room)
        if self.ghost:
            raise GhostModeOn("ghost mode is on; turn it off to join a room")
        if not self.consent.granted(target.origin):
            raise ConsentRequired("site presence is not granted for this origin")
        if target.key in self._joined:
            return target.key
        plan = HeartbeatPlan(
            interval_ms=round(self.config.heartbeat_interval_s * 1000),
            duration_ms=round(self.config.did_duration_s * 1000),
            spread_ms=round(self.config.rotation_spread_s * 1000),
            uniform=self._rng,
        )
        membership = _Membership(room=target, plan=plan)
        # Registered before the first await, so a concurrent join of the same room is a no-op.
        self._joined[target.key] = membership
        await self.watch(origin, room)
        if self._joined.get(target.key) is not membership:  # left (or ghosted) meanwhile
            return target.key
        self.counters.add("site_joins")
        log.debug("joined site room %s", _short(target.key))
        self._notify(PresenceJoined(room=target))
        first = self._now_ms()
        await self._heartbeat(membership, first)
        membership.task = self._background.spawn(
            self._beat(membership, plan.next_after(first)),
            name=f"site-heartbeat-{_short(target.key)}",
        )
        return target.key

    async def leave(self, origin: str | None = None, room: str | None = None) -> None:
        """Leave one room (``origin`` and ``room``), every room of ``origin``, or all rooms."""
        for membership in self._select(origin, room):
            self._drop(membership, "leave")
        await self.flush(timeout_s=LEAVE_TIMEOUT_S)

    async def watch(self, origin: str, room: str = DEFAULT_ROOM) -> str:
        """Count ``room`` without being counted in it (publishes nothing; needs no consent)."""
        self._require_running()
        target = Room.of(origin, room)
        self._watched.setdefault(target.key, target)
        self._counter.track(target.key)
        if target.key not in self._subscribed:
            await self._transport.subscribe(site_topic(target.key))
            self._subscribed.add(target.key)
        return target.key

    async def unwatch(self, origin: str, room: str = DEFAULT_ROOM) -> None:
        """Stop counting ``room``: leave it first if joined, unsubscribe its topic, forget
        its count (``count`` then says 0). Rooms stay watched until this is called, so an
        application moving through many rooms calls it for the ones it is done with."""
        self._require_running()
        target = Room.of(origin, room)
        await self.leave(origin, room)
        self._watched.pop(target.key, None)
        self._reported.pop(target.key, None)
        self._counter.untrack(target.key)
        if target.key in self._subscribed:
            self._subscribed.discard(target.key)
            with contextlib.suppress(NotConnected):  # the next connection starts without it
                await self._transport.unsubscribe(site_topic(target.key))

    @property
    def rooms(self) -> list[Room]:
        """The rooms we are counted in."""
        return [m.room for m in self._joined.values()]

    def count(self, origin: str | None = None, room: str | None = None) -> int:
        """The exact number of visitors (us included) in a room, for in-process use.

        With no arguments: the room joined last (0 if none). Anything shown outside the
        process must go through :meth:`report`, which applies the k floor.
        """
        key = self._key_of(origin, room)
        return 0 if key is None else self._counter.count(key, self._now_ms())

    def report(self, origin: str | None = None, room: str | None = None) -> RoomCount:
        """The count as it may leave the process (``PRESENCE_MIN_COUNT`` applied)."""
        return RoomCount.of(self.count(origin, room), self.config.min_count)

    def room_counts(self) -> dict[str, RoomCount]:
        """Reported counts of every watched room, by room key (for metrics)."""
        return {
            key: RoomCount.of(self._counter.reported(key), self.config.min_count)
            for key in self._watched
        }

    def collector(self) -> RoomCountCollector:
        """A Prometheus collector of :meth:`room_counts`."""
        return RoomCountCollector(self.room_counts)

    # --- notices -----------------------------------------------------------------------------

    def on(self, name: str, callback: Callback) -> None:
        """Call ``callback(notice)`` for every notice called ``name``."""
        if name not in self._callbacks:
            raise ValueError(f"unknown notice {name!r}; known: {sorted(NOTICE_NAMES)}")
        self._callbacks[name].append(callback)

    def off(self, name: str, callback: Callback) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._callbacks[name].remove(callback)

    async def notices(self) -> AsyncIterator[PresenceNotice]:
        """Every notice from now on, until the manager closes."""
        async for notice in self._notices.subscribe():
            yield notice

    # --- internals: publishing ---------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _may_publish(self, membership: _Membership) -> bool:
        store = self._store
        return (
            store is not None
            and self._joined.get(membership.room.key) is membership
            and not store.ghost
            and store.granted(membership.room.origin)
        )

    async def _beat(self, membership: _Membership, due_ms: int) -> None:
        while True:
            await asyncio.sleep(max(0, due_ms - self._now_ms()) / 1000)
            now = self._now_ms()
            if not self._may_publish(membership):
                # Consent or ghost changed behind our back (another process): stop quietly.
                if self._joined.get(membership.room.key) is membership:
                    self._drop(membership, "consent_revoked" if not self.ghost else "ghost")
                return
            await self._heartbeat(membership, now)
            due_ms = membership.plan.next_after(now)

    async def _heartbeat(self, membership: _Membership, now: int) -> None:
        epoch = epoch_of(now, self._counter_duration_ms)
        if membership.key is None or membership.key_epoch != epoch:
            if membership.key is not None:
                self.counters.add("site_rotations")
            membership.key, membership.key_epoch = Identity.generate(), epoch
        key = membership.key
        event = SiteHeartbeat(did=key.did, room_key=membership.room.key, epoch=epoch, at_ms=now)
        payload = seal_as(SITE_EVENTS, event, key, limits=self._limits)
        await self._publish(membership.room.key, payload, qos=HEARTBEAT_QOS)

    @property
    def _counter_duration_ms(self) -> int:
        return round(self.config.did_duration_s * 1000)

    def _drop(self, membership: _Membership, reason: str) -> None:
        """Stop being counted in a room now: no further heartbeat, one signed leave."""
        if self._joined.get(membership.room.key) is not membership:
            return
        del self._joined[membership.room.key]
        if membership.task is not None and membership.task is not asyncio.current_task():
            membership.task.cancel()
        self.counters.add("site_leaves", reason)
        log.debug("left site room %s (%s)", _short(membership.room.key), reason)
        now = self._now_ms()
        key, epoch = membership.key, membership.key_epoch
        membership.key = None
        if key is not None and epoch >= epoch_of(now, self._counter_duration_ms) - 1:
            event = SiteLeave(did=key.did, room_key=membership.room.key, epoch=epoch, at_ms=now)
            payload = seal_as(SITE_EVENTS, event, key, limits=self._limits)
            self._leaves.spawn(
                self._publish(membership.room.key, payload, qos=LEAVE_QOS),
                name=f"site-leave-{_short(membership.room.key)}",
            )
        self._notify(PresenceLeft(room=membership.room, reason=reason))

    async def _publish(self, room_key: str, payload: bytes, *, qos: int) -> None:
        try:
            await self._transport.publish(site_topic(room_key), payload, qos=qos)
        except NotConnected as exc:
            self.counters.add("site_publish_failures", exc.reason)
            log.debug("site event for room %s not published: %s", _short(room_key), exc.reason)

    def _revoked(self, origin: str) -> None:
        for membership in list(self._joined.values()):
            if membership.room.origin == origin:
                self._drop(membership, "consent_revoked")

    # --- internals: receiving and counting ---------------------------------------------------

    async def _read(self) -> None:
        async for message in self._transport.messages():
            key = site_room(message.topic)
            if key is None or not self._counter.tracks(key):
                continue
            now = self._now_ms()
            try:
                event = open_site_event(
                    message.payload, key, now_ms=now, limits=self._limits
                ).event
                if isinstance(event, SiteHeartbeat):
                    changes = self._counter.heartbeat(key, event.did, event.epoch, event.at_ms, now)
                else:
                    changes = self._counter.leave(key, event.did, event.epoch, event.at_ms, now)
            except RemoteError as exc:
                # The message text may quote a DID: log and count the reason only.
                self.counters.add("site_rejects", exc.reason)
                log.debug("refused a site event in room %s: %s", _short(key), exc.reason)
                continue
            except Exception as exc:  # never let one message stop the reader
                self.counters.add("site_rejects", "internal")
                log.warning("site event in room %s failed: %s", _short(key), type(exc).__name__)
                continue
            self.counters.add(
                "site_events_in", "heartbeat" if isinstance(event, SiteHeartbeat) else "leave"
            )
            self._apply(changes)

    async def _tick(self) -> None:
        await tick_forever(
            self._counter,
            now_ms=self._now_ms,
            apply=self._apply,
            cap_ms=round(self.config.heartbeat_interval_s * 1000),
        )

    def _apply(self, changes: list[CountChanged]) -> None:
        for change in changes:
            room = self._watched.get(change.room_key)
            if room is None:
                continue
            shown = RoomCount.of(change.new, self.config.min_count)
            if self._reported.get(change.room_key) == shown:
                continue
            self._reported[change.room_key] = shown
            self._notify(PresenceCountChanged(room=room, count=shown))

    # --- internals: notices and helpers ------------------------------------------------------

    def _notify(self, notice: PresenceNotice) -> None:
        for callback in list(self._callbacks[notice.name]):
            try:
                callback(notice)
            except Exception as exc:  # one bad callback must not stop presence
                log.warning("%s callback failed: %s", notice.name, type(exc).__name__)
        self._notices.publish(notice)

    def _select(self, origin: str | None, room: str | None) -> list[_Membership]:
        if origin is None:
            return list(self._joined.values())
        if room is not None:
            key = Room.of(origin, room).key
            return [m for m in self._joined.values() if m.room.key == key]
        normal = Room.of(origin).origin
        return [m for m in self._joined.values() if m.room.origin == normal]

    def _key_of(self, origin: str | None, room: str | None) -> str | None:
        if origin is not None:
            return Room.of(origin, room if room is not None else DEFAULT_ROOM).key
        if self._joined:
            return next(reversed(self._joined))
        return None

    def _require_store(self) -> SiteStore:
        if self._store is None:
            raise ManagerNotRunning("use the manager inside 'async with'")
        return self._store

    def _require_running(self) -> None:
        if not self._running:
            raise ManagerNotRunning("use the manager inside 'async with'")
