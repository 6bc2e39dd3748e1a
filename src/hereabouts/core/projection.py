"""The status projection: verified events and the time in, statuses and changes out.

Rules (the seed design's, made deterministic and made to believe only first-hand words):

1. **Nobody speaks for anybody else.** An event is evidence about its *emitter* only: its
   signature is the emitter's. A ``seen`` says something about its observer, never about
   its subject; a howdy vouches for neighbours only by carrying their own signed events,
   which are then taken in as theirs. So no key can make another one ONLINE, OFFLINE or
   MISSING, and a forged "I saw X" revives nobody.
2. **Most recent event wins**, per subject. Events are totally ordered by
   ``(at_ms, event id)``, so the winner never depends on arrival order; every rule below
   is a maximum over a set, so applying the same events in any order, once or twice, gives
   the same statuses.
3. **What events mean.** ``hey_there``, ``newspaper``, ``howdy`` and ``seen`` say their
   emitter is ONLINE; ``chau`` means OFFLINE, at once (it is the subject's own word, and a
   stale chau loses to any later event of the same subject). ``lost`` (the broker's will
   for a dead connection) means MISSING when it is for the subject's current boot and no
   later session of that boot has spoken since (an event's ``session`` counts reconnects
   within a boot); a chau still wins over a lost.
4. **Silence.** ONLINE whose winning event is older than the subject's threshold reads as
   MISSING (plaza peers and mesh-only peers have separate thresholds, see
   :class:`~hereabouts.config.ProjectionConfig`); any fresh event brings it back. Failure
   reports (``unreachable``) from a quorum of the subject's assigned observers shorten its
   threshold (:mod:`hereabouts.core.suspicion`); they are evidence about their emitter
   like any event, and say nothing at all about a subject that has spoken since.
5. **Restarts** are new boot ids in ``hey_there`` events, counted, never guessed from gaps.
6. **First-hand silence.** The runtime may mark a subject *quiet*: its pulses stopped
   reaching us (:mod:`hereabouts.core.pulse`). A quiet subject that would read ONLINE reads
   MISSING until it is marked otherwise. This is our own observation, not an event: it is
   never passed on, never replayed, and it cannot make anyone ONLINE.
7. **Two processes, one key.** When an older boot speaks after a newer boot of the same key
   announced itself (later than :data:`CLASH_GRACE_MS`), two processes share the key; the
   subject is flagged (``PeerView.clash``) until :data:`CLASH_MEMORY_MS` after the latest
   such event. Like a status, the flag depends only on the set of events and the time.

Statuses are a function of the set of events, the time and which subjects are quiet, so
replaying the ledger into a fresh projection reproduces them (quiet marks start afresh).
Changes are reported against the last status this projection reported for each subject, and
the number of subjects per reported status is kept as changes happen, so asking "how many
are ONLINE" costs nothing whatever N is. Subjects can be forgotten
(:meth:`Projection.forget`); the runtime decides when.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from hereabouts.config import ProjectionConfig
from hereabouts.core import suspicion
from hereabouts.core.effects import Status, StatusChanged
from hereabouts.core.suspicion import OBSERVERS_TTL_MS
from hereabouts.events import KIND_OF, HeyThere, Howdy, Lost, SignedEvent, Unreachable

# (at_ms, event id, kind): ordered by the first two, which are unique per event.
_Mark = tuple[int, str, str]

CLASH_GRACE_MS: Final = 5_000
"""How long an old boot may still speak after a new boot of its key started without that
counting as two processes: a process that restarts says its chau (and the broker may
deliver its will) a moment after its successor began."""

MAX_BOOTS: Final = 8
"""Boots remembered per subject (the most recently started); older ones only count towards
``restarts``. Enough to see two processes interleave; bounded, since keys restart for ever.
Per-boot sessions, wills and latest times are kept for at most twice as many boots."""

RECHECK_MS: Final = 30_000
"""How often a subject with standing failure reports is judged again while it is ONLINE:
its observers may change (one goes MISSING, a key is proven) without any event about it."""

CLASH_MEMORY_MS: Final = 10 * 60_000
"""How long a subject stays flagged as shared by two processes after the last sign of it:
a few heartbeat intervals, so the flag does not flicker between heartbeats."""


@dataclass(frozen=True, slots=True)
class PeerView:
    """One subject as the projection sees it at a given time."""

    did: str
    name: str
    status: Status
    last_event_at_ms: int
    last_event: str
    """Kind of the event that decided the status (``lost`` when a will did)."""
    last_event_id: str
    boot_id: str | None
    restarts: int
    transport: str
    endpoints: dict[str, str]
    clash: bool = False
    """Two processes seem to share this key (rule 7)."""
    claimed_name: str = ""
    """The name its events carry (``name`` may add a fingerprint: the runtime labels it)."""
    name_status: str = ""
    """How ``name`` was labelled (:data:`hereabouts.core.keys.NameStatus`), when it was."""
    fingerprint: str = ""
    trust: str = ""
    """``member``, ``proven`` or ``new`` (see :mod:`hereabouts.core.keys`), when known."""
    reports: int = 0
    """Assigned observers whose ``unreachable`` reports about it stand (see
    :mod:`hereabouts.core.suspicion`); from the quorum on they shorten its threshold."""


class _Subject:
    """Everything the rules need about one DID; each field is a maximum or a set."""

    __slots__ = (
        "best",
        "boot_latest",
        "boot_starts",
        "boots_dropped",
        "did",
        "endpoints",
        "hey_there",
        "in_heap",
        "lost",
        "named",
        "own",
        "own_boot",
        "sessions",
        "threshold_ms",
        "transport",
        "vouch",
    )

    def __init__(self, did: str, threshold_ms: int) -> None:
        self.did = did
        self.transport = "plaza"  # from its latest hey_there
        self.threshold_ms = threshold_ms  # silence before MISSING, for that transport
        self.named: tuple[int, str, str] | None = None  # (at, id, name) of its latest event
        self.best: _Mark | None = None
        self.own: tuple[int, str] = (-1, "")  # latest own event other than a lost will
        self.own_boot: str | None = None
        self.vouch: _Mark | None = None  # latest event other than a howdy or a lost will
        self.sessions: dict[str, int] = {}  # boot id -> highest session heard from
        self.lost: dict[str, tuple[int, str, int]] = {}  # boot -> (session, id, at) of its will
        self.boot_starts: dict[str, int] = {}  # boot id -> earliest at_ms of its hey_theres
        self.boots_dropped = 0  # boots announced, then forgotten for newer ones
        self.boot_latest: dict[str, int] = {}  # boot id -> latest at_ms of its events
        self.hey_there: _Mark | None = None
        self.endpoints: dict[str, str] = {}
        self.in_heap = False

    def display_name(self) -> str:
        return "" if self.named is None else self.named[2]


class Projection:
    """Per-DID statuses derived from verified events. Sans-I/O: pass ``now_ms`` in."""

    def __init__(
        self,
        config: ProjectionConfig | None = None,
        *,
        observer_on_plaza: bool = True,
        may_observe: Callable[[str], bool] | None = None,
        observers_generation: Callable[[], int] | None = None,
    ) -> None:
        """``observer_on_plaza``: whether the node judging is on the plaza. The plaza's
        threshold applies only when observer and subject both are; otherwise the subject's
        news may come hop by hop over the mesh, and the mesh's threshold applies.

        ``may_observe``: whether a key may be an assigned observer (the runtime passes "its
        key is proven"); besides, observers are mesh nodes we see ONLINE.
        ``observers_generation``: a number that changes whenever ``may_observe`` may answer
        differently (the key book's generation), so ranked observers are not reused."""
        self._config = config or ProjectionConfig()
        self._may_observe = may_observe or (lambda did: True)
        self._observers_generation = observers_generation or (lambda: 0)
        self._shortest_ms = int(self._config.reported_missing_after_s * 1000)
        self._reports = suspicion.ReportBook()
        # did -> ((epoch, generation), when ranked, ranked observers)
        self._observers: dict[str, tuple[tuple[int, int], int, list[str]]] = {}
        self.observers_epoch = 0
        """Bumped whenever the set of possible observers may have changed (a subject went
        ONLINE or stopped being ONLINE, changed transport, or was forgotten)."""
        self._mesh_ms = int(self._config.mesh_missing_after_s * 1000)
        self._plaza_only_ms = int(self._config.plaza_missing_after_s * 1000)
        self._plaza_ms = self._plaza_only_ms if observer_on_plaza else self._mesh_ms
        self._subjects: dict[str, _Subject] = {}
        self._reported: dict[str, Status] = {}
        self._counts: dict[Status, int] = dict.fromkeys(Status, 0)
        self._deadlines: list[tuple[int, str]] = []  # (when, did); one entry per subject
        self._quiet: dict[str, int] = {}  # did -> when it was marked quiet (rule 6)

    # --- inputs -------------------------------------------------------------------------

    def apply(self, signed: SignedEvent, now_ms: int) -> list[StatusChanged]:
        """Take one verified event into account; return the status changes it causes."""
        changes: list[StatusChanged] = []
        event = signed.event
        event_type = type(event)
        at_ms, event_id = event.at_ms, signed.id
        emitter = self._subjects.get(event.did) or self._subject(event.did)
        named = (at_ms, event_id, event.name)
        if emitter.named is None or named > emitter.named:
            emitter.named = named
        kind = KIND_OF[event_type]
        if event_type is Lost:
            held = emitter.lost.get(event.boot_id)
            if held is None or (event.session, event_id) > held[:2]:
                emitter.lost[event.boot_id] = (event.session, event_id, at_ms)
                if held is None:
                    self._trim(emitter, emitter.lost)
        else:
            if (at_ms, event_id) > emitter.own:
                emitter.own = (at_ms, event_id)
                emitter.own_boot = event.boot_id
            sessions = emitter.sessions
            known = sessions.get(event.boot_id)
            if known is None or event.session > known:
                sessions[event.boot_id] = event.session
                if known is None:
                    self._trim(emitter, sessions)
            mark: _Mark = (at_ms, event_id, kind)
            if event_type is HeyThere:
                assert isinstance(event, HeyThere)
                self._announce(emitter, event, mark)
            if event_type is not Howdy and (emitter.vouch is None or mark > emitter.vouch):
                emitter.vouch = mark
            if emitter.best is None or mark > emitter.best:
                emitter.best = mark
            if event_type is Unreachable:
                assert isinstance(event, Unreachable)
                self._take_report(emitter, event, event_id, now_ms, changes)
        boot_latest = emitter.boot_latest
        if at_ms > boot_latest.get(event.boot_id, -1):
            boot_latest[event.boot_id] = at_ms
            if len(boot_latest) > 2 * MAX_BOOTS:  # forget the boot heard from least recently
                del boot_latest[min(boot_latest, key=lambda b: (boot_latest[b], b))]
        self._refresh(emitter, now_ms, "event", event_id, changes)
        return changes

    def observe_from_plaza(self, on_plaza: bool, now_ms: int) -> list[StatusChanged]:
        """The observer joined or left the plaza (a hybrid node whose broker went away or
        came back): plaza subjects' thresholds follow, since while the plaza is away their
        news can only come hop by hop over the mesh. O(N); the changes it causes."""
        plaza_ms = self._plaza_only_ms if on_plaza else self._mesh_ms
        if plaza_ms == self._plaza_ms:
            return []
        self._plaza_ms = plaza_ms
        self._deadlines = []
        changes: list[StatusChanged] = []
        for subject in self._subjects.values():
            if subject.transport != "mesh":
                subject.threshold_ms = plaza_ms
            subject.in_heap = False
            self._refresh(subject, now_ms, "timeout", None, changes)
        return changes

    def tick(self, now_ms: int) -> list[StatusChanged]:
        """Let time pass: report subjects that went silent."""
        changes: list[StatusChanged] = []
        heap = self._deadlines
        while heap and heap[0][0] <= now_ms:
            _, did = heapq.heappop(heap)
            subject = self._subjects.get(did)
            if subject is None:
                continue  # forgotten since
            subject.in_heap = False
            self._refresh(subject, now_ms, "timeout", None, changes)
        return changes

    def set_quiet(self, did: str, quiet: bool, now_ms: int) -> list[StatusChanged]:
        """Mark ``did`` quiet (its pulses stopped reaching us) or not (rule 6); the status
        changes it causes (cause ``pulse``)."""
        if quiet == (did in self._quiet):
            return []
        if quiet:
            self._quiet[did] = now_ms
        else:
            del self._quiet[did]
        subject = self._subjects.get(did)
        changes: list[StatusChanged] = []
        if subject is not None:
            self._refresh(subject, now_ms, "pulse", None, changes)
        return changes

    def forget(self, did: str) -> bool:
        """Drop everything known about ``did`` (the runtime decides when: see
        :mod:`hereabouts.peers.admission`). True if it was known."""
        subject = self._subjects.pop(did, None)
        if subject is None:
            return False
        reported = self._reported.pop(did, None)
        if reported is not None:
            self._counts[reported] -= 1
        self._quiet.pop(did, None)
        self._reports.forget(did)
        self._observers.pop(did, None)
        self.observers_epoch += 1
        return True

    # --- outputs ------------------------------------------------------------------------

    def next_deadline(self) -> int | None:
        """The earliest time at which :meth:`tick` may have something to report."""
        return self._deadlines[0][0] if self._deadlines else None

    def status(self, did: str, now_ms: int) -> Status | None:
        """The subject's status now, or None when no event about it is known."""
        subject = self._subjects.get(did)
        return None if subject is None else self._judge(subject, now_ms)[0]

    def reported(self, did: str) -> Status | None:
        """The status last reported for ``did`` (up to date when :meth:`tick` has run)."""
        return self._reported.get(did)

    def last_event_ms(self, did: str) -> int:
        """``at_ms`` of the event that currently decides ``did``'s status (-1 if unknown)."""
        subject = self._subjects.get(did)
        return -1 if subject is None or subject.best is None else subject.best[0]

    def count(self, status: Status) -> int:
        """Subjects whose last reported status is ``status``; O(1)."""
        return self._counts[status]

    def view(self, did: str, now_ms: int) -> PeerView | None:
        subject = self._subjects.get(did)
        return None if subject is None else self._view(subject, now_ms)

    def peers(self, now_ms: int) -> list[PeerView]:
        """Every known subject, sorted by name then DID. O(N log N): for the API, never for
        a decision taken per event."""
        views = [self._view(s, now_ms) for s in self._subjects.values()]
        return sorted(views, key=lambda v: (v.name, v.did))

    def dids(self) -> Iterator[str]:
        """Every known subject's DID, in no particular order."""
        return iter(self._subjects)

    def statuses(self, now_ms: int) -> dict[str, Status]:
        """Status of every known subject, by DID."""
        judged = ((did, self._judge(s, now_ms)[0]) for did, s in self._subjects.items())
        return {did: status for did, status in judged if status is not None}

    def evidence(self, did: str, now_ms: int) -> tuple[str | None, str | None]:
        """Ids of the events a howdy should carry to vouch for ``did``: its latest
        hey_there, and its latest word if newer (the lost will that makes it MISSING, else
        its latest event other than a howdy, whose size would nest howdys in howdys)."""
        subject = self._subjects.get(did)
        if subject is None:
            return None, None
        hey_there = None if subject.hey_there is None else subject.hey_there[1]
        latest = subject.vouch
        if self._judge(subject, now_ms)[0] is Status.MISSING:
            latest = self._lost_will(subject) or latest
        if latest is None or latest[1] == hey_there:
            return hey_there, None
        return hey_there, latest[1]

    def versions(self) -> dict[str, int]:
        """Each known subject's version for mesh digests: the latest ``at_ms`` of any of its
        events taken in (see :mod:`hereabouts.core.reconcile`). O(N)."""
        return {
            did: max(s.boot_latest.values()) for did, s in self._subjects.items() if s.boot_latest
        }

    def marks(self, did: str) -> list[tuple[int, str, str]]:
        """``(at_ms, event id, kind)`` of the events that decide what we know of ``did``:
        its winning event, latest hey_there, latest vouching event and its lost wills. A
        peer given these (and nothing older) judges ``did`` as we do."""
        subject = self._subjects.get(did)
        if subject is None:
            return []
        found = {m for m in (subject.best, subject.hey_there, subject.vouch) if m is not None}
        found.update((at, event_id, "lost") for _, event_id, at in subject.lost.values())
        found.update((at, event_id, "unreachable") for at, event_id in self._reports.made_by(did))
        return sorted(found)

    def boot_of(self, did: str) -> str | None:
        """The boot id of ``did``'s latest own event (not a will), if any."""
        subject = self._subjects.get(did)
        return None if subject is None else subject.own_boot

    def transport_of(self, did: str) -> str | None:
        """How ``did`` says it is reached (its latest hey_there), if known."""
        subject = self._subjects.get(did)
        return None if subject is None or subject.hey_there is None else subject.transport

    def online_with_transport(self, transport: str) -> list[str]:
        """DIDs last reported ONLINE whose latest hey_there names ``transport``. O(N)."""
        reported = self._reported
        return [
            did
            for did, s in self._subjects.items()
            if s.transport == transport and reported.get(did) is Status.ONLINE
        ]

    def observers(self, did: str, now_ms: int) -> list[str]:
        """``did``'s assigned observers as we see them (:mod:`hereabouts.core.suspicion`):
        ranked among the mesh nodes last reported ONLINE that may observe. O(N) to rank;
        reused while :attr:`observers_epoch` and the key book's generation stay, and for at
        most :data:`~hereabouts.core.suspicion.OBSERVERS_TTL_MS`."""
        cached = self._observers.get(did)
        epoch = self.observers_version
        if cached is not None and cached[0] == epoch and now_ms - cached[1] < OBSERVERS_TTL_MS:
            return cached[2]
        candidates = (other for other in self._subjects if self._candidate(other))
        ranked = suspicion.observers_of(did, candidates)
        self._observers[did] = (epoch, now_ms, ranked)
        return ranked

    @property
    def observers_version(self) -> tuple[int, int]:
        """Changes whenever anyone's assigned observers may have changed: a node went
        ONLINE or stopped being ONLINE, changed transport or was forgotten
        (:attr:`observers_epoch`), or a key was proven or dropped (the key book's
        generation)."""
        return (self.observers_epoch, self._observers_generation())

    def _candidate(self, did: str) -> bool:
        subject = self._subjects.get(did)
        return (
            subject is not None
            and subject.transport != "plaza"
            and self._reported.get(did) is Status.ONLINE
            and self._may_observe(did)
        )

    def _confirmations(self, subject: _Subject, now_ms: int) -> int:
        """Standing reports about ``subject`` from its assigned observers (rule 4)."""
        if not self._reports.reported(subject.did) or subject.best is None:
            return 0
        standing = self._reports.standing(subject.did, subject.best[0])
        if not standing or not any(self._candidate(r) for r in standing):
            return 0
        return len(set(self.observers(subject.did, now_ms)).intersection(standing))

    def _threshold(self, subject: _Subject, now_ms: int) -> int:
        """The subject's silence before MISSING, shortened by a quorum of reports."""
        threshold = subject.threshold_ms
        if not self._reports.reported(subject.did):
            return threshold
        confirmations = self._confirmations(subject, now_ms)
        return suspicion.missing_after_ms(threshold, self._shortest_ms, confirmations)

    def clashes(self, did: str, now_ms: int) -> bool:
        """Whether two processes seem to share ``did``'s key now (rule 7)."""
        subject = self._subjects.get(did)
        return subject is not None and self._clashing(subject, now_ms)

    def pinned_event_ids(self) -> set[str]:
        """Events that retention must keep so that a replay of what remains decides the same:
        each subject's winner, its latest own event, hey_there and vouching event, and its
        current lost wills."""
        keep: set[str] = set()
        for s in self._subjects.values():
            for mark in (s.best, s.hey_there, s.vouch):
                if mark is not None:
                    keep.add(mark[1])
            if s.own[0] >= 0:
                keep.add(s.own[1])
            keep.update(lost[1] for lost in s.lost.values())
        keep.update(self._reports.event_ids())
        return keep

    def __len__(self) -> int:
        return len(self._subjects)

    def __contains__(self, did: object) -> bool:
        return did in self._subjects

    # --- the rules ----------------------------------------------------------------------

    def _subject(self, did: str) -> _Subject:
        subject = self._subjects.get(did)
        if subject is None:
            subject = self._subjects[did] = _Subject(did, self._plaza_ms)
        return subject

    def _announce(self, subject: _Subject, event: HeyThere, mark: _Mark) -> None:
        starts = subject.boot_starts
        started = starts.get(event.boot_id)
        if started is None or event.at_ms < started:
            starts[event.boot_id] = event.at_ms
            if len(starts) > MAX_BOOTS:
                oldest = min(starts, key=lambda boot: (starts[boot], boot))
                del starts[oldest]
                subject.sessions.pop(oldest, None)
                subject.lost.pop(oldest, None)
                subject.boots_dropped += 1
        if subject.hey_there is None or mark > subject.hey_there:
            old_threshold = subject.threshold_ms
            subject.hey_there = mark
            if event.transport != subject.transport:
                self.observers_epoch += 1
            subject.transport = event.transport
            subject.threshold_ms = self._mesh_ms if event.transport == "mesh" else self._plaza_ms
            if subject.in_heap and subject.threshold_ms < old_threshold:
                subject.in_heap = False  # an earlier deadline than the one queued
            subject.endpoints = dict(event.endpoints)

    @staticmethod
    def _trim(subject: _Subject, table: dict[str, Any]) -> None:
        """Keep per-boot tables to ``2 x MAX_BOOTS`` boots, dropping the first recorded."""
        while len(table) > 2 * MAX_BOOTS:
            del table[next(b for b in table if b != subject.own_boot)]

    @staticmethod
    def _clash_at(subject: _Subject) -> int | None:
        """Rule 7: the latest event of a boot dated after a newer boot had started. Only
        boots whose hey_there we hold can be placed in time, so only they are judged."""
        starts, found = subject.boot_starts, None
        for boot, started in starts.items():
            latest = subject.boot_latest.get(boot, started)
            if any(
                other_start > started and latest > other_start + CLASH_GRACE_MS
                for other, other_start in starts.items()
                if other != boot
            ) and (found is None or latest > found):
                found = latest
        return found

    def _clashing(self, subject: _Subject, now_ms: int) -> bool:
        if len(subject.boot_starts) < 2:
            return False
        clash_at = self._clash_at(subject)
        return clash_at is not None and now_ms - clash_at <= CLASH_MEMORY_MS

    def _lost_will(self, subject: _Subject) -> _Mark | None:
        """The lost will that makes the subject MISSING, if one does."""
        boot = subject.own_boot
        if boot is None:  # nothing but wills known: the latest one decides
            if not subject.lost:
                return None
            _, event_id, at_ms = max(subject.lost.values())
            return (at_ms, event_id, "lost")
        held = subject.lost.get(boot)
        if held is None or held[0] < subject.sessions.get(boot, -1):
            return None
        return (held[2], held[1], "lost")

    def _judge(self, subject: _Subject, now_ms: int) -> tuple[Status | None, _Mark | None]:
        """(status, the event that decides it) of one subject at ``now_ms``."""
        best = subject.best
        if best is not None and best[2] == "chau":
            return Status.OFFLINE, best
        will = self._lost_will(subject) if subject.lost else None
        if will is not None:
            return Status.MISSING, will
        if best is None:
            return None, None
        if now_ms - best[0] > self._threshold(subject, now_ms):
            return Status.MISSING, best
        quiet_since = self._quiet.get(subject.did)
        if quiet_since is not None:
            return Status.MISSING, (quiet_since, best[1], "pulse")
        return Status.ONLINE, best

    def _take_report(
        self,
        reporter: _Subject,
        report: Unreachable,
        event_id: str,
        now_ms: int,
        changes: list[StatusChanged],
    ) -> None:
        """Keep a failure report: with its reporter, whose mesh evidence carries it on, and,
        if the reporter may observe, indexed under its subject for counting. Checked here
        too (not only at the node's edge), since a howdy may carry one in."""
        target = report.subject_did
        if suspicion.report_problem(reporter.did, target, report.at_ms, report.last_seen_ms):
            return
        counted = self._reports.add(
            reporter.did,
            target,
            report.at_ms,
            event_id,
            report.last_seen_ms,
            counted=self._may_observe(reporter.did),
            observers=lambda: self.observers(target, now_ms),
        )
        subject = self._subjects.get(target)
        if counted and subject is not None:
            subject.in_heap = False  # its deadline may have moved earlier
            self._refresh(subject, now_ms, "reports", event_id, changes)

    def _refresh(
        self,
        subject: _Subject,
        now_ms: int,
        cause: str,
        event_id: str | None,
        changes: list[StatusChanged],
    ) -> None:
        status, best = self._judge(subject, now_ms)
        if status is Status.ONLINE and best is not None and not subject.in_heap:
            deadline = best[0] + self._threshold(subject, now_ms) + 1
            if self._reports.reported(subject.did):
                # Reports stand: the observers' ranking may change without an event about
                # this subject, so judge it again every so often until its deadline.
                recheck = max(best[0] + self._shortest_ms, now_ms + RECHECK_MS) + 1
                deadline = min(deadline, recheck)
            heapq.heappush(self._deadlines, (deadline, subject.did))
            subject.in_heap = True
        if status is None:
            return
        old = self._reported.get(subject.did)
        if status is not old:
            if Status.ONLINE in (old, status):
                self.observers_epoch += 1
            self._reported[subject.did] = status
            if old is not None:
                self._counts[old] -= 1
            self._counts[status] += 1
            changes.append(
                StatusChanged(
                    did=subject.did,
                    name=subject.display_name(),
                    old=old,
                    new=status,
                    at_ms=now_ms,
                    cause=cause,
                    event_id=event_id,
                )
            )

    def _view(self, subject: _Subject, now_ms: int) -> PeerView:
        status, decided = self._judge(subject, now_ms)
        assert status is not None and decided is not None, "known subjects have evidence"
        return PeerView(
            did=subject.did,
            name=subject.display_name(),
            status=status,
            last_event_at_ms=decided[0],
            last_event=decided[2],
            last_event_id=decided[1],
            boot_id=subject.own_boot,
            restarts=max(0, len(subject.boot_starts) + subject.boots_dropped - 1),
            transport=subject.transport,
            endpoints=dict(subject.endpoints),
            clash=self._clashing(subject, now_ms),
            reports=self._confirmations(subject, now_ms),
        )
