"""The status projection: rules from the issue, one test each, plus order-independence laws."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hereabouts.config import ProjectionConfig
from hereabouts.core.effects import Status
from hereabouts.core.projection import Projection
from hereabouts.events import SignedEvent
from hereabouts.ledger import MemoryLedger
from tests.signers import MINUTE, SECOND, T0, Peer

ALICE = Peer("alice", seed=1)
BOB = Peer("bob", seed=2)
CAROL = Peer("carol", seed=3)


def booted(config: ProjectionConfig | None = None) -> Projection:
    return Projection(config)


def feed(projection: Projection, events: list[SignedEvent], now_ms: int) -> None:
    for event in events:
        projection.apply(event, now_ms)


def test_no_events_means_unknown() -> None:
    projection = booted()
    assert projection.status(ALICE.did, T0) is None
    assert projection.peers(T0) == []


def test_own_hey_there_means_own_online() -> None:
    me = Peer("me", seed=9)
    projection = Projection()
    changes = projection.apply(me.hey_there(T0), T0)
    assert projection.status(me.did, T0) is Status.ONLINE
    assert [(c.did, c.old, c.new) for c in changes] == [(me.did, None, Status.ONLINE)]


def test_late_chau_older_than_hey_there_is_ignored() -> None:
    projection = booted()
    projection.apply(ALICE.hey_there(T0 + 1000), T0 + 1000)
    projection.apply(ALICE.chau(T0 + 500), T0 + 1100)
    assert projection.status(ALICE.did, T0 + 1100) is Status.ONLINE
    changes = projection.apply(ALICE.chau(T0 + 2000), T0 + 2000)
    assert projection.status(ALICE.did, T0 + 2000) is Status.OFFLINE
    assert [(c.old, c.new, c.cause) for c in changes] == [(Status.ONLINE, Status.OFFLINE, "event")]


def test_chau_then_older_hey_there_stays_offline_until_newer() -> None:
    projection = booted()
    chau = ALICE.chau(T0)
    projection.apply(chau, T0)
    projection.apply(ALICE.hey_there(T0 - 5 * SECOND), T0)
    view = projection.view(ALICE.did, T0)
    assert view is not None
    assert view.status is Status.OFFLINE
    assert view.last_event == "chau"
    assert view.last_event_id == chau.id
    projection.apply(ALICE.hey_there(T0 + 5 * SECOND), T0 + 5 * SECOND)
    assert projection.status(ALICE.did, T0 + 5 * SECOND) is Status.ONLINE


def test_seen_is_evidence_about_its_observer_only() -> None:
    projection = booted()
    changes = projection.apply(ALICE.seen(BOB, T0), T0)
    assert projection.status(ALICE.did, T0) is Status.ONLINE
    assert projection.status(BOB.did, T0) is None  # nobody speaks for Bob but Bob
    assert {c.did for c in changes} == {ALICE.did}
    assert BOB.did not in projection


def test_a_forged_seen_revives_nobody() -> None:
    projection = booted()
    projection.apply(BOB.hey_there(T0), T0)
    projection.apply(BOB.chau(T0 + SECOND), T0 + SECOND)
    projection.apply(ALICE.seen(BOB, T0 + 2 * SECOND), T0 + 2 * SECOND)
    assert projection.status(BOB.did, T0 + 2 * SECOND) is Status.OFFLINE


def test_missing_after_threshold_and_online_again_on_fresh_event() -> None:
    projection = booted()
    projection.apply(ALICE.hey_there(T0), T0)
    assert projection.tick(T0 + 5 * MINUTE) == []  # exactly at the threshold: still ONLINE
    changes = projection.tick(T0 + 5 * MINUTE + SECOND)
    assert [(c.did, c.old, c.new, c.cause) for c in changes] == [
        (ALICE.did, Status.ONLINE, Status.MISSING, "timeout")
    ]
    assert projection.status(ALICE.did, T0 + 6 * MINUTE) is Status.MISSING
    changes = projection.apply(ALICE.newspaper(T0 + 6 * MINUTE), T0 + 6 * MINUTE)
    assert [(c.old, c.new) for c in changes] == [(Status.MISSING, Status.ONLINE)]


def test_two_minutes_of_silence_is_not_missing() -> None:
    projection = booted()
    projection.apply(ALICE.hey_there(T0), T0)
    assert projection.tick(T0 + 2 * MINUTE) == []
    assert projection.status(ALICE.did, T0 + 2 * MINUTE) is Status.ONLINE


def test_next_deadline_tracks_the_latest_event() -> None:
    projection = booted()
    projection.apply(ALICE.hey_there(T0), T0)
    first = projection.next_deadline()
    assert first is not None and first > T0 + 5 * MINUTE
    projection.apply(ALICE.newspaper(T0 + 2 * MINUTE), T0 + 2 * MINUTE)
    # The old deadline fires, finds fresher news and re-arms instead of reporting MISSING.
    assert projection.tick(first) == []
    deadline = projection.next_deadline()
    assert deadline is not None and deadline > T0 + 7 * MINUTE


def test_mesh_only_peers_have_the_longer_threshold() -> None:
    mesh_peer = Peer("meshy", seed=7, transport="mesh")
    projection = booted()
    projection.apply(mesh_peer.hey_there(T0), T0)
    projection.apply(ALICE.hey_there(T0), T0)
    assert projection.status(mesh_peer.did, T0 + 30 * MINUTE) is Status.ONLINE
    assert projection.status(ALICE.did, T0 + 30 * MINUTE) is Status.MISSING
    assert projection.status(mesh_peer.did, T0 + 61 * MINUTE) is Status.MISSING


def test_thresholds_are_configurable() -> None:
    projection = booted(ProjectionConfig(plaza_missing_after_s=10, mesh_missing_after_s=20))
    projection.apply(ALICE.hey_there(T0), T0)
    assert projection.status(ALICE.did, T0 + 9 * SECOND) is Status.ONLINE
    assert projection.status(ALICE.did, T0 + 11 * SECOND) is Status.MISSING


def test_lost_for_the_current_boot_means_missing() -> None:
    peer = Peer("dave", seed=4)
    projection = booted()
    projection.apply(peer.hey_there(T0), T0)  # session 0 of boot-1
    projection.apply(peer.newspaper(T0 + 30 * SECOND), T0 + 30 * SECOND)
    # The will was signed when the session began, so it is *older* than the newspaper.
    changes = projection.apply(peer.lost(T0), T0 + 31 * SECOND)
    assert [(c.old, c.new) for c in changes] == [(Status.ONLINE, Status.MISSING)]
    view = projection.view(peer.did, T0 + 31 * SECOND)
    assert view is not None and view.last_event == "lost"


def test_lost_of_an_earlier_session_does_not_outrank_a_reconnect() -> None:
    peer = Peer("erin", seed=5)
    projection = booted()
    projection.apply(peer.hey_there(T0), T0)
    projection.apply(peer.lost(T0), T0 + 10 * SECOND)
    assert projection.status(peer.did, T0 + 10 * SECOND) is Status.MISSING
    peer.session = 1  # reconnected
    projection.apply(peer.newspaper(T0 + 20 * SECOND), T0 + 20 * SECOND)
    assert projection.status(peer.did, T0 + 20 * SECOND) is Status.ONLINE


def test_lost_of_an_old_boot_is_ignored_after_a_restart() -> None:
    peer = Peer("frank", seed=6)
    projection = booted()
    projection.apply(peer.hey_there(T0), T0)
    projection.apply(peer.lost(T0), T0 + SECOND)
    peer.boot = "boot-2"
    projection.apply(peer.hey_there(T0 + 10 * SECOND), T0 + 10 * SECOND)
    view = projection.view(peer.did, T0 + 10 * SECOND)
    assert view is not None
    assert view.status is Status.ONLINE
    assert view.restarts == 1
    assert view.boot_id == "boot-2"


def test_chau_beats_a_lost_will() -> None:
    peer = Peer("gina", seed=8)
    projection = booted()
    projection.apply(peer.hey_there(T0), T0)
    projection.apply(peer.chau(T0 + SECOND), T0 + SECOND)
    projection.apply(peer.lost(T0), T0 + 2 * SECOND)
    assert projection.status(peer.did, T0 + 2 * SECOND) is Status.OFFLINE


def test_restarts_are_counted_from_boot_ids_not_gaps() -> None:
    peer = Peer("hana", seed=10)
    projection = booted()
    projection.apply(peer.hey_there(T0), T0)
    projection.apply(peer.newspaper(T0 + 10 * MINUTE), T0 + 10 * MINUTE)  # a long gap
    view = projection.view(peer.did, T0 + 10 * MINUTE)
    assert view is not None and view.restarts == 0
    for n in range(2, 5):
        peer.boot = f"boot-{n}"
        projection.apply(peer.hey_there(T0 + n * MINUTE), T0 + 11 * MINUTE)
    view = projection.view(peer.did, T0 + 11 * MINUTE)
    assert view is not None and view.restarts == 3


def test_a_chau_applies_at_once_even_to_a_newcomer() -> None:
    """A departed peer vouched for with its chau is OFFLINE, never a ghost ONLINE."""
    projection = Projection()
    projection.apply(ALICE.hey_there(T0 - 3 * MINUTE), T0)
    changes = projection.apply(ALICE.chau(T0 - MINUTE), T0)
    assert projection.status(ALICE.did, T0) is Status.OFFLINE
    assert [(c.old, c.new) for c in changes] == [(Status.ONLINE, Status.OFFLINE)]


def test_a_stale_chau_loses_to_any_later_event() -> None:
    projection = Projection()
    projection.apply(ALICE.chau(T0), T0)
    projection.apply(ALICE.newspaper(T0 + SECOND), T0 + 2 * SECOND)
    assert projection.status(ALICE.did, T0 + 2 * SECOND) is Status.ONLINE


def test_name_comes_from_the_subjects_own_latest_event() -> None:
    projection = booted()
    projection.apply(CAROL.newspaper(T0 - 2 * SECOND), T0)
    view = projection.view(CAROL.did, T0)
    assert view is not None and view.name == "carol"
    projection.apply(CAROL.hey_there(T0 - SECOND, name="carol-laptop"), T0)
    view = projection.view(CAROL.did, T0)
    assert view is not None and view.name == "carol-laptop"


# --- counts, forgetting, evidence -------------------------------------------------------------


def test_counts_by_status_follow_every_change() -> None:
    projection = booted()
    projection.apply(ALICE.hey_there(T0), T0)
    projection.apply(BOB.hey_there(T0), T0)
    projection.apply(CAROL.chau(T0), T0)
    assert projection.count(Status.ONLINE) == 2
    assert projection.count(Status.OFFLINE) == 1
    projection.tick(T0 + 301 * SECOND)  # Alice and Bob fall silent
    assert projection.count(Status.ONLINE) == 0
    assert projection.count(Status.MISSING) == 2
    assert projection.forget(BOB.did) and not projection.forget(BOB.did)
    assert projection.count(Status.MISSING) == 1
    assert projection.status(BOB.did, T0) is None and len(projection) == 2
    projection.tick(T0 + 10_000 * SECOND)  # its old deadline is skipped quietly


def test_evidence_is_the_hey_there_and_the_latest_word() -> None:
    projection = booted()
    hey_there = ALICE.hey_there(T0 - 3600 * SECOND)
    newspaper = ALICE.newspaper(T0 - SECOND)
    projection.apply(hey_there, T0)
    assert projection.evidence(ALICE.did, T0) == (hey_there.id, None)
    projection.apply(newspaper, T0)
    projection.apply(ALICE.howdy(BOB, "ab" * 32, T0), T0)  # a howdy is never the latest word
    assert projection.evidence(ALICE.did, T0) == (hey_there.id, newspaper.id)
    lost = ALICE.lost(T0 - 2 * SECOND)
    projection.apply(lost, T0)
    assert projection.status(ALICE.did, T0) is Status.MISSING
    assert projection.evidence(ALICE.did, T0) == (hey_there.id, lost.id)
    chau = ALICE.chau(T0 + SECOND)
    projection.apply(chau, T0 + SECOND)
    assert projection.evidence(ALICE.did, T0 + SECOND) == (hey_there.id, chau.id)
    assert projection.evidence(BOB.did, T0) == (None, None)


def test_two_processes_with_one_key_are_flagged() -> None:
    twin = Peer("twin", seed=12)
    projection = booted()
    projection.apply(twin.hey_there(T0), T0)
    twin.boot = "boot-2"
    projection.apply(twin.hey_there(T0 + MINUTE), T0 + MINUTE)
    view = projection.view(twin.did, T0 + MINUTE)
    assert view is not None and not view.clash  # an ordinary restart
    twin.boot = "boot-1"
    projection.apply(twin.newspaper(T0 + 2 * MINUTE), T0 + 2 * MINUTE)  # the old one goes on
    assert projection.clashes(twin.did, T0 + 2 * MINUTE)
    assert not projection.clashes(twin.did, T0 + 30 * MINUTE)  # long quiet: flag gone


def test_boots_remembered_per_subject_are_bounded() -> None:
    restless = Peer("restless", seed=13)
    projection = booted()
    for n in range(50):
        restless.boot = f"boot-{n}"
        projection.apply(restless.hey_there(T0 + n * SECOND), T0 + n * SECOND)
        projection.apply(restless.lost(T0 + n * SECOND + 1), T0 + n * SECOND)
    view = projection.view(restless.did, T0 + 50 * SECOND)
    assert view is not None and view.restarts == 49
    subject = projection._subjects[restless.did]
    assert len(subject.boot_starts) <= 8 and len(subject.lost) <= 16


def test_replaying_the_ledger_gives_identical_statuses() -> None:
    ledger = MemoryLedger()
    live = booted()
    events = scenario()
    for event in events:
        ledger.append(event)
        live.apply(event, T0 + 3 * MINUTE)
    fresh = booted()
    for event in ledger.replay():
        fresh.apply(event, T0 + 3 * MINUTE)
    for now in (T0 + 3 * MINUTE, T0 + 8 * MINUTE, T0 + 2 * 60 * MINUTE):
        assert fresh.peers(now) == live.peers(now)


def scenario() -> list[SignedEvent]:
    """Mixed kinds and timestamps over five peers, including restarts, wills and goodbyes."""
    alice, bob, carol = Peer("alice", seed=1), Peer("bob", seed=2), Peer("carol", seed=3)
    dave, meshy = Peer("dave", seed=4), Peer("meshy", seed=7, transport="mesh")
    events = [
        alice.hey_there(T0),
        bob.hey_there(T0 + SECOND),
        carol.hey_there(T0 - 30 * MINUTE),
        meshy.hey_there(T0 - 40 * MINUTE),
        alice.newspaper(T0 + 2 * MINUTE),
        bob.seen(carol, T0 + 90 * SECOND),
        carol.chau(T0 - 10 * MINUTE),
        dave.hey_there(T0),
        dave.lost(T0),
        alice.chau(T0 - MINUTE),
    ]
    bob.boot = "boot-2"
    events += [bob.hey_there(T0 + 2 * MINUTE), bob.newspaper(T0 + 150 * SECOND)]
    return events


def test_pruning_then_replay_gives_no_false_missing() -> None:
    """Old events are pruned (tombstoned) but the ones that decide statuses are kept."""
    now = T0 + 3 * MINUTE
    live = booted()
    ledger = MemoryLedger()
    events = scenario()
    for event in events:
        ledger.append(event)
        live.apply(event, now)
    before = {v.did: (v.status, v.last_event_id) for v in live.peers(now)}
    dropped = ledger.prune(cutoff_ms=T0 + 60 * MINUTE, keep=live.pinned_event_ids())
    assert dropped > 0
    assert ledger.tombstone_count() == dropped
    fresh = booted()
    for event in ledger.replay():
        fresh.apply(event, now)
    after = {v.did: (v.status, v.last_event_id) for v in fresh.peers(now)}
    assert after == before
    assert Status.MISSING not in {
        status for did, (status, _) in after.items() if did not in {Peer("dave", seed=4).did}
    }


# --- laws -------------------------------------------------------------------------------------

PEERS = [Peer(name, seed=20 + i) for i, name in enumerate(("p0", "p1", "p2"))]
MAKERS = ("hey_there", "newspaper", "chau", "seen", "lost")


def _make(kind: str, who: int, other: int, offset_s: int, boot: int, session: int) -> SignedEvent:
    peer = PEERS[who]
    peer.boot, peer.session = f"b{boot}", session
    at = T0 + offset_s * SECOND
    if kind == "seen":
        return peer.seen(PEERS[other], at)
    return getattr(peer, kind)(at)  # type: ignore[no-any-return]


event_lists = st.lists(
    st.builds(
        _make,
        st.sampled_from(MAKERS),
        st.integers(0, 2),
        st.integers(0, 2),
        st.integers(-400, 400),
        st.integers(0, 1),
        st.integers(0, 1),
    ),
    min_size=1,
    max_size=12,
)


def _statuses(events: list[SignedEvent], *, now: int) -> object:
    projection = Projection()
    feed(projection, events, now)
    return projection.peers(now)


@settings(max_examples=150, deadline=None)
@given(events=event_lists, data=st.data())
def test_any_permutation_applied_once_or_twice_gives_the_same_statuses(
    events: list[SignedEvent], data: st.DataObject
) -> None:
    now = T0 + 200 * SECOND
    expected = _statuses(events, now=now)
    shuffled = data.draw(st.permutations(events))
    assert _statuses(shuffled, now=now) == expected
    doubled = data.draw(st.permutations(events + events))
    assert _statuses(doubled, now=now) == expected


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_changes_settle_on_the_same_final_status(order: tuple[int, ...]) -> None:
    events = [ALICE.hey_there(T0), ALICE.chau(T0 + SECOND), ALICE.newspaper(T0 + 2 * SECOND)]
    projection = booted()
    last = None
    for index in order:
        for change in projection.apply(events[index], T0 + 3 * SECOND):
            last = change.new
    assert last is Status.ONLINE
    assert projection.status(ALICE.did, T0 + 3 * SECOND) is Status.ONLINE


def test_a_quiet_subject_reads_missing_until_it_is_not_and_a_chau_still_wins() -> None:
    peer = Peer("hana", seed=10)
    projection = booted()
    projection.apply(peer.hey_there(T0), T0)
    changes = projection.set_quiet(peer.did, True, T0 + 4 * SECOND)
    assert [(c.old, c.new, c.cause) for c in changes] == [
        (Status.ONLINE, Status.MISSING, "pulse")
    ]
    view = projection.view(peer.did, T0 + 4 * SECOND)
    assert view is not None and view.last_event == "pulse"
    assert view.last_event_at_ms == T0 + 4 * SECOND
    assert projection.count(Status.MISSING) == 1
    # Its heartbeats still arriving change nothing while its pulses are missing...
    assert projection.apply(peer.newspaper(T0 + 5 * SECOND), T0 + 5 * SECOND) == []
    assert projection.set_quiet(peer.did, True, T0 + 5 * SECOND) == []  # marked once
    # ...its next pulse brings it back, and a chau is a chau, quiet or not.
    changes = projection.set_quiet(peer.did, False, T0 + 6 * SECOND)
    assert [(c.old, c.new) for c in changes] == [(Status.MISSING, Status.ONLINE)]
    projection.set_quiet(peer.did, True, T0 + 7 * SECOND)
    projection.apply(peer.chau(T0 + 8 * SECOND), T0 + 8 * SECOND)
    assert projection.status(peer.did, T0 + 8 * SECOND) is Status.OFFLINE


def test_quiet_marks_are_forgotten_with_their_subject_and_never_create_one() -> None:
    peer = Peer("ivan", seed=11)
    projection = booted()
    assert projection.set_quiet(peer.did, True, T0) == []  # unknown: nothing to show
    assert projection.status(peer.did, T0) is None
    projection.apply(peer.hey_there(T0), T0)
    assert projection.status(peer.did, T0) is Status.MISSING  # the mark was kept
    assert projection.forget(peer.did)
    projection.apply(peer.hey_there(T0 + SECOND), T0 + SECOND)
    assert projection.status(peer.did, T0 + SECOND) is Status.ONLINE
