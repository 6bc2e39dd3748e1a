"""Failure reports, simulated: forty mesh nodes, each with the shipped projection and
observer duty, on a simulated clock with production settings.

Every node heartbeats every 120 s; each event reaches each other node after a random delay
of up to :data:`MAX_DELAY_S` (the mesh's hop-by-hop propagation, seeded). Every 30 s round
each node asks its :class:`~hereabouts.core.observing.ObserverDuty` whom to probe: a live
subject answers (its latest event reaches the prober at once), a dead one makes the prober
sign an ``unreachable`` report that spreads like any event. Liars sign reports every round
about a node that is alive, claiming to have heard nothing from it since that very moment.

What must hold, in every node's view: a killed node is MISSING within the time its
observers need to notice, probe and spread their reports, and never sooner than the
shortest threshold; no live node is ever MISSING, whoever lies; reports from keys that are
not the subject's assigned observers, however many, count for nothing.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from hereabouts.config import ProjectionConfig
from hereabouts.core import suspicion
from hereabouts.core.effects import Status, StatusChanged
from hereabouts.core.observing import ObserverDuty
from hereabouts.core.projection import Projection
from hereabouts.events import SignedEvent
from tests.signers import MINUTE, SECOND, T0, Peer

N = 40
ROUND_MS = 30 * SECOND
HEARTBEAT_MS = 120 * SECOND
MAX_DELAY_S = 150
REPORT_AFTER_MS = 240 * SECOND
CONFIG = ProjectionConfig(mesh_missing_after_s=3600.0, reported_missing_after_s=300.0)
SHORTEST_MS = int(CONFIG.reported_missing_after_s * 1000)
PEERS = [Peer(f"s{i:02d}", seed=100 + i, transport="mesh") for i in range(N)]


@dataclass
class Run:
    """One simulated run: who went MISSING in whose view, and when."""

    missing: dict[tuple[str, str], int] = field(default_factory=dict)  # (viewer, subject) -> t
    reports: dict[str, int] = field(default_factory=dict)  # viewer -> most counted about target
    probes: int = 0
    reported: int = 0


def simulate(
    *,
    seed: int,
    victim: Peer | None,
    target: Peer,
    liars: list[Peer],
    end_ms: int,
    also_killed: tuple[Peer, ...] = (),
) -> Run:
    rng = random.Random(seed)
    kill_ms = T0 + 30 * MINUTE
    views = {p.did: Projection(CONFIG, observer_on_plaza=False, may_observe=None) for p in PEERS}
    duties = {
        p.did: ObserverDuty(did=p.did, projection=views[p.did], report_after_ms=REPORT_AFTER_MS)
        for p in PEERS
    }
    latest: dict[str, SignedEvent] = {}
    queue: list[tuple[int, int, str, SignedEvent]] = []
    sequence = 0
    run = Run()

    def take(viewer: str, event: SignedEvent, now_ms: int) -> None:
        note(viewer, views[viewer].apply(event, now_ms), now_ms)

    def note(viewer: str, changes: list[StatusChanged], now_ms: int) -> None:
        for change in changes:
            if change.new is Status.MISSING:
                run.missing.setdefault((viewer, change.did), now_ms)

    def spread(event: SignedEvent, now_ms: int) -> None:
        nonlocal sequence
        take(event.did, event, now_ms)
        for other in PEERS:
            if other.did != event.did:
                sequence += 1
                delay = int(rng.uniform(0, MAX_DELAY_S) * SECOND)
                heapq.heappush(queue, (now_ms + delay, sequence, other.did, event))

    for peer in PEERS:
        hey_there = peer.hey_there(T0)
        latest[peer.did] = hey_there
        for view in views.values():
            view.apply(hey_there, T0)
    next_beat = {p.did: T0 + rng.randrange(HEARTBEAT_MS) for p in PEERS}

    killed = {p.did for p in (victim, *also_killed) if p is not None}

    def alive(peer_did: str, now_ms: int) -> bool:
        return peer_did not in killed or now_ms < kill_ms

    by_did = {p.did: p for p in PEERS}
    now = T0
    while now < end_ms:
        now += ROUND_MS
        while queue and queue[0][0] <= now:
            at, _, receiver, event = heapq.heappop(queue)
            if alive(receiver, at):
                take(receiver, event, at)
        for peer in PEERS:
            while next_beat[peer.did] <= now and alive(peer.did, next_beat[peer.did]):
                beat = peer.newspaper(next_beat[peer.did])
                latest[peer.did] = beat
                spread(beat, next_beat[peer.did])
                next_beat[peer.did] += HEARTBEAT_MS
        for peer in PEERS:
            if not alive(peer.did, now):
                continue
            for subject, last in duties[peer.did].due(now):
                run.probes += 1
                if alive(subject, now):  # it answers: its latest news comes with the answer
                    take(peer.did, latest[subject], now)
                else:
                    run.reported += 1
                    report = peer.unreachable(by_did[subject], now, last_seen_ms=last)
                    spread(report, now)
        for liar in liars:
            spread(liar.unreachable(target, now, last_seen_ms=now), now)
        for viewer, view in views.items():
            if not alive(viewer, now):
                continue
            note(viewer, view.tick(now), now)
            shown = view.view(target.did, now)
            if shown is not None:
                run.reports[viewer] = max(run.reports.get(viewer, 0), shown.reports)
    return run


def assigned_to(subject: Peer) -> list[Peer]:
    chosen = suspicion.observers_of(subject.did, [p.did for p in PEERS])
    return [p for p in PEERS if p.did in chosen]


def test_a_killed_node_is_missing_everywhere_on_its_observers_reports() -> None:
    victim = PEERS[7]
    run = simulate(seed=1, victim=victim, target=victim, liars=[], end_ms=T0 + 75 * MINUTE)
    survivors = [p.did for p in PEERS if p is not victim]
    killed_at = T0 + 30 * MINUTE
    last_word = killed_at  # at most one heartbeat interval earlier
    bound = killed_at + REPORT_AFTER_MS + 2 * ROUND_MS + MAX_DELAY_S * SECOND + ROUND_MS
    seen = [run.missing.get((viewer, victim.did)) for viewer in survivors]
    assert all(t is not None for t in seen), f"{seen.count(None)} nodes never saw it MISSING"
    assert max(t for t in seen if t) <= bound, "later than noticing, probing and spreading allow"
    assert min(t for t in seen if t) >= last_word - HEARTBEAT_MS + SHORTEST_MS
    assert max(t for t in seen if t) < killed_at + int(CONFIG.mesh_missing_after_s * 1000)
    assert run.reported == suspicion.OBSERVERS  # each observer once
    assert {s for _, s in run.missing} == {victim.did}, "a live node went MISSING"


def test_one_or_two_lying_observers_and_any_number_of_others_change_nothing() -> None:
    target = PEERS[3]
    observers = assigned_to(target)
    others = [p for p in PEERS if p not in observers and p is not target][:10]
    liars = observers[: suspicion.QUORUM - 1] + others
    run = simulate(seed=2, victim=None, target=target, liars=liars, end_ms=T0 + 60 * MINUTE)
    assert run.missing == {}, f"MISSING: {run.missing}"
    assert max(run.reports.values()) == suspicion.QUORUM - 1  # counted, but below the quorum


def test_even_all_five_observers_lying_cannot_make_a_heard_node_missing() -> None:
    target = PEERS[5]
    run = simulate(
        seed=3, victim=None, target=target, liars=assigned_to(target), end_ms=T0 + 60 * MINUTE
    )
    assert max(run.reports.values()) == suspicion.OBSERVERS
    assert run.missing == {}, f"MISSING: {run.missing}"


def test_ten_thousand_fresh_keys_reporting_count_for_nothing_and_cost_bounded_memory() -> None:
    proven = {p.did for p in PEERS}
    view = Projection(CONFIG, observer_on_plaza=False, may_observe=proven.__contains__)
    for peer in PEERS:
        view.apply(peer.hey_there(T0), T0)
    target = PEERS[0]
    at = T0 + 10 * MINUTE
    for number in range(10_000):
        fresh = Peer(f"f{number}", transport="mesh")
        view.apply(fresh.hey_there(at), at)
        view.apply(fresh.unreachable(target, at, last_seen_ms=at), at)
    shown = view.view(target.did, at)
    assert shown is not None and shown.reports == 0 and shown.status is Status.ONLINE
    assert set(view.observers(target.did, at)) <= proven


def test_a_node_dying_with_most_of_its_observers_is_still_found() -> None:
    """The victim and its three best-ranked observers crash together: the two left cannot
    make a quorum, but once the dead observers are MISSING (on their own observers'
    reports) the victim's next-ranked observers take over, look again and report."""
    victim = PEERS[11]
    ranked = suspicion.observers_of(victim.did, [p.did for p in PEERS])
    dead = tuple(p for p in PEERS if p.did in ranked[:3])
    run = simulate(
        seed=4,
        victim=victim,
        target=victim,
        liars=[],
        end_ms=T0 + 90 * MINUTE,
        also_killed=dead,
    )
    gone = {victim.did} | {p.did for p in dead}
    survivors = [p.did for p in PEERS if p.did not in gone]
    seen = [run.missing.get((viewer, victim.did)) for viewer in survivors]
    assert all(t is not None for t in seen), f"{seen.count(None)} nodes never saw it MISSING"
    # Twice the time to notice, probe and spread (once for the dead observers, once for
    # the victim), plus the shortest threshold: far below the full hour.
    bound = 2 * (REPORT_AFTER_MS + 2 * ROUND_MS + MAX_DELAY_S * SECOND) + SHORTEST_MS
    assert max(t for t in seen if t) <= T0 + 30 * MINUTE + bound, "not on the new observers"
    assert {s for _, s in run.missing} == gone, "a live node went MISSING"
