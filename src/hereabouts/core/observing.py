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

CHECKS_PER_ROUND: Final = 64
"""Silent subjects whose observers are looked up per round. A lookup reuses the
projection's ranking while the candidates stay the same, and ranks afresh (O(N)) when they
changed: a crash of many nodes at once is worked through over a few rounds."""

MAX_REMEMBERED: Final = 4096
"""Silences remembered; past this, those whose subject has spoken since are forgotten,
then the oldest, so the table stays bounded whatever comes and goes."""


class ObserverDuty:
    """What one node owes as an observer; pass the time in."""

    def __init__(self, *, did: str, projection: Projection, report_after_ms: int) -> None:
        self._did = did
        self._projection = projection
        self._report_after_ms = report_after_ms
        # subject -> (the latest event of its silence, whether we observe it, at which
        # observers epoch we looked): each silence is probed once, and looked at again
        # only when the candidates change (an observer may have gone since).
        self._looked: dict[str, tuple[int, bool, tuple[int, int]]] = {}

    def due(self, now_ms: int) -> list[tuple[str, int]]:
        """``(subject, last_seen_ms)`` to probe now: silent subjects on the mesh that we
        are an assigned observer of, each silence once (a subject that speaks again starts
        a new silence)."""
        projection, looked = self._projection, self._looked
        epoch = projection.observers_version
        silent = []
        for did in projection.dids():
            if did == self._did or projection.reported(did) is not Status.ONLINE:
                continue
            if projection.transport_of(did) in (None, "plaza"):
                continue
            last = projection.last_event_ms(did)
            if now_ms - last < self._report_after_ms:
                continue
            seen = looked.get(did)
            if seen is not None and seen[0] == last and (seen[1] or seen[2] == epoch):
                continue  # probed this silence already, or not ours and nothing changed
            silent.append((last, did))
        silent.sort()
        due = []
        for last, did in silent[:CHECKS_PER_ROUND]:
            ours = self._did in projection.observers(did, now_ms)
            looked[did] = (last, ours, epoch)
            if ours:
                due.append((did, last))
        if len(looked) > MAX_REMEMBERED:
            self._trim()
        return due

    def _trim(self) -> None:
        projection, looked = self._projection, self._looked
        for did in [d for d, seen in looked.items() if projection.last_event_ms(d) != seen[0]]:
            del looked[did]  # spoke since (or forgotten): a new silence starts afresh
        while len(looked) > MAX_REMEMBERED:
            del looked[min(looked, key=lambda d: (looked[d][0], d))]


__all__ = ["CHECKS_PER_ROUND", "ObserverDuty"]
