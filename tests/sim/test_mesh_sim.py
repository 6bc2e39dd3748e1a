"""The deterministic mesh simulation: repeatable, faithful to the planner, and converging
within the documented number of rounds."""

from __future__ import annotations

import dataclasses
import random

import numpy as np

from hereabouts.core.meshmath import exchange_budget, propagation_rounds
from hereabouts.identity import Identity
from hereabouts.peers.mesh.wire import encode_message
from hereabouts.sim.mesh import (
    BASE_MS,
    MeshSim,
    MeshSimConfig,
    RoundStats,
    _bits,
    _lowest,
    event_sizes,
    message_bytes,
    simulate,
)
from hereabouts.wire import seal


def test_one_seed_gives_one_result_byte_for_byte() -> None:
    config = MeshSimConfig(nodes=60, seed=7, steady_rounds=2, steady_warmup=2)
    first, second = simulate(config), simulate(config)
    assert first.summary() == second.summary()
    other = simulate(dataclasses.replace(config, seed=8))
    assert other.rounds != first.rounds


def test_two_hundred_nodes_converge_within_the_documented_rounds_with_a_fifth_failing() -> None:
    for seed in (1, 2, 3):
        result = simulate(MeshSimConfig(nodes=200, seed=seed, failure_rate=0.2))
        failed = sum(r.failed for r in result.rounds)
        tried = sum(r.failed + r.ok for r in result.rounds)
        assert 0.15 < failed / tried < 0.25  # the failures did happen
        assert result.converged_round is not None
        assert result.converged_round <= propagation_rounds(200), result.converged_round


def test_the_set_model_makes_the_same_choices_as_the_real_planner() -> None:
    sizes = event_sizes(80)
    cases = ((1000, "random", 1024), (5, "random", 1024), (3, "chain", 1024), (8, "random", 12))
    for budget_events, topology, max_peers in cases:
        config = MeshSimConfig(
            nodes=80,
            seed=11,
            topology=topology,  # type: ignore[arg-type]
            max_peers=max_peers,  # 12: books fill up and stop learning
            budget_bytes=budget_events * sizes.hey_there + 7,  # the budget binds below 80
            max_rounds=300,
        )
        planned = simulate(config)
        with_sets = simulate(dataclasses.replace(config, model="sets"))
        assert planned.converged_round is not None
        assert planned.rounds == with_sets.rounds
        assert planned.fingerprint == with_sets.fingerprint


def test_both_models_stretch_each_budget_with_the_mesh_the_planning_node_knows() -> None:
    # 150 nodes: a node that knows them all plans with four times budget_bytes (Mesh._plan).
    sizes = event_sizes(150)
    base = 3  # hey_theres a reply or a push carries while a node knows 32 nodes or fewer
    config = MeshSimConfig(
        nodes=150, seed=11, budget_bytes=base * sizes.hey_there + 7, max_rounds=300
    )
    results = []
    for model in ("planner", "sets"):
        sim = MeshSim(dataclasses.replace(config, model=model))  # type: ignore[arg-type]
        assert sim.budget(0) == config.budget_bytes  # it knows three seeds and itself
        result = sim.run()
        assert result.converged_round is not None
        assert sim.budget(0) == exchange_budget(config.budget_bytes, 150)
        assert sim.budget(0) == 4 * config.budget_bytes
        # More moved than a fixed budget allows: a reply and a push of ``base`` each.
        assert any(r.events > 2 * base * r.ok for r in result.rounds)
        results.append(result)
    planned, with_sets = results
    assert planned.rounds == with_sets.rounds
    assert planned.fingerprint == with_sets.fingerprint


def test_a_mesh_that_agrees_exchanges_only_digests() -> None:
    sim = MeshSim(MeshSimConfig(nodes=50, seed=3, failure_rate=0.0))
    result = sim.run()
    assert result.converged_round is not None
    quiet = sim.round()
    assert quiet.ok == 50 and quiet.events == 0
    # A request and a reply per exchange, each a full digest and nothing else.
    assert quiet.bytes == 50 * 2 * message_bytes(50, 0, 0)


def test_steady_state_bytes_stay_within_twice_the_floor() -> None:
    result = simulate(MeshSimConfig(nodes=100, seed=5, steady_rounds=4))
    assert result.steady is not None
    assert result.steady.events_per_node > 0
    assert result.steady.ratio < 2.0, result.steady


def test_message_sizes_match_the_wire_encoding() -> None:
    events = [b'{"a":1}', b'{"bb":22}', b"{}"]
    for digest_entries in (0, 1, 2, 3, 50):
        digest = bytes(16 * digest_entries)
        assert len(encode_message(digest, events)) == message_bytes(
            digest_entries, 3, sum(map(len, events))
        )
        assert len(encode_message(digest, [])) == message_bytes(digest_entries, 0, 0)
    assert len(encode_message(None, events)) == message_bytes(None, 3, sum(map(len, events)))


def test_event_sizes_are_those_of_sealed_events() -> None:
    sizes = event_sizes(1000)
    assert 400 < sizes.newspaper < sizes.hey_there < 700
    # Every node's identity gives the same size: one width for every DID, name and URL.
    assert len(seal_sample(Identity.from_seed(bytes([9]) * 32))) == sizes.hey_there


def seal_sample(identity: Identity) -> bytes:
    from hereabouts.events import HeyThere
    from hereabouts.sim.mesh import START_MS, node_name, node_url

    event = HeyThere(
        name=node_name(9876),
        did=identity.did,
        boot_id="fedcba9876543210",
        at_ms=START_MS + 12_345,
        started_at_ms=START_MS,
        endpoints={"mesh": node_url(9876)},
        transport="mesh",
    )
    return seal(event, identity)


def test_bit_helpers() -> None:
    assert list(_bits(0b101001)) == [0, 3, 5]
    assert list(_bits(0)) == []
    assert _lowest(0b1011_0110, 3) == 0b0001_0110
    assert _lowest(0b1011_0110, 10) == 0b1011_0110
    assert _lowest(1 << 900 | 1 << 3, 1) == 1 << 3


def drive(
    config: MeshSimConfig, *, rounds: int = 36, hand_over: bool = False
) -> tuple[list[RoundStats], np.ndarray, str, MeshSim]:
    """Converge, then run heartbeats with random probes and failure reports, through a
    partition into two halves (rounds 5 to 13) and its heal."""
    sim = MeshSim(config)
    result = sim.run()
    assert result.converged_round is not None
    if hand_over:
        sim.become_matrix()
    stats = list(result.rounds)
    prober = random.Random(9)
    n = config.nodes
    for number in range(rounds):
        if number == 5:
            sim.partition([i % 2 for i in range(n)])
        if number == 14:
            sim.partition(None)
        stats.append(sim.round(heartbeats=True))
        for _ in range(6):
            observer, subject = prober.randrange(n), prober.randrange(n)
            if observer == subject:
                continue
            last = BASE_MS + int(sim.V[observer, subject])
            if sim.probe(observer, subject, sim.now_ms) is False:
                sim.report(observer, subject, sim.now_ms, last)
    return stats, sim.V.copy(), sim.fingerprint(), sim


def test_the_matrix_model_makes_the_planners_choices_through_heartbeats_reports_and_a_partition(
) -> None:
    sizes = event_sizes(40)
    for budget_events in (None, 14, 20):
        config = MeshSimConfig(nodes=40, seed=5, failure_rate=0.1, max_rounds=300)
        if budget_events is not None:  # the budget binds: replies are cut
            config = dataclasses.replace(config, budget_bytes=budget_events * sizes.newspaper + 7)
        planned = drive(config)
        matrix = drive(dataclasses.replace(config, model="matrix"))
        assert len(planned[3].reports) > 40  # reports were made, and travelled
        assert (matrix[3].replies_cut > 0) == (budget_events is not None)
        # Never cut among reports here: that case the matrix cannot hold (mesh_matrix).
        assert matrix[3].reports_cut == 0
        assert planned[0] == matrix[0]
        assert np.array_equal(planned[1], matrix[1])
        assert planned[2] == matrix[2]


def test_the_set_model_hands_the_converged_mesh_over_to_the_matrix_model_exactly() -> None:
    config = MeshSimConfig(nodes=60, seed=3, failure_rate=0.05)
    planned = drive(config, rounds=20)
    handed = drive(dataclasses.replace(config, model="sets"), rounds=20, hand_over=True)
    assert planned[0] == handed[0]
    assert np.array_equal(planned[1], handed[1])


def test_a_partition_stops_news_crossing_and_backs_the_far_side_off_until_it_heals() -> None:
    n = 40
    sim = MeshSim(MeshSimConfig(nodes=n, seed=2, model="matrix", failure_rate=0.0))
    assert sim.run().converged_round is not None
    halves = [0 if i < n // 2 else 1 for i in range(n)]
    sim.partition(halves)
    for _ in range(3):
        sim.round(heartbeats=True)
    cut = sim.latest_off.copy()
    failed = 0
    for _ in range(8):
        stats = sim.round(heartbeats=True)
        failed += stats.failed
    # Nothing of the other half newer than the cut arrived; news within a half still flows.
    assert (sim.V[: n // 2, n // 2:] <= cut[n // 2:]).all()
    assert (sim.V[n // 2:, : n // 2] <= cut[: n // 2]).all()
    assert (sim.V[: n // 2, : n // 2] >= cut[: n // 2]).mean() > 0.8
    assert failed > 0
    backing_off = sum(
        1 for i in range(n) for peer in sim.peers[i].all()
        if peer.failures and halves[sim.index_of_did.get(peer.did or "", i)] != halves[i]
    )
    assert backing_off > 0
    sim.partition(None)
    for _ in range(propagation_rounds(n)):
        sim.round(heartbeats=True)
    assert sim.holding(cut).all()
