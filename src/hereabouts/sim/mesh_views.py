"""What every simulated mesh node reads of the others: statuses, failure reports, and the
observers' duty, by the shipped rules, for every node at once.

A node's view of a mesh-only subject is a function of the subject's latest event it holds
(its version, ``V[viewer, subject]`` of :class:`~hereabouts.sim.mesh.MeshSim`) and of the
failure reports it holds (:mod:`hereabouts.sim.mesh_reports`). The rules, and where they
come from:

* **Status** (:class:`hereabouts.core.projection.Projection`, rule 4): MISSING once the
  silence, the time since that latest event, exceeds the subject's threshold, else ONLINE.
  The threshold is :func:`hereabouts.core.suspicion.missing_after_ms` (called, not copied)
  of the mesh threshold, the shortest threshold and the *confirmations*.
* **Confirmations** (``Projection._confirmations``): the subject's assigned observers, as
  the viewer sees them, whose kept report about it still stands: its ``last_seen_ms`` is no
  older than the viewer's version of the subject.
* **Assigned observers** (:func:`hereabouts.core.suspicion.observers_of`): the first
  :data:`~hereabouts.core.suspicion.OBSERVERS` of the subject's rendezvous ranking among the
  nodes the viewer sees ONLINE (itself included, the subject excluded). Each subject's
  ranking over all nodes is computed once (the viewer's candidates are a subset, and the
  highest weights of a subset are the subset of the highest weights). Up to
  :data:`SHA256_RANKING_UP_TO` nodes it is the shipped SHA-256 ranking
  (:func:`hereabouts.core.rendezvous.chosen`); past that a 64-bit mixing hash of the same
  DIDs stands in (see :func:`mixed_ranking`).
* **The observers' duty** (:class:`hereabouts.core.observing.ObserverDuty` and
  :class:`hereabouts.peers.mesh.observe.Observer`): once a round each node looks at the
  subjects it sees ONLINE that have been silent ``report_after`` or longer and that it has
  not looked at in this silence (or, when it was not their observer, since its candidates
  last changed), oldest silence first, at most
  :data:`~hereabouts.core.observing.CHECKS_PER_ROUND`, remembering at most
  :data:`~hereabouts.core.observing.MAX_REMEMBERED` looks (trimmed as the duty trims). For
  those it observes it probes (:meth:`~hereabouts.sim.mesh.MeshSim.probe`, an exchange out
  of turn; no address in its book: no probe), and a probe that fails while the subject's
  version is unchanged makes a report (:meth:`~hereabouts.sim.mesh.MeshSim.report`).
  Both constants are read from :mod:`hereabouts.core.observing` when used.

Each round: silences that ran out since the last round instant are dated exactly (the
subject's latest event plus its threshold plus 1 ms, the projection's deadline), with the
confirmations as they stood then; after the round's exchanges every view is judged again
until nothing changes; during the observers' duty, views whose subject's news or reports a
probe brought are judged at once, as a projection judges a subject when an event about it
arrives; and after the duty, every view once more.

What is not the projection's own timing: news and reports that arrive during a round
change views at the round's instant, and a change of who observes whom (a candidate going
MISSING) takes effect at the judgement that follows rather than at the projection's next
30 s recheck. The projection's cached rankings (up to 60 s) change nothing here: between
two judgements the candidates are the same. ``tests/sim/test_mesh_views.py`` rebuilds real
projections from the signed events each node holds and checks every change of a view
against them (the status on each side of a time-out, to the millisecond, and the
confirmations counted), and shadows nodes with a real ObserverDuty: same statuses, same
probes, round after round, through a partition and its heal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

import numpy as np

from hereabouts.core import observing, rendezvous
from hereabouts.core.suspicion import OBSERVERS, QUORUM, missing_after_ms
from hereabouts.sim.mesh import BASE_MS, MeshSim, row_chunks

if TYPE_CHECKING:
    pass

Ranking = Literal["sha256", "mixed"]

SHA256_RANKING_UP_TO: Final = 2_000
"""Largest mesh whose observer rankings use the shipped SHA-256 weights: one hash per
(subject, candidate) pair, 4.6 s at 2,000 nodes, 2 minutes at 10,000."""

RANKED: Final = 24
"""Candidates ranked per subject at first; a viewer that sees fewer than five of them
ONLINE (a partition) makes the whole ranking of that subject be computed."""

MAX_PASSES: Final = 20
"""Judging passes at one instant before giving up on a fixed point (two or three do)."""

NOT_LOOKED: Final = -2
OURS: Final = -1

TIMEOUT, REPORTS, NEWS, START = 0, 1, 2, 3
CAUSES: Final = ("timeout", "reports", "news", "start")
"""Why a view changed: its silence ran out (dated exactly), reports shortened its threshold
or news (or answered reports) lengthened it again (dated at the round instant), or it was
MISSING when judging started."""


@dataclass(frozen=True, slots=True)
class ViewSettings:
    """The thresholds a node applies (``ProjectionConfig``, ``MeshConfig``), in ms."""

    missing_after_ms: int
    """``projection.mesh_missing_after_s``: silence before MISSING without reports."""
    shortest_ms: int
    """``projection.reported_missing_after_s``: the threshold when all observers agree."""
    report_after_ms: int
    """``mesh.report_after_s``: silence before an observer probes."""
    ranking: Ranking = "sha256"


@dataclass(frozen=True, slots=True)
class Changes:
    """Views that changed together: one per index, all the same way for the same cause."""

    viewer: np.ndarray
    subject: np.ndarray
    at_ms: np.ndarray
    """When each changed: the projection's deadline for a time-out, else the round instant."""
    silence_ms: np.ndarray
    """Time since the subject's latest event the viewer held, at the change."""
    confirmations: np.ndarray
    """Standing reports from the subject's observers the viewer counted."""
    to_missing: bool
    cause: int
    """An index into :data:`CAUSES`."""


@dataclass(slots=True)
class Transitions:
    """Every change of a view, kept as columns (for tests and small meshes)."""

    parts: list[Changes] = field(default_factory=list)

    def add(self, changes: Changes) -> None:
        self.parts.append(changes)

    def columns(self) -> tuple[np.ndarray, ...]:
        """viewer, subject, at_ms, to_missing, silence_ms, confirmations, cause."""
        parts = self.parts
        if not parts:
            return (np.zeros(0, dtype=np.int64),) * 7
        return (
            np.concatenate([c.viewer for c in parts]),
            np.concatenate([c.subject for c in parts]),
            np.concatenate([c.at_ms for c in parts]),
            np.concatenate([np.full(c.viewer.size, c.to_missing) for c in parts]),
            np.concatenate([c.silence_ms for c in parts]),
            np.concatenate([c.confirmations for c in parts]),
            np.concatenate([np.full(c.viewer.size, c.cause) for c in parts]),
        )

    def __len__(self) -> int:
        return sum(c.viewer.size for c in self.parts)


def sha256_ranking(dids: Sequence[str], subject: int, count: int) -> np.ndarray:
    """The subject's ``count`` best-ranked candidates among every other node, best first,
    by the shipped rendezvous weights."""
    index = {did: i for i, did in enumerate(dids)}
    others = (d for i, d in enumerate(dids) if i != subject)
    chosen = rendezvous.chosen(rendezvous.OBSERVE, dids[subject], others, count)
    return np.array([index[d] for d in chosen], dtype=np.int64)


_MIX_1: Final = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2: Final = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijection of 64-bit words that scatters every input bit."""
    x = (x ^ (x >> np.uint64(30))) * _MIX_1
    x = (x ^ (x >> np.uint64(27))) * _MIX_2
    mixed: np.ndarray = x ^ (x >> np.uint64(31))
    return mixed


def did_keys(dids: Sequence[str]) -> np.ndarray:
    """Each DID's first 8 bytes of SHA-256 (as a digest's origin key), as 64-bit words."""
    from hereabouts.core.reconcile import origin_key

    return np.array([int.from_bytes(origin_key(d), "big") for d in dids], dtype=np.uint64)


def mixed_ranking(keys: np.ndarray, subject: int, count: int) -> np.ndarray:
    """The stand-in for SHA-256 past :data:`SHA256_RANKING_UP_TO` nodes: the weight of a
    candidate is a mix of its key and the subject's. Like the shipped ranking it is the
    same on every node, uniform, independent per subject, and a leaving candidate's duties
    go to the next in rank; which nodes it picks differs, and nothing measured depends on
    which (only on how many of them a node sees and can reach)."""
    with np.errstate(over="ignore"):
        weights = _mix(keys ^ _mix(keys[subject] + np.uint64(0x9E3779B97F4A7C15)))
    weights[subject] = 0
    count = min(count, len(keys) - 1)
    top = np.argpartition(weights, len(keys) - count)[len(keys) - count:]
    return top[np.argsort(weights[top])[::-1]].astype(np.int64)


class MeshViews:
    """Every node's view of every other, and every node's observer duty (a
    :class:`~hereabouts.sim.mesh.Watch`). Judging starts at :meth:`start`."""

    def __init__(
        self,
        sim: MeshSim,
        settings: ViewSettings,
        *,
        sink: Callable[[Changes], None] | None = None,
        keep: bool = False,
    ) -> None:
        """``sink`` hears every change as it happens; ``keep`` also keeps them all in
        :attr:`transitions` (millions at 10,000 nodes in a partition: for small meshes)."""
        self.sim = sim
        self.settings = settings
        n = sim.config.nodes
        self.n = n
        self.reads_missing = np.zeros((n, n), dtype=bool)
        """``missing[viewer, subject]``: the viewer reads the subject MISSING."""
        self.missing_count = np.zeros(n, dtype=np.int64)
        self.epoch = np.zeros(n, dtype=np.int64)
        """Per viewer, bumped by every change to or from ONLINE (``observers_version``)."""
        self.looked_last = np.full((n, n), NOT_LOOKED, dtype=np.int32)
        self.looked_epoch = np.zeros((n, n), dtype=np.int32)
        self.looked_count = np.zeros(n, dtype=np.int64)
        order = sorted(range(n), key=lambda i: sim.dids[i])
        self.did_rank = np.empty(n, dtype=np.int64)
        self.did_rank[order] = np.arange(n)
        self.thresholds = np.array(
            [
                missing_after_ms(settings.missing_after_ms, settings.shortest_ms, c)
                for c in range(OBSERVERS + 1)
            ],
            dtype=np.int64,
        )
        self._keys = did_keys(sim.dids) if settings.ranking == "mixed" else None
        width = min(RANKED, n - 1)
        self.ranked = np.stack([self._ranking(s, width) for s in range(n)])
        """Each subject's best-ranked candidates, best first."""
        self._deep: dict[int, np.ndarray] = {}
        """Subjects whose whole ranking was needed."""
        self.short: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        """Subject -> (viewers, confirmations) where a quorum stands: their thresholds."""
        self.counted = np.zeros((n, n), dtype=np.int8)
        """The confirmations of :attr:`short`, as a matrix (0 elsewhere)."""
        self.transitions = Transitions()
        self._sink = sink
        self._keep = keep
        self.counts = dict.fromkeys(
            ("looked", "probes", "answered", "no_address", "reported", "answered_meanwhile"), 0
        )
        self.started_ms: int | None = None
        self._last_ms = 0
        self._suspected: set[int] = set()
        self._reporter_counts: np.ndarray | None = None
        self._arrays: dict[int, dict[int, tuple[np.ndarray, ...]]] = {}
        self._arrays_seen = 0
        self._lists: dict[int, list[int]] = {}
        self._reporters_seen = 0
        self._reports_seen = 0

    # --- rankings ---------------------------------------------------------------------------

    def _ranking(self, subject: int, count: int) -> np.ndarray:
        if self._keys is not None:
            return mixed_ranking(self._keys, subject, count)
        return sha256_ranking(self.sim.dids, subject, count)

    def ranking(self, subject: int) -> np.ndarray:
        """The subject's candidates, best first, as deep as computed."""
        deep = self._deep.get(subject)
        if deep is not None:
            return deep
        ranked: np.ndarray = self.ranked[subject]
        return ranked

    def _deepen(self, subject: int) -> np.ndarray:
        if subject not in self._deep:
            self._deep[subject] = self._ranking(subject, self.n - 1)
        return self._deep[subject]

    def observers(self, viewers: np.ndarray, subject: int) -> tuple[np.ndarray, np.ndarray]:
        """(ranking, mask): ``mask[i, k]`` when ``ranking[k]`` is one of the subject's
        observers as ``viewers[i]`` sees them."""
        rank = self.ranking(subject)
        V = self.sim.V
        seen = (V[np.ix_(viewers, rank)] >= 0) & ~self.reads_missing[np.ix_(viewers, rank)]
        count = np.cumsum(seen, axis=1)
        if rank.size < self.n - 1 and (count[:, -1] < OBSERVERS).any():
            self._deepen(subject)
            return self.observers(viewers, subject)
        return rank, seen & (count <= OBSERVERS)

    # --- the watch --------------------------------------------------------------------------

    def start(self, now_ms: int) -> None:
        """Judge from ``now_ms`` on; views already past their threshold read MISSING now."""
        self.started_ms = self._last_ms = now_ms
        full = self.settings.missing_after_ms
        now_off = now_ms - BASE_MS
        V = self.sim.V
        for rows in row_chunks(self.n, self.n):
            block = V[rows]
            late = (block >= 0) & (block < now_off - full)
            viewers, subjects = np.nonzero(late)
            viewers = viewers + rows.start
            self._change(viewers, subjects, now_ms, True, START, now_off)

    def missing(self, caller: int) -> Callable[[str], bool] | None:
        if not self.missing_count[caller]:
            return None
        found: set[str] = set()

        def seen_missing(did: str) -> bool:
            if not found:
                dids = self.sim.dids
                found.update(dids[s] for s in np.flatnonzero(self.reads_missing[caller]))
            return did in found

        return seen_missing

    def before_exchanges(self, now_ms: int) -> None:
        """Silences that ran out since the last round instant, dated exactly."""
        if self.started_ms is None:
            return
        now_off = now_ms - BASE_MS
        V, missing = self.sim.V, self.reads_missing
        for subject, (viewers, confirmations) in self.short.items():
            held = V[viewers, subject].astype(np.int64)
            threshold = self.thresholds[confirmations]
            late = ~missing[viewers, subject] & (now_off - held > threshold)
            if late.any():
                at = BASE_MS + held[late] + threshold[late] + 1
                self._change_at(viewers[late], np.full(int(late.sum()), subject), at,
                                threshold[late] + 1, confirmations[late], TIMEOUT)
        full = self.settings.missing_after_ms
        for rows in row_chunks(self.n, self.n):
            block = V[rows]
            late = (block >= 0) & (block < now_off - full) & ~missing[rows]
            viewers, subjects = np.nonzero(late)
            if viewers.size:
                viewers = viewers + rows.start
                held = V[viewers, subjects].astype(np.int64)
                self._change_at(viewers, subjects, BASE_MS + held + full + 1,
                                np.full(viewers.size, full + 1),
                                np.zeros(viewers.size, dtype=np.int64), TIMEOUT)
        self._last_ms = now_ms

    def after_exchanges(self, now_ms: int, order: Sequence[int]) -> None:
        """News and reports of the round's exchanges, then each node's observer duty (in
        the round's order), then what the duty's probes and reports changed."""
        if self.started_ms is None:
            return
        self._judge(now_ms)
        sim = self.sim
        looks = self._looks(now_ms)
        touched: set[int] = set()
        taken: list[tuple[int, np.ndarray, np.ndarray]] = []
        sim.take_log = taken
        try:
            for observer in order:
                if taken:
                    self._take_in(taken, now_ms)
                    touched.update(node for node, _, _ in taken)
                    taken.clear()
                if observer in touched:
                    found = self._look(observer, now_ms)
                    look = (found, self._ours(observer, found, self.reads_missing[observer]))
                else:
                    look = looks[observer]
                self._duty(observer, *look, now_ms)
        finally:
            sim.take_log = None
        self._judge(now_ms)

    # --- judging ----------------------------------------------------------------------------

    def _judge(self, now_ms: int) -> None:
        """Count standing reports afresh and change the views whose threshold moved, until
        nothing changes: a view that changes may change who observes whom for the others
        (the projection finds that at its next 30 s recheck; here, at once). The changes
        are recorded once settled, with the confirmations counted then."""
        passes: list[tuple[np.ndarray, np.ndarray, bool, int]] = []
        for _ in range(MAX_PASSES):
            found = self._judge_once(now_ms)
            if not found:
                break
            passes.extend(found)
        if not passes:
            return
        now_off = now_ms - BASE_MS
        width = np.int64(self.n)
        keys = np.concatenate([v.astype(np.int64) * width + s for v, s, _, _ in passes])
        first_to = np.concatenate([np.full(v.size, to) for v, _, to, _ in passes])
        causes = np.concatenate([np.full(v.size, cause) for v, _, _, cause in passes])
        keys, first = np.unique(keys, return_index=True)
        viewers, subjects = keys // width, keys % width
        to_missing, causes = first_to[first], causes[first]
        settled = self.reads_missing[viewers, subjects] == to_missing
        for to in (True, False):
            for cause in (REPORTS, NEWS):
                pick = settled & (to_missing == to) & (causes == cause)
                if pick.any():
                    v, s = viewers[pick], subjects[pick]
                    silence = now_off - self.sim.V[v, s].astype(np.int64)
                    self._record(Changes(v, s, np.full(v.size, now_ms), silence,
                                         self.counted[v, s].astype(np.int64), to, cause))

    def _judge_once(self, now_ms: int) -> list[tuple[np.ndarray, np.ndarray, bool, int]]:
        now_off = now_ms - BASE_MS
        self._count_reports()
        V, missing, thresholds = self.sim.V, self.reads_missing, self.thresholds
        found: list[tuple[np.ndarray, np.ndarray, bool, int]] = []
        for viewer in np.flatnonzero(self.missing_count).tolist():
            subjects = np.flatnonzero(missing[viewer])
            counted = self.counted[viewer, subjects].astype(np.int64)
            back = now_off - V[viewer, subjects].astype(np.int64) <= thresholds[counted]
            if back.any():
                found.append((np.full(int(back.sum()), viewer), subjects[back], False, NEWS))
        for subject, (viewers, confirmations) in self.short.items():
            held = V[viewers, subject].astype(np.int64)
            late = ~missing[viewers, subject] & (now_off - held > thresholds[confirmations])
            if late.any():
                found.append((viewers[late], np.full(int(late.sum()), subject), True, REPORTS))
        for viewers, subjects, to_missing, _ in found:
            self._set(viewers, subjects, to_missing)
        return found

    def _take_in(
        self, taken: list[tuple[int, np.ndarray, np.ndarray]], now_ms: int
    ) -> None:
        """Probes brought nodes news and reports: judge the views they concern at once, as
        a projection judges a subject when an event about it arrives (its own, or a report
        about it), so the next observer's duty sees them."""
        sim, log = self.sim, self.sim.reports
        V, thresholds = sim.V, self.thresholds
        now_off = now_ms - BASE_MS
        reporters = self._reporters()
        for node, origins, before in taken:
            concerned = set(origins.tolist())
            for origin, old in zip(origins.tolist(), before.tolist(), strict=True):
                made = log.by_reporter.get(origin)
                if made is not None and made[-1].at > old:
                    new = int(V[node, origin])
                    concerned.update(r.subject for r in made if old < r.at <= new)
            concerned.discard(node)
            subjects = np.array(sorted(concerned), dtype=np.int64)
            held = V[node, subjects].astype(np.int64)
            subjects, held = subjects[held >= 0], held[held >= 0]
            silence = now_off - held
            most = np.minimum(reporters[subjects], OBSERVERS)
            late = silence > thresholds[0]  # past the full threshold: MISSING, whatever
            unsure = ~late & (most >= QUORUM) & (silence > thresholds[most])
            counted = np.zeros(subjects.size, dtype=np.int64)
            for k in np.flatnonzero(unsure).tolist():
                subject = int(subjects[k])
                c = self.confirmation(node, subject)
                counted[k] = c if c >= QUORUM else 0
                late[k] = silence[k] > thresholds[counted[k]]
            change = late != self.reads_missing[node, subjects]
            for to in (True, False):
                pick = change & (late == to)
                if pick.any():
                    who = np.full(int(pick.sum()), node)
                    self._set(who, subjects[pick], to)
                    self._record(Changes(who, subjects[pick], np.full(who.size, now_ms),
                                         silence[pick], counted[pick], to,
                                         REPORTS if to else NEWS))

    def _reporters(self) -> np.ndarray:
        """How many nodes reported each subject so far."""
        log = self.sim.reports
        if self._reporter_counts is None or self._reporters_seen != len(log):
            counts = np.zeros(self.n, dtype=np.int64)
            for subject, by in log.by_subject.items():
                counts[subject] = len(by)
            self._reporter_counts, self._reporters_seen = counts, len(log)
        return self._reporter_counts

    def _count_reports(self) -> None:
        """For every subject that three observers or more reported: the viewers whose
        standing reports from its observers reach the quorum, and how many stand."""
        log = self.sim.reports
        if len(log) != self._reports_seen:
            self._suspected.update(
                subject for subject, by in log.by_subject.items() if len(by) >= QUORUM
            )
            self._reports_seen = len(log)
        V = self.sim.V
        for subject, (viewers, _) in self.short.items():
            self.counted[viewers, subject] = 0
        short: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for subject in sorted(self._suspected):
            by_reporter = log.by_subject[subject]
            newest = sorted(
                (max(r.last_seen for r in reports) for reports in by_reporter.values()),
                reverse=True,
            )
            column = V[:, subject]
            viewers = np.flatnonzero((column >= 0) & (column <= newest[QUORUM - 1]))
            if not viewers.size:
                self._suspected.discard(subject)  # answered everywhere, and for good
                continue
            confirmations = self.confirmations(viewers, subject)
            quorum = confirmations >= QUORUM
            if quorum.any():
                short[subject] = (viewers[quorum], confirmations[quorum])
                self.counted[viewers[quorum], subject] = confirmations[quorum]
        self.short = short

    def _reports_about(self, subject: int) -> dict[int, tuple[np.ndarray, ...]]:
        """Per reporter of ``subject``: its reports' times, ends and last-seen versions,
        oldest first (cached until the next report anywhere)."""
        log = self.sim.reports
        if self._arrays_seen != len(log):
            self._arrays.clear()
            self._arrays_seen = len(log)
        found = self._arrays.get(subject)
        if found is None:
            found = self._arrays[subject] = {
                reporter: (
                    np.array([r.at for r in reports], dtype=np.int64),
                    np.array([r.end for r in reports], dtype=np.int64),
                    np.array([r.last_seen for r in reports], dtype=np.int64),
                )
                for reporter, reports in log.by_subject.get(subject, {}).items()
            }
        return found

    def confirmations(self, viewers: np.ndarray, subject: int) -> np.ndarray:
        """Standing reports from the subject's observers, as each viewer counts them: an
        observer's kept report counts while its ``last_seen`` is no older than the
        viewer's version of the subject."""
        V = self.sim.V
        rank, observing_ = self.observers(viewers, subject)
        position = {node: k for k, node in enumerate(rank.tolist())}
        held_subject = V[viewers, subject]
        counted = np.zeros(viewers.size, dtype=np.int64)
        for reporter, (ats, ends, seen) in self._reports_about(subject).items():
            k = position.get(reporter)
            if k is None:
                continue  # ranked below every viewer's five observers
            version = V[viewers, reporter].astype(np.int64)
            latest = np.searchsorted(ats, version, side="right") - 1
            some = latest >= 0
            latest = np.where(some, latest, 0)
            standing = some & (ends[latest] > version) & (seen[latest] >= held_subject)
            counted += observing_[:, k] & standing
        return counted

    def confirmation(self, viewer: int, subject: int) -> int:
        """:meth:`confirmations` for one viewer, without building matrices."""
        row, missing = self.sim.V[viewer], self.reads_missing[viewer]
        observers: list[int] = []
        for node in self._ranked_list(subject):
            if row[node] >= 0 and not missing[node]:
                observers.append(node)
                if len(observers) == OBSERVERS:
                    break
        else:
            if subject not in self._deep:
                self._deepen(subject)
                return self.confirmation(viewer, subject)
        about = self._reports_about(subject)
        held_subject = int(row[subject])
        counted = 0
        for node in observers:
            entry = about.get(node)
            if entry is None:
                continue
            ats, ends, seen = entry
            version = int(row[node])
            latest = int(np.searchsorted(ats, version, side="right")) - 1
            if latest >= 0 and ends[latest] > version and seen[latest] >= held_subject:
                counted += 1
        return counted

    def _ranked_list(self, subject: int) -> list[int]:
        found = self._lists.get(subject)
        if found is None or len(found) != self.ranking(subject).size:
            found = self._lists[subject] = self.ranking(subject).tolist()
        return found

    def _set(self, viewers: np.ndarray, subjects: np.ndarray, to_missing: bool) -> None:
        self.reads_missing[viewers, subjects] = to_missing
        np.add.at(self.missing_count, viewers, 1 if to_missing else -1)
        np.add.at(self.epoch, viewers, 1)

    def _change_at(
        self,
        viewers: np.ndarray,
        subjects: np.ndarray,
        at_ms: np.ndarray,
        silence_ms: np.ndarray,
        confirmations: np.ndarray,
        cause: int,
    ) -> None:
        """Views turn MISSING at the given times (between two round instants)."""
        self._set(viewers, subjects, True)
        self._record(Changes(viewers, subjects, at_ms, silence_ms, confirmations, True, cause))

    def _change(
        self,
        viewers: np.ndarray,
        subjects: np.ndarray,
        now_ms: int,
        to_missing: bool,
        cause: int,
        now_off: int,
    ) -> None:
        if not viewers.size:
            return
        self._set(viewers, subjects, to_missing)
        silence = now_off - self.sim.V[viewers, subjects].astype(np.int64)
        self._record(Changes(viewers, subjects, np.full(viewers.size, now_ms), silence,
                             np.zeros(viewers.size, dtype=np.int64), to_missing, cause))

    def _record(self, changes: Changes) -> None:
        order = np.lexsort((changes.subject, changes.viewer, changes.at_ms))
        changes = Changes(
            changes.viewer[order].astype(np.int32),
            changes.subject[order].astype(np.int32),
            changes.at_ms[order].astype(np.int64),
            changes.silence_ms[order].astype(np.int64),
            changes.confirmations[order].astype(np.int8),
            changes.to_missing,
            changes.cause,
        )
        if self._keep:
            self.transitions.add(changes)
        if self._sink is not None:
            self._sink(changes)

    # --- the observers' duty ----------------------------------------------------------------

    def _looks(self, now_ms: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """What every node's duty looks at now and which of those it observes
        (:meth:`_look`, :meth:`_ours`), for all nodes at once."""
        n, V = self.n, self.sim.V
        now_off = now_ms - BASE_MS
        count = min(observing.CHECKS_PER_ROUND, n - 1)
        never = np.iinfo(np.int32).max
        found: list[tuple[np.ndarray, np.ndarray]] = []
        for rows in row_chunks(n, n):
            block = V[rows]
            missing = self.reads_missing[rows]
            quiet = (block >= 0) & ~missing
            quiet &= block <= now_off - self.settings.report_after_ms
            quiet[np.arange(rows.stop - rows.start), np.arange(rows.start, rows.stop)] = False
            epochs = self.looked_epoch[rows]
            done = self.looked_last[rows] == block
            done &= (epochs == OURS) | (epochs == self.epoch[rows, None].astype(np.int32))
            quiet &= ~done
            # The count-th oldest silence of each row; then the few at or before it, by
            # (silence, DID) as the duty sorts them.
            held = np.where(quiet, block, never)
            kth = np.partition(held, count - 1, axis=1)[:, count - 1]
            picks = []
            for k in range(rows.stop - rows.start):
                if kth[k] == never:
                    picked = np.flatnonzero(quiet[k])
                else:
                    picked = np.flatnonzero(held[k] <= kth[k])
                if picked.size:
                    key = block[k, picked].astype(np.int64) * n + self.did_rank[picked]
                    picked = picked[np.argsort(key)][:count]
                picks.append(picked)
            sizes = [p.size for p in picks]
            subjects = np.concatenate(picks)
            observers = np.repeat(np.arange(rows.start, rows.stop), sizes)
            ours = self._ours_many(observers, subjects)
            found.extend(zip(picks, np.split(ours, np.cumsum(sizes)[:-1]), strict=True))
        return found

    def _look(self, observer: int, now_ms: int) -> np.ndarray:
        """ObserverDuty.due's choice: the subjects seen ONLINE, silent for
        ``report_after`` or more, not looked at in this silence (or, if not observed, not
        since the candidates changed), oldest silence first (then by DID), at most
        CHECKS_PER_ROUND."""
        row = self.sim.V[observer]
        now_off = now_ms - BASE_MS
        quiet = (row >= 0) & ~self.reads_missing[observer]
        quiet &= row <= now_off - self.settings.report_after_ms
        quiet[observer] = False
        last, epochs = self.looked_last[observer], self.looked_epoch[observer]
        done = (last == row) & ((epochs == OURS) | (epochs == np.int32(self.epoch[observer])))
        found = np.flatnonzero(quiet & ~done)
        if not found.size:
            return found
        key = row[found].astype(np.int64) * self.n + self.did_rank[found]
        cap = observing.CHECKS_PER_ROUND
        if found.size > cap:
            keep = np.argpartition(key, cap - 1)[:cap]
            found, key = found[keep], key[keep]
        return found[np.argsort(key)]

    def _duty(self, observer: int, found: np.ndarray, ours: np.ndarray, now_ms: int) -> None:
        """ObserverDuty.due, then Observer.round: note the looks, probe, report."""
        if not found.size:
            return
        row = self.sim.V[observer]
        last, epochs = self.looked_last[observer], self.looked_epoch[observer]
        self.counts["looked"] += int(found.size)
        self.looked_count[observer] += int(np.count_nonzero(last[found] == NOT_LOOKED))
        held = row[found].copy()
        last[found] = held
        epochs[found] = np.where(ours, OURS, np.int32(self.epoch[observer]))
        if self.looked_count[observer] > observing.MAX_REMEMBERED:
            self._trim(observer)
        for subject, version in zip(found[ours].tolist(), held[ours].tolist(), strict=True):
            self._probe(observer, subject, version, now_ms)

    def _ours_many(self, observers: np.ndarray, subjects: np.ndarray) -> np.ndarray:
        """:meth:`_ours` for many (observer, subject) pairs at once."""
        if not subjects.size:
            return np.zeros(0, dtype=bool)
        rank = self.ranked[subjects]
        at = observers[:, None]
        seen = (self.sim.V[at, rank] >= 0) & ~self.reads_missing[at, rank]
        count = np.cumsum(seen, axis=1)
        ours: np.ndarray = (seen & (count <= OBSERVERS) & (rank == at)).any(axis=1)
        if rank.shape[1] < self.n - 1:
            for k in np.flatnonzero(count[:, -1] < OBSERVERS).tolist():
                observer = int(observers[k])
                deep, observing_ = self.observers(np.array([observer]), int(subjects[k]))
                ours[k] = bool(observing_[0][deep == observer].any())
        return ours

    def _ours(self, observer: int, subjects: np.ndarray, missing: np.ndarray) -> np.ndarray:
        """Whether ``observer`` is among each subject's observers in its own view
        (``missing``: its row of :attr:`reads_missing`)."""
        if not subjects.size:
            return np.zeros(0, dtype=bool)
        rank = self.ranked[subjects]
        row = self.sim.V[observer]
        seen = (row[rank] >= 0) & ~missing[rank]
        count = np.cumsum(seen, axis=1)
        ours: np.ndarray = (seen & (count <= OBSERVERS) & (rank == observer)).any(axis=1)
        if rank.shape[1] < self.n - 1:
            one = np.array([observer])
            for k in np.flatnonzero(count[:, -1] < OBSERVERS).tolist():
                deep, observing_ = self.observers(one, int(subjects[k]))
                ours[k] = bool(observing_[0][deep == observer].any())
        return ours

    def _trim(self, observer: int) -> None:
        """ObserverDuty._trim: forget looks whose subject spoke since, then the oldest."""
        last = self.looked_last[observer]
        row = self.sim.V[observer]
        spoke = (last != NOT_LOOKED) & (last != row)
        last[spoke] = NOT_LOOKED
        present = np.flatnonzero(last != NOT_LOOKED)
        excess = present.size - observing.MAX_REMEMBERED
        if excess > 0:
            key = last[present].astype(np.int64) * self.n + self.did_rank[present]
            last[present[np.argpartition(key, excess - 1)[:excess]]] = NOT_LOOKED
        self.looked_count[observer] = int(np.count_nonzero(last != NOT_LOOKED))

    def _probe(self, observer: int, subject: int, version: int, now_ms: int) -> None:
        sim = self.sim
        answered = sim.probe(observer, subject, now_ms)
        if answered is None:
            self.counts["no_address"] += 1
            return
        self.counts["probes"] += 1
        if answered:
            self.counts["answered"] += 1
        elif int(sim.V[observer, subject]) != version:
            self.counts["answered_meanwhile"] += 1
        else:
            sim.report(observer, subject, now_ms, BASE_MS + version)
            self.counts["reported"] += 1


__all__ = [
    "CAUSES",
    "RANKED",
    "SHA256_RANKING_UP_TO",
    "Changes",
    "MeshViews",
    "Transitions",
    "ViewSettings",
    "did_keys",
    "mixed_ranking",
    "sha256_ranking",
]
