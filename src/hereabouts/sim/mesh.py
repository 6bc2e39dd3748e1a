"""Mesh convergence, simulated: N nodes syncing with the shipped peer book and planner.

What runs is what a node runs. Each simulated node has a real
:class:`~hereabouts.core.meshpeers.MeshPeers` (whom to call each round, backoff after a
failed exchange, a heal round every ``heal_every``-th round that calls a seed, a failing
peer or one the node sees MISSING, a peer's URL learnt from its hey_there), and each
exchange follows :meth:`hereabouts.peers.mesh.runtime.Mesh.exchange` and ``Mesh.handle``
step by step with :mod:`hereabouts.core.reconcile`: the caller sends its digest; the
responder answers with what the caller lacks (most important first, cut at the byte
budget) and its own digest; the caller takes that in and pushes what the responder's digest
says it lacks. Only the network, the clock and the randomness are simulated, all from one
seeded :class:`random.Random`, so one seed gives one result, byte for byte.

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
* **Failures and partitions.** Each exchange fails with probability
  :attr:`MeshSim.failure_rate` (the peer is down or the request timed out), and every
  exchange between two nodes in different groups of a partition
  (:meth:`MeshSim.partition`) fails: nothing is exchanged, the caller's request bytes are
  spent, and its peer book backs the peer off (``MeshPeers.failed``).
* **Heartbeats and failure reports** (once converged, if asked): every node emits a
  newspaper every ``heartbeat_s`` (a phase of its own, at random), and a watcher
  (:mod:`hereabouts.sim.mesh_views`) may probe nodes with an exchange out of turn
  (:meth:`MeshSim.probe`) and sign failure reports (:meth:`MeshSim.report`), which travel
  as their reporter's events (:mod:`hereabouts.sim.mesh_reports`). Without a watcher,
  nobody is MISSING and heal rounds pick seeds and peers that failed.
* **Sizes** are those of real sealed events (:func:`event_sizes` seals a hey_there, a
  newspaper and a failure report with :func:`hereabouts.wire.seal`); every node's name and
  URL have the same width, so every node's events have these sizes. Bytes are message
  bodies as :func:`hereabouts.peers.mesh.wire.encode_message` frames them (the digest in
  base64), the HTTP headers aside, as the node's ``hereabouts_mesh_bytes_total`` counts
  them.

Two phases of :meth:`MeshSim.run`
---------------------------------
1. **Convergence**: from each node holding only its own hey_there until every node holds
   every node's (``converged_round``).
2. **Steady state** (``steady_rounds`` more rounds, once converged): heartbeats flow.
   Measured: wire bytes per node per round against the *floor*, one digest plus the events
   that changed in the round (an origin that emitted twice in a round needs only its
   latest), and how far behind the views lag.

Three models of what a node holds
---------------------------------
``model="planner"`` keeps, per node, each origin's version and evidence (its hey_there,
its latest own event, and the failure reports it holds in a real
:class:`~hereabouts.core.suspicion.ReportBook`), and plans every reply with the real
:func:`~hereabouts.core.reconcile.plan_reply` on digests made by the real
:func:`~hereabouts.core.reconcile.encode_digest` and read back by
:func:`~hereabouts.core.reconcile.decode_digest`. That is O(N) in Python per exchange, so
O(N^2) per round: a few seconds a round at N = 1,000, too slow at 10,000.

``model="matrix"`` keeps every node's versions as one row of a numpy matrix and plans each
reply from two rows (:mod:`hereabouts.sim.mesh_matrix`): exactly the planner's choices,
since on the mesh what a node holds of an origin follows from the version it holds. Same
rounds, bytes and versions as the planner (tested), through heartbeats, reports,
failures and partitions, at numpy speed; 400 MB of matrix at 10,000 nodes.

``model="sets"`` (convergence only) keeps a node's holdings as a Python int, one bit per
origin, bit *i* for the *i*-th freshest hey_there. It computes exactly what the planner
does during convergence, because there each origin has one event (its hey_there, one size,
one version): the planner then sends the hey_theres the caller lacks (``theirs & ~mine``),
freshest first, as many as the planning node's ``budget // size`` (at least one) allow,
which are the lowest set bits of that difference (the node's size is the larger of its
peer book and ``int.bit_count()`` of its holdings); the push is the same with the roles
swapped, and taking in is ``|``. Learning walks the received bits upwards, so peer books
learn in the planner's order and every ``choose()`` draws the same peer. The test
``tests/sim/test_mesh_sim.py`` checks that the models give the same rounds, bytes and
holdings for one seed.

One concession, in every model: a full peer book stops learning. The shipped book holds
``max_peers`` (1,024) peers; each hey_there past that evicts the least recently heard peer
with an O(book) scan. At N = 1,000 the book never fills, so nothing changes. At 10,000 a
real node would make ~9,000 such scans while converging (seconds of CPU, harmless), but the
simulation would make 10^8 (hours). So once a simulated book is full, further hey_theres
only name DIDs for seeds already in it; the book keeps the first 1,024 peers it learnt
rather than the last. Either way each node calls uniformly among the usable peers of a book
of 1,024 nodes drawn from the whole mesh, with the real backoff and heal rounds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Final, Literal, Protocol

import numpy as np

from hereabouts.config import HeartbeatConfig, MeshConfig
from hereabouts.core.meshmath import exchange_budget, propagation_rounds, round_scale
from hereabouts.core.meshpeers import MeshPeers
from hereabouts.core.reconcile import ENTRY_BYTES, Item, decode_digest, encode_digest, plan_reply
from hereabouts.core.suspicion import ReportBook
from hereabouts.events import HeyThere, Newspaper, NewspaperStatus, Unreachable
from hereabouts.identity import Identity
from hereabouts.peers.mesh.runtime import MAX_ORIGINS
from hereabouts.peers.mesh.wire import encode_message
from hereabouts.sim import mesh_matrix
from hereabouts.sim.mesh_peers import IndexedPeers
from hereabouts.sim.mesh_reports import Report, ReportLog
from hereabouts.wire import seal

if TYPE_CHECKING:
    from numpy.typing import NDArray

Model = Literal["planner", "sets", "matrix"]
Topology = Literal["random", "chain"]

START_MS: Final = 1_764_547_200_000
"""Simulated Unix time at which the nodes start (only differences matter; a real date keeps
``at_ms`` fields as wide as real ones)."""

BASE_MS: Final = START_MS - 2**21
"""Origin of the version matrix's times (:mod:`hereabouts.sim.mesh_matrix`): 35 minutes
before the start, earlier than the first hey_there of 100,000 nodes, so every time fits a
32-bit offset for 24 days of simulated time. Even, as every start time and round instant
is (newspapers fall on odd milliseconds)."""

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
    """Bytes of one node's sealed hey_there, newspaper and failure report."""

    hey_there: int
    newspaper: int
    unreachable: int = 0


def node_name(index: int) -> str:
    return f"node-{index:05d}"


def node_url(index: int) -> str:
    return f"https://node-{index:05d}.mesh.example:8443"


def event_sizes(nodes: int) -> EventSizes:
    """Seal a mesh node's hey_there, a newspaper reporting ``nodes - 1`` peers online and a
    day up, and a failure report about another node, and measure them."""
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
    report = Unreachable(
        **header,  # type: ignore[arg-type]
        subject_did=Identity.from_seed(bytes([1]) * 32).did,
        last_seen_ms=START_MS,
    )
    return EventSizes(
        len(seal(hey_there, identity)),
        len(seal(newspaper, identity)),
        len(seal(report, identity)),
    )


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
    """Share of exchanges that fail (:attr:`MeshSim.failure_rate` may change it later)."""
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
        if self.round_ms < 2 or self.heartbeat_ms < 2:
            raise ValueError("rounds and heartbeats must last at least 2 ms")

    @property
    def warmup_rounds(self) -> int:
        if self.steady_warmup is not None:
            return self.steady_warmup
        return propagation_rounds(self.nodes)

    @property
    def round_ms(self) -> int:
        """A round, in whole even milliseconds (round instants stay even)."""
        return int(self.round_s * round_scale(self.nodes) * 1000) // 2 * 2

    @property
    def heartbeat_ms(self) -> int:
        """The newspaper interval, in whole even milliseconds (newspapers stay odd)."""
        return int(self.heartbeat_s * 1000) // 2 * 2


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
    """Wire bytes of the round's exchanges, probes included."""
    events: int
    probes: int = 0
    """Exchanges out of turn made to probe a quiet node (:meth:`MeshSim.probe`)."""
    reports: int = 0
    """Failure reports signed."""


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
    """SHA-256 over every node's final holdings: equal runs, equal prints."""

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


class Watch(Protocol):
    """What judges the views during a round (:mod:`hereabouts.sim.mesh_views`)."""

    def before_exchanges(self, now_ms: int) -> None:
        """Time passed up to ``now_ms``: views whose silence ran out."""

    def missing(self, caller: int) -> Callable[[str], bool] | None:
        """Whether ``caller`` sees a DID MISSING (None: it sees nobody MISSING)."""

    def after_exchanges(self, now_ms: int, order: Sequence[int]) -> None:
        """The round's exchanges are done: observers probe and report, views update."""


class _Holdings:
    """What one node holds, as the projection would: per origin its version and evidence
    (hey_there, latest own event, and the failure reports kept in a real ReportBook)."""

    __slots__ = ("_decoded", "_digest", "_items", "book", "hey_there", "latest", "versions")

    def __init__(self, items: dict[str, tuple[int, Item]]) -> None:
        self.versions: dict[str, int] = {}
        self.hey_there: dict[str, Item] = {}
        self.latest: dict[str, Item] = {}
        self.book = ReportBook()
        self._items = items
        self._digest: bytes | None = None
        self._decoded: dict[bytes, int] | None = None

    def evidence(self, did: str) -> list[Item]:
        found = [self.hey_there[did]] if did in self.hey_there else []
        latest = self.latest.get(did)
        if latest is not None and latest.kind != "unreachable":
            found.append(latest)  # a latest report is among the kept ones
        items = self._items
        found.extend(items[event_id][1] for _, event_id in self.book.made_by(did))
        return found

    def take(self, did: str, item: Item, report: Report | None, dids: Sequence[str]) -> bool:
        """Take in one event; whether it was a hey_there new to us (the peer is learnt)."""
        learnt = False
        if item.kind == "hey_there":
            if did in self.hey_there:
                return False
            self.hey_there[did] = item
            learnt = True
        else:
            held = self.latest.get(did)
            if held is None or (item.at_ms, item.event_id) > (held.at_ms, held.event_id):
                self.latest[did] = item
            if report is not None:
                self.book.add(
                    did,
                    dids[report.subject],
                    item.at_ms,
                    item.event_id,
                    BASE_MS + report.last_seen,
                    counted=True,
                    observers=tuple,
                )
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


def row_chunks(rows: int, width: int, cells: int = 1 << 22) -> Iterator[slice]:
    """Slices of ``rows`` rows, each at most about ``cells`` cells of a ``width``-wide
    matrix: bulk operations on the version matrix go chunk by chunk, so their temporaries
    stay a few megabytes at 10,000 nodes."""
    step = max(1, cells // max(1, width))
    for start in range(0, rows, step):
        yield slice(start, min(rows, start + step))


class MeshSim:
    """A simulated mesh; :meth:`run` it, or step it :meth:`round` by :meth:`round`."""

    def __init__(
        self, config: MeshSimConfig, *, peer_book: type[MeshPeers] = IndexedPeers
    ) -> None:
        """``peer_book``: the shipped :class:`MeshPeers`, or (the default) the same book
        with its choice found by index (:mod:`hereabouts.sim.mesh_peers`)."""
        self.config = config
        n = config.nodes
        self.rng = random.Random(config.seed)
        self.sizes = event_sizes(n)
        self.identity_seeds = [self.rng.randbytes(32) for _ in range(n)]
        """Each node's key seed (``Identity.from_seed``), for anyone who must sign as it."""
        self.dids = [Identity.from_seed(seed).did for seed in self.identity_seeds]
        self.urls = [node_url(i) for i in range(n)]
        self._index = {url: i for i, url in enumerate(self.urls)}
        self.index_of_did = {did: i for i, did in enumerate(self.dids)}
        rank = list(range(n))
        self.rng.shuffle(rank)  # node start order: rank 0 started last (freshest hey_there)
        self.rank_of = rank
        self.origin_at_rank = [0] * n
        for origin, r in enumerate(rank):
            self.origin_at_rank[r] = origin
        self.hey_at = [START_MS - START_SPREAD_MS * rank[o] for o in range(n)]
        self.hey_at_off = np.array(self.hey_at, dtype=np.int64) - BASE_MS
        self.peers = [
            peer_book(
                self_did=self.dids[i],
                self_url=self.urls[i],
                max_peers=config.max_peers,
                heal_every=config.heal_every,
            )
            for i in range(n)
        ]
        self._seeds_unnamed: list[set[int]] = [set() for _ in range(n)]
        """Per node, the seeds whose DID its book does not know yet."""
        self._seed_books()
        self.round_number = 0
        self.now_ms = START_MS
        self.failure_rate = config.failure_rate
        """Share of exchanges (and probes) that fail; may change between rounds."""
        self.groups: NDArray[np.int64] | None = None
        """Partition group of each node (None: no partition)."""
        self.watch: Watch | None = None
        self.reports = ReportLog(self.dids)
        self._events: dict[str, tuple[int, Item]] = {}
        self.full = (1 << n) - 1
        self.have: list[int] = []
        self.holdings: list[_Holdings] = []
        self.V: NDArray[np.int32] = np.empty((0, 0), dtype=np.int32)
        """``V[node, origin]``: the version of ``origin`` that ``node`` holds, as an offset
        from :data:`BASE_MS` (-1: none); planner and matrix models."""
        self.held_count = np.ones(n, dtype=np.int64)
        """Origins each node holds (its digest's entries)."""
        if config.model == "sets":
            self.have = [1 << rank[i] for i in range(n)]
        else:
            self.V = np.full((n, n), -1, dtype=np.int32)
            diagonal = np.arange(n)
            self.V[diagonal, diagonal] = self.hey_at_off
            if config.model == "planner":
                for origin in range(n):
                    item = Item(
                        self.hey_at[origin], f"h{origin:06d}", "hey_there", self.sizes.hey_there
                    )
                    self._events[item.event_id] = (origin, item)
                    holdings = _Holdings(self._events)
                    holdings.take(self.dids[origin], item, None, self.dids)
                    self.holdings.append(holdings)
        self._latest = list(self.hey_at)
        self.latest_off = self.hey_at_off.astype(np.int32)
        """Each origin's latest version (offset), what a complete node holds."""
        self._next_beat: list[int] = []
        self._beats = [0] * n
        self._bytes = self._moved = self._probes = self._reported = 0
        self.take_log: list[tuple[int, NDArray[np.int64], NDArray[np.int32]]] | None = None
        """When a list: every node's takings are noted in it as (node, origins, the
        versions it held of them before), for a watcher that must react at once."""
        self.replies_cut = 0
        """Replies and pushes of the matrix model that the budget cut short."""
        self.reports_cut = 0
        """Of those, the ones cut among failure reports (see
        :attr:`~hereabouts.sim.mesh_matrix.MatrixPlan.reports_cut`)."""

    def _seed_books(self) -> None:
        n, config = self.config.nodes, self.config
        for i in range(n):
            if config.topology == "chain":
                if i:
                    self._add_seed(i, i - 1)
                continue
            # Drawn as sample() draws from the list of the other nodes, without the list.
            for j in self.rng.sample(range(n - 1), config.seeds_per_node):
                self._add_seed(i, j if j < i else j + 1)

    def _add_seed(self, node: int, seed: int) -> None:
        self.peers[node].add_seed(self.urls[seed])
        self._seeds_unnamed[node].add(seed)

    def _learn_many(self, node: int, origins: Sequence[int], now: int) -> None:
        """``node`` took in these origins' hey_theres, freshest first: its book learns the
        peers, until it is full; then only seeds already in it get their DIDs."""
        book = self.peers[node]
        unnamed = self._seeds_unnamed[node]
        dids, urls, limit = self.dids, self.urls, book.max_peers
        learn = book.learn
        for position, origin in enumerate(origins):
            if len(book) >= limit:
                if unnamed:
                    rest = unnamed.intersection(origins[position:])
                    for later in sorted(rest, key=self.rank_of.__getitem__):
                        learn(dids[later], urls[later], now)
                        unnamed.discard(later)
                return
            learn(dids[origin], urls[origin], now)
            unnamed.discard(origin)

    def become_matrix(self) -> None:
        """Carry on with the matrix model: exact from any state of the planner model, and
        from the set model once every node holds every hey_there (then each holds each
        origin at its hey_there's version, and nothing else exists yet)."""
        model = self.config.model
        if model == "matrix":
            return
        if model == "sets":
            if self.complete() != self.config.nodes:
                raise ValueError("the set model hands over once every node holds everything")
            self.V = np.broadcast_to(self.hey_at_off.astype(np.int32), (len(self.have),) * 2).copy()
            self.held_count[:] = len(self.have)
            self.have = []
        self.holdings = []
        self.config = dataclasses.replace(self.config, model="matrix")

    # --- the network ------------------------------------------------------------------------

    def partition(self, groups: Sequence[int] | None) -> None:
        """From now on, exchanges between nodes of different ``groups[node]`` fail (None:
        everyone reaches everyone again)."""
        self.groups = None if groups is None else np.asarray(groups, dtype=np.int64)

    def reachable(self, a: int, b: int) -> bool:
        groups = self.groups
        return groups is None or bool(groups[a] == groups[b])

    def _fails(self, caller: int, responder: int) -> bool:
        failed = self.rng.random() < self.failure_rate
        groups = self.groups
        return failed or (groups is not None and groups[caller] != groups[responder])

    # --- one round ------------------------------------------------------------------------

    def round(self, *, heartbeats: bool = False) -> RoundStats:
        """Every node runs one round; with ``heartbeats``, newspapers due are emitted first.
        A :attr:`watch` judges the views and runs the observers' duty around the exchanges."""
        config = self.config
        self.round_number += 1
        self.now_ms = now = START_MS + self.round_number * config.round_ms
        if heartbeats:
            self._emit(now)
        watch = self.watch
        if watch is not None:
            watch.before_exchanges(now)
        order = list(range(config.nodes))
        rng = self.rng
        rng.shuffle(order)
        self._bytes = self._moved = self._probes = self._reported = 0
        ok = failed = idle = 0
        index = self._index
        for caller in order:
            book = self.peers[caller]
            missing = None if watch is None else watch.missing(caller)
            peer = book.choose(now, rng.random(), missing)
            if peer is None:
                idle += 1
                continue
            responder = index[peer.url]
            if self._fails(caller, responder):
                self._bytes += self._request_bytes(caller)
                book.failed(peer.url, now, rng.random())
                failed += 1
                continue
            self._exchange(caller, responder, now)
            book.succeeded(peer.url, peer.did, now)  # as the runtime
            ok += 1
        if watch is not None:
            watch.after_exchanges(now, order)
        return RoundStats(
            round=self.round_number,
            complete=self.complete(),
            ok=ok,
            failed=failed,
            idle=idle,
            bytes=self._bytes,
            events=self._moved,
            probes=self._probes,
            reports=self._reported,
        )

    def probe(self, observer: int, subject: int, now: int) -> bool | None:
        """An exchange out of turn from ``observer`` to ``subject`` (``Mesh.probe``): whether
        it answered; None when the observer's book has no address for it."""
        book = self.peers[observer]
        peer = book.by_did(self.dids[subject])
        if peer is None:
            return None
        self._probes += 1
        responder = self._index[peer.url]
        if self._fails(observer, responder):
            self._bytes += self._request_bytes(observer)
            book.failed(peer.url, now, self.rng.random())
            return False
        self._exchange(observer, responder, now)
        book.succeeded(peer.url, peer.did, now)
        return True

    def report(self, observer: int, subject: int, now: int, last_seen_ms: int) -> Report:
        """``observer`` signs a failure report about ``subject`` at ``now``: a new event of
        its own, which it holds at once and which travels with its version."""
        if self.config.model == "sets":
            raise ValueError("the set model carries hey_theres only")
        at = now - BASE_MS
        report = self.reports.make(observer, subject, at, last_seen_ms - BASE_MS)
        self._reported += 1
        if self.config.model == "planner":
            item = Item(now, report.event_id, "unreachable", self.sizes.unreachable)
            self._events[item.event_id] = (observer, item)
            self.holdings[observer].take(self.dids[observer], item, report, self.dids)
        if self.take_log is not None:
            self.take_log.append(
                (observer, np.array([observer]), self.V[observer, [observer]].copy())
            )
        self.V[observer, observer] = max(int(self.V[observer, observer]), at)
        self._latest[observer] = max(self._latest[observer], now)
        self.latest_off[observer] = self._latest[observer] - BASE_MS
        return report

    def complete(self) -> int:
        """Nodes holding every origin's latest version."""
        if self.config.model == "sets":
            return sum(1 for have in self.have if have == self.full)
        return int(self.holding(self.latest_off).sum())

    def holding(self, versions: NDArray[np.int32] | NDArray[np.int64]) -> NDArray[np.bool_]:
        """Per node: whether it holds every origin at ``versions[origin]`` or newer."""
        V = self.V
        found = np.empty(len(V), dtype=bool)
        for rows in row_chunks(len(V), len(V)):
            found[rows] = (V[rows] >= versions).all(axis=1)
        return found

    def _request_bytes(self, caller: int) -> int:
        if self.config.model == "sets":
            return message_bytes(self.have[caller].bit_count(), 0, 0)
        return message_bytes(int(self.held_count[caller]), 0, 0)

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
            held = int(self.held_count[node])
        return exchange_budget(self.config.budget_bytes, max(len(self.peers[node]), held))

    def _exchange(self, caller: int, responder: int, now: int) -> None:
        model = self.config.model
        if model == "matrix":
            self._exchange_matrix(caller, responder, now)
        elif model == "sets":
            self._exchange_sets(caller, responder, now)
        else:
            self._exchange_planner(caller, responder, now)

    # --- the planner model -------------------------------------------------------------------

    def _exchange_planner(self, caller: int, responder: int, now: int) -> None:
        mine, theirs = self.holdings[caller], self.holdings[responder]
        spent = message_bytes(len(mine.versions), 0, 0)
        self._heard(responder, caller, now)
        reply = plan_reply(
            theirs.versions, theirs.evidence, mine.decoded(), budget_bytes=self.budget(responder)
        )
        spent += message_bytes(len(theirs.versions), len(reply.event_ids), reply.size)
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
        self._bytes += spent
        self._moved += len(reply.event_ids) + len(push.event_ids)

    def _take_planned(self, node: int, event_ids: Sequence[str], now: int) -> None:
        holdings, dids, row = self.holdings[node], self.dids, self.V[node]
        by_id = self.reports.by_id
        if self.take_log is not None:
            origins = np.unique([self._events[e][0] for e in event_ids]).astype(np.int64)
            self.take_log.append((node, origins, row[origins].copy()))
        learnt = []
        for event_id in event_ids:
            origin, item = self._events[event_id]
            report = by_id.get(event_id) if item.kind == "unreachable" else None
            did = dids[origin]
            if holdings.take(did, item, report, dids):
                learnt.append(origin)
            row[origin] = holdings.versions[did] - BASE_MS
        self.held_count[node] = len(holdings.versions)
        self._learn_many(node, learnt, now)

    # --- the matrix model ------------------------------------------------------------------

    def _plan(
        self, src: NDArray[np.int32], dst: NDArray[np.int32], budget: int
    ) -> mesh_matrix.MatrixPlan | None:
        sizes = self.sizes
        return mesh_matrix.plan(
            src,
            dst,
            budget=budget,
            hey_at=self.hey_at_off,
            hey_there_bytes=sizes.hey_there,
            newspaper_bytes=sizes.newspaper,
            report_bytes=sizes.unreachable,
            reports=self.reports.columns(),
        )

    def _exchange_matrix(self, caller: int, responder: int, now: int) -> None:
        mine, theirs = self.V[caller], self.V[responder]
        held = self.held_count
        spent = message_bytes(int(held[caller]), 0, 0)
        self._heard(responder, caller, now)
        reply = self._plan(theirs, mine, self.budget(responder))
        their_held = int(held[responder])
        moved = 0
        if reply is None:
            spent += message_bytes(their_held, 0, 0)
        else:
            spent += message_bytes(their_held, reply.events, reply.size)
            self._take_matrix(caller, reply, now)
            moved += reply.events
        # The responder's row is still what its digest said; the caller's has grown.
        push = self._plan(mine, theirs, self.budget(caller))
        if push is not None:
            self._heard(responder, caller, now)
            spent += message_bytes(None, push.events, push.size) + PUSH_ACK_BYTES
            self._take_matrix(responder, push, now)
            moved += push.events
        self._bytes += spent
        self._moved += moved

    def _take_matrix(self, node: int, plan: mesh_matrix.MatrixPlan, now: int) -> None:
        row = self.V[node]
        origins = plan.origins
        self.replies_cut += plan.cut
        self.reports_cut += plan.reports_cut
        if self.take_log is not None:
            changed = np.unique(origins)
            self.take_log.append((node, changed, row[changed].copy()))
        fresh = row[origins] < 0
        if fresh.any():
            self.held_count[node] += np.unique(origins[fresh]).size
        if plan.distinct:
            row[origins] = plan.versions
        else:
            np.maximum.at(row, origins, plan.versions.astype(np.int32))
        if plan.learnt.size:
            self._learn_many(node, plan.learnt.tolist(), now)

    # --- the set model ---------------------------------------------------------------------

    def _exchange_sets(self, caller: int, responder: int, now: int) -> None:
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
        self._bytes += spent
        self._moved += count + pushed_count

    def _per_reply(self, node: int) -> int:
        """hey_theres ``node``'s reply or push carries at most: what the planner fits in
        its budget, one at least."""
        return max(1, self.budget(node) // self.sizes.hey_there)

    def _learn_bits(self, node: int, bits: int, now: int) -> None:
        book = self.peers[node]
        unnamed = self._seeds_unnamed[node]
        origin_at_rank, rank_of = self.origin_at_rank, self.rank_of
        room = book.max_peers - len(book)
        if room > 0:
            # Of these, at most len(unnamed) are in the book already: the book is full after
            # them, or they were all there was.
            head = _lowest(bits, room + len(unnamed))
            self._learn_many(node, [origin_at_rank[r] for r in _bits(head)], now)
            bits &= ~head
        if bits and unnamed:  # full: only seeds get their DIDs
            ranks = sorted(rank_of[o] for o in unnamed if bits >> rank_of[o] & 1)
            self._learn_many(node, [origin_at_rank[r] for r in ranks], now)

    # --- heartbeats ------------------------------------------------------------------------

    def _emit(self, now: int) -> int:
        """Every node emits the newspapers due by ``now``; how many origins changed."""
        config, n = self.config, self.config.nodes
        interval = config.heartbeat_ms
        if not self._next_beat:
            start = now - config.round_ms  # even; every beat falls on an odd millisecond
            self._next_beat = [start + 2 * self.rng.randrange(interval // 2) + 1
                               for _ in range(n)]
        planner = self.config.model == "planner"
        V, latest_off, next_beat, beats = self.V, self.latest_off, self._next_beat, self._beats
        changed = 0
        for origin in range(n):
            due = next_beat[origin]
            if due > now:
                continue
            while next_beat[origin] <= now:
                due = next_beat[origin]
                next_beat[origin] += interval
                beats[origin] += 1
            if planner:
                item = Item(due, f"n{origin:06d}.{beats[origin]:06d}", "newspaper",
                            self.sizes.newspaper)
                self._events[item.event_id] = (origin, item)
                self.holdings[origin].take(self.dids[origin], item, None, self.dids)
            V[origin, origin] = due - BASE_MS
            self._latest[origin] = due
            latest_off[origin] = due - BASE_MS
            changed += 1
        return changed

    def _views(self) -> tuple[float, float, int]:
        """Share of views at their origin's latest version, the mean and the largest lag
        (ms) behind it."""
        V, latest = self.V, self.latest_off.astype(np.int64)
        current = total = worst = 0
        for rows in row_chunks(len(V), len(V)):
            block = V[rows]
            held = np.where(block >= 0, block, self.hey_at_off).astype(np.int64)
            lag = latest - held
            current += int(np.count_nonzero(lag <= 0))
            total += int(lag.sum())
            worst = max(worst, int(lag.max()))
        views = len(V) ** 2
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
        """Each node's hey_theres as a bitset (bit *i*: the *i*-th freshest), any model."""
        if self.config.model == "sets":
            return list(self.have)
        rank_of = self.rank_of
        if self.config.model == "planner":
            return [
                sum(1 << rank_of[origin] for origin, did in enumerate(self.dids)
                    if did in holdings.hey_there)
                for holdings in self.holdings
            ]
        by_rank = np.asarray(self.origin_at_rank)
        found: list[int] = []
        for rows in row_chunks(len(self.V), len(self.V)):
            packed = np.packbits(self.V[rows][:, by_rank] >= 0, axis=1, bitorder="little")
            found.extend(int.from_bytes(row.tobytes(), "little") for row in packed)
        return found

    def fingerprint(self) -> str:
        """SHA-256 over which hey_theres each node holds and, once newspapers or reports
        flow, over every node's versions: the same in every model for one seed."""
        digest = hashlib.sha256()
        width = (self.config.nodes + 7) // 8
        for have in self.held():
            digest.update(have.to_bytes(width, "big"))
        if self._next_beat or len(self.reports):
            digest.update(np.ascontiguousarray(self.V).tobytes())
        return digest.hexdigest()


def simulate(
    config: MeshSimConfig, progress: Callable[[RoundStats], None] | None = None
) -> MeshSimResult:
    """Run one simulation to convergence (and its steady state, if asked)."""
    return MeshSim(config).run(progress)
