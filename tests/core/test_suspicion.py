"""Failure reports: assigned observers, the quorum, Lifeguard's curve, and what liars get."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import pytest

from hereabouts.config import ProjectionConfig
from hereabouts.core import suspicion
from hereabouts.core.effects import Status
from hereabouts.core.projection import Projection
from hereabouts.events import SignedEvent
from tests.signers import SECOND, T0, Peer

FULL_S, SHORTEST_S = 3600.0, 300.0
CONFIG = ProjectionConfig(mesh_missing_after_s=FULL_S, reported_missing_after_s=SHORTEST_S)


def mesh(count: int) -> list[Peer]:
    return [Peer(f"m{i}", seed=40 + i, transport="mesh") for i in range(count)]


def booted(peers: list[Peer], *, may_observe: set[str] | None = None) -> Projection:
    rule = None if may_observe is None else may_observe.__contains__
    projection = Projection(CONFIG, observer_on_plaza=False, may_observe=rule)
    for peer in peers:
        projection.apply(peer.hey_there(T0), T0)
    return projection


def by_did(peers: list[Peer]) -> dict[str, Peer]:
    return {p.did: p for p in peers}


def report_all(
    projection: Projection, reporters: list[Peer], subject: Peer, at: int
) -> list[tuple[str, Status]]:
    """Every reporter's report, applied at ``at``; the status changes they caused."""
    changes = []
    for reporter in reporters:
        report = reporter.unreachable(subject, at, last_seen_ms=T0)
        changes += [(c.did, c.new) for c in projection.apply(report, at)]
    return changes


def test_observers_are_five_agreed_by_everyone_and_never_the_subject() -> None:
    peers = [p.did for p in mesh(20)]
    chosen = suspicion.observers_of(peers[0], peers)
    assert len(chosen) == suspicion.OBSERVERS
    assert peers[0] not in chosen
    assert suspicion.observers_of(peers[0], reversed(peers)) == chosen
    # One observer leaving moves only its own slot.
    fewer = suspicion.observers_of(peers[0], [p for p in peers if p != chosen[0]])
    assert fewer[:4] == chosen[1:]


def test_the_threshold_shrinks_from_the_quorum_on_and_never_below_the_shortest() -> None:
    full, shortest = 3_600_000, 300_000
    got = [suspicion.missing_after_ms(full, shortest, c) for c in range(8)]
    assert got[: suspicion.QUORUM] == [full] * suspicion.QUORUM
    assert got[suspicion.QUORUM] < full
    assert got[suspicion.QUORUM :] == sorted(got[suspicion.QUORUM :], reverse=True)
    assert got[suspicion.OBSERVERS] == shortest and got[7] == shortest


@pytest.mark.parametrize(
    ("reporter", "subject", "at", "seen", "refused"),
    [("a", "a", 10, 5, True), ("a", "b", 10, 11, True), ("a", "b", 10, 10, False)],
)
def test_reports_about_oneself_or_from_the_future_are_refused(
    reporter: str, subject: str, at: int, seen: int, refused: bool
) -> None:
    assert (suspicion.report_problem(reporter, subject, at, seen) is not None) is refused


def assigned_and_others(peers: list[Peer], subject: Peer) -> tuple[list[Peer], list[Peer]]:
    ids = suspicion.observers_of(subject.did, [p.did for p in peers])
    index = by_did(peers)
    observers = [index[d] for d in ids]
    return observers, [p for p in peers if p not in observers and p is not subject]


def test_one_or_two_reports_change_nothing_a_quorum_shortens_all_five_reach_the_shortest() -> None:
    peers = mesh(12)
    subject = peers[0]
    observers, _ = assigned_and_others(peers, subject)
    projection = booted(peers)
    for peer in peers[1:]:  # everyone but the subject keeps talking
        projection.apply(peer.newspaper(T0 + 1000 * SECOND), T0 + 1000 * SECOND)
    at = T0 + 1000 * SECOND
    silent_for_400 = T0 + 400 * SECOND  # past the shortest threshold, far from the full one

    report_all(projection, observers[:2], subject, at)
    view = projection.view(subject.did, at)
    assert view is not None and view.reports == 2
    assert projection.status(subject.did, at) is Status.ONLINE  # 1000 s silent, threshold 1 h

    assert report_all(projection, observers[2:3], subject, at) == []  # 1,278 s at three
    quorum_ms = suspicion.missing_after_ms(3_600_000, 300_000, 3)
    assert projection.status(subject.did, T0 + quorum_ms - 1) is Status.ONLINE
    assert projection.status(subject.did, T0 + quorum_ms + 1) is Status.MISSING

    # 1,000 s silent: the fourth report's threshold (906 s) is passed as it arrives.
    assert report_all(projection, observers[3:], subject, at) == [(subject.did, Status.MISSING)]
    assert projection.status(subject.did, silent_for_400) is Status.MISSING


def test_reports_from_unassigned_or_unproven_keys_count_for_nothing() -> None:
    peers = mesh(12)
    subject = peers[0]
    observers, others = assigned_and_others(peers, subject)
    at = T0 + 1000 * SECOND
    projection = booted(peers)
    report_all(projection, others, subject, at)  # six liars, none assigned
    view = projection.view(subject.did, at)
    assert view is not None and view.reports == 0 and view.status is Status.ONLINE

    # The assigned observers, but their keys are not proven: they are not candidates, so
    # other (proven) nodes are assigned instead, and those said nothing.
    unproven = {o.did for o in observers}
    projection = booted(peers, may_observe={p.did for p in peers} - unproven)
    report_all(projection, observers, subject, at)
    view = projection.view(subject.did, at)
    assert view is not None and view.reports == 0 and view.status is Status.ONLINE


def test_a_subject_that_speaks_again_has_answered_every_report() -> None:
    peers = mesh(12)
    subject = peers[0]
    observers, _ = assigned_and_others(peers, subject)
    projection = booted(peers)
    at = T0 + 1000 * SECOND
    report_all(projection, observers, subject, at)
    assert projection.status(subject.did, at) is Status.MISSING
    projection.apply(subject.newspaper(at + SECOND), at + SECOND)
    view = projection.view(subject.did, at + 400 * SECOND)
    assert view is not None and view.reports == 0 and view.status is Status.ONLINE
    # A report written before the subject's latest news never counts.
    late: SignedEvent = observers[0].unreachable(subject, at + 2 * SECOND, last_seen_ms=T0)
    projection.apply(late, at + 2 * SECOND)
    view = projection.view(subject.did, at + 2 * SECOND)
    assert view is not None and view.reports == 0


def test_a_quorum_of_liars_cannot_make_a_node_whose_heartbeats_arrive_missing() -> None:
    peers = mesh(12)
    subject = peers[0]
    observers, _ = assigned_and_others(peers, subject)
    projection = booted(peers)
    now = T0
    for step in range(1, 40):  # the subject heartbeats every 120 s; every observer lies
        now = T0 + step * 120 * SECOND
        for observer in observers:
            projection.apply(observer.unreachable(subject, now, last_seen_ms=now), now)
        assert projection.status(subject.did, now + 119 * SECOND) is Status.ONLINE
        projection.apply(subject.newspaper(now + 119 * SECOND), now + 119 * SECOND)


def test_reports_travel_as_their_reporters_evidence_and_stay_bounded() -> None:
    peers = mesh(40)
    reporter = peers[1]
    projection = booted(peers)
    at = T0 + 1000 * SECOND
    made = [reporter.unreachable(p, at + i, last_seen_ms=T0) for i, p in enumerate(peers[2:])]
    for report in made:
        projection.apply(report, at + 100)
    marks = projection.marks(reporter.did)
    kept = {event_id for _, event_id, kind in marks if kind == "unreachable"}
    assert len(kept) == suspicion.MAX_REPORTS_KEPT
    assert kept == {r.id for r in made[-suspicion.MAX_REPORTS_KEPT :]}
    assert kept <= projection.pinned_event_ids()
    assert projection.versions()[reporter.did] == made[-1].at_ms


def test_reports_bring_the_silence_deadline_forward() -> None:
    peers = mesh(12)
    subject = peers[0]
    observers, _ = assigned_and_others(peers, subject)
    projection = booted(peers)
    at = T0 + 200 * SECOND  # silent 200 s when the reports come: not MISSING yet
    for peer in peers[1:]:
        projection.apply(peer.newspaper(at), at)
    assert report_all(projection, observers, subject, at) == []
    deadline = projection.next_deadline()
    assert deadline is not None and deadline <= T0 + 300 * SECOND + 1
    changes = projection.tick(T0 + 300 * SECOND + 1)
    assert [(c.did, c.new, c.cause) for c in changes] == [(subject.did, Status.MISSING, "timeout")]


def test_a_report_that_claims_to_have_seen_the_future_counts_for_nothing() -> None:
    """Ingest refuses it (``bad_report``); the projection ignores it too, on its own."""
    peers = mesh(12)
    subject = peers[0]
    observers, _ = assigned_and_others(peers, subject)
    projection = booted(peers)
    at = T0 + 1000 * SECOND
    for observer in observers:
        forged = observer.unreachable(subject, at, last_seen_ms=2**53 - 1)
        projection.apply(forged, at)
    view = projection.view(subject.did, at)
    assert view is not None and view.reports == 0 and view.status is Status.ONLINE


def test_keys_that_may_observe_but_are_not_assigned_cannot_push_observers_reports_out() -> None:
    peers = mesh(5 + suspicion.MAX_REPORTERS_COUNTED + 10)
    subject = peers[0]
    observers, others = assigned_and_others(peers, subject)
    projection = booted(peers)
    at = T0 + 1000 * SECOND
    report_all(projection, observers, subject, at)
    report_all(projection, others, subject, at + 30 * SECOND)  # later, and many more
    view = projection.view(subject.did, at + 30 * SECOND)
    assert view is not None and view.reports == suspicion.OBSERVERS
    assert view.status is Status.MISSING


def test_what_counts_does_not_depend_on_the_order_events_arrive_in() -> None:
    peers = mesh(12)
    subject = peers[0]
    observers, _ = assigned_and_others(peers, subject)
    at = T0 + 1000 * SECOND
    others = [p.hey_there(T0) for p in peers[1:]]
    reports = [o.unreachable(subject, at, last_seen_ms=T0) for o in observers]
    hey_there = [subject.hey_there(T0)]
    outcomes = set()
    for batches in itertools.permutations([others, reports, hey_there]):
        projection = Projection(CONFIG, observer_on_plaza=False)
        for batch in batches:
            for event in batch:
                projection.apply(event, at)
        view = projection.view(subject.did, at)
        assert view is not None
        outcomes.add((view.reports, view.status))
    assert outcomes == {(suspicion.OBSERVERS, Status.MISSING)}


def test_the_shortened_threshold_follows_the_observers_own_threshold() -> None:
    """A hybrid observer whose broker went away judges plaza subjects by the mesh's
    threshold; reports counted before must not keep the plaza's shorter one."""
    config = ProjectionConfig(
        plaza_missing_after_s=300.0, mesh_missing_after_s=FULL_S, reported_missing_after_s=300.0
    )
    peers = [Peer(f"h{i}", seed=70 + i, transport="hybrid") for i in range(12)]
    subject = peers[0]
    projection = Projection(config)
    for peer in peers:
        projection.apply(peer.hey_there(T0), T0)
    observers, _ = assigned_and_others(peers, subject)
    report_all(projection, observers[: suspicion.QUORUM], subject, T0 + SECOND)
    projection.observe_from_plaza(False, T0 + 2 * SECOND)
    # Three reports take the mesh's hour down to 1,047 s, not the plaza's 300 s.
    assert projection.status(subject.did, T0 + 400 * SECOND) is Status.ONLINE
    assert projection.status(subject.did, T0 + 1100 * SECOND) is Status.MISSING


def test_a_reported_subjects_events_do_not_rank_its_observers_each_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ranking is O(N); a subject (or a key posing as one) sending backdated events under a
    standing report must not make every event pay for it."""
    peers = mesh(30)
    subject = peers[0]
    observers, _ = assigned_and_others(peers, subject)
    projection = booted(peers)
    at = T0 + 1000 * SECOND
    projection.apply(observers[0].unreachable(subject, at, last_seen_ms=at), at)
    rankings = 0
    real = suspicion.observers_of

    def counting(subject_did: str, candidates: Iterable[str]) -> list[str]:
        nonlocal rankings
        rankings += 1
        return real(subject_did, candidates)

    monkeypatch.setattr(suspicion, "observers_of", counting)
    for step in range(50):
        projection.apply(subject.newspaper(at - 100 * SECOND + step), at + step)
    assert rankings <= 1


def test_a_key_proven_after_a_ranking_is_ranked_in_at_once() -> None:
    peers = mesh(6)
    subject = peers[0]
    proven = {p.did for p in peers[2:]}
    generation = [0]
    projection = Projection(
        CONFIG,
        observer_on_plaza=False,
        may_observe=proven.__contains__,
        observers_generation=lambda: generation[0],
    )
    for peer in peers:
        projection.apply(peer.hey_there(T0), T0)
    assert peers[1].did not in projection.observers(subject.did, T0)
    proven.add(peers[1].did)
    assert peers[1].did not in projection.observers(subject.did, T0 + 1)  # nobody said so
    generation[0] += 1  # the key book says: a key was proven
    assert peers[1].did in projection.observers(subject.did, T0 + 2)
