"""The observer's duty, over the network: probe the quiet mesh nodes we are assigned to
watch (:class:`hereabouts.core.observing.ObserverDuty` says which), and report the ones
that do not answer (the rules: :mod:`hereabouts.core.suspicion`).

A probe is a sync exchange out of turn: an answer brings the subject's latest news
(nothing to report), a failure makes a signed ``unreachable`` report that travels like any
event. A subject is probed once per silence: until it speaks again, the report stands.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from hereabouts.core.observing import ObserverDuty
from hereabouts.core.projection import Projection
from hereabouts.metrics import Counters
from hereabouts.peers.mesh.runtime import Mesh

log = logging.getLogger(__name__)

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
        self._duty = ObserverDuty(
            did=did, projection=projection, report_after_ms=int(report_after_s * 1000)
        )
        self._projection = projection
        self._mesh = mesh
        self._report = report
        self._counters = counters

    async def round(self, now_ms: int) -> None:
        """Probe every subject the duty names; report those that do not answer."""
        for did, last in self._duty.due(now_ms):
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


__all__ = ["Observer"]
