"""The plaza, simulated: a fleet of nodes on one broker, running the shipped core objects.

What runs is what a node runs. Every node has its own
:class:`~hereabouts.core.howdy.HowdyCoordinator` (whether and when to welcome a newcomer,
with its budget) and :class:`~hereabouts.core.cadence.NewspaperCadence` (when to heartbeat),
reconnects with the shipped :class:`~hereabouts.core.backoff.Backoff`, and announces itself
again on every new connection as the runtime does. A sample of nodes, the *observers*
(:mod:`hereabouts.sim.observer`), also keep the key book, the projection and, when asked,
the pulse watch, fed with every event the broker hands them. Only the network, the clock
and the randomness are simulated, from one seed, so one seed gives one result.

Shortcuts, and why they do not change what is measured
------------------------------------------------------
* **Observers, not every projection.** On one plaza every subscriber is handed the same
  stream, so every observer's view is every node's view up to latency. Projections cost
  O(N) per message; a sample of ten is enough to see the fleet. The dashboard-level figures
  (statuses, false MISSING, time until everyone is ONLINE) are taken at the observers.
* **Lazy responders** (:mod:`hereabouts.sim.welcome`): only the nodes whose slots come
  before the closing time are woken; the rest would have been suppressed, and are counted
  so. Exact under the latency bound.
* **What a node without a projection knows.** A responder needs its count of ONLINE peers
  (for its slot), whether it admitted the newcomer's key and whether the howdys it counts
  come from trusted keys. Nodes that are not observers take these from the first observer
  (node 0, the first to start): every node hears the same stream and runs the same rules.
  A node that started late has a fresher admission bucket than node 0's, so in a flood
  this undercounts who hears a newcomer.
* **Which neighbours a howdy names** is picked by the real coordinator from 15 random peers
  with their true statuses (observers pick from their whole projection). It decides only
  what a newcomer learns first, which the observers' views then show.
* **Signatures are not checked** (events are made by the simulator); the real-process tests
  and benchmarks cover the edge.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Final

import numpy as np

from hereabouts.config import HeartbeatConfig
from hereabouts.core.backoff import Backoff
from hereabouts.core.cadence import NewspaperCadence
from hereabouts.core.effects import SendHowdy, Status, Vouch
from hereabouts.core.howdy import EAGER_FACTOR, Candidate, HowdyCoordinator, slot_fraction
from hereabouts.core.pulse import TICK_MS, PulseWatch, pulse_every_ms
from hereabouts.events import (
    Chau,
    HeyThere,
    Howdy,
    Lost,
    Newspaper,
    NewspaperStatus,
    SignedEvent,
)
from hereabouts.sim.latency import Latency
from hereabouts.sim.observer import Observer
from hereabouts.sim.plaza_report import PlazaRecorder, build_report
from hereabouts.sim.plaza_settings import Outage, PlazaSettings, read
from hereabouts.sim.queue import EventQueue
from hereabouts.sim.report_model import SimReport
from hereabouts.sim.scenario import RunOptions, Scenario
from hereabouts.sim.sizes import SIZES
from hereabouts.sim.welcome import SentHowdy, Welcome

START_MS: Final = 1_764_547_200_000
"""Simulated Unix time at the start of a run (only differences matter)."""

NEIGHBOUR_SAMPLE: Final = 15
"""Peers a responder without a projection chooses its howdy's neighbours from (it names at
most ten)."""

FAR_FUTURE: Final = np.iinfo(np.int64).max // 2

_BACKOFF: Final = Backoff()

_STATUS_AFTER: Final[dict[type, Status]] = {Chau: Status.OFFLINE, Lost: Status.MISSING}
"""A peer's true status after its latest event, where it is not ONLINE."""


def node_did(index: int) -> str:
    return f"did:key:zSimNode{index:07d}"


def sybil_did(index: int) -> str:
    return f"did:key:zSimSybil{index:07d}"


class PlazaSim:
    """One run of a plaza scenario."""

    def __init__(
        self,
        settings: PlazaSettings,
        progress: Callable[[float], None] | None = None,
        *,
        lazy: bool = True,
    ) -> None:
        """``lazy=False`` wakes every hearing node for every hey_there (O(N²)): the check
        that waking lazily changes nothing."""
        s = self.s = settings
        self.lazy = lazy
        self.progress = progress
        self.rng = random.Random(s.seed)
        self.gen = np.random.default_rng(s.seed)
        self.latency = Latency(s, self.rng, self.gen)
        self.q = EventQueue(START_MS)
        self.end_ms = START_MS + int(s.duration_s * 1000)
        joins = int(s.joins_per_s * s.duration_s * 1.5) + (16 if s.joins_per_s else 0)
        self.honest_cap = s.nodes + joins
        cap = self.capacity = self.honest_cap + s.sybil_keys
        self.dids = [node_did(i) for i in range(self.honest_cap)] + [
            sybil_did(j) for j in range(s.sybil_keys)
        ]
        self.index_of = {did: i for i, did in enumerate(self.dids)}
        self.names = [f"node-{i:05d}" for i in range(self.honest_cap)] + [
            f"sybil-{j:05d}" for j in range(s.sybil_keys)
        ]
        self.exists = np.zeros(cap, dtype=bool)
        self.running = np.zeros(cap, dtype=bool)
        self.connected = np.zeros(cap, dtype=bool)
        self.connected_count = 0
        """How many are True in ``connected`` (kept, not summed per message)."""
        self.liar = np.zeros(cap, dtype=bool)
        self.connected_since = np.full(cap, FAR_FUTURE, dtype=np.int64)
        self.first_start = np.full(cap, FAR_FUTURE, dtype=np.int64)
        self.boot_first = np.zeros(cap, dtype=np.int64)
        self.member = np.zeros(cap, dtype=np.int64)
        self.down_member: set[int] = set()
        self.broker_up = True
        self.coordinators: list[HowdyCoordinator | None] = [None] * cap
        self.cadences: list[NewspaperCadence | None] = [None] * cap
        self.session = [0] * cap
        self.boots = [0] * cap
        self.generation = [0] * cap
        self.attempts = [0] * cap
        self.fed: list[dict[int, int]] = [{} for _ in range(cap)]
        self.hey_log: list[list[tuple[SignedEvent, int]]] = [[] for _ in range(cap)]
        self.latest_hey: list[SignedEvent | None] = [None] * cap
        self.latest: list[SignedEvent | None] = [None] * cap
        self.first_hey: list[SignedEvent | None] = [None] * cap
        self.pulse_seq = [0] * cap
        self.event_seq = 0
        self.last_change_ms: int | None = None
        self._slot_now: tuple[str, str, float] | None = None
        self.rec = PlazaRecorder(self)
        self.observers: list[Observer] = []
        self.observer_of: dict[int, Observer] = {}
        self.heartbeat = HeartbeatConfig()
        self._make_observers()

    # --- set-up ---------------------------------------------------------------------------

    def _make_observers(self) -> None:
        s = self.s
        count = s.observer_count
        step = s.nodes / count
        for k in range(count):
            index = int(k * step)
            pulses = None
            if s.pulses:
                every = pulse_every_ms(int(s.pulse_interval_s * 1000), s.nodes, 200.0)
                pulses = PulseWatch(missed=s.pulse_missed, own_every_ms=every)
            observer = Observer(
                index,
                self.dids[index],
                on_change=self.rec.changed,
                max_howdys=s.howdy.max_howdys,
                pulses=pulses,
                invited=s.invited,
            )
            self.observers.append(observer)
            self.observer_of[index] = observer
        self.ref = self.observers[0]

    def _new_coordinator(self, index: int) -> HowdyCoordinator:
        coordinator = HowdyCoordinator(self.s.howdy, self_did=self.dids[index], slot=self._slot)
        self.coordinators[index] = coordinator
        self.fed[index] = {}
        return coordinator

    def _slot(self, hey_there_id: str, responder_did: str) -> float:
        now = self._slot_now
        if now is not None and now[0] == hey_there_id and now[1] == responder_did:
            return now[2]
        return slot_fraction(hey_there_id, responder_did)  # history being replayed: unused

    def _next_id(self, kind: str, index: int) -> str:
        self.event_seq += 1
        return f"{kind}{index:07d}.{self.event_seq:09d}"

    def _boot_id(self, index: int) -> str:
        return f"{index:07x}{self.boots[index]:09x}"

    def setup(self) -> None:
        s = self.s
        self.liar[: s.nodes] = self.gen.random(s.nodes) < s.liars
        for observer in self.observers:
            self.liar[observer.index] = False
        self.member[: self.honest_cap] = np.arange(self.honest_cap) % 3
        if s.settled:
            self._settle_fleet()
        else:
            spread = int(s.start_spread_s * 1000)
            starts = np.sort(self.gen.integers(0, spread + 1, s.nodes))
            starts[0] = 0
            for index in range(s.nodes):
                self.q.at(START_MS + int(starts[index]), self._start, index)
        if s.joins_per_s:
            self.next_join = s.nodes
            self.q.at(START_MS + self._exp_ms(s.joins_per_s), self._join, None)
        churn = (s.crashes_per_node_hour + s.leaves_per_node_hour) / 3600.0
        if churn:
            self.q.at(START_MS + self._exp_ms(churn * s.nodes), self._churn, None)
        for outage in s.outages:
            self.q.at(START_MS + int(outage.at_s * 1000), self._outage_start, outage)
        if s.sybil_keys:
            self.q.at(START_MS + int(s.sybil_at_s * 1000), self._sybil, 0)
        self.q.at(START_MS, self._tick, None)
        self.q.at(START_MS, self._sample, None)

    def _settle_fleet(self) -> None:
        """Every node up for an hour, quiet, known to every observer, at the run's start."""
        s = self.s
        before = START_MS - 3_600_000
        history: list[SignedEvent] = []
        for index in range(s.nodes):
            self.exists[index] = self.running[index] = self.connected[index] = True
            self.connected_count += 1
            self.boots[index] = 1
            self.first_start[index] = before
            self.connected_since[index] = before
            self.boot_first[index] = before
            self.session[index] = 0
            self._new_coordinator(index)
            cadence = self.cadences[index] = NewspaperCadence(self.heartbeat)
            for step in range(3):  # three quiet heartbeats: at the longest interval now
                cadence.next_delay_ms(before + step * 60_000, 0.5)
            hey = self._hey_there(index, before)
            self.hey_log[index].append((hey, before))
            phase = self.rng.randrange(int(self.heartbeat.max_interval_s * 1000))
            news = self._newspaper(index, START_MS - phase)
            history += (news, hey)  # the newest first: no passing MISSING
            self.q.at(START_MS + self._news_delay(index, START_MS), self._news, (index, 1))
            if s.pulses:
                self.q.at(START_MS + self.rng.randrange(1000), self._pulse, (index, 1))
            self.generation[index] = 1
        for observer in self.observers:
            observer.restore(history, START_MS)

    # --- randomness -------------------------------------------------------------------------

    def _exp_ms(self, rate_per_s: float) -> int:
        return max(1, int(self.rng.expovariate(rate_per_s) * 1000))

    # --- events a node makes -----------------------------------------------------------------

    def _header(self, index: int, now: int) -> dict[str, object]:
        return {
            "name": self.names[index],
            "did": self.dids[index],
            "boot_id": self._boot_id(index),
            "session": max(0, self.session[index]),
            "at_ms": now,
        }

    def _hey_there(self, index: int, now: int) -> SignedEvent:
        event = HeyThere(**self._header(index, now), started_at_ms=now)  # type: ignore[arg-type]
        signed = SignedEvent(id=self._next_id("h", index), event=event, raw=b"")
        self.latest_hey[index] = self.latest[index] = signed
        if self.first_hey[index] is None:
            self.first_hey[index] = signed
        return signed

    def _newspaper(self, index: int, now: int) -> SignedEvent:
        cadence = self.cadences[index]
        status = NewspaperStatus(
            online_peers=self.ref.count(Status.ONLINE),
            uptime_s=0,
            next_in_s=cadence.next_in_s if cadence is not None else 0,
        )
        event = Newspaper(**self._header(index, now), status=status)  # type: ignore[arg-type]
        signed = SignedEvent(id=self._next_id("n", index), event=event, raw=b"")
        self.latest[index] = signed
        return signed

    # --- the broker ----------------------------------------------------------------------------

    def _reachable(self, index: int) -> bool:
        return self.broker_up and int(self.member[index]) not in self.down_member

    def _publish(self, signed: SignedEvent, size: int, kind: str) -> None:
        """The broker takes a message and hands it to every subscriber."""
        now = self.q.now_ms
        self.rec.published(now, kind, size, self.connected_count)
        self.q.at(now + self.latency.one(), self._deliver, signed)

    def _deliver(self, now: int, signed: SignedEvent) -> None:
        connected = self.connected
        watching = [o for o in self.observers if connected[o.index]]
        for observer in watching:
            if observer.take(signed, now) and type(signed.event) is HeyThere:
                observer.forget_pulses(signed.event.did, now)
        if type(signed.event) is not Howdy:
            return
        # Every node takes in a howdy's neighbours, each in its own signed words.
        vouched: list[SignedEvent] = []
        for did in self.rec.neighbours_of.get(signed.id, ()):
            hey = self.rec.vouched_hey.get((signed.id, did)) or self.latest_hey[self.index_of[did]]
            if hey is not None:
                vouched.append(hey)
            latest = self.rec.vouched_latest.get((signed.id, did))
            if latest is not None:
                vouched.append(latest)
        for observer in watching:
            seen = observer.seen
            for event in vouched:
                if event.id not in seen:
                    observer.take(event, now, from_plaza=False)

    # --- node life -------------------------------------------------------------------------------

    def _start(self, now: int, index: int) -> None:
        if self.running[index]:
            return
        self.exists[index] = self.running[index] = True
        self.boots[index] += 1
        self.session[index] = -1
        self.first_start[index] = min(int(self.first_start[index]), now)
        self.generation[index] += 1
        generation = self.generation[index]
        self._new_coordinator(index)
        self.cadences[index] = NewspaperCadence(self.heartbeat)
        self.q.at(now + 1, self._connect, (index, generation))
        self.q.at(now + self._news_delay(index, now), self._news, (index, generation))

    def _news_delay(self, index: int, now: int) -> int:
        cadence = self.cadences[index]
        assert cadence is not None
        if self.last_change_ms is not None:
            cadence.note_change(self.last_change_ms)
        return cadence.next_delay_ms(now, self.rng.random())

    def _connect(self, now: int, ticket: tuple[int, int]) -> None:
        index, generation = ticket
        if generation != self.generation[index] or not self.running[index]:
            return
        if self.connected[index]:
            return
        if not self._reachable(index):
            attempt = self.attempts[index]
            self.attempts[index] = attempt + 1
            delay = int(_BACKOFF.delay(attempt, self.rng.random()) * 1000) + 1
            self.q.at(now + delay, self._connect, ticket)
            return
        self.attempts[index] = 0
        self.connected[index] = True
        self.connected_count += 1
        self.connected_since[index] = now
        self.session[index] += 1
        first = self.session[index] == 0
        if first:
            self.boot_first[index] = now
        observer = self.observer_of.get(index)
        if observer is not None and observer.pulses is not None and not first:
            observer.pulses.reconnected()
        hey = self._hey_there(index, now)
        self.hey_log[index].append((hey, now))
        self._publish(hey, SIZES.hey_there, "hey_there")
        self._welcome(now, index, hey, first)
        if first and self.s.pulses:
            self.q.at(now + 1, self._pulse, (index, generation))

    def _disconnect(self, index: int) -> None:
        if self.connected[index]:
            self.connected_count -= 1
        self.connected[index] = False
        self.connected_since[index] = FAR_FUTURE

    def _news(self, now: int, ticket: tuple[int, int]) -> None:
        index, generation = ticket
        if generation != self.generation[index] or not self.running[index]:
            return
        if self.connected[index]:
            self._publish(self._newspaper(index, now), SIZES.newspaper, "newspaper")
        self.q.at(now + self._news_delay(index, now), self._news, ticket)

    def _pulse(self, now: int, ticket: tuple[int, int]) -> None:
        index, generation = ticket
        if generation != self.generation[index] or not self.running[index]:
            return
        every = pulse_every_ms(int(self.s.pulse_interval_s * 1000), self.s.nodes, 200.0)
        if self.connected[index]:
            self.pulse_seq[index] += 1
            seq = self.pulse_seq[index]
            boot = self._boot_id(index)
            self.rec.published(now, "pulse", SIZES.pulse, self.connected_count)
            for observer in self.observers:
                if self.connected[observer.index] and not self.latency.dropped():
                    at = now + self.latency.at_most_once()
                    self.q.at(at, self._pulse_in, (observer, index, boot, seq, every))
        self.q.at(now + every, self._pulse, ticket)

    def _pulse_in(self, now: int, arrival: tuple[Observer, int, str, int, int]) -> None:
        observer, index, boot, seq, every = arrival
        if self.connected[observer.index]:
            observer.pulse(self.dids[index], boot, seq, every, now)

    def _crash(self, now: int, index: int) -> None:
        was_connected = bool(self.connected[index])
        self._stop(index)
        if was_connected and self._reachable(index):
            event = Lost(**self._header(index, now))  # type: ignore[arg-type]
            signed = SignedEvent(id=self._next_id("l", index), event=event, raw=b"")
            self.latest[index] = signed
            self._publish(signed, SIZES.lost, "lost")
        self.q.at(now + int(self.s.restart_after_s * 1000), self._start, index)

    def _leave(self, now: int, index: int) -> None:
        if self.connected[index]:
            event = Chau(**self._header(index, now))  # type: ignore[arg-type]
            signed = SignedEvent(id=self._next_id("c", index), event=event, raw=b"")
            self.latest[index] = signed
            self._publish(signed, SIZES.chau, "chau")
        self._stop(index)
        self.q.at(now + int(self.s.restart_after_s * 1000), self._start, index)

    def _stop(self, index: int) -> None:
        self.running[index] = False
        self._disconnect(index)
        self.generation[index] += 1

    def _churn(self, now: int, _: None) -> None:
        s = self.s
        running = np.flatnonzero(self.running[: self.honest_cap] & ~self.liar[: self.honest_cap])
        observers = set(self.observer_of)
        if len(running):
            index = int(running[self.rng.randrange(len(running))])
            if index not in observers:
                total = s.crashes_per_node_hour + s.leaves_per_node_hour
                if self.rng.random() < s.crashes_per_node_hour / total:
                    self._crash(now, index)
                else:
                    self._leave(now, index)
        rate = (s.crashes_per_node_hour + s.leaves_per_node_hour) / 3600.0 * s.nodes
        self.q.at(now + self._exp_ms(rate), self._churn, None)

    def _join(self, now: int, _: None) -> None:
        if self.next_join < self.honest_cap:
            self._start(now, self.next_join)
            self.next_join += 1
            self.q.at(now + self._exp_ms(self.s.joins_per_s), self._join, None)

    def _outage_start(self, now: int, outage: Outage) -> None:
        whole = outage.share >= 1.0
        if whole:
            self.broker_up = False
            cut = np.flatnonzero(self.connected)
        else:
            self.down_member.add(0)
            cut = np.flatnonzero(self.connected & (self.member == 0))
        self.rec.outage(now, outage, len(cut))
        for index in cut.tolist():
            self._disconnect(index)
            observer = self.observer_of.get(index)
            if observer is not None and observer.pulses is not None:
                observer.pulses.reconnected()
            if outage.wills and not whole:
                event = Lost(**self._header(index, now))  # type: ignore[arg-type]
                signed = SignedEvent(id=self._next_id("l", index), event=event, raw=b"")
                self._publish(signed, SIZES.lost, "lost")
            ticket = (index, self.generation[index])
            if whole:
                delay = int(_BACKOFF.delay(0, self.rng.random()) * 1000) + 1
                self.attempts[index] = 1
            else:
                self.member[index] = 1 + self.rng.randrange(2)  # fails over to another member
                delay = int(self.rng.uniform(0.5, 1.0) * outage.failover_s * 1000) + 1
            self.q.at(now + delay, self._connect, ticket)
        self.q.at(now + int(outage.for_s * 1000), self._outage_end, outage)

    def _outage_end(self, now: int, outage: Outage) -> None:
        if outage.share >= 1.0:
            self.broker_up = True
        else:
            self.down_member.discard(0)

    def _sybil(self, now: int, number: int) -> None:
        s = self.s
        if number >= s.sybil_keys:
            return
        index = self.honest_cap + number
        self.exists[index] = True
        self.boots[index] = 1
        self.session[index] = 0
        self.first_start[index] = now
        hey = self._hey_there(index, now)
        self.hey_log[index].append((hey, now))
        self.boot_first[index] = now
        self.rec.sybil(now)
        self._publish(hey, SIZES.hey_there, "hey_there")
        self._welcome(now, index, hey, True)
        self.q.at(now + self._exp_ms(s.sybil_per_s), self._sybil, number + 1)

    # --- welcoming -----------------------------------------------------------------------

    def _welcome(self, now: int, newcomer: int, signed: SignedEvent, first: bool) -> None:
        """Everyone hears ``signed``: wake the responders whose slots come first."""
        ref = self.ref
        did = self.dids[newcomer]
        if not (ref.keys.known(did) or ref.keys.admissible(did, now)):
            self.rec.unheard(now, newcomer)
            return
        hearing = self.running & self.connected & ~self.liar
        hearing[newcomer] = False
        if not first:
            settled = now - self.connected_since >= int(self.s.howdy.rejoin_settled_s * 1000)
            unknowing = self.first_start > self.boot_first[newcomer]
            hearing &= settled | unknowing
        nodes = np.flatnonzero(hearing)
        self._liars_answer(now, newcomer, signed)
        if not len(nodes):
            return
        count = len(nodes)
        fractions = self.gen.random(count)
        arrivals = now + self.latency.many(count)
        online = ref.count(Status.ONLINE)
        due = arrivals + self._delays(fractions, online)
        welcome = Welcome.start(signed, newcomer, now, nodes, arrivals, due, fractions)
        self.rec.welcome_started(signed.id, newcomer, first, now)
        first_due = welcome.next_due()
        if first_due is not None:
            self.q.at(first_due, self._wake, (welcome, online))

    def _delays(self, fractions: np.ndarray, online: int) -> np.ndarray:
        """Each slot's delay, as :func:`hereabouts.core.howdy.reply_delay_ms` computes it."""
        jitter = int(self.s.howdy.jitter_max_s * 1000)
        eager = EAGER_FACTOR * self.s.howdy.max_howdys
        share = 1.0 if online <= eager else eager / online
        early = (fractions / share * jitter).astype(np.int64)
        if share >= 1.0:
            return early
        late = jitter + ((fractions - share) / (1.0 - share) * jitter).astype(np.int64)
        return np.where(fractions < share, early, late)

    def _wake(self, now: int, state: tuple[Welcome, int]) -> None:
        welcome, online = state
        closed = welcome.closed_ms
        if self.lazy and closed is not None and now >= closed:
            self.rec.suppressed_unwoken(welcome.left_unwoken())
            return
        position = welcome.position
        welcome.position += 1
        index = int(welcome.nodes[position])
        if self.running[index] and self.connected[index]:
            self._wake_one(now, welcome, position, index, online)
        following = welcome.next_due()
        if following is not None:
            self.q.at(following, self._wake, state)

    def _feed_history(self, index: int, newcomer: int, coordinator: HowdyCoordinator) -> None:
        """Hand ``index``'s coordinator the newcomer's earlier hey_theres it heard (learnt
        from the plaza or replayed from its ledger at start), as the runtime would have."""
        log = self.hey_log[newcomer]
        fed = self.fed[index]
        done = fed.get(newcomer, 0)
        since = int(self.first_start[index])
        for signed, heard_ms in log[done:-1]:
            if heard_ms >= since:
                coordinator.on_hey_there(signed, heard_ms)
        fed[newcomer] = len(log)

    def _wake_one(self, now: int, welcome: Welcome, position: int, index: int, online: int) -> None:
        coordinator = self.coordinators[index]
        assert coordinator is not None
        self._feed_history(index, welcome.newcomer, coordinator)
        observer = self.observer_of.get(index)
        if observer is not None:
            online = observer.count(Status.ONLINE)
        arrival = int(welcome.arrivals[position])
        self._slot_now = (welcome.signed.id, self.dids[index], float(welcome.fractions[position]))
        due = coordinator.on_hey_there(
            welcome.signed,
            arrival,
            online_peers=online,
            connected_since_ms=int(self.connected_since[index]),
        )
        self._slot_now = None
        welcome.woken += 1
        if due is None:
            welcome.ignored += 1
            return
        self.q.at(due.at_ms, self._timer, (welcome, index, arrival))

    def _timer(self, now: int, state: tuple[Welcome, int, int]) -> None:
        welcome, index, arrival = state
        if not (self.running[index] and self.connected[index]):
            return
        coordinator = self.coordinators[index]
        assert coordinator is not None
        hey_id = welcome.signed.id
        enough = self.s.howdy.max_howdys
        earliest = now - self.latency.min_ms
        for howdy in welcome.howdys:
            if howdy.sent_ms > earliest:
                break  # sent in order: none of the rest can have arrived
            if howdy.responder == index:
                continue
            # One broker keeps each subscriber's messages in publishing order: a howdy
            # comes after the hey_there it answers.
            delivered = max(arrival, howdy.sent_ms + self.latency.keyed(howdy.serial, index))
            if delivered <= now:
                coordinator.on_howdy(
                    howdy.signed,
                    delivered,
                    neighbour_dids=howdy.neighbour_dids,
                    trusted=self._trusted(index, howdy.responder, arrival),
                )
                if coordinator.counted(hey_id) >= enough:
                    break  # the coordinator counts no further: it will stay silent
        reply = coordinator.on_timer(
            hey_id,
            now,
            self._candidates(index),
            lambda did: self._evidence(did),
        )
        if reply is not None:
            self._send_howdy(now, index, welcome, reply)

    def _trusted(self, index: int, responder: int, heard_ms: int) -> bool:
        keys = (self.observer_of.get(index) or self.ref).keys
        return keys.trusted_responder(self.dids[responder], heard_ms)

    def _candidates(self, index: int) -> Iterator[Candidate]:
        """Whom ``index`` could vouch for; a generator, so it costs nothing unless the
        coordinator decides to reply."""
        observer = self.observer_of.get(index)
        if observer is not None:
            projection = observer.projection
            for did in projection.dids():
                status = projection.reported(did)
                if status is not None:
                    yield Candidate(did, status, projection.last_event_ms(did))
            return
        top = self.next_join if self.s.joins_per_s else self.s.nodes
        picked = [index] + [self.rng.randrange(top) for _ in range(NEIGHBOUR_SAMPLE)]
        for peer in dict.fromkeys(picked):
            latest = self.latest[peer]
            if latest is None:
                continue
            kind = type(latest.event)
            status = (
                Status.OFFLINE
                if kind is Chau
                else Status.MISSING
                if kind is Lost
                else Status.ONLINE
            )
            status = _STATUS_AFTER.get(type(latest.event), Status.ONLINE)
            yield Candidate(self.dids[peer], status, latest.event.at_ms)

    def _evidence(self, did: str) -> Vouch | None:
        index = self.index_of[did]
        hey = self.latest_hey[index]
        if hey is None:
            return None
        latest = self.latest[index]
        key = did.encode().ljust(SIZES.hey_there)
        more = None if latest is hey else did.encode().ljust(SIZES.newspaper, b"+")
        return Vouch(hey_there=key, latest=more)

    def _send_howdy(self, now: int, index: int, welcome: Welcome, reply: SendHowdy) -> None:
        dids = tuple(v.hey_there.rstrip().decode() for v in reply.neighbours)
        signed = self._howdy_event(now, index, welcome, dids)
        trusted = self.ref.keys.trusted_responder(self.dids[index], welcome.sent_ms)
        welcome.sent(
            SentHowdy(self.event_seq, now, index, signed, dids, trusted),
            self.s.howdy.max_howdys,
            self.latency.max_ms,
        )
        for did in dids:
            peer = self.index_of[did]
            latest = self.latest[peer]
            if latest is not None and latest is not self.latest_hey[peer]:
                self.rec.vouched_latest[(signed.id, did)] = latest
        size = SIZES.howdy_base + sum(
            len(v.hey_there) + len(v.latest or b"") for v in reply.neighbours
        )
        self.rec.howdy_sent(now, welcome.signed.id, index, liar=False)
        self._publish(signed, size, "howdy")

    def _howdy_event(
        self, now: int, index: int, welcome: Welcome, dids: tuple[str, ...]
    ) -> SignedEvent:
        event = Howdy(
            **self._header(index, now),  # type: ignore[arg-type]
            to_did=self.dids[welcome.newcomer],
            answers=welcome.signed.id,
        )
        signed = SignedEvent(id=self._next_id("w", index), event=event, raw=b"")
        self.rec.neighbours_of[signed.id] = dids
        return signed

    def _liars_answer(self, now: int, newcomer: int, signed: SignedEvent) -> None:
        """Liars answer at once, over every cap, vouching for departed nodes with their old
        hey_theres and without the chau that followed."""
        if not self.s.liars:
            return
        liars = np.flatnonzero(self.liar & self.running & self.connected).tolist()
        if not liars:
            return
        gone = np.flatnonzero(self.exists[: self.honest_cap] & ~self.running[: self.honest_cap])
        for liar in liars:
            if liar == newcomer:
                continue
            at = now + self.latency.one()
            self.q.at(at, self._liar_howdy, (liar, newcomer, signed, gone))

    def _liar_howdy(self, now: int, state: tuple[int, int, SignedEvent, np.ndarray]) -> None:
        liar, newcomer, answered, gone = state
        if not self.connected[liar]:
            return
        picks = [int(gone[self.rng.randrange(len(gone))]) for _ in range(min(10, len(gone)))]
        dids = tuple(dict.fromkeys(self.dids[p] for p in picks))
        event = Howdy(
            **self._header(liar, now),  # type: ignore[arg-type]
            to_did=self.dids[newcomer],
            answers=answered.id,
        )
        signed = SignedEvent(id=self._next_id("w", liar), event=event, raw=b"")
        self.rec.neighbours_of[signed.id] = dids
        for did in dids:
            old = self.first_hey[self.index_of[did]]
            if old is not None:
                self.rec.vouched_hey[(signed.id, did)] = old
        self.rec.howdy_sent(now, answered.id, liar, liar=True)
        self._publish(signed, SIZES.howdy_base + len(dids) * SIZES.hey_there, "howdy")

    # --- observing -----------------------------------------------------------------------

    def _tick(self, now: int, _: None) -> None:
        for observer in self.observers:
            if self.running[observer.index]:
                observer.tick(now)
        self.q.at(now + (TICK_MS if self.s.pulses else 1000), self._tick, None)

    def _sample(self, now: int, _: None) -> None:
        self.rec.sample(now)
        self.q.at(now + int(self.s.sample_s * 1000), self._sample, None)

    # --- running ---------------------------------------------------------------------------

    def run(self) -> None:
        self.setup()
        span = self.end_ms - START_MS
        progress = self.progress

        def report(now: int) -> None:
            if progress is not None:
                progress(min(1.0, (now - START_MS) / span))

        self.q.run_until(self.end_ms, report)
        if progress is not None:
            progress(1.0)

    def coordinator_stats(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for coordinator in self.coordinators:
            if coordinator is not None:
                total.update(coordinator.stats())
        return total


def run_scenario(scenario: Scenario, options: RunOptions) -> SimReport:
    """Run a ``kind = "plaza"`` scenario (settings: :mod:`hereabouts.sim.plaza_settings`)."""
    settings = read(scenario, options)
    sim = PlazaSim(settings, options.progress)
    sim.run()
    return build_report(scenario, settings, sim)


__all__ = ["START_MS", "PlazaSim", "run_scenario"]
