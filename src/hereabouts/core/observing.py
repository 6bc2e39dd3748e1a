"""The observer's duty, sans-I/O: which quiet mesh nodes this node must probe now.

Once a round, a node looks for subjects it has not heard from for ``report_after_ms``,
longest silent first, and ranks each one's observers (rendezvous hashing, O(N), so at most
:data:`CHECKS_PER_ROUND` a round and each silence once). The subjects it is an assigned
observer of are due for a probe (:mod:`hereabouts.core.suspicion`); the runtime
(:mod:`hereabouts.peers.mesh.observe`) and the simulation probe them.
"""

from __future__ import annotations

from typing import Final

from hereabouts.core.effects import Status
from hereabouts.core.projection import Projection

CHECKS_PER_ROUND: Final = 16
"""Silent subjects whose observers are ranked per round (each ranking hashes every
candidate): a crash of many nodes at once is worked through over a few rounds."""

MAX_REMEMBERED: Final = 4096
"""Silences remembered as handled; past this the table is rebuilt from the subjects still
silent, so it is bounded whatever comes and goes."""


class ObserverDuty:
    """What one node owes as an observer; pass the time in."""

    def __init__(self, *, did: str, projection: Projection, report_after_ms: int) -> None:
        self._did = did
        self._projection = projection
        self._report_after_ms = report_after_ms
        self._handled: dict[str, int] = {}  # subject -> the latest event of its silence

    def due(self, now_ms: int) -> list[tuple[str, int]]:
        """``(subject, last_seen_ms)`` to probe now: silent subjects on the mesh that we
        are an assigned observer of, each silence once (a subject that speaks again starts
        a new silence)."""
        projection, handled = self._projection, self._handled
        silent = []
        for did in projection.dids():
            if did == self._did or projection.reported(did) is not Status.ONLINE:
                continue
            if projection.transport_of(did) in (None, "plaza"):
                continue
            last = projection.last_event_ms(did)
            if now_ms - last >= self._report_after_ms and handled.get(did) != last:
                silent.append((last, did))
        if len(handled) > MAX_REMEMBERED:
            still = {did for _, did in silent}
            self._handled = handled = {d: t for d, t in handled.items() if d in still}
        silent.sort()
        due = []
        for last, did in silent[:CHECKS_PER_ROUND]:
            handled[did] = last
            if self._did in projection.observers(did):
                due.append((did, last))
        return due


__all__ = ["CHECKS_PER_ROUND", "ObserverDuty"]
