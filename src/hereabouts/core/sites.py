"""The site-room counter: verified heartbeats and leaves and the time in, counts out.

Why per-epoch buckets: at every epoch boundary each visitor of a room switches to a new
DID, and the two DIDs cannot (and must not) be linked. A counter that kept one set of DIDs
would count both for a whole stale timeout after every boundary — the seed design doubled
its counts every five minutes. So DIDs are kept per ``(room, epoch)`` and the reported
count is, at our time ``now`` in epoch ``e`` and ``τ = now - start(e)``:

* ``live(e)`` once ``τ >= settle`` (``settle = spread + max skew``, 13 s by default): by
  then every visitor present has sent its first heartbeat of ``e``;
* ``max(live(e), live(e-1))`` during the settle window: the old DIDs stopped at the boundary
  but are still fresh, so ``live(e-1)`` is the room as it was, while ``live(e)`` fills up
  and takes over. ``max`` never double-counts: each visitor is in each set at most once.

``live(x)`` is the number of DIDs of epoch ``x`` that have not left and were heard within
the stale timeout. A DID's freshness runs from ``min(receipt, at_ms + skew)``, so replaying
an old captured heartbeat cannot keep a departed visitor counted.

Exactness: with no arrivals or departures for one stale timeout, the count equals the
number of visitors at every instant, rotations included, provided clocks agree within
``max_skew`` (see :class:`~hereabouts.config.SitesConfig` for the inequalities the config
enforces). A signed leave is counted at once; a visitor arriving is counted with its first
heartbeat. During a settle window, and only for visitors who arrived or left since its
boundary, the count may be late, never more than until the window closes: while
``live(e-1)`` is the larger, a newcomer (who is in ``live(e)`` only) is not yet shown, nor
is the departure of a visitor who had already rotated (its old DID stays fresh in
``live(e-1)``; its leave names the new one). So the count lies between the true count
minus the arrivals since the boundary and plus the departures since the boundary, and is
exact again when the window closes. Nothing better is possible without linking a
visitor's old and new DIDs, which rotation exists to prevent. The window is one heartbeat
interval plus the max skew with the default spread, which keeps the hub's load level
through boundaries (:mod:`hereabouts.core.rotation`).

Time passing is cheap however many rooms are counted. Every DID's expiry sits in its
epoch's heap; outdated entries (the DID was heard again, or left) are dropped as soon as
they reach the top, so a heap's top is always a real deadline. Each room is booked in one
counter-wide heap at its earliest real deadline; :meth:`SiteCounter.tick` visits only the
rooms that are due, plus every room at the two instants per epoch when all of them can
change (the boundary and the end of the settle window). In steady state, with heartbeats
every ``H`` and a stale timeout ``S``, a room is visited about once per ``S - H``, not once
per heartbeat.

Refusals raise the typed :class:`~hereabouts.errors.EventRejected` subclasses; they change
nothing. Time must not run backwards between calls (a wall-clock step back only delays
expiry).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from hereabouts.config import SitesConfig
from hereabouts.core.rotation import epoch_of, epoch_start_ms
from hereabouts.errors import EventRejected, FromTheFuture, Replayed, TooOld


class EpochMismatch(EventRejected):
    """A site event's epoch disagrees with its own timestamp (another epoch length?)."""

    reason = "epoch_mismatch"


class RoomFull(EventRejected):
    """A room's epoch already holds the most DIDs a counter keeps."""

    reason = "room_full"


@dataclass(frozen=True, slots=True)
class SiteTiming:
    """The config in integer milliseconds, as the counter uses it."""

    duration_ms: int
    stale_ms: int
    settle_ms: int
    skew_ms: int
    max_participants: int

    @classmethod
    def from_config(cls, config: SitesConfig) -> SiteTiming:
        return cls(
            duration_ms=round(config.did_duration_s * 1000),
            stale_ms=round(config.stale_timeout_s * 1000),
            settle_ms=round(config.settle_s * 1000),
            skew_ms=round(config.max_clock_skew_s * 1000),
            max_participants=config.max_room_participants,
        )


@dataclass(frozen=True, slots=True)
class CountChanged:
    """The count of a room moved from ``old`` to ``new`` at our time ``at_ms``."""

    room_key: str
    old: int
    new: int
    at_ms: int


@dataclass(frozen=True, slots=True)
class CounterFootprint:
    """What a counter holds in memory, in entries (see :meth:`SiteCounter.footprint`).

    Bounds: per room, at most three epochs (the previous, the current, and the next one
    that a clock running ahead may already name); per room and epoch at most
    ``max_participants`` DIDs and as many left DIDs. ``deadlines`` has no bound of its own:
    it holds one entry per refresh heard within the stale timeout (plus the clock skew),
    so it is bounded by the heartbeats accepted in that time."""

    rooms: int
    epochs: int
    """(room, epoch) buckets held."""
    dids: int
    """DIDs held with their expiry (live ones, and expired ones not yet dropped)."""
    left: int
    """DIDs remembered as having left (refused for the rest of their epoch)."""
    deadlines: int
    """Entries in the expiry heaps, outdated ones included."""

    @property
    def entries(self) -> int:
        return self.dids + self.left + self.deadlines


@dataclass(slots=True)
class _Epoch:
    expiry: dict[str, int] = field(default_factory=dict)
    """DID -> the instant it stops being fresh."""
    heap: list[tuple[int, str]] = field(default_factory=list)
    """(expiry, DID) pushed on every refresh; outdated entries are skipped when popped."""
    left: set[str] = field(default_factory=set)

    def prune(self, now_ms: int) -> None:
        """Forget DIDs whose expiry has come, and outdated entries at the top."""
        heap, expiry = self.heap, self.expiry
        while heap:
            deadline, did = heap[0]
            if expiry.get(did) == deadline:  # a real deadline
                if deadline > now_ms:
                    return
                del expiry[did]
            heapq.heappop(heap)

    def live(self, now_ms: int) -> int:
        self.prune(now_ms)
        return len(self.expiry)

    def next_expiry(self, now_ms: int) -> int | None:
        """The earliest real expiry after ``now_ms`` (None when no DID is live)."""
        self.prune(now_ms)
        return self.heap[0][0] if self.heap else None


@dataclass(slots=True)
class _Room:
    epochs: dict[int, _Epoch] = field(default_factory=dict)
    reported: int = 0
    booked_ms: int | None = None
    """When this room is booked in the counter's heap of due rooms (None: not booked)."""


class SiteCounter:
    """Counts the visitors of the rooms it tracks; see the module docstring for the rules."""

    def __init__(self, timing: SiteTiming) -> None:
        self._t = timing
        self._rooms: dict[str, _Room] = {}
        self._due: list[tuple[int, str]] = []
        """(time, room key): rooms booked for a visit; outdated when the room's
        ``booked_ms`` differs (the room was re-booked or untracked)."""
        self._sweep_ms: int | None = None
        """The next instant every room must be visited (a boundary or a settle end)."""

    # --- rooms -----------------------------------------------------------------------------

    def track(self, room_key: str) -> None:
        """Start counting ``room_key`` (a no-op if already tracked)."""
        self._rooms.setdefault(room_key, _Room())

    def untrack(self, room_key: str) -> None:
        self._rooms.pop(room_key, None)

    def tracks(self, room_key: str) -> bool:
        return room_key in self._rooms

    @property
    def rooms(self) -> list[str]:
        return list(self._rooms)

    # --- input -----------------------------------------------------------------------------

    def heartbeat(
        self, room_key: str, did: str, epoch: int, at_ms: int, now_ms: int
    ) -> list[CountChanged]:
        """A verified ``site_heartbeat``; returns the count change it causes, if any."""
        room = self._rooms.get(room_key)
        if room is None:
            return []
        self._check(epoch, at_ms, now_ms, leave=False)
        if self._sweep_ms is None:
            self._sweep_ms = self._next_sweep_ms(now_ms)
        bucket = room.epochs.setdefault(epoch, _Epoch())
        if did in bucket.left:
            raise Replayed("heartbeat from a DID that has left")
        bucket.prune(now_ms)
        if did not in bucket.expiry and len(bucket.expiry) >= self._t.max_participants:
            raise RoomFull(f"room already holds {self._t.max_participants} DIDs this epoch")
        expiry = min(now_ms, at_ms + self._t.skew_ms) + self._t.stale_ms
        if expiry > bucket.expiry.get(did, -1):
            bucket.expiry[did] = expiry
            heapq.heappush(bucket.heap, (expiry, did))
            if room.booked_ms is None or expiry < room.booked_ms:
                self._book(room_key, room, expiry)
        return self._report(room_key, room, now_ms)

    def leave(
        self, room_key: str, did: str, epoch: int, at_ms: int, now_ms: int
    ) -> list[CountChanged]:
        """A verified ``site_leave``: the DID stops counting at once and for good."""
        room = self._rooms.get(room_key)
        if room is None:
            return []
        self._check(epoch, at_ms, now_ms, leave=True)
        if self._sweep_ms is None:
            self._sweep_ms = self._next_sweep_ms(now_ms)
        bucket = room.epochs.setdefault(epoch, _Epoch())
        bucket.expiry.pop(did, None)
        if len(bucket.left) < self._t.max_participants:
            bucket.left.add(did)
        return self._report(room_key, room, now_ms)

    def tick(self, now_ms: int) -> list[CountChanged]:
        """Let time pass: expire silent DIDs, close settle windows, drop old epochs.

        Visits the rooms that are due; every room at a boundary or a settle end."""
        changes: list[CountChanged] = []
        due: list[str] = []
        while self._due and self._due[0][0] <= now_ms:
            booked, key = heapq.heappop(self._due)
            room = self._rooms.get(key)
            if room is not None and room.booked_ms == booked:
                room.booked_ms = None
                due.append(key)
        if self._sweep_ms is None or now_ms >= self._sweep_ms:
            due = list(self._rooms)
            self._sweep_ms = self._next_sweep_ms(now_ms)
        for key in due:
            room = self._rooms[key]
            changes.extend(self._report(key, room, now_ms))
            self._rebook(key, room, now_ms)
        return changes

    # --- output ----------------------------------------------------------------------------

    def count(self, room_key: str, now_ms: int) -> int:
        """The number of visitors in ``room_key`` now (0 for an untracked room)."""
        room = self._rooms.get(room_key)
        return 0 if room is None else self._count(room, now_ms)

    def holds(self, room_key: str, did: str, epoch: int, now_ms: int) -> bool:
        """Whether ``did`` is live in ``room_key``'s ``epoch`` now (heard within the stale
        timeout, not left): a heartbeat of any other DID would add a visitor."""
        room = self._rooms.get(room_key)
        bucket = None if room is None else room.epochs.get(epoch)
        if bucket is None:
            return False
        expiry = bucket.expiry.get(did)
        return expiry is not None and expiry > now_ms

    def footprint(self) -> CounterFootprint:
        """How many entries the counter holds now (walks rooms and epochs, not DIDs)."""
        buckets = [bucket for room in self._rooms.values() for bucket in room.epochs.values()]
        return CounterFootprint(
            rooms=len(self._rooms),
            epochs=len(buckets),
            dids=sum(len(bucket.expiry) for bucket in buckets),
            left=sum(len(bucket.left) for bucket in buckets),
            deadlines=sum(len(bucket.heap) for bucket in buckets),
        )

    def reported(self, room_key: str) -> int:
        """The count last reported through a :class:`CountChanged` (or 0)."""
        room = self._rooms.get(room_key)
        return 0 if room is None else room.reported

    def next_change_ms(self, now_ms: int) -> int | None:
        """The earliest time a count may change without new input, or None.

        Call :meth:`tick` then; waking earlier is harmless, later delays changes."""
        if not self._rooms:
            return None
        sweep = self._sweep_ms if self._sweep_ms is not None else self._next_sweep_ms(now_ms)
        due = self._due
        while due and self._outdated(due[0]):
            heapq.heappop(due)
        soonest = min(sweep, due[0][0]) if due else sweep
        return max(now_ms + 1, soonest)

    # --- internals -------------------------------------------------------------------------

    def _check(self, epoch: int, at_ms: int, now_ms: int, *, leave: bool) -> None:
        own = epoch_of(at_ms, self._t.duration_ms)
        # A visitor leaving in a settle window, before its first heartbeat of the new epoch,
        # says goodbye with the key it last announced: the previous epoch's.
        if epoch != own and not (leave and epoch == own - 1):
            raise EpochMismatch(f"epoch {epoch} does not contain its own timestamp")
        if at_ms > now_ms + self._t.skew_ms:
            raise FromTheFuture("site event dated past the allowed clock skew")
        if at_ms + self._t.stale_ms <= now_ms:
            raise TooOld("site event older than the stale timeout")
        current = epoch_of(now_ms, self._t.duration_ms)
        if not current - 1 <= epoch <= current + 1:
            raise TooOld("site event from an epoch that is over")

    def _book(self, key: str, room: _Room, at_ms: int) -> None:
        room.booked_ms = at_ms
        heapq.heappush(self._due, (at_ms, key))

    def _rebook(self, key: str, room: _Room, now_ms: int) -> None:
        """Book ``room`` at its earliest deadline that can move its count (after a visit).

        Only the current epoch's DIDs count, and the previous epoch's during the settle
        window: the old DIDs that expire one by one after it change nothing, and a visit
        for each would cost a wake-up per visitor per epoch."""
        d = self._t.duration_ms
        current = epoch_of(now_ms, d)
        counting = [current]
        if now_ms < epoch_start_ms(current, d) + self._t.settle_ms:
            counting.append(current - 1)
        deadlines = [
            deadline
            for epoch in counting
            if (bucket := room.epochs.get(epoch)) is not None
            and (deadline := bucket.next_expiry(now_ms)) is not None
        ]
        soonest = min(deadlines, default=None)
        if soonest is None:
            room.booked_ms = None
        elif soonest != room.booked_ms:
            self._book(key, room, soonest)

    def _outdated(self, entry: tuple[int, str]) -> bool:
        room = self._rooms.get(entry[1])
        return room is None or room.booked_ms != entry[0]

    def _next_sweep_ms(self, now_ms: int) -> int:
        """The next instant after ``now_ms`` at which any room's count may change by the
        clock alone: the end of this epoch's settle window, else the next boundary."""
        d = self._t.duration_ms
        start = epoch_start_ms(epoch_of(now_ms, d), d)
        if now_ms < start + self._t.settle_ms:
            return start + self._t.settle_ms
        return start + d

    def _count(self, room: _Room, now_ms: int) -> int:
        d = self._t.duration_ms
        current = epoch_of(now_ms, d)
        for epoch in [e for e in room.epochs if e < current - 1]:
            del room.epochs[epoch]
        bucket = room.epochs.get(current)
        live = bucket.live(now_ms) if bucket is not None else 0
        if now_ms - epoch_start_ms(current, d) < self._t.settle_ms:
            previous = room.epochs.get(current - 1)
            if previous is not None:
                live = max(live, previous.live(now_ms))
        return live

    def _report(self, key: str, room: _Room, now_ms: int) -> list[CountChanged]:
        new = self._count(room, now_ms)
        if new == room.reported:
            return []
        old, room.reported = room.reported, new
        return [CountChanged(room_key=key, old=old, new=new, at_ms=now_ms)]
