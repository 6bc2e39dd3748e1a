"""Howdy coordination: welcoming a newcomer with about ``max_howdys`` replies, whatever N is.

When a node announces itself (``hey_there``), every node that hears it could welcome it
with a ``howdy`` listing neighbours. If all N did, a fleet restart would cost N² messages.
The coordinator decides, for one node, *whether* and *when* to reply; the runtime carries
the decisions out (:class:`~hereabouts.core.effects.ReplyDue`, then
:class:`~hereabouts.core.effects.SendHowdy`).

Rules:

1. **Only arrivals are answered.** A verified hey_there schedules a reply only if it is
   not ours, not already seen (same event id), from a boot id we did not already know for
   that DID (so it is a new peer or a restart, not a re-announcement), and at most
   ``fresh_within_s`` old on arrival (an older one is history being replayed or gossiped).
   Boot ids are learnt from every hey_there offered, stale ones included, so the runtime
   may replay its ledger through :meth:`HowdyCoordinator.on_hey_there` at start-up.
   A *rejoin* counts as an arrival too: a known boot's hey_there from a later ``session``
   than any of its hey_theres before (the node reconnected and may have missed who arrived
   meanwhile), answered only while our own connection has lasted ``rejoin_settled_s`` (so
   we were there while it was away; after a broker restart nobody was, and nobody answers).
2. **Deterministic slots.** Each responder's slot is a fraction ``u`` in ``[0, 1)`` read
   from ``SHA-256(tag ‖ hey_there id ‖ responder DID)``. Every responder gets its own,
   uniformly spread, unpredictable to others but reproducible: re-running the scheduling
   (a restarted runtime, the simulator) gives the same timers.
3. **Eager responders and deferred ones.** With ``n`` responders known to be online
   (``online_peers``) and ``K = EAGER_FACTOR × max_howdys`` (40 by default), a responder
   whose ``u < K / n`` is *eager* and fires in the first window ``[0, J)`` at
   ``u·n/K·J``; every other one is *deferred* to the second window ``[J, 2J)``. With
   ``n ≤ K`` or ``n`` unknown, everyone is eager. About K responders are eager whatever
   n is.
4. **Count, then decide.** A howdy counts for a hey_there only if it is verified (a
   :class:`~hereabouts.events.SignedEvent`), answers that hey_there's id, is addressed to
   its emitter, is not from the newcomer itself, and comes from a responder the runtime
   *trusts* to welcome (a member of an invited network, or a key heard long enough: see
   :mod:`hereabouts.peers.trust`), so ten fresh keys cannot silence the real welcomes.
   Responders are counted by DID, so one responder sending twenty howdys counts once.
   When a timer fires, the node replies only if fewer than ``max_howdys`` responders were
   counted. A howdy that arrives before the hey_there it answers is not held back for
   later: responders wait out their slots after hearing the hey_there, so on one broker
   that order does not happen.
5. **What a reply says.** Up to ``max_neighbours`` (never more than the wire's ten)
   neighbours the newcomer was not already told about by the howdys counted so far, each
   in its own signed words: its latest hey_there and, when newer, its latest event (a
   heartbeat, a chau, the ``lost`` will that made it MISSING), so the newcomer sees it as
   everyone else does at once, however old its hey_there. Ourselves first, then ONLINE
   before MISSING before OFFLINE, trusted keys before new ones, least recently active first
   (the busy ones will be heard from soon anyway; the quiet ones might not speak for
   minutes), within the event size limit.
6. **A budget.** A node sends at most ``budget_burst`` howdys at once and one more every
   ``budget_refill_s``; a timer that finds the budget spent stays silent (``over_budget``).
   Newcomers are fresh keys, so a flood of fresh keys looks like a crowd of newcomers: the
   budget is what bounds the replies it can draw, ``N · (burst + t / refill)`` for N nodes
   over t seconds, while ordinary joins (about ``max_howdys`` replies spread over the
   whole fleet) never come near it.
7. **Bounded memory.** At most ``remember`` hey_there ids and ``remember`` (DID, boot)
   pairs are kept; the oldest are forgotten first. A timer for a forgotten hey_there does
   nothing.

Why deferred rather than silent (the maths)
-------------------------------------------
Let L be the broker latency (a howdy sent at t is counted by everyone at t + L), J the
spread (``jitter_max_s``), M = ``max_howdys`` and R the number of responders firing in the
first window. With slot times uniform on ``[0, J)``, responder i replies iff fewer than M
replies were sent before ``t_i − L``. The first M always reply; after the M-th, at time
``T_M``, everyone firing before ``T_M + L`` replies too, and no one after. So::

    replies = #{ i : t_i < T_M + L }
    E[replies] = M + (R − M) · E[min(1, L / (J − T_M))]   ≤   M + R · L / J

(exact while L ≤ J − T_M, using E[1 / (1 − B)] = R / (R − M) for T_M = J·Beta(M, R − M + 1)).
If every responder were eager, R = N and the surplus grows linearly: 10,000 nodes behind a
5 ms broker send 26.7 replies per join, 177 behind a 50 ms cluster. With eager responders
R ≈ K = 40 whatever N is: 10.07 replies at 5 ms, 10.7 at 50 ms. The welcome is also quicker:
the M-th reply goes out near ``J·M / (R + 1)`` (about J / 4), not spread over the window.

Deferred nodes could skip scheduling outright, for the same message count: in the usual case
they fire after the eager window has long delivered its M replies and send nothing. Keeping
them as a second window costs one local timer each, and buys the guarantee that matters: a
newcomer is always welcomed by ``min(N, max_howdys)`` responders, even when our view of who
is online is wrong (peers gone silent but not yet MISSING, a partition) and fewer than M of
the eager ones are really there. In that rare case the second window behaves like the plain
scheme (R = n − K), which is the price of never leaving a newcomer alone.

The formula is :func:`expected_replies`; the tests check it with a discrete-event simulation.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from hereabouts.config import HowdyConfig, WireLimits
from hereabouts.core.effects import ReplyDue, SendHowdy, Status, Vouch
from hereabouts.errors import LocalError
from hereabouts.events import MAX_HOWDY_NEIGHBOURS, HeyThere, Howdy, SignedEvent

EAGER_FACTOR: Final = 4
"""Eager responders per howdy wanted (see rule 3): ``K = 4 × max_howdys``. The surplus grows
with K (``K·L/J``: 0.07 replies at 5 ms) and the welcome delay shrinks with it (``J·M/K``:
750 ms for the defaults); four also leaves room for a view that overcounts: even if only a
third of the eager responders are really there, about 13 > 10 still are."""

HOWDY_OVERHEAD_BYTES: Final = 1024
"""Room kept in a howdy for everything but its neighbours: the header (name, DIDs, boot id,
ids: under 600 bytes at their limits) and the envelope (signer and signature: under 250)."""

_SLOT_TAG: Final = b"hereabouts/v1/howdy-slot\n"
_STATUS_RANK: Final = {Status.ONLINE: 0, Status.MISSING: 1, Status.OFFLINE: 2}

# What became of a remembered hey_there.
_PENDING, _ANSWERED, _SUPPRESSED, _IGNORED = "pending", "answered", "suppressed", "ignored"

RANKED_SPARE: Final = 3
"""Candidates ranked per neighbour slot: a few spares for neighbours whose events are too
big for what is left of the message, without sorting every peer."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A neighbour we could vouch for: one row of the projection."""

    did: str
    status: Status
    last_event_at_ms: int
    trusted: bool = True
    """A member, or a key heard long enough; new keys are vouched for after trusted ones."""


Evidence = Callable[[str], Vouch | None]
"""The runtime's look-up of a neighbour's sealed hey_there and latest event (None when it
has no hey_there of it)."""


def slot_fraction(hey_there_id: str, responder_did: str) -> float:
    """The responder's place in ``[0, 1)`` for this hey_there (rule 2)."""
    digest = hashlib.sha256(
        _SLOT_TAG + hey_there_id.encode() + b"\n" + responder_did.encode()
    ).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def reply_delay_ms(
    fraction: float, *, jitter_max_ms: int, online_peers: int | None, eager: int
) -> int:
    """How long after the hey_there arrived the responder at ``fraction`` decides (rule 3)."""
    share = 1.0 if online_peers is None or online_peers <= eager else eager / online_peers
    if fraction < share:
        return int(fraction / share * jitter_max_ms)
    return jitter_max_ms + int((fraction - share) / (1.0 - share) * jitter_max_ms)


def expected_replies(
    responders: int, *, latency_s: float, config: HowdyConfig, eager_factor: int = EAGER_FACTOR
) -> float:
    """Upper bound on the mean number of howdys per join: ``M + R·L/J`` (module docstring).

    ``responders`` is N, the nodes that hear the hey_there. Meant for ``L`` well below ``J``;
    never more than N.
    """
    m = config.max_howdys
    if responders <= m:
        return float(responders)
    eager = min(responders, eager_factor * m)
    if config.jitter_max_s <= 0:
        return float(responders) if latency_s > 0 else float(m)
    return min(float(responders), m + eager * latency_s / config.jitter_max_s)


STATS: Final = (
    "scheduled",
    "sent",
    "suppressed",
    "over_budget",
    "untrusted",
    "ignored_own",
    "ignored_replayed",
    "ignored_known_boot",
    "rejoin",
    "ignored_rejoin",
    "ignored_stale",
    "counted",
    "repeated",
    "unknown",
    "fake",
    "to_us",
    "forgotten",
)
"""Counter names of :meth:`HowdyCoordinator.stats`, stable for metrics labels:

* ``scheduled`` — hey_theres that got a :class:`ReplyDue`;
* ``sent`` / ``suppressed`` — timers that replied / stayed silent because ``max_howdys``
  responders had been counted first;
* ``over_budget`` — timers that stayed silent because the budget was spent (rule 6);
* ``untrusted`` — howdys not counted because their responder is not trusted to welcome;
* ``ignored_own``, ``ignored_replayed``, ``ignored_known_boot``, ``ignored_stale`` —
  hey_theres that triggered nothing, by rule;
* ``counted`` / ``repeated`` — howdys counted / not counted again because their responder
  had already been counted;
* ``unknown`` — howdys that answer a hey_there id we do not know, so they cannot count:
  forged, or answering a hey_there we never saw (it came before we subscribed) or already
  forgot. A node that joined late sees many of these; they are not an attack by themselves;
* ``fake`` — howdys that answer a known hey_there but cannot be genuine welcomes: addressed
  to someone other than its emitter, or sent by the newcomer itself. Never counted;
* ``to_us`` — howdys welcoming us;
* ``forgotten`` — timers whose hey_there had been forgotten (memory bound) before they fell due.
"""


class _Arrival:
    """One remembered hey_there; the sets exist only while a reply is pending."""

    __slots__ = ("at_ms", "newcomer", "responders", "state", "told")

    def __init__(self, newcomer: str, at_ms: int) -> None:
        self.newcomer = newcomer
        self.at_ms = at_ms
        self.state = _IGNORED
        self.responders: set[str] = set()
        self.told: set[str] = set()

    def settle(self, state: str) -> None:
        self.state = state
        self.responders = set()
        self.told = set()


class HowdyCoordinator:
    """Decides, for one node, which newcomers to welcome and when (see the module rules).

    Sans-I/O: the runtime passes verified events and the time in, schedules the
    :class:`ReplyDue` timers it gets back, and publishes the :class:`SendHowdy` replies.
    """

    def __init__(
        self,
        config: HowdyConfig | None = None,
        *,
        self_did: str,
        max_event_bytes: int = WireLimits().max_event_bytes,
        eager_factor: int = EAGER_FACTOR,
        slot: Callable[[str, str], float] = slot_fraction,
    ) -> None:
        """``self_did`` is our own DID. ``max_event_bytes`` is the wire limit our howdys
        must fit (``WireLimits.max_event_bytes``, 16 KiB by default); ``eager_factor`` is
        :data:`EAGER_FACTOR` unless a simulation explores another. ``slot`` gives a
        responder's place for a hey_there (rule 2); the simulator passes its own seeded
        uniform draws, which are distributed as the hash's outputs are."""
        if eager_factor < 1:
            raise LocalError("eager_factor must be at least 1")
        self._config = config or HowdyConfig()
        self._self_did = self_did
        self._max = self._config.max_howdys
        self._neighbours_max = min(self._config.max_neighbours, MAX_HOWDY_NEIGHBOURS)
        self._neighbour_bytes = max(0, max_event_bytes - HOWDY_OVERHEAD_BYTES)
        self._jitter_ms = int(self._config.jitter_max_s * 1000)
        self._fresh_ms = int(self._config.fresh_within_s * 1000)
        self._eager = eager_factor * self._max
        self._slot = slot
        # Newcomers are told about at most max_howdys x 10 neighbours before we stop caring.
        self._told_max = self._max * MAX_HOWDY_NEIGHBOURS
        self._arrivals: OrderedDict[str, _Arrival] = OrderedDict()
        self._boots: OrderedDict[tuple[str, str], int] = OrderedDict()  # -> latest session
        self._rejoin_ms = int(self._config.rejoin_settled_s * 1000)
        self._stats: dict[str, int] = dict.fromkeys(STATS, 0)
        self._budget = float(self._config.budget_burst)
        self._budget_at_ms: int | None = None
        self._refill_ms = self._config.budget_refill_s * 1000

    # --- inputs -------------------------------------------------------------------------

    def on_hey_there(
        self,
        signed: SignedEvent,
        now_ms: int,
        *,
        online_peers: int | None = None,
        connected_since_ms: int | None = None,
    ) -> ReplyDue | None:
        """A verified hey_there arrived; return when to decide on a reply, or None (rule 1).

        ``online_peers`` is how many nodes we believe hear this hey_there and may answer it
        (the ONLINE peers of our projection, ourselves included); None (unknown) makes every
        node eager, which is right for small fleets and costs extra replies in large ones.
        ``connected_since_ms``: when our current plaza connection began (None: not on the
        plaza), which decides whether we answer rejoins.
        """
        event = signed.event
        if not isinstance(event, HeyThere):
            raise LocalError(f"on_hey_there was given a {signed.kind} event")
        if signed.did == self._self_did:
            self._stats["ignored_own"] += 1
            return None
        if signed.id in self._arrivals:
            self._stats["ignored_replayed"] += 1
            return None
        arrival = _Arrival(signed.did, now_ms)
        self._remember(signed.id, arrival)
        boot = (signed.did, event.boot_id)
        session = self._boots.get(boot)
        if session is not None:
            if event.session <= session:
                self._stats["ignored_known_boot"] += 1
                return None
            self._boots[boot] = event.session
            settled = connected_since_ms is not None and (
                now_ms - connected_since_ms >= self._rejoin_ms
            )
            if not settled:
                self._stats["ignored_rejoin"] += 1
                return None
            self._stats["rejoin"] += 1
        else:
            self._boots[boot] = event.session
            if len(self._boots) > self._config.remember:
                self._boots.popitem(last=False)
        if now_ms - event.at_ms > self._fresh_ms:
            self._stats["ignored_stale"] += 1
            return None
        arrival.state = _PENDING
        fraction = self._slot(signed.id, self._self_did)
        delay = reply_delay_ms(
            fraction, jitter_max_ms=self._jitter_ms, online_peers=online_peers, eager=self._eager
        )
        self._stats["scheduled"] += 1
        return ReplyDue(hey_there_id=signed.id, at_ms=now_ms + delay)

    def on_howdy(
        self,
        signed: SignedEvent,
        now_ms: int,
        *,
        neighbour_dids: Iterable[str] = (),
        trusted: bool = True,
    ) -> None:
        """A verified howdy arrived; count it for the hey_there it answers (rule 4).

        ``neighbour_dids`` are the DIDs of the neighbours it listed whose sealed hey_theres
        verified; the newcomer has been told about those, so our reply will not repeat them.
        ``trusted`` says whether its responder may count towards ``max_howdys``.
        Howdys addressed to us are the runtime's business and only counted as ``to_us``.
        """
        event = signed.event
        if not isinstance(event, Howdy):
            raise LocalError(f"on_howdy was given a {signed.kind} event")
        if event.to_did == self._self_did:
            self._stats["to_us"] += 1
            return
        arrival = self._arrivals.get(event.answers)
        if arrival is None:
            self._stats["unknown"] += 1
            return
        if event.to_did != arrival.newcomer or signed.did == arrival.newcomer:
            self._stats["fake"] += 1
            return
        if arrival.state != _PENDING:
            return  # we have decided already; nothing left to count for
        if not trusted:
            self._stats["untrusted"] += 1
        elif signed.did in arrival.responders:
            self._stats["repeated"] += 1  # its neighbours were still told, below
        else:
            self._stats["counted"] += 1
            if len(arrival.responders) < self._max:  # past the cap, the count is all we need
                arrival.responders.add(signed.did)
        if len(arrival.responders) >= self._max:
            arrival.told = set()  # we will not reply, so who was told no longer matters
            return
        for did in neighbour_dids:
            if len(arrival.told) >= self._told_max:
                break
            arrival.told.add(did)

    def on_timer(
        self,
        hey_there_id: str,
        now_ms: int,
        candidates: Iterable[Candidate],
        evidence: Evidence,
    ) -> SendHowdy | None:
        """A :class:`ReplyDue` fell due: reply unless ``max_howdys`` responders beat us or
        the budget is spent.

        ``candidates`` are the neighbours we could vouch for (our projection's peers);
        include ourselves, since the howdy proves we are here but only our hey_there gives
        the newcomer our endpoints (rule 5). ``evidence`` fetches the sealed events of the
        few that are picked.
        """
        arrival = self._arrivals.get(hey_there_id)
        if arrival is None:
            self._stats["forgotten"] += 1
            return None
        if arrival.state != _PENDING:
            return None
        if len(arrival.responders) >= self._max:
            arrival.settle(_SUPPRESSED)
            self._stats["suppressed"] += 1
            return None
        if not self._spend(now_ms):
            arrival.settle(_SUPPRESSED)
            self._stats["over_budget"] += 1
            return None
        neighbours = self._pick(arrival, candidates, evidence)
        arrival.settle(_ANSWERED)
        self._stats["sent"] += 1
        return SendHowdy(hey_there_id=hey_there_id, to_did=arrival.newcomer, neighbours=neighbours)

    # --- outputs ------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Counters by outcome (keys: :data:`STATS`), for the runtime's metrics."""
        return dict(self._stats)

    def counted(self, hey_there_id: str) -> int:
        """Distinct verified responders counted so far for a pending hey_there (else 0)."""
        arrival = self._arrivals.get(hey_there_id)
        return 0 if arrival is None else len(arrival.responders)

    def arrival_ms(self, hey_there_id: str) -> int | None:
        """When a remembered hey_there arrived (our clock), or None."""
        arrival = self._arrivals.get(hey_there_id)
        return None if arrival is None else arrival.at_ms

    def __len__(self) -> int:
        """How many hey_there ids are remembered (at most ``remember``)."""
        return len(self._arrivals)

    # --- the rules ----------------------------------------------------------------------

    def _remember(self, hey_there_id: str, arrival: _Arrival) -> None:
        self._arrivals[hey_there_id] = arrival
        if len(self._arrivals) > self._config.remember:
            self._arrivals.popitem(last=False)

    def budget_left(self, now_ms: int) -> float:
        """Howdys this node could send now (rule 6)."""
        self._refill(now_ms)
        return self._budget

    def _refill(self, now_ms: int) -> None:
        if self._budget_at_ms is not None and self._refill_ms > 0:
            earned = max(0, now_ms - self._budget_at_ms) / self._refill_ms
            self._budget = min(float(self._config.budget_burst), self._budget + earned)
        self._budget_at_ms = now_ms

    def _spend(self, now_ms: int) -> bool:
        self._refill(now_ms)
        if self._budget < 1.0:
            return False
        self._budget -= 1.0
        return True

    def _pick(
        self, arrival: _Arrival, candidates: Iterable[Candidate], evidence: Evidence
    ) -> tuple[Vouch, ...]:
        skip = arrival.told | {arrival.newcomer}
        ranked = heapq.nsmallest(
            self._neighbours_max * RANKED_SPARE,
            (c for c in candidates if c.did not in skip),
            key=lambda c: (
                c.did != self._self_did,
                _STATUS_RANK.get(c.status, len(_STATUS_RANK)),
                not c.trusted,
                c.last_event_at_ms,
                c.did,
            ),
        )
        picked: list[Vouch] = []
        chosen: set[str] = set()
        budget = self._neighbour_bytes
        for candidate in ranked:
            if candidate.did in chosen:
                continue
            vouch = evidence(candidate.did)
            if vouch is None:
                continue
            # {"hey_there":…,"latest":…} and a comma
            size = len(vouch.hey_there) + len(vouch.latest or b"null") + 27
            if size <= budget:
                picked.append(vouch)
                chosen.add(candidate.did)
                budget -= size
                if len(picked) == self._neighbours_max:
                    break
        return tuple(picked)


__all__ = [
    "EAGER_FACTOR",
    "STATS",
    "Candidate",
    "HowdyCoordinator",
    "ReplyDue",
    "SendHowdy",
    "Vouch",
    "expected_replies",
    "reply_delay_ms",
    "slot_fraction",
]
