"""The observer's duty: probe the mesh nodes we are assigned to watch once they go quiet,
and report the ones that do not answer (the rules: :mod:`hereabouts.core.suspicion`).

Once a round, a node looks for subjects it has not heard from for ``report_after_s``,
longest silent first, and ranks each one's observers (rendezvous hashing, O(N), so at most
:data:`CHECKS_PER_ROUND` a round and each silence once). If it is one of them, it probes
the subject with a sync exchange out of turn: an answer brings the subject's latest news
(nothing to report), a failure makes a signed ``unreachable`` report that travels like any
event. A subject is probed once per silence: until it speaks again, the report stands.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

from hereabouts.core.effects import Status
from hereabouts.core.projection import Projection
from hereabouts.metrics import Counters
from hereabouts.peers.mesh.runtime import Mesh

log = logging.getLogger(__name__)

CHECKS_PER_ROUND: Final = 16
"""Silent subjects whose observers are ranked per round (each ranking hashes every
candidate): a crash of many nodes at once is worked through over a few rounds."""

MAX_REMEMBERED: Final = 4096
"""Silences remembered as handled; past this the table is rebuilt from the subjects still
silent, so it is bounded whatever comes and goes."""

COUNTER_HELP: Final = {
    "failure_reports": (
        "Failure reports: probes of silent subjects we observe, and their outcome.",
        "outcome",
    ),
}


class Observer:
    """Probes and reports for one node. ``report(did, last_seen_ms)`` signs and sends a
    report (the node's publishing path)."""

    def __init__(
        self,
        *,
        did: str,
        projection: Projection,
        mesh: Mesh,
        report: Callable[[str, int], Awaitable[object]],
        report_after_s: float,
        counters: Counters,
    ) -> None:
        self._did = did
        self._projection = projection
        self._mesh = mesh
        self._report = report
        self._report_after_ms = int(report_after_s * 1000)
        self._counters = counters
        for name, (help_text, label) in COUNTER_HELP.items():
            counters.describe(name, help_text, label)
        self._handled: dict[str, int] = {}  # subject -> the latest event of its silence

    def due(self, now_ms: int) -> list[tuple[str, int]]:
        """``(subject, last_seen_ms)`` we must probe now: silent subjects on the mesh we are
        an assigned observer of, each silence once."""
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

    async def round(self, now_ms: int) -> None:
        """Probe every subject :meth:`due` names; report those that do not answer."""
        for did, last in self.due(now_ms):
            if self._mesh.peers.by_did(did) is None:
                self._counters.add("failure_reports", "no_address")
                continue
            if await self._mesh.probe(did):
                self._counters.add("failure_reports", "answered")
                continue
            if self._projection.last_event_ms(did) != last:
                self._counters.add("failure_reports", "answered")  # its news came meanwhile
                continue
            await self._report(did, last)
            self._counters.add("failure_reports", "reported")
            log.info("reported %s unreachable (silent since %d)", did, last)


__all__ = ["CHECKS_PER_ROUND", "Observer"]
