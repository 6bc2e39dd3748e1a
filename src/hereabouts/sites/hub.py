"""SiteHub: counts for browsers, heartbeats from browsers, one plaza for everybody.

A browser cannot speak MQTT to the plaza, so the hub speaks for it — without learning or
keeping anything a Python participant would not see:

* **Browsers sign; the hub checks.** A widget signs its ``site_heartbeat`` and
  ``site_leave`` events itself (WebCrypto Ed25519, fresh key per room per epoch). The hub
  opens them with :func:`~hereabouts.wire.unseal_as` — the code path of every other
  participant — and feeds them to :class:`~hereabouts.core.sites.SiteCounter`. Only what
  the counter accepts is republished, byte for byte, on ``hereabouts/v1/site/<room-key>``,
  so several hubs and Python participants share one count.
* **Browsers get counts only.** Each connection receives :class:`RoomCount` dictionaries
  (k floor applied) for the rooms it watches: after ``watch`` and whenever a reported
  count changes, pushed at once (well inside a second). No DID, no origin, no event.
* **A connection counts for its own origin only.** Browsers send the page's origin on
  every WebSocket handshake and scripts cannot change it. The hub admits the origins its
  operator allows (:mod:`~hereabouts.sites.origins`), keeps the connection's origin with
  the connection, and lets it watch (and so be counted in) only rooms whose keys it
  recomputes from that origin. The origin goes nowhere else: the plaza carries room keys,
  logs name rooms by an 8-character key prefix and refusals by reason only (error texts
  may quote DIDs).
* **Budgets per client address** that survive reconnects
  (:mod:`~hereabouts.core.admission`): connections held at once, events per second, and
  new DIDs brought into a room per epoch (so one address can raise a count by a bounded
  amount however often it reconnects); optionally a proof of work for every new DID.
* **Bounded.** Frame size, rooms per connection, connections, rooms per hub, events per
  connection per second, refused frames before the hub hangs up
  (:mod:`~hereabouts.sites.hub_protocol` holds the frame limits).

A connection may only send events for rooms it watches: the hub then already listens to
that room's topic, and the counter tracks it.

A room nobody watches any more stays subscribed and counted for
:attr:`~hereabouts.config.SitesConfig.stale_timeout_s` (a reload finds its count intact),
then the hub unsubscribes from its topic and forgets it. When ``max_rooms`` is reached,
such idle rooms make way for new ones at once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import secrets
import time
from collections.abc import Callable
from types import TracebackType
from typing import Final, Self

from hereabouts.config import HubConfig, SitesConfig, WireLimits
from hereabouts.core.admission import (
    AddressBudgets,
    PowInvalid,
    PowRequired,
    address_key,
    pow_ok,
)
from hereabouts.core.ratelimit import RateLimiter
from hereabouts.core.sites import CountChanged, SiteCounter, SiteTiming
from hereabouts.errors import RateLimited, RemoteError, Replayed
from hereabouts.metrics import Counters
from hereabouts.sites.counts import RoomCount
from hereabouts.sites.errors import InvalidRoom
from hereabouts.sites.events import SITE_EVENTS, AnySiteEvent, SiteHeartbeat
from hereabouts.sites.hub_protocol import (
    MAX_ROOMS_PER_CONNECTION,
    MAX_STRIKES,
    BadRoom,
    GhostForced,
    HubFull,
    RoomNotWatched,
    TooManyRooms,
    Watch,
    WatchedRoom,
    decode_frame,
    sealed_bytes,
)
from hereabouts.sites.manager import (
    LEAVE_QOS,
    open_site_event,
    verified_ids,
)
from hereabouts.sites.metrics import RoomCountCollector, site_counters
from hereabouts.sites.origins import OriginPolicy, WrongOrigin
from hereabouts.sites.probe import SelfProbe
from hereabouts.sites.recent import RecentIds
from hereabouts.sites.rooms import room_key
from hereabouts.sites.ticking import tick_forever
from hereabouts.tasks import BackgroundTasks
from hereabouts.transports.base import Transport
from hereabouts.transports.errors import NotConnected
from hereabouts.transports.topics import site_room, site_topic
from hereabouts.wire import unseal_as

log = logging.getLogger(__name__)

CLIENT_RATE_PER_S: Final = 4.0
"""Events per second one connection may send, sustained. A widget in 16 rooms at the
default 10 s cadence sends 1.6/s; a leave and a join on switching rooms add a burst."""

CLIENT_BURST: Final = 32
"""Events one connection may send at once (a page joining all its rooms, a reload)."""

BROWSER_IDS: Final = 16_384
"""Event ids remembered as received from browsers, to refuse a replayed frame."""

POW_CHALLENGE_BYTES: Final = 16
"""Random bytes of each connection's proof-of-work challenge: never repeated, so no work
can be done before the connection exists."""

IDLE_SWEEP_S: Final = 5.0
"""How often, at most, rooms nobody watches are looked at for release (half the stale
timeout when that is shorter). They linger one stale timeout, 30 s by default, so
releasing a few seconds late costs nothing."""

HUB_COUNTERS: Final = {
    "site_hub_connections": ("Browser connections, by what happened", "state"),
    "site_hub_frames": ("Frames received from browsers, by type", "type"),
    "site_hub_rejects": ("Browser frames refused, by reason", "reason"),
    "site_hub_republished": ("Browser events republished on the plaza, by kind", "kind"),
    "site_hub_rooms_released": ("Rooms unsubscribed after nobody watched them", "why"),
}


def _short(room_key: str) -> str:
    return room_key[:8]


class HubClient:
    """One browser connection: whose rooms it may count in, the rooms it watches and what
    is waiting to be sent to it.

    Counts are coalesced per room (only the newest matters), so the backlog of a slow
    client is at most one entry per watched room plus a few error replies. The origin is
    kept out of ``repr``: it must not reach a log line.
    """

    MAX_ERRORS = 16
    """Error replies waiting at most; past it a flooding client just loses some replies."""

    def __init__(
        self,
        ident: str,
        *,
        origin: str,
        address: str,
        challenge: bytes = b"",
        wake: Callable[[], None] | None = None,
    ) -> None:
        """``wake`` is called whenever something is waiting to be sent (:meth:`take` it);
        without it, :meth:`outgoing` waits for it."""
        self.ident = ident
        self.origin = origin
        """The normalised origin whose rooms this connection may watch and count in."""
        self.address = address
        """The budget key of the client's address (:func:`address_key`)."""
        self.challenge = challenge
        """This connection's proof-of-work challenge (empty when none is asked)."""
        self.watched: frozenset[str] = frozenset()
        self.strikes = 0
        self._counts: dict[str, RoomCount] = {}
        self._errors: list[str] = []
        self._ready = asyncio.Event()
        self._wake = wake if wake is not None else self._ready.set
        self._closed = False

    def __repr__(self) -> str:
        return f"HubClient({self.ident})"

    def push(self, room_key: str, count: RoomCount) -> None:
        self._counts[room_key] = count
        self._wake()

    def refuse(self, reason: str) -> bool:
        """Queue an error reply; True when the client has used up its strikes."""
        self.strikes += 1
        if len(self._errors) < self.MAX_ERRORS:
            self._errors.append(reason)
        self._wake()
        return self.strikes > MAX_STRIKES

    def close(self) -> None:
        self._closed = True
        self._wake()

    @property
    def closed(self) -> bool:
        """True once the hub has closed this client (it shuts down)."""
        return self._closed

    def take(self) -> list[dict[str, object]]:
        """The frames waiting (errors first, then one ``counts`` frame), now removed."""
        frames: list[dict[str, object]] = [
            {"type": "error", "reason": reason} for reason in self._errors
        ]
        if self._counts:
            rooms = {key: count.as_dict() for key, count in self._counts.items()}
            frames.append({"type": "counts", "rooms": rooms})
        self._errors, self._counts = [], {}
        return frames

    async def outgoing(self) -> list[dict[str, object]] | None:
        """The next frames to send; None once closed (for a client without ``wake``)."""
        while True:
            if self._closed:
                return None
            if self._errors or self._counts:
                return self.take()
            self._ready.clear()
            await self._ready.wait()


class SiteHub:
    """Browser-facing site presence over one plaza transport (owned: connected on entry,
    closed on exit)."""

    def __init__(
        self,
        *,
        transport: Transport,
        config: SitesConfig | None = None,
        hub: HubConfig | None = None,
        wire_limits: WireLimits | None = None,
        counters: Counters | None = None,
        clock: Callable[[], float] = time.time,
        listen_host: str | None = None,
        on_verified: Callable[[str], None] | None = None,
    ) -> None:
        """``config`` is the visitors' cadence (default :meth:`SitesConfig.from_env`);
        ``hub`` the hub's limits and flags (default :meth:`HubConfig.from_env`); ``clock``
        is wall-clock seconds (epochs are wall-clock); ``counters`` receives the ``site_*``
        and ``site_hub_*`` counters (a new set by default); ``listen_host`` is where the
        HTTP server serving the hub listens: with no ``allowed_origins`` configured, any
        origin may connect when that is loopback, none otherwise (None counts as not
        loopback); ``on_verified`` is told the id of every browser event whose signature
        this hub checked (hub workers tell their siblings, :mod:`~.worker_peers`)."""
        self.config = config if config is not None else SitesConfig.from_env()
        self.settings = hub if hub is not None else HubConfig.from_env()
        self._transport = transport
        self._limits = wire_limits if wire_limits is not None else WireLimits()
        self.counters = site_counters(counters)
        for name, (help_text, label) in HUB_COUNTERS.items():
            self.counters.describe(name, help_text, label)
        self._clock = clock
        self.max_connections = self.settings.max_connections
        self.max_rooms = self.settings.max_rooms
        self.rooms_per_connection = MAX_ROOMS_PER_CONNECTION
        self._counter = SiteCounter(SiteTiming.from_config(self.config))
        self._watchers: dict[str, set[HubClient]] = {}
        self._reported: dict[str, RoomCount] = {}
        self._subscribed: set[str] = set()
        self._idle: dict[str, int] = {}
        """Subscribed rooms nobody watches, oldest first: room key -> when (ms) the last
        watcher left."""
        self._clients: set[HubClient] = set()
        self._ids = itertools.count(1)
        self._rate = RateLimiter(
            rate_per_s=CLIENT_RATE_PER_S, burst=CLIENT_BURST, max_keys=self.max_connections
        )
        self.origins = OriginPolicy.for_hub(self.settings, listen_host=listen_host)
        self._budgets = AddressBudgets(
            max_connections=self.settings.max_connections_per_address,
            events_per_s=self.settings.address_events_per_s,
            event_burst=self.settings.address_event_burst,
            joins=self.settings.joins_per_address,
        )
        self.pow_bits = self.settings.pow_bits
        self._from_browsers = RecentIds(BROWSER_IDS)
        self._probe = SelfProbe(
            interval_ms=round(self.settings.probe_interval_s * 1000), started_ms=self._now_ms()
        )
        self._last_processed_ms: int | None = None
        self._reader: asyncio.Task[None] | None = None
        self._background = BackgroundTasks()  # the plaza reader, the ticker, the probe
        self._republishing = BackgroundTasks()  # browser events on their way to the plaza
        self._running = False
        self._on_verified = on_verified

    # --- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self._transport.connect()
        await self._transport.subscribe(self._probe.topic)
        self._reader = self._background.spawn(self._read(), name="site-hub-reader")
        self._background.spawn(self._tick(), name="site-hub-ticker")
        self._background.spawn(self._probe_now_and_then(), name="site-hub-probe")
        self._background.spawn(self._release_idle_rooms(), name="site-hub-idle-rooms")
        self._running = True
        if self.origins.serves_nobody:
            log.warning(
                "the site hub serves no origin but its own: its HTTP server is reachable from "
                "other machines and PRESENCE_HUB_ALLOWED_ORIGINS is empty, so pages of other "
                "sites are refused"
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for client in list(self._clients):
            client.close()
        self._running = False
        await self._republishing.wait(timeout_s=2.0)
        await self._republishing.cancel_all()
        await self._background.cancel_all()
        await self._transport.close()

    @property
    def running(self) -> bool:
        return self._running

    @property
    def transport(self) -> Transport:
        """The plaza this hub republishes to and counts from."""
        return self._transport

    @property
    def ghost_forced(self) -> bool:
        """Flag ``presence_ghost_mode_hard_off``: ghost mode for every visitor of this hub."""
        return self.settings.ghost_mode_hard_off

    def hello(self, client: HubClient) -> dict[str, object]:
        """The first frame of every connection: the cadence, the hub's clock, whether the
        hub forces ghost mode (then the widget sends nothing and says why), and the proof
        of work a new DID needs on this connection."""
        frame: dict[str, object] = {
            "type": "hello",
            "heartbeat_interval_ms": round(self.config.heartbeat_interval_s * 1000),
            "did_duration_ms": round(self.config.did_duration_s * 1000),
            "rotation_spread_ms": round(self.config.rotation_spread_s * 1000),
            "max_rooms": self.rooms_per_connection,
            "ghost_forced": self.ghost_forced,
            "pow_bits": self.pow_bits,
            "now_ms": self._now_ms(),
        }
        if self.pow_bits:
            frame["pow_challenge"] = base64.urlsafe_b64encode(client.challenge).decode().rstrip("=")
        return frame

    def health(self) -> dict[str, object]:
        """The hub's part of ``/healthz``: ``ok`` when the broker is connected and a probe
        (key generated, signed, published, received back through the reader, verified)
        has answered lately. See :mod:`hereabouts.sites.probe`."""
        now = self._now_ms()
        state = self._transport.state
        reader_alive = self._running and self._reader is not None and not self._reader.done()
        probe = self._probe.report(now)
        return {
            "ok": bool(state.connected and reader_alive and probe["ok"]),
            "broker": state.as_dict(),
            "probe": probe,
            "key_generation": {"ok": self._probe.key_generation_ok is not False},
            "processing": {
                "ok": reader_alive,
                "reader_running": reader_alive,
                "last_message_age_ms": (
                    None if self._last_processed_ms is None else now - self._last_processed_ms
                ),
                "events_in": self.counters.total("site_events_in"),
                "rejects": self.counters.total("site_rejects")
                + self.counters.total("site_hub_rejects"),
                "republish_backlog": len(self._republishing),
            },
            "connections": len(self._clients),
            "addresses": self._budgets.addresses,
            "origins": self.origins.describe(),
            "pow_bits": self.pow_bits,
            "rooms": len(self._watchers),
            "idle_rooms": len(self._idle),
            "ghost_forced": self.ghost_forced,
        }

    # --- connections -----------------------------------------------------------------------

    def open_client(
        self,
        origin: str | None,
        host: str | None,
        *,
        served_as: str | None = None,
        wake: Callable[[], None] | None = None,
    ) -> HubClient:
        """A new connection from the page origin ``origin`` (the handshake's ``Origin``
        header) and the client address ``host``, made to the hub under the name
        ``served_as`` (its ``Host`` header: an origin naming it is the hub's own, always
        allowed); or the reason it is refused:
        :class:`~hereabouts.sites.origins.OriginMissing`, ``OriginInvalid``,
        ``OriginNotAllowed``, :class:`HubFull`, :class:`~hereabouts.core.admission.AddressBusy`.
        Refusals are counted as ``site_hub_connections{state="refused"}`` and by reason in
        ``site_hub_rejects``. ``wake`` is the client's (see :class:`HubClient`)."""
        try:
            counting = self.origins.counting_origin(origin, host=served_as)
            if not self.running or len(self._clients) >= self.max_connections:
                raise HubFull("the hub holds its most connections")
            address = address_key(host)
            self._budgets.connect(address)
        except RemoteError as exc:
            self.counters.add("site_hub_connections", "refused")
            self.counters.add("site_hub_rejects", exc.reason)
            log.debug("refused a browser connection: %s", exc.reason)
            raise
        challenge = secrets.token_bytes(POW_CHALLENGE_BYTES) if self.pow_bits else b""
        client = HubClient(
            str(next(self._ids)), origin=counting, address=address, challenge=challenge, wake=wake
        )
        self._clients.add(client)
        self.counters.add("site_hub_connections", "opened")
        return client

    def close_client(self, client: HubClient) -> None:
        """Forget a connection. Its visitors stop counting when their DIDs go stale (or at
        once, if the widget sent its leaves before closing)."""
        if client not in self._clients:
            return
        self._clients.discard(client)
        self._budgets.disconnect(client.address)
        self._set_watched(client, frozenset())
        client.close()
        self.counters.add("site_hub_connections", "closed")

    @property
    def connections(self) -> int:
        return len(self._clients)

    async def receive(self, client: HubClient, data: bytes) -> bool:
        """Handle one client frame; False when the client should be closed (strikes).

        Refusals are counted by reason and answered with an error frame.
        """
        outcome = self.receive_now(client, data)
        if isinstance(outcome, Watch):
            return await self.receive_watch(client, outcome)
        return outcome

    def receive_now(self, client: HubClient, data: bytes) -> bool | Watch:
        """Handle one client frame without yielding to the event loop, as far as it can be:
        an event is verified, counted and republished now, and the result is whether to
        keep the client (as :meth:`receive`). A ``watch`` may need to subscribe, which
        waits for the broker: it comes back decoded, to be passed to
        :meth:`receive_watch`, and the frames after it must wait for that."""
        try:
            frame = decode_frame(data)
            if isinstance(frame, Watch):
                self.counters.add("site_hub_frames", "watch")
                return frame
            self.counters.add("site_hub_frames", "event")
            self.submit_now(client, sealed_bytes(frame), pow=frame.pow)
        except RemoteError as exc:
            return self.reject(client, exc.reason)
        return True

    async def receive_watch(self, client: HubClient, frame: Watch) -> bool:
        """A ``watch`` from :meth:`receive_now`; False when the client should be closed."""
        try:
            await self.watch(client, frame.rooms)
        except RemoteError as exc:
            return self.reject(client, exc.reason)
        return True

    def reject(self, client: HubClient, reason: str) -> bool:
        """Count and answer a refused frame; False when the client should be closed."""
        self.counters.add("site_hub_rejects", reason)
        log.debug("refused a browser frame: %s", reason)
        return not client.refuse(reason)

    # --- watching --------------------------------------------------------------------------

    async def watch(self, client: HubClient, rooms: list[WatchedRoom]) -> None:
        """Make ``rooms`` the set ``client`` watches; sends it their counts now.

        Every room key must be the key of its room at the client's origin
        (:class:`~hereabouts.sites.origins.WrongOrigin` otherwise, and nothing changes)."""
        wanted = frozenset(room.key for room in rooms)
        if len(wanted) > self.rooms_per_connection:
            raise TooManyRooms(f"a connection watches at most {self.rooms_per_connection} rooms")
        for room in rooms:
            try:
                expected = room_key(client.origin, room.name)
            except InvalidRoom:
                raise BadRoom("not a room name") from None
            if room.key != expected:
                raise WrongOrigin("a room key that is not of this connection's origin")
        new = [key for key in wanted if key not in self._subscribed]
        over = len(self._subscribed) + len(new) - self.max_rooms
        if over > 0:
            # Rooms nobody watches make way, this client's own old rooms included.
            left_behind = [
                key for key in client.watched - wanted if self._watchers.get(key) == {client}
            ]
            idle = [key for key in self._idle if key not in wanted]
            if len(idle) + len(left_behind) < over:
                raise HubFull("the hub counts its most rooms")
            self._set_watched(client, client.watched & wanted)
            for key in [key for key in self._idle if key not in wanted][:over]:
                await self._release(key, why="room_needed")
        for key in new:
            self._subscribed.add(key)
            # Our own republications need not come back: they were counted on arrival.
            await self._transport.subscribe(site_topic(key), no_local=True)
        self._set_watched(client, wanted)
        now = self._now_ms()
        for key in wanted:
            client.push(key, self._report(key, now))

    def _set_watched(self, client: HubClient, wanted: frozenset[str]) -> None:
        now = self._now_ms()
        for key in client.watched - wanted:
            watchers = self._watchers.get(key)
            if watchers is not None:
                watchers.discard(client)
                if not watchers:
                    # Still counted (its reported count is no longer kept up to date, so
                    # forget it); released by _release_idle_rooms if nobody comes back.
                    del self._watchers[key]
                    self._reported.pop(key, None)
                    self._idle[key] = now
        for key in wanted - client.watched:
            self._watchers.setdefault(key, set()).add(client)
            self._idle.pop(key, None)
            self._counter.track(key)
        client.watched = wanted

    async def _release_idle_rooms(self) -> None:
        """Unsubscribe rooms nobody has watched for a stale timeout, every few seconds."""
        linger_ms = round(self.config.stale_timeout_s * 1000)
        every_s = min(IDLE_SWEEP_S, self.config.stale_timeout_s / 2)
        while True:
            await asyncio.sleep(every_s)
            cutoff = self._now_ms() - linger_ms
            expired = [key for key, since in self._idle.items() if since <= cutoff]
            for key in expired:
                await self._release(key, why="idle")

    async def _release(self, key: str, *, why: str) -> None:
        """Stop counting a room nobody watches and unsubscribe its topic. All bookkeeping
        happens before the await, so a watcher arriving meanwhile subscribes afresh."""
        if self._idle.pop(key, None) is None:
            return  # watched again meanwhile
        self._subscribed.discard(key)
        self._counter.untrack(key)
        self.counters.add("site_hub_rooms_released", why)
        with contextlib.suppress(NotConnected):  # the next connection starts without it
            await self._transport.unsubscribe(site_topic(key))

    def counts(self) -> dict[str, RoomCount]:
        """Reported counts of every watched room, by room key (for metrics and tests)."""
        now = self._now_ms()
        return {key: self._report(key, now) for key in self._watchers}

    def collector(self) -> RoomCountCollector:
        """A Prometheus collector of :meth:`counts`."""
        return RoomCountCollector(self.counts)

    # --- events from browsers --------------------------------------------------------------

    async def submit(self, client: HubClient, sealed: bytes, *, pow: str | None = None) -> None:
        """:meth:`submit_now`, for callers in a coroutine."""
        self.submit_now(client, sealed, pow=pow)

    def submit_now(self, client: HubClient, sealed: bytes, *, pow: str | None = None) -> None:
        """A browser-signed event: verify, count, republish; or raise the reason it is not.

        The connection's and the address's event budgets are spent before the signature is
        checked. A heartbeat of a DID the room does not hold yet is a *join*: it needs the
        address's join budget for the room and epoch, and the proof of work ``pow`` when
        the hub asks for one."""
        if self.ghost_forced:
            raise GhostForced("this hub forces ghost mode: it publishes no visitor")
        now = self._now_ms()
        if not self._rate.allow(client.ident, now):
            raise RateLimited("too many events from this connection")
        self._budgets.spend_event(client.address, now)
        opened = unseal_as(
            SITE_EVENTS, sealed, now_ms=now, limits=self._limits, known=verified_ids.__contains__
        )
        verified_ids.add(opened.id)
        if self._on_verified is not None:
            self._on_verified(opened.id)
        event = opened.event
        if event.room_key not in client.watched:
            raise RoomNotWatched("watch a room before sending its events")
        if opened.id in self._from_browsers:
            raise Replayed("this event was received before")
        heartbeat = isinstance(event, SiteHeartbeat)
        held = self._counter.holds(event.room_key, event.did, event.epoch, now)
        if heartbeat and not held:
            self._admit(client, event, pow)
        changes = self._count(event, now)
        if heartbeat and not held:
            self._budgets.joined(client.address, event.room_key, event.epoch)
        elif not heartbeat and held:
            self._budgets.left(client.address, event.room_key, event.epoch)
        self._apply(changes)
        self._from_browsers.add(opened.id)
        kind = "heartbeat" if heartbeat else "leave"
        self.counters.add("site_events_in", kind)
        if heartbeat:
            # QoS 0 goes out with this loop turn's other writes, without waiting for anyone.
            self._republish_heartbeat(event.room_key, opened.raw)
        else:  # QoS 1 waits for the broker's acknowledgement: not on the reading path
            self._republishing.spawn(
                self._republish_leave(event.room_key, opened.raw),
                name=f"site-hub-republish-{_short(event.room_key)}",
            )

    def _admit(self, client: HubClient, event: AnySiteEvent, pow: str | None) -> None:
        """May ``client`` bring a new DID into the room? Raises the reason it may not."""
        self._budgets.check_join(client.address, event.room_key, event.epoch)
        if self.pow_bits:
            if pow is None:
                raise PowRequired("a new visitor key needs proof of work on this hub")
            if not pow_ok(client.challenge, event.did, pow, self.pow_bits):
                raise PowInvalid("the proof of work does not have the zero bits asked for")

    def _republish_heartbeat(self, room_key: str, payload: bytes) -> None:
        try:
            self._transport.publish_at_most_once(site_topic(room_key), payload)
        except NotConnected as exc:
            self._not_republished(room_key, exc)
            return
        self.counters.add("site_hub_republished", "heartbeat")

    async def _republish_leave(self, room_key: str, payload: bytes) -> None:
        try:
            await self._transport.publish(site_topic(room_key), payload, qos=LEAVE_QOS)
        except NotConnected as exc:
            self._not_republished(room_key, exc)
            return
        self.counters.add("site_hub_republished", "leave")

    def _not_republished(self, room_key: str, exc: NotConnected) -> None:
        self.counters.add("site_publish_failures", exc.reason)
        log.debug("browser event for room %s not republished: %s", _short(room_key), exc.reason)

    # --- events from the plaza -------------------------------------------------------------

    async def _read(self) -> None:
        async for message in self._transport.messages():
            now = self._now_ms()
            self._last_processed_ms = now
            if message.topic == self._probe.topic:
                self._probe.received(message.payload, now)
                continue
            key = site_room(message.topic)
            if key is None or not self._counter.tracks(key):
                continue
            try:
                opened = open_site_event(message.payload, key, now_ms=now, limits=self._limits)
                if opened.id in self._from_browsers:
                    continue  # our own republication coming back: already counted
                changes = self._count(opened.event, now)
            except RemoteError as exc:
                self.counters.add("site_rejects", exc.reason)
                log.debug("refused a site event in room %s: %s", _short(key), exc.reason)
                continue
            except Exception as exc:  # never let one message stop the reader
                self.counters.add("site_rejects", "internal")
                log.warning("site event in room %s failed: %s", _short(key), type(exc).__name__)
                continue
            self._apply(changes)

    async def _probe_now_and_then(self) -> None:
        """Send a self-probe every interval (the first at once)."""
        while True:
            payload = self._probe.make(self._now_ms())
            if payload is not None:
                try:
                    await self._transport.publish(self._probe.topic, payload, qos=0)
                except NotConnected as exc:
                    self._probe.last_error = f"probe not published: {exc.reason}"
            await asyncio.sleep(self._probe.interval_ms / 1000)

    async def _tick(self) -> None:
        await tick_forever(
            self._counter,
            now_ms=self._now_ms,
            apply=self._apply,
            cap_ms=round(self.config.heartbeat_interval_s * 1000),
        )

    # --- counting --------------------------------------------------------------------------

    def _count(self, event: AnySiteEvent, now: int) -> list[CountChanged]:
        if isinstance(event, SiteHeartbeat):
            return self._counter.heartbeat(event.room_key, event.did, event.epoch, event.at_ms, now)
        return self._counter.leave(event.room_key, event.did, event.epoch, event.at_ms, now)

    def _report(self, key: str, now: int) -> RoomCount:
        shown = self._reported.get(key)
        if shown is None:
            shown = RoomCount.of(self._counter.count(key, now), self.config.min_count)
            self._reported[key] = shown
        return shown

    def _apply(self, changes: list[CountChanged]) -> None:
        for change in changes:
            watchers = self._watchers.get(change.room_key)
            if not watchers:
                continue
            shown = RoomCount.of(change.new, self.config.min_count)
            if self._reported.get(change.room_key) == shown:
                continue
            self._reported[change.room_key] = shown
            for client in watchers:
                client.push(change.room_key, shown)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)
