"""Failure reports in the mesh simulation: who reported whom, and which reports each node holds.

A failure report (an ``unreachable`` event, :mod:`hereabouts.core.suspicion`) is an event
of its *reporter*: it raises the reporter's version in every digest, and it travels as part
of the reporter's evidence, which holds the reporter's latest report about each subject for
its :data:`~hereabouts.core.suspicion.MAX_REPORTS_KEPT` most recent subjects (the shipped
:class:`~hereabouts.core.suspicion.ReportBook`). Replies send reports before anything else
(:data:`~hereabouts.core.reconcile.PRIORITY`), so on a mesh a node that holds a reporter at
version *x* holds exactly the reports that reporter kept at time *x*: those written at or
before *x* and neither superseded (a later report about the same subject) nor pushed out
(a 17th subject) by then. :class:`ReportLog` keeps every report with the time it stopped
being kept (:attr:`Report.end`), so "does node *v* hold this report" is
``report.at <= V[v, reporter] < report.end``. (Only a reply whose budget is cut among the
reports themselves, thousands of them at once, would break this; the simulation never
comes near.)

Times are offsets in milliseconds from :data:`hereabouts.sim.mesh.BASE_MS`, as the version
matrix holds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np

from hereabouts.core.suspicion import MAX_REPORTS_KEPT

NEVER: Final = 2**31 - 1
"""``end`` of a report still kept."""


@dataclass(slots=True)
class Report:
    """One ``unreachable`` event."""

    reporter: int
    subject: int
    at: int
    last_seen: int
    """Version of the subject the reporter held when its probe failed."""
    event_id: str
    end: int = NEVER
    """When it stopped being part of its reporter's evidence (superseded or pushed out)."""


def report_id(reporter: int, subject: int, at: int) -> str:
    """A report's event id: ordered by reporter, then subject, as the planner breaks ties."""
    return f"u{reporter:06d}.{subject:06d}.{at:010d}"


@dataclass(slots=True)
class ReportLog:
    """Every report made, by reporter and by subject."""

    dids: list[str]
    by_id: dict[str, Report] = field(default_factory=dict)
    by_reporter: dict[int, list[Report]] = field(default_factory=dict)
    by_subject: dict[int, dict[int, list[Report]]] = field(default_factory=dict)
    """subject -> reporter -> its reports about the subject, oldest first."""
    _kept: dict[int, dict[int, Report]] = field(default_factory=dict)
    _columns: tuple[np.ndarray, ...] | None = None
    _active: list[Report] = field(default_factory=list)

    def make(self, reporter: int, subject: int, at: int, last_seen: int) -> Report:
        """A new report; what its reporter keeps changes as the ReportBook's does."""
        report = Report(reporter, subject, at, last_seen, report_id(reporter, subject, at))
        kept = self._kept.setdefault(reporter, {})
        old = kept.get(subject)
        if old is not None:
            old.end = at
        kept[subject] = report
        dids = self.dids
        while len(kept) > MAX_REPORTS_KEPT:
            oldest = min(kept, key=lambda s: (kept[s].at, dids[s]))
            kept.pop(oldest).end = at
        self.by_id[report.event_id] = report
        self.by_reporter.setdefault(reporter, []).append(report)
        self.by_subject.setdefault(subject, {}).setdefault(reporter, []).append(report)
        self._active.append(report)
        self._columns = None
        return report

    def __len__(self) -> int:
        return len(self.by_id)

    def kept_at(self, reporter: int, version: int) -> list[Report]:
        """The reporter's reports a node holding it at ``version`` holds."""
        return [r for r in self.by_reporter.get(reporter, ()) if r.at <= version < r.end]

    def columns(self) -> tuple[np.ndarray, ...]:
        """The reports some node may still lack, as arrays: reporter, at, end, subject."""
        if self._columns is None:
            active = self._active
            self._columns = (
                np.fromiter((r.reporter for r in active), np.int64, len(active)),
                np.fromiter((r.at for r in active), np.int64, len(active)),
                np.fromiter((r.end for r in active), np.int64, len(active)),
                np.fromiter((r.subject for r in active), np.int64, len(active)),
            )
        return self._columns

    def prune(self, held_by_all: np.ndarray) -> None:
        """Forget, for planning, reports every node holds: ``held_by_all[r]`` is the lowest
        version of reporter ``r`` any node holds."""
        keep = [r for r in self._active if r.at > held_by_all[r.reporter]]
        if len(keep) != len(self._active):
            self._active = keep
            self._columns = None


__all__ = ["NEVER", "Report", "ReportLog", "report_id"]
