"""The status projection: verified events and the time in, statuses and changes out.

Rules (the seed design's, made deterministic):

1. **Most recent event wins**, per subject. Events are totally ordered by
   ``(at_ms, event id)``, so the winner never depends on arrival order; every rule below
   is a maximum over a set, so applying the same events in any order, once or twice, gives
   the same statuses.
2. **What events mean.** ``hey_there``, ``newspaper``, ``howdy`` and ``seen`` are evidence
   that their emitter is ONLINE; ``seen`` is also evidence for its subject. ``chau`` means
   OFFLINE. ``lost`` (the broker's will for a dead connection) means MISSING when it is for
   the subject's current boot and no later session of that boot has spoken since (an
   event's ``session`` counts reconnects within a boot); a chau still wins over a lost.
3. **Silence.** ONLINE whose winning event is older than the subject's threshold reads as
   MISSING (plaza peers and mesh-only peers have separate thresholds, see
   :class:`~hereabouts.config.ProjectionConfig`); any fresh event brings it back.
4. **Restarts** are new boot ids in ``hey_there`` events, counted, never guessed from gaps.
5. **Boot window.** While our own node boots (until :meth:`Projection.end_boot_window` or
   ``boot_window_max_s``), a chau cannot beat a subject's ONLINE evidence: stale goodbyes
   replayed during the first sync must not clobber live peers. When the window closes, held
   chaus are judged again and apply only if they are still the most recent event.

Statuses are a function of the set of events, the time and whether the window is open, so
replaying the ledger into a fresh projection reproduces them. Changes are reported against
the last status this projection reported for each subject.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from hereabouts.config import ProjectionConfig
from hereabouts.core.effects import Status, StatusChanged
from hereabouts.events import KIND_OF, Chau, HeyThere, Lost, Seen, SignedEvent

# (at_ms, event id, kind): ordered by the first two, which are unique per event.
_Mark = tuple[int, str, str]


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


class _Subject:
    """Everything the rules need about one DID; each field is a maximum or a set."""

    __slots__ = (
        "best",
        "best_not_chau",
        "boots",
        "did",
        "endpoints",
        "hey_there",
        "in_heap",
        "lost",
        "named",
        "own",
        "own_boot",
        "seen_name",
        "sessions",
    )

    def __init__(self, did: str) -> None:
        self.did = did
        self.named: tuple[int, str, str] | None = None  # (at, id, name) of its latest own event
        self.seen_name: tuple[int, str, str] | None = None  # the same from seen events
        self.best: _Mark | None = None
        self.best_not_chau: _Mark | None = None
        self.own: tuple[int, str] = (-1, "")  # latest own event other than a lost will
        self.own_boot: str | None = None
        self.sessions: dict[str, int] = {}  # boot id -> highest session heard from
        self.lost: dict[str, tuple[int, str, int]] = {}  # boot -> (session, id, at) of its will
        self.boots: set[str] = set()  # boot ids announced in hey_there events
        self.hey_there: _Mark | None = None
        self.endpoints: dict[str, str] = {}
        self.in_heap = False

    def display_name(self) -> str:
        """Its own latest word on its name; failing that, what observers called it."""
        named = self.named or self.seen_name
        return "" if named is None else named[2]


class Projection:
    """Per-DID statuses derived from verified events. Sans-I/O: pass ``now_ms`` in."""

    def __init__(
        self,
        config: ProjectionConfig | None = None,
        *,
        started_at_ms: int,
        booting: bool = True,
    ) -> None:
        self._config = config or ProjectionConfig()
        self._plaza_ms = int(self._config.plaza_missing_after_s * 1000)
        self._mesh_ms = int(self._config.mesh_missing_after_s * 1000)
        self._boot_deadline_ms = started_at_ms + int(self._config.boot_window_max_s * 1000)
        self._booting = booting
        self._subjects: dict[str, _Subject] = {}
        self._transports: dict[str, str] = {}
        self._reported: dict[str, Status] = {}
        self._deadlines: list[tuple[int, str]] = []  # (when, did); one entry per subject

    # --- inputs -------------------------------------------------------------------------

    def apply(self, signed: SignedEvent, now_ms: int) -> list[StatusChanged]:
        """Take one verified event into account; return the status changes it causes."""
        changes = self._close_window_if_due(now_ms) if self._booting else []
        event = signed.event
        event_type = type(event)
        at_ms, event_id = event.at_ms, signed.id
        emitter = self._subjects.get(event.did) or self._subject(event.did)
        named = (at_ms, event_id, event.name)
        if emitter.named is None or named > emitter.named:
            emitter.named = named
        if event_type is Lost:
            held = emitter.lost.get(event.boot_id)
            if held is None or (event.session, event_id) > held[:2]:
                emitter.lost[event.boot_id] = (event.session, event_id, at_ms)
        else:
            if (at_ms, event_id) > emitter.own:
                emitter.own = (at_ms, event_id)
                emitter.own_boot = event.boot_id
            if event.session > emitter.sessions.get(event.boot_id, -1):
                emitter.sessions[event.boot_id] = event.session
            mark: _Mark = (at_ms, event_id, KIND_OF[event_type])
            if event_type is HeyThere:
                assert isinstance(event, HeyThere)
                emitter.boots.add(event.boot_id)
                if emitter.hey_there is None or mark > emitter.hey_there:
                    emitter.hey_there = mark
                    self._transports[emitter.did] = event.transport
                    emitter.endpoints = dict(event.endpoints)
            self._offer(emitter, mark, event_type is Chau)
        self._refresh(emitter, now_ms, "event", event_id, changes)
        if event_type is Seen:
            assert isinstance(event, Seen)
            if event.subject_did != event.did:
                self._apply_seen_subject(event, signed.id, now_ms, changes)
        return changes

    def _apply_seen_subject(
        self, event: Seen, event_id: str, now_ms: int, changes: list[StatusChanged]
    ) -> None:
        subject = self._subject(event.subject_did)
        named = (event.at_ms, event_id, event.subject_name)
        if subject.seen_name is None or named > subject.seen_name:
            subject.seen_name = named
        self._offer(subject, (event.at_ms, event_id, "seen"), False)
        self._refresh(subject, now_ms, "event", event_id, changes)

    def tick(self, now_ms: int) -> list[StatusChanged]:
        """Let time pass: report subjects that went silent, close an expired boot window."""
        changes = self._close_window_if_due(now_ms)
        heap = self._deadlines
        while heap and heap[0][0] <= now_ms:
            _, did = heapq.heappop(heap)
            subject = self._subjects[did]
            subject.in_heap = False
            self._refresh(subject, now_ms, "timeout", None, changes)
        return changes

    def end_boot_window(self, now_ms: int) -> list[StatusChanged]:
        """Our first sync completed: chaus held back during boot are judged again."""
        if not self._booting:
            return []
        self._booting = False
        changes: list[StatusChanged] = []
        for subject in self._subjects.values():
            if subject.best != subject.best_not_chau:
                self._refresh(subject, now_ms, "boot_window_closed", None, changes)
        return changes

    # --- outputs ------------------------------------------------------------------------

    @property
    def booting(self) -> bool:
        return self._booting

    def next_deadline(self) -> int | None:
        """The earliest time at which :meth:`tick` may have something to report."""
        candidates = [self._deadlines[0][0]] if self._deadlines else []
        if self._booting:
            candidates.append(self._boot_deadline_ms)
        return min(candidates) if candidates else None

    def status(self, did: str, now_ms: int) -> Status | None:
        """The subject's status now, or None when no event about it is known."""
        subject = self._subjects.get(did)
        return None if subject is None else self._judge(subject, now_ms)[0]

    def view(self, did: str, now_ms: int) -> PeerView | None:
        subject = self._subjects.get(did)
        return None if subject is None else self._view(subject, now_ms)

    def peers(self, now_ms: int) -> list[PeerView]:
        """Every known subject, sorted by name then DID."""
        views = [self._view(s, now_ms) for s in self._subjects.values()]
        return sorted(views, key=lambda v: (v.name, v.did))

    def statuses(self, now_ms: int) -> dict[str, Status]:
        """Status of every known subject, by DID."""
        judged = ((did, self._judge(s, now_ms)[0]) for did, s in self._subjects.items())
        return {did: status for did, status in judged if status is not None}

    def pinned_event_ids(self) -> set[str]:
        """Events that retention must keep so that a replay of what remains decides the same:
        each subject's winners, its latest own event and hey_there, and its current lost."""
        keep: set[str] = set()
        for s in self._subjects.values():
            for mark in (s.best, s.best_not_chau, s.hey_there):
                if mark is not None:
                    keep.add(mark[1])
            if s.own[0] >= 0:
                keep.add(s.own[1])
            keep.update(lost[1] for lost in s.lost.values())
        return keep

    def __len__(self) -> int:
        return len(self._subjects)

    # --- the rules ----------------------------------------------------------------------

    def _subject(self, did: str) -> _Subject:
        subject = self._subjects.get(did)
        if subject is None:
            subject = self._subjects[did] = _Subject(did)
        return subject

    @staticmethod
    def _offer(subject: _Subject, mark: _Mark, is_chau: bool) -> None:
        # Marks compare as (at_ms, event id, kind); ids are unique, so the kind never decides.
        if subject.best is None or mark > subject.best:
            subject.best = mark
        if not is_chau and (subject.best_not_chau is None or mark > subject.best_not_chau):
            subject.best_not_chau = mark

    def _threshold_ms(self, did: str) -> int:
        return self._mesh_ms if self._transports.get(did) == "mesh" else self._plaza_ms

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
        if self._booting and subject.best_not_chau is not None:
            best = subject.best_not_chau
        if best is not None and best[2] == "chau":
            return Status.OFFLINE, best
        will = self._lost_will(subject)
        if will is not None:
            return Status.MISSING, will
        if best is None:
            return None, None
        if now_ms - best[0] > self._threshold_ms(subject.did):
            return Status.MISSING, best
        return Status.ONLINE, best

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
            deadline = best[0] + self._threshold_ms(subject.did) + 1
            heapq.heappush(self._deadlines, (deadline, subject.did))
            subject.in_heap = True
        if status is None:
            return
        old = self._reported.get(subject.did)
        if status is not old:
            self._reported[subject.did] = status
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

    def _close_window_if_due(self, now_ms: int) -> list[StatusChanged]:
        if self._booting and now_ms >= self._boot_deadline_ms:
            return self.end_boot_window(now_ms)
        return []

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
            restarts=max(0, len(subject.boots) - 1),
            transport=self._transports.get(subject.did, "plaza"),
            endpoints=dict(subject.endpoints),
        )
