"""Site rooms, simulated: visitors coming and going, rotating their DIDs, counted by a hub.

What runs is what a hub runs. Each simulated hub holds a real
:class:`~hereabouts.core.sites.SiteCounter` and is ticked the way
:func:`~hereabouts.sites.ticking.tick_forever` ticks it (at the counter's next change, at
least once per heartbeat interval); every visitor's heartbeats follow the real
:class:`~hereabouts.core.rotation.HeartbeatPlan`, and every heartbeat and leave a hub
receives goes through :meth:`SiteCounter.heartbeat` / :meth:`SiteCounter.leave`, one call
each. Events from an attacker's addresses through a hub also pass the hub's real
:class:`~hereabouts.core.admission.AddressBudgets`, in the order ``SiteHub.submit`` uses.
Only the network, the clocks and the randomness are simulated, all from one seeded
:class:`random.Random`, so one seed gives one result, byte for byte.

The model
---------
* **Time** is whole milliseconds of the hubs' clock, which is the true time. The run starts
  ``lead_s`` before an epoch boundary and crosses ``boundaries`` of them.
* **Visitors.** ``visitors`` are present at the start, each with the rest of its stay to
  go; more arrive as a Poisson process of rate ``visitors / stay_mean`` (so the room stays
  at ``visitors`` on average) and stay for a time drawn from ``stay`` (exponential, or
  log-normal with shape ``stay_sigma``). Those present at the start have the remaining stay
  of a visitor met at a random instant: exponential again, or ``U x`` a length-biased
  log-normal draw. Each visitor is in one of ``rooms`` rooms (uniformly) and talks to one of
  ``hubs`` hubs.
* **Clocks.** Each visitor's clock is off the hubs' by a uniform amount in
  ``±clock_offset_max_ms`` (the widget sets its clock from the hub's ``hello``, so the
  residue is about one network delay). A visitor keeps its schedule on its own clock and
  dates its events with it, as the widget does.
* **Heartbeats.** A visitor heartbeats at once on arriving; those present at the start
  send their first heartbeat at a uniform phase of the interval (the hub has just started:
  it hears everyone within one interval, which is why the first ``warmup_s`` are not
  measured). Each next heartbeat is ``plan.next_after(previous)`` of one shared
  ``HeartbeatPlan`` (the schedule keeps no state of its own; every visitor's draws come from
  the one random source). The DID is fresh per visitor per epoch.
* **Delivery.** Each event reaches the visitor's hub after a uniform delay in
  ``[latency_min_ms, latency_max_ms)``, or is lost with probability ``loss``. With two hubs,
  each republishes what its counter accepted and the other counts it after a further
  plaza delay in ``[plaza_latency_min_ms, plaza_latency_max_ms)``. One visitor's events
  arrive in order (one WebSocket): a heartbeat drawn while the previous one is still on its
  way is not delivered before it.
* **Hub throughput** (``hub_events_per_s``, off by default): a hub then takes the events
  that reach it one after another, each costing ``1 / hub_events_per_s``, and the counter
  sees each when its turn comes (its ``now`` is that instant).
* **Leaving.** At the end of its stay a visitor stops; with probability ``leave_share`` it
  sends the signed leave the widget prepares with every heartbeat (dated like its last
  heartbeat, under that heartbeat's DID), otherwise it vanishes (a closed laptop, a lost
  network) and is counted until its DID goes stale.
* **Attacks** (``attacks``): from ``start_s`` for ``duration_s`` an attacker brings
  ``keys_per_s`` fresh DIDs into one room (evenly spaced); each heartbeats on the real
  schedule, rotating like a visitor, until the attack ends. ``mode="hub"``: from
  ``addresses`` client addresses through the first hub, so each event spends the address's
  event budget and each new DID its join budget (a DID refused for the join budget stops:
  the attacker reads the refusal). ``mode="plaza"``: published on the plaza directly, so
  every hub counts them with no budget, and only the counter's ``max_room_participants``
  stands in the way. Attackers' clocks are exact; they send no leave.

What is not simulated, and why it does not change what is measured
--------------------------------------------------------------------
* **Signatures.** Events are not sealed or verified: the counter only ever sees events that
  passed ``unseal_as``, and what it does with them depends on the DID, room, epoch and
  ``at_ms`` alone. DIDs are short unique strings per visitor and epoch.
* **Honest visitors' budgets.** Each honest visitor has an address of its own; one
  heartbeat per interval never meets the address's event or join budget, so their events go
  to the counter without passing the budget tables (which would only let them through).
* **The wire between hubs and the plaza** is a delay; a hub recognising its own
  republication coming back is modelled by not sending it back.
* **Leaves and departures.** A visitor's true presence ends at the end of its stay; the
  leave goes out then (or, if a heartbeat of it was still on its way, right after that
  heartbeat), so a leave never names a DID the visitor had not yet used.

How it stays fast
-----------------
Events wait in a wheel: a dict from the millisecond they happen to the list of them, walked
one millisecond at a time, so filing and taking an event cost O(1) (no heap). A heartbeat
is one entry, filed under the millisecond it reaches its hub; taking it counts it and files
the visitor's next one. The common path (an honest visitor, one hub, no throughput limit)
is written out inline. At 100,000 visitors a run makes about 7.6 million counter calls,
and more than half of its time is spent inside the counter.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

from hereabouts.config import SitesConfig
from hereabouts.core.admission import AddressBudgets, JoinBudgetSpent
from hereabouts.core.rotation import HeartbeatPlan, epoch_of, epoch_start_ms
from hereabouts.core.sites import CountChanged, SiteCounter, SiteTiming
from hereabouts.errors import EventRejected
from hereabouts.sites.rooms import room_key

SITE_ORIGIN: Final = "https://site.example"
"""The simulated site; its rooms are ``room-1`` … ``room-N`` (the keys are real room keys)."""

START_MS: Final = 1_700_000_000_000
"""The hubs' clock near the start (a real wall-clock instant, so epochs are realistic
numbers); the run starts ``lead_s`` before the first boundary after it."""

BURST_BIN_MS: Final = 100
"""Width of the fine heartbeat histogram (a burst after a boundary lasts about the
rotation spread: one heartbeat interval by default, and no burst; 1 s brings one ten times
the steady rate)."""

# Classes of instants the count error is kept apart for.
WARMUP, STEADY, SETTLE, AFTER_SETTLE = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class Churn:
    """How visitors come and go."""

    enabled: bool = True
    """False: the visitors present at the start stay for the whole run and nobody arrives."""
    stay: Literal["exponential", "lognormal"] = "lognormal"
    """Web visits are heavy-tailed: many short ones, a few long ones."""
    stay_mean_s: float = 240.0
    """Mean stay on a page that counts its visitors: a few minutes."""
    stay_sigma: float = 1.0
    """Shape of the log-normal stay (its median is ``mean / e^(sigma²/2)``)."""
    leave_share: float = 0.8
    """Visitors who send the signed leave when they go (the widget sends it as the page
    unloads); the others vanish and go stale."""


@dataclass(frozen=True, slots=True)
class Network:
    """Delays, clocks, loss, and how many hubs share the count."""

    latency_min_ms: int = 20
    latency_max_ms: int = 300
    """A browser's event reaches its hub after a uniform delay in this range."""
    clock_offset_max_ms: int = 500
    """Visitors' clocks are off the hubs' by up to this much either way."""
    loss: float = 0.0
    """Share of heartbeats lost on the way (the widget's WebSocket loses none)."""
    hubs: int = 1
    """1 or 2 hubs; with 2, each counts its own visitors' events and the other's
    republished copies."""
    plaza_latency_min_ms: int = 2
    plaza_latency_max_ms: int = 30
    """Extra delay of a republished event from one hub to the other through the plaza."""


@dataclass(frozen=True, slots=True)
class Attack:
    """Fresh DIDs brought into one room to inflate its count."""

    mode: Literal["hub", "plaza"]
    start_s: float
    """Seconds after the run starts."""
    duration_s: float
    keys_per_s: float
    addresses: int = 1
    """Client addresses the keys come from (``mode="hub"``)."""
    room: int = 0
    """Which room (0: the first)."""


@dataclass(frozen=True, slots=True)
class HubBudgets:
    """The hub's per-address budgets (see :class:`~hereabouts.config.HubConfig`)."""

    joins_per_address: int = 64
    address_events_per_s: float = 8.0
    address_event_burst: int = 64


@dataclass(frozen=True, slots=True)
class SiteSimConfig:
    """One run: sizes, times, and the models above."""

    visitors: int
    seed: int = 1
    rooms: int = 4
    boundaries: int = 3
    """Epoch boundaries the run crosses."""
    lead_s: float = 60.0
    """Simulated time before the first boundary."""
    tail_s: float = 60.0
    """Simulated time after the last boundary."""
    warmup_s: float = 40.0
    """Not measured: a hub that has just started hears everyone within one interval, and
    silent departures reach their steady share after one stale timeout."""
    sites: SitesConfig = field(default_factory=SitesConfig)
    budgets: HubBudgets = field(default_factory=HubBudgets)
    hub_events_per_s: float = 0.0
    """Events a hub verifies and counts per second, one after another in arrival order
    (0: each the instant it arrives). ``docs/benchmarks.md`` measured 8,300/s for one hub
    process at one full core; every hub counting a room takes all of its heartbeats, its own
    visitors' and the plaza's."""
    churn: Churn = field(default_factory=Churn)
    network: Network = field(default_factory=Network)
    attacks: tuple[Attack, ...] = ()

    def __post_init__(self) -> None:
        if self.visitors < 1 or self.rooms < 1 or self.boundaries < 1:
            raise ValueError("visitors, rooms and boundaries must be positive")
        if self.network.hubs not in (1, 2):
            raise ValueError("hubs must be 1 or 2")
        if self.lead_s <= self.warmup_s:
            raise ValueError("lead_s must exceed warmup_s (the first boundary is measured)")
        for attack in self.attacks:
            if not 0 <= attack.room < self.rooms:
                raise ValueError("an attack names a room that is not simulated")

    @property
    def duration_ms(self) -> int:
        d = round(self.sites.did_duration_s * 1000)
        return round(self.lead_s * 1000) + (self.boundaries - 1) * d + round(self.tail_s * 1000)


@dataclass(slots=True)
class HubTally:
    """What one hub saw."""

    received: int = 0
    """Events that reached its counter (accepted or refused)."""
    rejects: dict[str, int] = field(default_factory=dict)
    """Refusals by reason (the hub's ``site_rejects`` / ``site_hub_rejects``)."""
    honest_rejects: dict[str, int] = field(default_factory=dict)
    """The same, for honest visitors' events only."""
    ticks: int = 0


@dataclass(slots=True)
class SiteSimResult:
    """Everything measured in one run; :mod:`hereabouts.sim.sites` turns it into a report."""

    config: SiteSimConfig
    start_ms: int
    boundaries_ms: tuple[int, ...]
    settle_ms: int
    interval_ms: int
    seconds: int
    true_total: list[int] = field(default_factory=list)
    """Per second (at its end): visitors present, over all rooms."""
    shown_total: list[list[int]] = field(default_factory=list)
    """Per hub, per second: the counts the hub shows (``reported``), summed over rooms."""
    error_high: list[int] = field(default_factory=list)
    error_low: list[int] = field(default_factory=list)
    """Per second: the largest over- and under-count of any room at any hub, at any instant
    of that second (0 when none)."""
    room_error_high: list[list[int]] = field(default_factory=list)
    """Per room, per second: its largest over-count (attacks are measured in their room)."""
    heartbeats: list[int] = field(default_factory=list)
    """Per second: heartbeats the first hub's counter received."""
    heartbeats_fine: list[int] = field(default_factory=list)
    """Per ``BURST_BIN_MS``: the same, finer."""
    dids: list[int] = field(default_factory=list)
    left: list[int] = field(default_factory=list)
    deadlines: list[int] = field(default_factory=list)
    epochs_held: list[int] = field(default_factory=list)
    """Per second: the first hub's counter footprint."""
    worst_high: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    worst_low: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    """By class of instant (``WARMUP``, ``STEADY``, ``SETTLE``, ``AFTER_SETTLE``): the
    largest over- and under-count of any room at any hub."""
    hubs: list[HubTally] = field(default_factory=list)
    hub_delay_ms: list[int] = field(default_factory=list)
    """Per second: the longest an event waited at the first hub to be counted (with a
    ``hub_events_per_s``)."""
    arrivals: int = 0
    departures: int = 0
    silent_departures: int = 0
    sybils: list[int] = field(default_factory=list)
    """Per attack: fresh DIDs the attacker made."""
    arrival_rate_per_s: float = 0.0


class _Visitors:
    """Per-visitor state as parallel lists (hundreds of thousands of visitors)."""

    __slots__ = (
        "depart",
        "did",
        "did_epoch",
        "flying",
        "home",
        "last_at",
        "leaves",
        "offset",
        "pending_leave",
        "room",
        "sybil",
    )

    def __init__(self) -> None:
        self.room: list[int] = []
        self.home: list[int] = []
        self.offset: list[int] = []
        self.depart: list[int] = []
        """When the stay ends (hubs' clock); for an attacker's key, when it stops."""
        self.leaves: list[bool] = []
        self.last_at: list[int] = []
        """``at_ms`` of the latest heartbeat sent (in flight or delivered)."""
        self.flying: list[bool] = []
        """Whether that heartbeat is still on its way (the next is drawn on delivery)."""
        self.pending_leave: list[bool] = []
        """Gone while a heartbeat was on its way: the leave waits for the last one."""
        self.did_epoch: list[int] = []
        self.did: list[str] = []
        self.sybil: list[int] = []
        """-1 for a visitor; else attack index * 2**20 + address index."""

    def add(
        self, *, room: int, home: int, offset: int, depart: int, leaves: bool, sybil: int
    ) -> int:
        self.room.append(room)
        self.home.append(home)
        self.offset.append(offset)
        self.depart.append(depart)
        self.leaves.append(leaves)
        self.last_at.append(0)
        self.flying.append(False)
        self.pending_leave.append(False)
        self.did_epoch.append(-1)
        self.did.append("")
        self.sybil.append(sybil)
        return len(self.room) - 1


_ATTACK_STRIDE: Final = 1 << 20

# What the event wheel holds, by the first item of each entry:
_BEAT = 0  # (_BEAT, visitor, at_ms): a heartbeat reaches the visitor's hub; draws the next
_COPY = 1  # (_COPY, visitor, at_ms, hub): a republished (or plaza) copy reaches a hub
_LEAVE = 2  # (_LEAVE, visitor, at_ms, epoch, hub): a signed leave reaches a hub
_DEPART = 3  # (_DEPART, visitor): a stay ends
_COUNT_BEAT = 4  # (_COUNT_BEAT, visitor, at_ms, hub): a queued heartbeat's turn comes
_COUNT_LEAVE = 5  # (_COUNT_LEAVE, visitor, at_ms, epoch, hub): a queued leave's turn comes


def simulate(
    config: SiteSimConfig, progress: Callable[[float], None] | None = None
) -> SiteSimResult:
    """Run ``config`` and return what was measured."""
    return _Run(config, progress).run()


class _Run:
    """One run. Heartbeats travel as one wheel entry each, filed under the millisecond they
    reach their hub: the entry's delivery draws the visitor's next heartbeat from the plan
    (``next_after``) and files it under its own arrival (never before the one delivered
    now, as one WebSocket delivers in order)."""

    def __init__(self, config: SiteSimConfig, progress: Callable[[float], None] | None) -> None:
        self.c = config
        self.progress = progress
        self.rng = random.Random(config.seed)
        s = config.sites
        self.d_ms = round(s.did_duration_s * 1000)
        self.h_ms = round(s.heartbeat_interval_s * 1000)
        self.settle_ms = round(s.settle_s * 1000)
        first = epoch_start_ms(epoch_of(START_MS, self.d_ms) + 1, self.d_ms)
        self.start = first - round(config.lead_s * 1000)
        self.end = self.start + config.duration_ms
        self.boundaries = tuple(first + i * self.d_ms for i in range(config.boundaries))
        self.rooms = [room_key(SITE_ORIGIN, f"room-{i + 1}") for i in range(config.rooms)]
        self.room_index = {key: i for i, key in enumerate(self.rooms)}
        timing = SiteTiming.from_config(s)
        self.counters = [SiteCounter(timing) for _ in range(config.network.hubs)]
        for counter in self.counters:
            for key in self.rooms:
                counter.track(key)
        b = config.budgets
        self.budgets = AddressBudgets(
            max_connections=1,
            events_per_s=b.address_events_per_s,
            event_burst=b.address_event_burst,
            joins=b.joins_per_address,
        )
        """The first hub's per-address budgets (attackers connect to it)."""
        self.plan = HeartbeatPlan(
            interval_ms=self.h_ms,
            duration_ms=self.d_ms,
            spread_ms=round(s.rotation_spread_s * 1000),
            uniform=self.rng,
        )
        self.v = _Visitors()
        self.wheel: dict[int, list[tuple[int, ...]]] = {}
        self.true = [0] * config.rooms
        self.shown = [[0] * config.rooms for _ in range(config.network.hubs)]
        self.cls = WARMUP
        self.second_high = self.second_low = 0
        self.room_high = [0] * config.rooms
        self.service_ms = 1000 / config.hub_events_per_s if config.hub_events_per_s else 0.0
        self.free_at = [0.0] * config.network.hubs
        """When each hub has counted everything it received so far."""
        self.second_delay = 0
        self.result = SiteSimResult(
            config=config,
            start_ms=self.start,
            boundaries_ms=self.boundaries,
            settle_ms=self.settle_ms,
            interval_ms=self.h_ms,
            seconds=config.duration_ms // 1000,
            shown_total=[[] for _ in range(config.network.hubs)],
            room_error_high=[[] for _ in range(config.rooms)],
            heartbeats=[0] * -(-config.duration_ms // 1000),
            heartbeats_fine=[0] * -(-config.duration_ms // BURST_BIN_MS),
            hubs=[HubTally() for _ in range(config.network.hubs)],
            sybils=[0] * len(config.attacks),
        )
        churn = config.churn
        mean_ms = churn.stay_mean_s * 1000
        self.arrival_per_ms = config.visitors / mean_ms if churn.enabled else 0.0
        self.result.arrival_rate_per_s = self.arrival_per_ms * 1000
        sigma = churn.stay_sigma
        self.mu = math.log(mean_ms) - sigma * sigma / 2

    # --- draws -----------------------------------------------------------------------------

    def _stay_ms(self, *, residual: bool) -> int:
        churn, rng = self.c.churn, self.rng
        if churn.stay == "exponential":
            stay = rng.expovariate(1 / (churn.stay_mean_s * 1000))
        elif residual:  # met at a random instant: a length-biased stay, partly gone
            sigma = churn.stay_sigma
            stay = rng.random() * rng.lognormvariate(self.mu + sigma * sigma, sigma)
        else:
            stay = rng.lognormvariate(self.mu, churn.stay_sigma)
        return max(1, int(stay))

    def _offset(self) -> int:
        o = self.c.network.clock_offset_max_ms
        return -o + int(self.rng.random() * (2 * o + 1)) if o else 0

    def _latency(self) -> int:
        n = self.c.network
        span = n.latency_max_ms - n.latency_min_ms
        return n.latency_min_ms + (int(self.rng.random() * span) if span > 0 else 0)

    def _plaza_latency(self) -> int:
        n = self.c.network
        span = n.plaza_latency_max_ms - n.plaza_latency_min_ms
        return n.plaza_latency_min_ms + (int(self.rng.random() * span) if span > 0 else 0)

    def _at(self, when: int, entry: tuple[int, ...]) -> None:
        slot = self.wheel.get(when)
        if slot is None:
            self.wheel[when] = [entry]
        else:
            slot.append(entry)

    def _plaza(self, who: int) -> bool:
        """Whether ``who`` is an attacker's key published on the plaza directly."""
        sybil = self.v.sybil[who]
        return sybil >= 0 and self.c.attacks[sybil // _ATTACK_STRIDE].mode == "plaza"

    # --- visitors --------------------------------------------------------------------------

    def _arrive(self, now: int, *, initial: bool) -> int:
        """A visitor is there (at the start, or arriving now); returns its room."""
        c, rng, v = self.c, self.rng, self.v
        room = rng.randrange(c.rooms) if c.rooms > 1 else 0
        home = rng.randrange(c.network.hubs) if c.network.hubs > 1 else 0
        offset = self._offset()
        depart = now + self._stay_ms(residual=initial) if c.churn.enabled else self.end + 1
        leaves = rng.random() < c.churn.leave_share
        who = v.add(room=room, home=home, offset=offset, depart=depart, leaves=leaves, sybil=-1)
        self.true[room] += 1
        if initial:
            # Heard before the hub started: the next heartbeat falls at a random phase.
            send = now + int(rng.random() * self.h_ms)
            v.last_at[who] = send + offset - self.h_ms
        else:
            send = now
            self.result.arrivals += 1
        if send < depart:
            v.last_at[who] = send + offset
            v.flying[who] = True
            self._at(send + self._latency(), (_BEAT, who, send + offset))
        if depart < self.end:
            self._at(depart, (_DEPART, who))
        return room

    def _sybil(self, now: int, index: int, attack: Attack) -> None:
        """The attacker makes a fresh key and sends its first heartbeat."""
        made = self.result.sybils[index]
        self.result.sybils[index] = made + 1
        end = self.start + round((attack.start_s + attack.duration_s) * 1000)
        tag = index * _ATTACK_STRIDE + made % attack.addresses
        v = self.v
        who = v.add(room=attack.room, home=0, offset=0, depart=end, leaves=False, sybil=tag)
        v.last_at[who] = now
        v.flying[who] = True
        self._send_attack(now, who, now)

    def _send_attack(self, now: int, who: int, at: int) -> None:
        """File an attacker's heartbeat: to the first hub, or through the plaza to all."""
        if self._plaza(who):
            self._at(max(now, at + self._plaza_latency()), (_BEAT, who, at))
            for h in range(1, self.c.network.hubs):
                self._at(max(now, at + self._plaza_latency()), (_COPY, who, at, h))
        else:
            self._at(max(now, at + self._latency()), (_BEAT, who, at))

    def _did(self, who: int, epoch: int) -> str:
        if self.v.did_epoch[who] == epoch:
            return self.v.did[who]
        return f"v{who}e{epoch}"

    # --- the run ---------------------------------------------------------------------------

    def run(self) -> SiteSimResult:
        c, res, rng = self.c, self.result, self.rng
        start, end = self.start, self.end
        for _ in range(c.visitors):
            self._arrive(start, initial=True)
        arrival_per_ms = self.arrival_per_ms
        next_arrival = start + rng.expovariate(arrival_per_ms) if arrival_per_ms else math.inf
        sybil_gap = [1000 / a.keys_per_s for a in c.attacks]
        sybil_next = [float(start + round(a.start_s * 1000)) for a in c.attacks]
        sybil_end = [start + round((a.start_s + a.duration_s) * 1000) for a in c.attacks]
        edges = self._class_edges()
        next_edge = edges.pop(0) if edges else end
        self.cls = self._class_of(start)
        hubs = range(c.network.hubs)
        next_tick = [start] * c.network.hubs
        cap_ms = self.h_ms
        beats, fine = res.heartbeats, res.heartbeats_fine
        shown0, room_index = self.shown[0], self.room_index
        wheel = self.wheel
        progress_every = max(1000, (end - start) // 100)
        # The hot path, inlined: an honest visitor's heartbeat reaching a lone hub.
        d_ms = self.d_ms
        random = rng.random
        next_after = self.plan.next_after
        net = c.network
        lat_min, lat_span = net.latency_min_ms, max(0, net.latency_max_ms - net.latency_min_ms)
        loss = net.loss
        fast = net.hubs == 1 and not self.service_ms
        heartbeat0 = self.counters[0].heartbeat
        keys = self.rooms
        v = self.v
        rooms_of, homes, offsets, departs = v.room, v.home, v.offset, v.depart
        last_at, flying, did_epoch, dids, sybils = v.last_at, v.flying, v.did_epoch, v.did, v.sybil
        tally0 = res.hubs[0]
        note = self._note

        for t in range(start, end):
            if t >= next_edge:
                self.cls = self._class_of(t)
                next_edge = edges.pop(0) if edges else end
                self._note_all()  # errors standing as the class begins count in it
            for h in hubs:
                if t >= next_tick[h]:
                    counter = self.counters[h]
                    for change in counter.tick(t):
                        room = room_index[change.room_key]
                        self.shown[h][room] = change.new
                        note(room)
                    res.hubs[h].ticks += 1
                    due = counter.next_change_ms(t)
                    next_tick[h] = t + (cap_ms if due is None else min(cap_ms, max(1, due - t)))
            while next_arrival < t + 1:
                note(self._arrive(t, initial=False))
                next_arrival += rng.expovariate(arrival_per_ms)
            for i, gap in enumerate(sybil_gap):
                while sybil_next[i] < t + 1 and t < sybil_end[i]:
                    self._sybil(t, i, c.attacks[i])
                    sybil_next[i] += gap
            received = 0
            while (entries := wheel.pop(t, None)) is not None:
                for entry in entries:
                    kind = entry[0]
                    if kind == 0:  # _BEAT
                        who, at = entry[1], entry[2]
                        epoch = at // d_ms
                        if did_epoch[who] != epoch:  # a fresh key for a new epoch
                            did_epoch[who] = epoch
                            dids[who] = f"v{who}e{epoch}"
                        if loss and random() < loss:
                            pass
                        elif fast and sybils[who] < 0:
                            received += 1
                            room = rooms_of[who]
                            tally0.received += 1
                            try:
                                changes = heartbeat0(keys[room], dids[who], epoch, at, t)
                            except EventRejected as exc:
                                self._refused(0, who, exc)
                            else:
                                if changes:
                                    shown0[room] = changes[-1].new
                                    note(room)
                        else:
                            h = homes[who]
                            received += h == 0
                            self._receive(t, who, at, -1, h)
                        # The next heartbeat, from the shipped schedule.
                        following = next_after(at)
                        send = following - offsets[who]
                        if send < departs[who]:
                            last_at[who] = following
                            if sybils[who] >= 0:
                                self._send_attack(t, who, following)
                                continue
                            when = send + lat_min + (int(random() * lat_span) if lat_span else 0)
                            beat = (0, who, following)
                            if when <= t:
                                entries.append(beat)
                            elif (slot := wheel.get(when)) is None:
                                wheel[when] = [beat]
                            else:
                                slot.append(beat)
                        else:
                            flying[who] = False
                            if v.pending_leave[who]:
                                self._send_leave(t, who)
                    elif kind == 1:  # _COPY
                        h = entry[3]
                        received += h == 0
                        self._receive(t, entry[1], entry[2], -1, h)
                    elif kind == 2:  # _LEAVE
                        self._receive(t, entry[1], entry[2], entry[3], entry[4])
                    elif kind == 3:  # _DEPART
                        self._depart(t, entry[1])
                    elif kind == 4:  # _COUNT_BEAT
                        if self._beat(t, entry[1], entry[2], entry[3]):
                            note(rooms_of[entry[1]])
                    elif self._leave(t, entry[1], entry[2], entry[3], entry[4]):  # _COUNT_LEAVE
                        note(rooms_of[entry[1]])
            if received:
                beats[(t - start) // 1000] += received
                fine[(t - start) // BURST_BIN_MS] += received
            if (t - start) % 1000 == 999:
                self._sample()
            if self.progress is not None and (t - start) % progress_every == 0:
                self.progress((t - start) / (end - start))
        if self.progress is not None:
            self.progress(1.0)
        return res

    def _receive(self, now: int, who: int, at: int, epoch: int, h: int) -> None:
        """An event reaches hub ``h`` (a leave when ``epoch`` >= 0): counted now, or queued
        behind what the hub has not finished yet."""
        if self.service_ms:
            done = max(float(now), self.free_at[h]) + self.service_ms
            self.free_at[h] = done
            if h == 0:
                self.second_delay = max(self.second_delay, math.ceil(done - now))
            when = int(done)
            if when > now:
                if epoch < 0:
                    self._at(when, (_COUNT_BEAT, who, at, h))
                else:
                    self._at(when, (_COUNT_LEAVE, who, at, epoch, h))
                return
        changed = self._beat(now, who, at, h) if epoch < 0 else self._leave(now, who, at, epoch, h)
        if changed:
            self._note(self.v.room[who])

    def _note(self, room: int) -> None:
        """The shown or the true count of ``room`` moved: keep the error's extremes."""
        true = self.true[room]
        cls, res = self.cls, self.result
        for shown in self.shown:
            e = shown[room] - true
            if e > res.worst_high[cls]:
                res.worst_high[cls] = e
            if e < res.worst_low[cls]:
                res.worst_low[cls] = e
            if e > self.second_high:
                self.second_high = e
            if e < self.second_low:
                self.second_low = e
            if e > self.room_high[room]:
                self.room_high[room] = e

    def _note_all(self) -> None:
        for room in range(self.c.rooms):
            self._note(room)

    def _sample(self) -> None:
        """The end of a simulated second: counts, error extremes, the counter's footprint."""
        res = self.result
        res.true_total.append(sum(self.true))
        for h, shown in enumerate(self.shown):
            res.shown_total[h].append(sum(shown))
        res.hub_delay_ms.append(self.second_delay)
        self.second_delay = 0
        res.error_high.append(self.second_high)
        res.error_low.append(self.second_low)
        self.second_high = self.second_low = 0
        for r, high in enumerate(self.room_high):
            res.room_error_high[r].append(high)
            self.room_high[r] = 0
        self._note_all()  # the next second starts from the errors standing now
        held = self.counters[0].footprint()
        res.dids.append(held.dids)
        res.left.append(held.left)
        res.deadlines.append(held.deadlines)
        res.epochs_held.append(held.epochs)

    def _depart(self, now: int, who: int) -> None:
        """A visitor's stay ends: the true count drops; a signed leave follows, or silence."""
        v, res = self.v, self.result
        room = v.room[who]
        self.true[room] -= 1
        res.departures += 1
        if not v.leaves[who]:
            res.silent_departures += 1
        elif v.flying[who]:
            v.pending_leave[who] = True  # one more heartbeat may have left before we did
        else:
            self._send_leave(now, who)
        self._note(room)

    def _send_leave(self, now: int, who: int) -> None:
        """The widget's prepared leave: dated like the last heartbeat, under its DID."""
        v = self.v
        at = v.last_at[who]
        when = max(now, v.depart[who] + self._latency())
        self._at(when, (_LEAVE, who, at, at // self.d_ms, v.home[who]))

    def _refused(self, h: int, who: int, exc: EventRejected) -> None:
        tally = self.result.hubs[h]
        tally.rejects[exc.reason] = tally.rejects.get(exc.reason, 0) + 1
        if self.v.sybil[who] < 0:
            tally.honest_rejects[exc.reason] = tally.honest_rejects.get(exc.reason, 0) + 1
        elif isinstance(exc, JoinBudgetSpent):
            self.v.depart[who] = -1  # the attacker reads the refusal and drops the key

    def _beat(self, now: int, who: int, at: int, h: int) -> bool:
        """Hub ``h`` receives a heartbeat; True if its shown count of the room changed."""
        v = self.v
        epoch = at // self.d_ms
        room = v.room[who]
        key = self.rooms[room]
        did = self._did(who, epoch)
        self.result.hubs[h].received += 1
        sybil = v.sybil[who]
        try:
            if sybil >= 0 and h == 0 and not self._plaza(who):
                changes = self._through_budgets(now, sybil, key, did, epoch, at)
            else:
                changes = self.counters[h].heartbeat(key, did, epoch, at, now)
        except EventRejected as exc:
            self._refused(h, who, exc)
            return False
        if self.c.network.hubs == 2 and h == v.home[who] and not self._plaza(who):
            self._at(now + self._plaza_latency(), (_COPY, who, at, 1 - h))
        if changes:
            self.shown[h][room] = changes[-1].new
            return True
        return False

    def _through_budgets(
        self, now: int, sybil: int, key: str, did: str, epoch: int, at: int
    ) -> list[CountChanged]:
        """A heartbeat from an attacker's address, taken as ``SiteHub.submit`` takes it."""
        budgets, counter = self.budgets, self.counters[0]
        address = f"a{sybil}"
        budgets.spend_event(address, now)
        held = counter.holds(key, did, epoch, now)
        if not held:
            budgets.check_join(address, key, epoch)
        changes = counter.heartbeat(key, did, epoch, at, now)
        if not held:
            budgets.joined(address, key, epoch)
        return changes

    def _leave(self, now: int, who: int, at: int, epoch: int, h: int) -> bool:
        """Hub ``h`` receives a signed leave; True if its shown count of the room changed."""
        v = self.v
        room = v.room[who]
        self.result.hubs[h].received += 1
        did = self._did(who, epoch)
        try:
            changes = self.counters[h].leave(self.rooms[room], did, epoch, at, now)
        except EventRejected as exc:
            self._refused(h, who, exc)
            return False
        if self.c.network.hubs == 2 and h == v.home[who]:
            self._at(now + self._plaza_latency(), (_LEAVE, who, at, epoch, 1 - h))
        if changes:
            self.shown[h][room] = changes[-1].new
            return True
        return False

    # --- classes of instants ---------------------------------------------------------------

    def _class_edges(self) -> list[int]:
        warm = self.start + round(self.c.warmup_s * 1000)
        edges = {warm}
        for b in self.boundaries:
            edges.update((b, b + self.settle_ms, b + self.settle_ms + self.h_ms))
        return sorted(e for e in edges if self.start < e < self.end)

    def _class_of(self, t: int) -> int:
        if t < self.start + round(self.c.warmup_s * 1000):
            return WARMUP
        for b in self.boundaries:
            if b <= t < b + self.settle_ms:
                return SETTLE
            if b + self.settle_ms <= t < b + self.settle_ms + self.h_ms:
                return AFTER_SETTLE
        return STEADY


# --- closed forms the runs are checked against --------------------------------------------------


def uniform_sum_cdf(x: float, lows: tuple[float, ...], widths: tuple[float, ...]) -> float:
    """P(U_1 + … + U_k <= x) for independent ``U_i`` uniform on ``[low_i, low_i + width_i)``.

    The sum's CDF is ``Σ_S (-1)^|S| (x - a - Σ_S w)_+^k / (k! Π w)`` over the subsets S of
    the (non-zero) widths, ``a`` the sum of the lows."""
    a = sum(lows)
    ws = [w for w in widths if w > 0]
    if not ws:
        return 1.0 if x >= a else 0.0
    k = len(ws)
    total = 0.0
    for mask in range(1 << k):
        shift = sum(w for i, w in enumerate(ws) if mask >> i & 1)
        rest = x - a - shift
        if rest > 0:
            total += (-1) ** bin(mask).count("1") * rest**k
    return min(1.0, max(0.0, total / (math.factorial(k) * math.prod(ws))))


def expected_heartbeats(
    config: SiteSimConfig, window: tuple[int, int], boundary: int, visitors: float
) -> float:
    """Heartbeats a hub expects in ``window`` (ms of its clock, ``boundary`` inside or near
    it) from ``visitors`` who stay put, by the rotation schedule's rules.

    A visitor whose clock is off by ``o`` and whose events take ``l`` to arrive stops its old
    cadence at ``boundary - o`` (its own boundary), sends its first new heartbeat within
    the spread ``J`` after it, and beats at density ``1/H`` again from ``boundary - o + J``
    on (the epoch's phase is uniform over the interval). With ``Y = l - o``, the share of
    the window during which the visitor is between those two instants is
    ``G = ∫ P(Y <= t - b < Y + J) dt``; its expected heartbeats there are ``G / J`` (the
    burst; none when ``J = H``) plus ``(|window| - G) / H`` (the cadence)."""
    s, n = config.sites, config.network
    h = s.heartbeat_interval_s * 1000
    j = s.rotation_spread_s * 1000
    o = n.clock_offset_max_ms
    lows = (float(n.latency_min_ms), float(-o))
    widths = (float(n.latency_max_ms - n.latency_min_ms), float(2 * o))
    w0, w1 = window
    step = max(1, (w1 - w0) // 200)  # the midpoint rule on 200 slices: well within 0.1 %
    g = 0.0
    for t in range(w0, w1, step):
        x = t + step / 2 - boundary
        inside = uniform_sum_cdf(x, lows, widths) - uniform_sum_cdf(x - j, lows, widths)
        g += inside * step
    span = w1 - w0
    burst = g / j if j > 0 else 0.0
    return visitors * (burst + (span - g) / h)


__all__ = [
    "AFTER_SETTLE",
    "BURST_BIN_MS",
    "SETTLE",
    "STEADY",
    "WARMUP",
    "Attack",
    "Churn",
    "HubBudgets",
    "HubTally",
    "Network",
    "SiteSimConfig",
    "SiteSimResult",
    "expected_heartbeats",
    "simulate",
    "uniform_sum_cdf",
]
