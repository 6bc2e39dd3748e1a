"""Lazy responders: who answers a hey_there, found without waking every node.

Every node that hears a hey_there gets a slot, and its coordinator replies when the slot
falls due unless ``max_howdys`` trusted howdys reached it first. Woken one by one, N nodes
per hey_there cost N² coordinator calls over a fleet start (10^8 at 10,000 nodes). But only
the first few slots ever act: once ``max_howdys`` trusted howdys have been sent, every node
has counted them ``Latency.max_ms`` later, and every slot after that is suppressed.

So the simulator draws every hearing node's slot at once (numpy), orders the nodes by when
their timer falls due, and wakes them in that order. Each woken node runs its real
:class:`~hereabouts.core.howdy.HowdyCoordinator`: it is given the hey_there (with this
draw as its slot), every howdy that reached it between its hey_there and its timer, and then
its timer, and it decides. Waking stops at the first node whose timer falls due after the
*closing time*: ``Latency.max_ms`` after the ``max_howdys``-th trusted howdy was sent. One
broker hands each subscriber its messages in the order they were published, so a howdy
never reaches a node before the hey_there it answers; by the closing time every node has
counted ``max_howdys`` trusted howdys, and every node after it would stay silent. They are
counted as suppressed without being woken. This is exact, not an approximation, under the
bounded-latency model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hereabouts.events import SignedEvent

FIRST_BATCH = 256
"""Candidates put in order at first (a partial sort); the rest only if waking gets there."""


@dataclass(frozen=True, slots=True)
class SentHowdy:
    serial: int
    """Names the howdy for its deliveries' delays (:meth:`Latency.keyed`)."""
    sent_ms: int
    responder: int
    signed: SignedEvent
    neighbour_dids: tuple[str, ...]
    trusted: bool


@dataclass(slots=True)
class Welcome:
    """One hey_there being answered."""

    signed: SignedEvent
    newcomer: int
    sent_ms: int
    nodes: np.ndarray
    """Hearing nodes, in the order their timers fall due (sorted lazily)."""
    arrivals: np.ndarray
    """When each of ``nodes`` got the hey_there."""
    due: np.ndarray
    """When each timer falls due (by the same formula the coordinator uses)."""
    fractions: np.ndarray
    sorted_upto: int
    position: int = 0
    howdys: list[SentHowdy] = field(default_factory=list)
    closing_count: int = 0
    closed_ms: int | None = None
    woken: int = 0
    ignored: int = 0

    @classmethod
    def start(
        cls,
        signed: SignedEvent,
        newcomer: int,
        sent_ms: int,
        nodes: np.ndarray,
        arrivals: np.ndarray,
        due: np.ndarray,
        fractions: np.ndarray,
    ) -> Welcome:
        count = len(nodes)
        if count > FIRST_BATCH:
            head = np.argpartition(due, FIRST_BATCH)[:FIRST_BATCH]
            head = head[np.argsort(due[head], kind="stable")]
            rest = np.setdiff1d(np.arange(count), head, assume_unique=True)
            order = np.concatenate([head, rest])
            sorted_upto = FIRST_BATCH
        else:
            order = np.argsort(due, kind="stable")
            sorted_upto = count
        return cls(
            signed=signed,
            newcomer=newcomer,
            sent_ms=sent_ms,
            nodes=nodes[order],
            arrivals=arrivals[order],
            due=due[order],
            fractions=fractions[order],
            sorted_upto=sorted_upto,
        )

    def next_due(self) -> int | None:
        """When the next candidate's timer falls due; None when none is left."""
        if self.position >= len(self.nodes):
            return None
        if self.position >= self.sorted_upto:
            tail = slice(self.sorted_upto, None)
            order = np.argsort(self.due[tail], kind="stable")
            for name in ("nodes", "arrivals", "due", "fractions"):
                values = getattr(self, name)
                values[tail] = values[tail][order]
            self.sorted_upto = len(self.nodes)
        return int(self.due[self.position])

    def sent(self, howdy: SentHowdy, max_howdys: int, latency_max_ms: int) -> None:
        """A howdy answering this hey_there was published."""
        self.howdys.append(howdy)
        if howdy.trusted:
            self.closing_count += 1
            if self.closing_count == max_howdys:
                self.closed_ms = howdy.sent_ms + latency_max_ms

    def left_unwoken(self) -> int:
        return len(self.nodes) - self.position


__all__ = ["FIRST_BATCH", "SentHowdy", "Welcome"]
