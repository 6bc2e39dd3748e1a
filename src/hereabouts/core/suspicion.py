"""Failure reports: who watches a mesh node, and how agreeing reports shorten its silence.

A mesh-only node that crashes says nothing, and its peers would wait out the whole mesh
threshold (an hour by default: its news may legitimately take that long to cross a large
mesh) before calling it MISSING. Lifeguard's answer, made safe against liars:

* **Assigned observers.** Each subject has :data:`OBSERVERS` observers, chosen by
  rendezvous hashing (:mod:`hereabouts.core.rendezvous`) among the mesh nodes a node sees
  ONLINE whose keys are proven (so fresh keys, however many, watch nobody). Everyone who
  sees the same candidates agrees on them without talking.
* **Reports.** An observer that has heard nothing from its subject for a while probes it
  directly and, if the probe fails, signs an ``unreachable`` report naming the subject and
  the time of the subject's latest event it held. Reports travel like any event.
* **Counting.** A node counts the reports about a subject from its assigned observers,
  each observer once, that are no older than the subject's latest news (a subject that
  spoke since has answered them). Below :data:`QUORUM` they change nothing: one liar, or
  two, cannot shorten anyone's threshold. From the quorum on, the threshold shrinks with
  every further confirmation (:func:`missing_after_ms`), down to ``shortest_ms``.
* **Why a liar quorum still cannot kill a live node.** The shortest threshold is checked
  (:class:`hereabouts.config.Config`) to exceed the quiet heartbeat interval several
  times, and silence is measured from the subject's own latest event: a live node whose
  heartbeats reach us is never silent that long, whatever is reported about it. Reports
  only decide *how long* to wait for a node that has really gone quiet.

Pure functions and constants; the projection keeps the reports and the runtime probes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final

from hereabouts.core import rendezvous

OBSERVERS: Final = 5
"""Observers assigned to each subject: Rapid's and Lifeguard's order of magnitude, enough
that a quorum survives two observers being down or lying."""

QUORUM: Final = 3
"""Reports from distinct assigned observers needed before the threshold shortens at all."""

MAX_REPORTS_KEPT: Final = 16
"""Reports kept per reporter (its latest about each subject, the most recent subjects) and
per subject (the most recent reporters): bounded whatever a key sends."""


def observers_of(subject: str, candidates: Iterable[str]) -> list[str]:
    """The subject's assigned observers (DIDs) among ``candidates``, best first; the
    subject never observes itself."""
    return rendezvous.chosen(
        rendezvous.OBSERVE, subject, (c for c in candidates if c != subject), OBSERVERS
    )


def missing_after_ms(full_ms: int, shortest_ms: int, confirmations: int) -> int:
    """The silence after which a subject reads as MISSING, given how many of its assigned
    observers report it unreachable: ``full_ms`` below :data:`QUORUM`; then Lifeguard's
    curve, ``full - (full - shortest) x log(c + 1) / log(OBSERVERS + 1)``, so each further
    independent report shortens it by less, reaching ``shortest_ms`` when all agree."""
    if confirmations < QUORUM or shortest_ms >= full_ms:
        return full_ms
    share = math.log(min(confirmations, OBSERVERS) + 1) / math.log(OBSERVERS + 1)
    return max(shortest_ms, int(full_ms - (full_ms - shortest_ms) * share))


def report_problem(reporter: str, subject: str, at_ms: int, last_seen_ms: int) -> str | None:
    """Why a failure report is refused before it is stored, or None: a node reporting
    itself, or claiming to have seen its subject later than it wrote the report (which would
    keep the report standing against the subject's next heartbeats)."""
    if subject == reporter:
        return "a node cannot report itself unreachable"
    if last_seen_ms > at_ms:
        return "a report cannot have seen its subject after it was written"
    return None


__all__ = [
    "MAX_REPORTS_KEPT",
    "OBSERVERS",
    "QUORUM",
    "missing_after_ms",
    "observers_of",
    "report_problem",
]
