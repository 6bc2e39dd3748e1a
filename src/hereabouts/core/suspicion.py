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

Pure functions, constants and the bounded book of reports the projection keeps; the
runtime probes (:mod:`hereabouts.peers.mesh.observe`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable
from typing import Final

from hereabouts.core import rendezvous

OBSERVERS: Final = 5
"""Observers assigned to each subject: Rapid's and Lifeguard's order of magnitude, enough
that a quorum survives two observers being down or lying."""

QUORUM: Final = 3
"""Reports from distinct assigned observers needed before the threshold shortens at all."""

MAX_REPORTS_KEPT: Final = 16
"""Reports kept per reporter: its latest about each subject, for its most recent subjects.
They are its evidence, carried on to peers whether or not they count here."""

MAX_REPORTERS_COUNTED: Final = 64
"""Reporters indexed per subject for counting. Past this, the oldest report from a key
that is not one of the subject's assigned observers goes first: keys that may observe
but are not assigned cannot push the observers' reports out."""

OBSERVERS_TTL_MS: Final = 60_000
"""How long a subject's ranked observers are reused while the candidates seem unchanged
(keys proven meanwhile join within this)."""


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


class ReportBook:
    """The failure reports a node holds, bounded: by reporter (each one's latest about each
    subject, :data:`MAX_REPORTS_KEPT` subjects at most; they travel on as the reporter's
    evidence) and, for reporters that may observe, by subject (what is counted). A report
    is kept whether or not its subject is known yet, so what counts does not depend on the
    order events arrive in."""

    __slots__ = ("_about", "_made")

    def __init__(self) -> None:
        self._made: dict[str, dict[str, tuple[int, str, int]]] = {}  # reporter -> subject -> r
        self._about: dict[str, dict[str, tuple[int, int]]] = {}  # subject -> reporter -> r

    def add(
        self,
        reporter: str,
        subject: str,
        at_ms: int,
        event_id: str,
        last_seen_ms: int,
        *,
        counted: bool,
        observers: Callable[[], Collection[str]],
    ) -> bool:
        """Keep one report (``counted``: its reporter may observe). ``observers()`` gives
        the subject's assigned observers, asked only when its index is full. Whether the
        reports counted about ``subject`` changed."""
        made = self._made.setdefault(reporter, {})
        held = made.get(subject)
        if held is not None and held[0] >= at_ms:
            return False
        made[subject] = (at_ms, event_id, last_seen_ms)
        while len(made) > MAX_REPORTS_KEPT:
            oldest = min(made, key=lambda k: (made[k][0], k))
            del made[oldest]
            self._unindex(oldest, reporter)  # that subject's count can only fall
        if subject not in made or not counted:
            return False
        about = self._about.setdefault(subject, {})
        about[reporter] = (at_ms, last_seen_ms)
        if len(about) > MAX_REPORTERS_COUNTED:
            assigned = set(observers())
            others = [r for r in about if r not in assigned] or list(about)
            del about[min(others, key=lambda r: (about[r][0], r))]
        return reporter in about

    def _unindex(self, subject: str, reporter: str) -> bool:
        about = self._about.get(subject)
        if about is None or about.pop(reporter, None) is None:
            return False
        if not about:
            del self._about[subject]
        return True

    def standing(self, subject: str, latest_ms: int) -> list[str]:
        """Reporters (that may observe) whose report about ``subject`` still stands: it
        claims nothing newer of the subject than ``latest_ms`` was heard. Reports answered
        by the subject are dropped from the index (a subject's latest only grows)."""
        about = self._about.get(subject)
        if not about:
            return []
        stale = [r for r, (_, seen) in about.items() if seen < latest_ms]
        for reporter in stale:
            del about[reporter]
        if not about:
            del self._about[subject]
        return list(about)

    def reported(self, subject: str) -> bool:
        """Whether any counted report about ``subject`` is held (cheap)."""
        return subject in self._about

    def made_by(self, reporter: str) -> list[tuple[int, str]]:
        """``(at_ms, event id)`` of the reports ``reporter`` made that we keep."""
        return [(at, event_id) for at, event_id, _ in self._made.get(reporter, {}).values()]

    def event_ids(self) -> set[str]:
        """Every kept report's event id (retention must keep them)."""
        return {event_id for made in self._made.values() for _, event_id, _ in made.values()}

    def forget(self, did: str) -> None:
        """``did`` was forgotten: drop the reports it made and the reports about it."""
        for subject in self._made.pop(did, {}):
            self._unindex(subject, did)
        self._about.pop(did, None)


__all__ = [
    "MAX_REPORTERS_COUNTED",
    "MAX_REPORTS_KEPT",
    "OBSERVERS",
    "OBSERVERS_TTL_MS",
    "QUORUM",
    "ReportBook",
    "missing_after_ms",
    "observers_of",
    "report_problem",
]
