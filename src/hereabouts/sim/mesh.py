"""Mesh convergence, simulated: N nodes syncing with the shipped peer book and planner.

What runs is what a node runs. Each simulated node has a real
:class:`~hereabouts.core.meshpeers.MeshPeers` (whom to call each round, backoff after a
failed exchange, a heal round every ``heal_every``-th round, a peer's URL learnt from its
hey_there), and each exchange follows :meth:`hereabouts.peers.mesh.runtime.Mesh.exchange`
and ``Mesh.handle`` step by step with :mod:`hereabouts.core.reconcile`: the caller sends its
digest; the responder answers with what the caller lacks (most important first, cut at the
byte budget) and its own digest; the caller takes that in and pushes what the responder's
digest says it lacks. Only the network, the clock and the randomness are simulated, all from
one seeded :class:`random.Random`, so one seed gives one result, byte for byte.

The model
---------
* **Nodes and peers.** N nodes, each holding its own hey_there at first. Each starts knowing
  a few random nodes' URLs as seeds (``topology="random"``) or only its predecessor's
  (``"chain"``, as in the twenty-node process test). A node learns a peer's URL and DID
  when it takes in that peer's hey_there, as the runtime does.
* **Rounds.** In each round every node, in a random order, runs one round of its own:
  ``choose()`` a peer, exchange. Exchanges run one after another, each seeing what earlier
  ones changed, as jittered rounds of real nodes do (an exchange takes milliseconds, a round
  ``round_s``). The simulated clock advances ``round_s x round_scale(N)`` per round, as
  a node's rounds stretch once it holds every origin (its own included).
* **Budgets.** A reply and a push each carry at most
  ``exchange_budget(budget_bytes, size)`` event bytes, as ``Mesh._plan`` plans them: the
  planning node's ``size`` is the mesh as far as it knows it, the larger of its peer book
  and the origins it holds, taken when it plans (the responder before it answers, the
  caller after it took the answer in). So a node's budget grows as it learns the mesh, by
  the same :func:`~hereabouts.core.meshmath.round_scale` its rounds stretch by.
* **Failures.** Each exchange fails with probability ``failure_rate`` (the peer is down or
  the request timed out): nothing is exchanged, the caller's request bytes are spent, and
  its peer book backs the peer off (``MeshPeers.failed``).
* **Nobody is MISSING** within the simulated span (the mesh threshold is an hour), so heal
  rounds pick seeds and peers that failed.
* **Sizes** are those of real sealed events (:func:`event_sizes` seals a hey_there and a
  newspaper with :func:`hereabouts.wire.seal`); every node's name and URL have the same width,
  so every node's events have these sizes. Bytes are message bodies as
  :func:`hereabouts.peers.mesh.wire.encode_message` frames them (the digest in base64),
  the HTTP headers aside, as the node's ``hereabouts_mesh_bytes_total`` counts them.

Two phases
----------
1. **Convergence**: from each node holding only its own hey_there until every node holds
   every node's (``converged_round``).
2. **Steady state** (``steady_rounds`` more rounds, once converged): every node emits a
   newspaper every ``heartbeat_s`` (a phase of its own, at random). Measured: wire bytes
   per node per round against the *floor*, one digest plus the events that changed in the
   round (an origin that emitted twice in a round needs only its latest), and how far behind
   the views lag.

Two models of what a node holds
-------------------------------
``model="planner"`` keeps, per node, each origin's version and evidence, and plans every
reply with the real :func:`~hereabouts.core.reconcile.plan_reply` on digests made by the
real :func:`~hereabouts.core.reconcile.encode_digest` and read back by
:func:`~hereabouts.core.reconcile.decode_digest`. That is O(N) per exchange, so O(N^2) per
round: a few seconds a round at N = 1,000, too slow at 10,000.

``model="sets"`` (convergence only) keeps a node's holdings as a Python int, one bit per
origin, bit *i* for the *i*-th freshest hey_there. It computes exactly what the planner
does during convergence, because there each origin has one event (its hey_there, one size,
one version): the planner then sends the hey_theres the caller lacks (``theirs & ~mine``),
freshest first, as many as the planning node's ``budget // size`` (at least one) allow,
which are the lowest set bits of that difference (the node's size is the larger of its
peer book and ``int.bit_count()`` of its holdings); the push is the same with the roles
swapped, and taking in is ``|``. Learning walks the received bits upwards, so peer books
learn in the planner's order and every ``choose()`` draws the same peer. The peer book
stays the real one. The test ``tests/sim/test_mesh_sim.py`` checks that both models give
the same rounds, bytes and holdings for one seed. With heartbeats an origin has many
versions, so the steady state needs the planner model.

One concession, in both models: a full peer book stops learning. The shipped book holds
``max_peers`` (1,024) peers; each hey_there past that evicts the least recently heard peer
with an O(book) scan. At N = 1,000 the book never fills, so nothing changes. At 10,000 a
real node would make ~9,000 such scans while converging (seconds of CPU, harmless), but the
simulation would make 10^8 (hours). So once a simulated book is full, further hey_theres
only name DIDs for seeds already in it; the book keeps the first 1,024 peers it learnt
rather than the last. Either way each node calls uniformly among the usable peers of a book
of 1,024 nodes drawn from the whole mesh, with the real backoff and heal rounds.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Final, Literal

from hereabouts.config import HeartbeatConfig, MeshConfig
from hereabouts.core.meshmath import exchange_budget, propagation_rounds, round_scale
from hereabouts.core.meshpeers import MeshPeers
from hereabouts.core.reconcile import ENTRY_BYTES, Item, decode_digest, encode_digest, plan_reply
from hereabouts.events import HeyThere, Newspaper, NewspaperStatus
from hereabouts.identity import Identity
from hereabouts.peers.mesh.runtime import MAX_ORIGINS
from hereabouts.peers.mesh.wire import encode_message
from hereabouts.wire import seal

Model = Literal["planner", "sets"]
Topology = Literal["random", "chain"]

START_MS: Final = 1_764_547_200_000
"""Simulated Unix time at which the nodes start (only differences matter; a real date keeps
``at_ms`` fields as wide as real ones)."""

START_SPREAD_MS: Final = 10
"""Gap between two nodes' hey_there times: every hey_there has its own time, so replies
order them the same way on every node."""

_FRAME: Final = len(encode_message(b"", []))
_FRAME_PUSH: Final = len(encode_message(None, []))
PUSH_ACK_BYTES: Final = _FRAME_PUSH
"""The responder's answer to a push (an empty message), counted by the caller as in."""

_DEFAULT_MESH = MeshConfig()


def digest_wire_bytes(origins: int) -> int:
    """Characters a digest of ``origins`` entries takes in a message (base64)."""
    return (origins * ENTRY_BYTES + 2) // 3 * 4


def message_bytes(digest_origins: int | None, events: int, event_bytes: int) -> int:
    """Bytes of a sync message with a digest of ``digest_origins`` entries (None: a push)
    and ``events`` events of ``event_bytes`` in all, as ``encode_message`` frames it."""
    frame = _FRAME_PUSH if digest_origins is None else _FRAME + digest_wire_bytes(digest_origins)
    return frame + event_bytes + max(0, events - 1)


@dataclass(frozen=True, slots=True)
class EventSizes:
    """Bytes of one node's sealed hey_there and newspaper."""

    hey_there: int
    newspaper: int


def node_name(index: int) -> str:
    return f"node-{index:05d}"


def node_url(index: int) -> str:
    return f"https://node-{index:05d}.mesh.example:8443"


def event_sizes(nodes: int) -> EventSizes:
    """Seal a mesh node's hey_there and a newspaper reporting ``nodes - 1`` peers online, a
    day up, and measure them."""
    identity = Identity.from_seed(bytes(32))
    header = {
        "name": node_name(0),
        "did": identity.did,
        "boot_id": "0123456789abcdef",
        "at_ms": START_MS,
    }
    hey_there = HeyThere(
        **header,  # type: ignore[arg-type]
        started_at_ms=START_MS,
        endpoints={"mesh": node_url(0)},
        transport="mesh",
    )
    newspaper = Newspaper(
        **header,  # type: ignore[arg-type]
        status=NewspaperStatus(online_peers=max(0, nodes - 1), uptime_s=86_400, next_in_s=120),
    )
    return EventSizes(len(seal(hey_there, identity)), len(seal(newspaper, identity)))


@dataclass(frozen=True, slots=True)
class MeshSimConfig:
    """One simulation run. Defaults are the shipped mesh configuration and the targets'
    conditions (20 % of exchanges failing)."""

    nodes: int = 1000
    seed: int = 1
    model: Model = "planner"
    topology: Topology = "random"
    seeds_per_node: int = 3
    """Peers each node knows at start with ``topology="random"``."""
    failure_rate: float = 0.2
    budget_bytes: int = _DEFAULT_MESH.exchange_bytes
    """Event bytes per reply or push in a mesh of up to 32 nodes (``mesh.exchange_bytes``),
    stretched by :func:`~hereabouts.core.meshmath.exchange_budget` with the mesh's size as
    far as the planning node knows it."""
    heal_every: int = _DEFAULT_MESH.heal_every
    max_peers: int = _DEFAULT_MESH.max_peers
    """The peer book's bound (``mesh.max_peers``); a full book stops learning."""
    round_s: float = _DEFAULT_MESH.round_s
    heartbeat_s: float = HeartbeatConfig().max_interval_s
    """Steady state: each node's newspaper interval (the quiet-time interval)."""
    steady_rounds: int = 0
    """Rounds measured in the steady state (0: none)."""
    steady_warmup: int | None = None
    """Rounds of heartbeats before the steady state is measured, so views start lagging by
    their usual amount; None: ``propagation_rounds(nodes)``."""
    max_rounds: int = 100
    """Give up on convergence after this many rounds."""

    def __post_init__(self) -> None:
        if self.nodes < 2:
            raise ValueError("a mesh needs at least two nodes")
        if not 0 <= self.failure_rate < 1:
            raise ValueError("failure_rate must be in [0, 1)")
        if self.model == "sets" and self.steady_rounds:
            raise ValueError("the set model covers convergence only (one version per origin)")
        if self.topology == "random" and not 1 <= self.seeds_per_node < self.nodes:
            raise ValueError("seeds_per_node must be between 1 and nodes - 1")

    @property
    def warmup_rounds(self) -> int:
        if self.steady_warmup is not None:
            return self.steady_warmup
        return propagation_rounds(self.nodes)

    @property
    def round_ms(self) -> int:
        return int(self.round_s * round_scale(self.nodes) * 1000)


@dataclass(frozen=True, slots=True)
class RoundStats:
    """What one round did, summed over the mesh."""

    round: int
    complete: int
    """Nodes holding every origin's latest version at the end of the round."""
    ok: int
    failed: int
    idle: int
    """Nodes whose peer book offered nobody to call."""
    bytes: int
    events: int


@dataclass(frozen=True, slots=True)
class SteadyStats:
    """The steady state, per node and round, averaged over its rounds."""

    rounds: int
    bytes_per_node: float
    """Wire bytes (message bodies) per node per round."""
    floor_per_node: float
    """The floor: one digest, plus the events the node took in (each new to it: a node
    cannot reach the same views with fewer)."""
    every_event_per_node: float
    """For comparison: one digest plus every origin that changed in the round, what each
    node would take in if every newspaper reached every node before the next one."""
    changed_per_round: float
    """Origins with a new newspaper per round."""
    events_per_node: float
    """Events each node took in per round."""
    up_to_date: float
    """Share of (node, origin) views holding the origin's latest version at round ends."""
    mean_lag_s: float
    """Mean gap between an origin's latest event and a node's view of it, at round ends."""
    worst_lag_s: float
    """Largest such gap seen."""

    @property
    def ratio(self) -> float:
        return self.bytes_per_node / self.floor_per_node


@dataclass(slots=True)
class MeshSimResult:
    config: MeshSimConfig
    sizes: EventSizes
    converged_round: int | None = None
    rounds: list[RoundStats] = field(default_factory=list)
    steady: SteadyStats | None = None
    fingerprint: str = ""
    """SHA-256 over every node's final holdings (its digest): equal runs, equal prints."""

    @property
    def bound(self) -> int:
        return propagation_rounds(self.config.nodes)

    def convergence_bytes_per_node(self) -> float:
        """Wire bytes per node per round, averaged over the rounds to convergence."""
        until = [r for r in self.rounds if r.round <= (self.converged_round or 0)]
        if not until:
            return 0.0
        return sum(r.bytes for r in until) / len(until) / self.config.nodes

    def summary(self) -> dict[str, object]:
        return {
            "config": asdict(self.config),
            "sizes": asdict(self.sizes),
            "converged_round": self.converged_round,
            "bound": self.bound,
            "rounds": [asdict(r) for r in self.rounds],
            "steady": None if self.steady is None else asdict(self.steady),
            "fingerprint": self.fingerprint,
        }


class _Holdings:
    """What one node holds, as the projection would: per origin its version and evidence."""

    __slots__ = ("_decoded", "_digest", "hey_there", "newspaper", "versions")

    def __init__(self) -> None:
        self.versions: dict[str, int] = {}
        self.hey_there: dict[str, Item] = {}
        self.newspaper: dict[str, Item] = {}
        self._digest: bytes | None = None
        self._decoded: dict[bytes, int] | None = None

    def evidence(self, did: str) -> list[Item]:
        found = [self.hey_there[did]] if did in self.hey_there else []
        news = self.newspaper.get(did)
        if news is not None:
            found.append(news)
        return found

    def take(self, did: str, item: Item) -> bool:
        """Take in one event; whether it was a hey_there new to us (the peer is learnt)."""
        learnt = False
        if item.kind == "hey_there":
            if did in self.hey_there:
                return False
            self.hey_there[did] = item
            learnt = True
        else:
            held = self.newspaper.get(did)
            if held is not None and held.at_ms >= item.at_ms:
                return False
            self.newspaper[did] = item
        if item.at_ms > self.versions.get(did, -1):
            self.versions[did] = item.at_ms
            self._digest = self._decoded = None
        return learnt

    def digest(self) -> bytes:
        if self._digest is None:
            self._digest = encode_digest(self.versions)
        return self._digest

    def decoded(self) -> dict[bytes, int]:
        """The digest as its receiver reads it (cached while nothing changes)."""
        if self._decoded is None:
            self._decoded = decode_digest(self.digest(), max_entries=MAX_ORIGINS)
        return self._decoded


def _bits(x: int) -> Iterator[int]:
    """The set bits of ``x``, lowest first."""
    digits = bin(x)[:1:-1]
    at = digits.find("1")
    while at >= 0:
        yield at
        at = digits.find("1", at + 1)


def _lowest(x: int, count: int) -> int:
    """The lowest ``count`` set bits of ``x``."""
    if x.bit_count() <= count:
        return x
    low, high = count, x.bit_length()
    while low < high:  # the smallest width whose mask holds ``count`` bits
        middle = (low + high) // 2
        if (x & ((1 << middle) - 1)).bit_count() >= count:
            high = middle
        else:
            low = middle + 1
    return x & ((1 << low) - 1)


class MeshSim:
    """A simulated mesh; :meth:`run` it, or step it :meth:`round` by :meth:`round`."""

    def __init__(self, config: MeshSimConfig) -> None:
        self.config = config
        n = config.nodes
        self.rng = random.Random(config.seed)
        self.sizes = event_sizes(n)
        self.dids = [Identity.from_seed(self.rng.randbytes(32)).did for _ in range(n)]
        self.urls = [node_url(i) for i in range(n)]
        self._index = {url: i for i, url in enumerate(self.urls)}
        rank = list(range(n))
        self.rng.shuffle(rank)  # node start order: rank 0 started last (freshest hey_there)
        self.rank_of = rank
        self.origin_at_rank = [0] * n
        for origin, r in enumerate(rank):
            self.origin_at_rank[r] = origin
        self.hey_at = [START_MS - START_SPREAD_MS * rank[o] for o in range(n)]
        self.peers = [
            MeshPeers(
                self_did=self.dids[i],
                self_url=self.urls[i],
                max_peers=config.max_peers,
                heal_every=config.heal_every,
            )
            for i in range(n)
        ]
        self._seeds_unnamed = [0] * n
        """Per node, the ranks of seeds whose DID its book does not know yet (bitset)."""
        self._seed_books()
        self.round_number = 0
        self.now_ms = START_MS
        self._events: dict[str, tuple[int, Item]] = {}
        self.full = (1 << n) - 1
        self.have: list[int] = []
        self.holdings: list[_Holdings] = []
        if config.model == "sets":
            self.have = [1 << rank[i] for i in range(n)]
        else:
            for origin in range(n):
                item = Item(self.hey_at[origin], f"h{origin}", "hey_there", self.sizes.hey_there)
                self._events[item.event_id] = (origin, item)
                holdings = _Holdings()
                holdings.take(self.dids[origin], item)
                self.holdings.append(holdings)
        self._latest = list(self.hey_at)
        self._next_beat: list[int] = []
        self._beats = [0] * n

    def _seed_books(self) -> None:
        n, config = self.config.nodes, self.config
        for i in range(n):
            if config.topology == "chain":
                if i:
                    self._add_seed(i, i - 1)
                continue
            for other in self.rng.sample([j for j in range(n) if j != i], config.seeds_per_node):
                self._add_seed(i, other)

    def _add_seed(self, node: int, seed: int) -> None:
        self.peers[node].add_seed(self.urls[seed])
        self._seeds_unnamed[node] |= 1 << self.rank_of[seed]

    def _learn(self, node: int, origin: int, now: int) -> None:
        """``node`` took in ``origin``'s hey_there: its book learns the peer, unless full."""
        book = self.peers[node]
        if len(book) < book.max_peers or book.get(self.urls[origin]) is not None:
            book.learn(self.dids[origin], self.urls[origin], now)
        self._seeds_unnamed[node] &= ~(1 << self.rank_of[origin])

    # --- one round ------------------------------------------------------------------------

    def round(self, *, heartbeats: bool = False) -> RoundStats:
        """Every node runs one round; with ``heartbeats``, newspapers due are emitted first."""
        config = self.config
        self.round_number += 1
        self.now_ms = now = START_MS + self.round_number * config.round_ms
        if heartbeats:
            self._emit(now)
        order = list(range(config.nodes))
        self.rng.shuffle(order)
        ok = failed = idle = total_bytes = total_events = 0
        for caller in order:
            book = self.peers[caller]
            peer = book.choose(now, self.rng.random(), None)
            if peer is None:
                idle += 1
                continue
            if self.rng.random() < config.failure_rate:
                total_bytes += self._request_bytes(caller)
                book.failed(peer.url, now, self.rng.random())
                failed += 1
                continue
            spent, moved = self._exchange(caller, self._index[peer.url], now)
            total_bytes += spent
            total_events += moved
            book.succeeded(peer.url, peer.did, now)  # as the runtime
            ok += 1
        return RoundStats(
            round=self.round_number,
            complete=self.complete(),
            ok=ok,
            failed=failed,
            idle=idle,
            bytes=total_bytes,
            events=total_events,
        )

    def complete(self) -> int:
        """Nodes holding every origin's latest version."""
        if self.config.model == "sets":
            return sum(1 for have in self.have if have == self.full)
        latest = self._latest
        dids = self.dids
        return sum(
            1
            for h in self.holdings
            if len(h.versions) == len(dids)
            and all(h.versions[did] == latest[o] for o, did in enumerate(dids))
        )

    def _request_bytes(self, caller: int) -> int:
        if self.config.model == "sets":
            return message_bytes(self.have[caller].bit_count(), 0, 0)
        return message_bytes(len(self.holdings[caller].versions), 0, 0)

    def _heard(self, responder: int, caller: int, now: int) -> None:
        """The responder hears a signed request from the caller (Mesh.handle)."""
        peer = self.peers[responder].by_did(self.dids[caller])
        if peer is not None:
            peer.last_heard_ms = now

    def budget(self, node: int) -> int:
        """Event bytes ``node``'s next reply or push may carry, as ``Mesh._plan`` plans
        them: the budget stretched by the mesh's size as far as the node knows it, the
        larger of its peer book and the origins it holds."""
        if self.config.model == "sets":
            held = self.have[node].bit_count()
        else:
            held = len(self.holdings[node].versions)
        return exchange_budget(self.config.budget_bytes, max(len(self.peers[node]), held))

    def _exchange(self, caller: int, responder: int, now: int) -> tuple[int, int]:
        if self.config.model == "sets":
            return self._exchange_sets(caller, responder, now)
        return self._exchange_planner(caller, responder, now)

    # --- the planner model -------------------------------------------------------------------

    def _exchange_planner(self, caller: int, responder: int, now: int) -> tuple[int, int]:
        mine, theirs = self.holdings[caller], self.holdings[responder]
        spent = message_bytes(len(mine.digest()) // ENTRY_BYTES, 0, 0)
        self._heard(responder, caller, now)
        reply = plan_reply(
            theirs.versions, theirs.evidence, mine.decoded(), budget_bytes=self.budget(responder)
        )
        spent += message_bytes(
            len(theirs.digest()) // ENTRY_BYTES, len(reply.event_ids), reply.size
        )
        their_digest = theirs.decoded()
        self._take_planned(caller, reply.event_ids, now)
        # The caller plans its push after taking the reply in, as Mesh.exchange does.
        push = plan_reply(
            mine.versions, mine.evidence, their_digest, budget_bytes=self.budget(caller)
        )
        if push.event_ids:
            self._heard(responder, caller, now)
            spent += message_bytes(None, len(push.event_ids), push.size) + PUSH_ACK_BYTES
            self._take_planned(responder, push.event_ids, now)
        return spent, len(reply.event_ids) + len(push.event_ids)

    def _take_planned(self, node: int, event_ids: Sequence[str], now: int) -> None:
        holdings = self.holdings[node]
        for event_id in event_ids:
            origin, item = self._events[event_id]
            if holdings.take(self.dids[origin], item):
                self._learn(node, origin, now)

    # --- the set model ---------------------------------------------------------------------

    def _exchange_sets(self, caller: int, responder: int, now: int) -> tuple[int, int]:
        mine, theirs = self.have[caller], self.have[responder]
        size = self.sizes.hey_there
        spent = message_bytes(mine.bit_count(), 0, 0)
        self._heard(responder, caller, now)
        sent = _lowest(theirs & ~mine, self._per_reply(responder))
        count = sent.bit_count()
        spent += message_bytes(theirs.bit_count(), count, count * size)
        mine |= sent
        self.have[caller] = mine
        self._learn_bits(caller, sent, now)
        pushed = _lowest(mine & ~theirs, self._per_reply(caller))
        pushed_count = pushed.bit_count()
        if pushed_count:
            self._heard(responder, caller, now)
            spent += message_bytes(None, pushed_count, pushed_count * size) + PUSH_ACK_BYTES
            self.have[responder] = theirs | pushed
            self._learn_bits(responder, pushed, now)
        return spent, count + pushed_count

    def _per_reply(self, node: int) -> int:
        """hey_theres ``node``'s reply or push carries at most: what the planner fits in
        its budget, one at least."""
        return max(1, self.budget(node) // self.sizes.hey_there)

    def _learn_bits(self, node: int, bits: int, now: int) -> None:
        book = self.peers[node]
        if len(book) >= book.max_peers:  # full: only seeds get their DIDs
            bits &= self._seeds_unnamed[node]
        origin_at_rank = self.origin_at_rank
        for r in _bits(bits):
            self._learn(node, origin_at_rank[r], now)

    # --- the steady state ------------------------------------------------------------------

    def _emit(self, now: int) -> int:
        """Every node emits the newspapers due by ``now``; how many origins changed."""
        config, n = self.config, self.config.nodes
        interval = int(config.heartbeat_s * 1000)
        if not self._next_beat:
            start = now - config.round_ms
            self._next_beat = [start + self.rng.randrange(interval) for _ in range(n)]
        changed = 0
        for origin in range(n):
            due = self._next_beat[origin]
            if due > now:
                continue
            while self._next_beat[origin] <= now:
                due = self._next_beat[origin]
                self._next_beat[origin] += interval
                self._beats[origin] += 1
            item = Item(due, f"n{origin}.{self._beats[origin]}", "newspaper", self.sizes.newspaper)
            self._events[item.event_id] = (origin, item)
            self.holdings[origin].take(self.dids[origin], item)
            self._latest[origin] = due
            changed += 1
        return changed

    def _views(self) -> tuple[float, float, int]:
        """Share of views at their origin's latest version, the mean and the largest lag
        (ms) behind it."""
        latest, dids = self._latest, self.dids
        current = 0
        total = 0
        worst = 0
        for holdings in self.holdings:
            versions = holdings.versions
            for origin, did in enumerate(dids):
                lag = latest[origin] - versions.get(did, self.hey_at[origin])
                total += lag
                if lag <= 0:
                    current += 1
                elif lag > worst:
                    worst = lag
        views = len(dids) ** 2
        return current / views, total / views, worst

    # --- whole runs ------------------------------------------------------------------------

    def run(self, progress: Callable[[RoundStats], None] | None = None) -> MeshSimResult:
        """To convergence, then the steady state if asked; ``progress`` hears each
        convergence round."""
        config = self.config
        result = MeshSimResult(config=config, sizes=self.sizes)
        while self.round_number < config.max_rounds:
            stats = self.round()
            result.rounds.append(stats)
            if progress is not None:
                progress(stats)
            if stats.complete == config.nodes:
                result.converged_round = stats.round
                break
        if result.converged_round is not None and config.steady_rounds:
            result.steady = self._steady(result)
        result.fingerprint = self.fingerprint()
        return result

    def _steady(self, result: MeshSimResult) -> SteadyStats:
        config, n = self.config, self.config.nodes
        for _ in range(config.warmup_rounds):  # until views lag by their usual amount
            result.rounds.append(self.round(heartbeats=True))
        spent = moved = changed_total = 0
        lags = 0.0
        current = 0.0
        worst = 0
        for _ in range(config.steady_rounds):
            before = list(self._latest)
            stats = self.round(heartbeats=True)
            result.rounds.append(stats)
            changed_total += sum(1 for o in range(n) if self._latest[o] != before[o])
            spent += stats.bytes
            moved += stats.events
            share, mean_lag, lag = self._views()
            current += share
            lags += mean_lag
            worst = max(worst, lag)
        rounds = config.steady_rounds
        size = self.sizes.newspaper
        digest = message_bytes(n, 0, 0)
        return SteadyStats(
            rounds=rounds,
            bytes_per_node=spent / rounds / n,
            floor_per_node=digest + moved / rounds / n * (size + 1),
            every_event_per_node=digest + changed_total / rounds * (size + 1),
            changed_per_round=changed_total / rounds,
            events_per_node=moved / rounds / n,
            up_to_date=current / rounds,
            mean_lag_s=lags / rounds / 1000,
            worst_lag_s=worst / 1000,
        )

    def held(self) -> list[int]:
        """Each node's hey_theres as a bitset (bit *i*: the *i*-th freshest), either model."""
        if self.config.model == "sets":
            return list(self.have)
        rank_of = self.rank_of
        return [
            sum(
                1 << rank_of[origin]
                for origin, did in enumerate(self.dids)
                if did in holdings.hey_there
            )
            for holdings in self.holdings
        ]

    def fingerprint(self) -> str:
        """SHA-256 over which hey_theres each node holds and, once newspapers flow, over
        every node's digest: the same in both models for one seed."""
        digest = hashlib.sha256()
        width = (self.config.nodes + 7) // 8
        for have in self.held():
            digest.update(have.to_bytes(width, "big"))
        if self._next_beat:
            for holdings in self.holdings:
                digest.update(holdings.digest())
        return digest.hexdigest()


def simulate(
    config: MeshSimConfig, progress: Callable[[RoundStats], None] | None = None
) -> MeshSimResult:
    """Run one simulation to convergence (and its steady state, if asked)."""
    return MeshSim(config).run(progress)
