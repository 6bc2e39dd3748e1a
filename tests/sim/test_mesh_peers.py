"""The indexed peer book chooses exactly as the shipped one: same state, same draw, same
peer, through learning, failures, backoff, successes, heal rounds and graylists."""

from __future__ import annotations

import dataclasses
import random

import pytest

from hereabouts.core.meshpeers import MeshPeer, MeshPeers
from hereabouts.sim.mesh import MeshSim, MeshSimConfig
from hereabouts.sim.mesh_peers import IndexedPeers


def url_of(peer: MeshPeer | None) -> str | None:
    return None if peer is None else peer.url


@pytest.mark.parametrize("seed", range(12))
def test_both_books_choose_the_same_peer_through_a_random_history(seed: int) -> None:
    rng = random.Random(seed)
    settings = {
        "self_did": "did:key:self",
        "self_url": "https://self",
        "max_peers": rng.choice([6, 40, 1024]),
        "heal_every": rng.choice([1, 2, 4]),
    }
    shipped, indexed = MeshPeers(**settings), IndexedPeers(**settings)  # type: ignore[arg-type]
    for number in range(rng.randrange(1, 4)):
        for book in (shipped, indexed):
            book.add_seed(f"https://seed-{number}")
    now = 0
    learnt: list[tuple[str, str]] = []
    choices = exact = 0
    for _ in range(2500):
        action = rng.random()
        if action < 0.15:
            number = rng.randrange(200)
            did, url = f"did:key:{number}", f"https://node-{number}"
            if rng.random() < 0.05:
                seed_number = rng.randrange(3)  # a seed's DID is learnt
                did, url = f"did:key:seed-{seed_number}", f"https://seed-{seed_number}"
            elif rng.random() < 0.02 and seed % 2:
                url = f"https://moved-{number}"  # a peer moves: the index steps aside
            for book in (shipped, indexed):
                book.learn(did, url, now)
            learnt.append((did, url))
        elif action < 0.35 and learnt:
            _, url = rng.choice(learnt)
            unit = rng.random()
            for book in (shipped, indexed):
                book.failed(url, now, unit)
        elif action < 0.45 and learnt:
            did, url = rng.choice(learnt)
            named = did if rng.random() < 0.8 else None
            for book in (shipped, indexed):
                book.succeeded(url, named, now)
        elif action < 0.55:
            now += rng.choice([100, 1000, 10_000, 100_000])
        elif action < 0.56 and learnt and seed % 2:
            did, url = rng.choice(learnt)
            for book in (shipped, indexed):
                book.graylist(did=did, url=None, until_ms=now + 5000)
        else:
            unit = rng.random()
            gone = {did for did, _ in learnt if rng.random() < 0.1}
            missing = gone.__contains__ if gone and rng.random() < 0.3 else None
            exact += indexed._indexed()
            assert url_of(shipped.choose(now, unit, missing)) == url_of(
                indexed.choose(now, unit, missing)
            )
            choices += 1
    assert choices > 500
    if settings["max_peers"] == 1024 and not seed % 2:
        assert exact == choices  # the index chose every time


def test_a_simulation_runs_the_same_with_either_book() -> None:
    config = MeshSimConfig(nodes=80, seed=4, model="matrix", failure_rate=0.2, max_peers=30)
    runs = []
    for book in (MeshPeers, IndexedPeers):
        sim = MeshSim(config, peer_book=book)
        result = sim.run()
        sim.partition([i % 3 for i in range(80)])
        rounds = [sim.round(heartbeats=True) for _ in range(10)]
        sim.partition(None)
        rounds += [sim.round(heartbeats=True) for _ in range(10)]
        runs.append((result.rounds, rounds, sim.V.copy()))
    (a_conv, a_rounds, a_v), (b_conv, b_rounds, b_v) = runs
    assert a_conv == b_conv and a_rounds == b_rounds
    assert (a_v == b_v).all()
    assert dataclasses.astuple(a_rounds[-1]) == dataclasses.astuple(b_rounds[-1])
