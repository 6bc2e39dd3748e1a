"""The simulated views against the shipped objects: every node's statuses, as
:mod:`hereabouts.sim.mesh_views` judges them for the whole mesh at once, are what a real
:class:`~hereabouts.core.projection.Projection` fed the same signed events says, and each
node's probes are what a real :class:`~hereabouts.core.observing.ObserverDuty` names."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from hereabouts.config import ProjectionConfig
from hereabouts.core import observing, suspicion
from hereabouts.core.effects import Status
from hereabouts.core.observing import ObserverDuty
from hereabouts.core.projection import Projection
from hereabouts.events import HeyThere, Newspaper, SignedEvent, Unreachable
from hereabouts.identity import Identity
from hereabouts.sim.mesh import BASE_MS, MeshSim, MeshSimConfig, node_name, node_url
from hereabouts.sim.mesh_views import (
    NEWS,
    REPORTS,
    TIMEOUT,
    Changes,
    MeshViews,
    ViewSettings,
    did_keys,
    mixed_ranking,
    sha256_ranking,
)
from hereabouts.wire import seal, unseal

FULL_MS = 1_800_000
SHORTEST_MS = 300_000
REPORT_AFTER_MS = 240_000
SETTINGS = ViewSettings(FULL_MS, SHORTEST_MS, REPORT_AFTER_MS)
CONFIG = ProjectionConfig(
    mesh_missing_after_s=FULL_MS / 1000, reported_missing_after_s=SHORTEST_MS / 1000
)


class Signer:
    """Real signed events for a simulated mesh: what a node holding an origin at a version
    holds of it (its hey_there, its latest own event, the reports it kept then)."""

    def __init__(self, sim: MeshSim) -> None:
        self.sim = sim
        self.identities = [Identity.from_seed(seed) for seed in sim.identity_seeds]
        self._cache: dict[tuple[int, str, int], SignedEvent] = {}

    def _signed(self, origin: int, kind: str, at_ms: int, **fields: Any) -> SignedEvent:
        key = (origin, kind + str(fields.get("subject_did", "")), at_ms)
        if key not in self._cache:
            sim = self.sim
            header = {
                "name": node_name(origin),
                "did": sim.dids[origin],
                "boot_id": "0123456789abcdef",
                "at_ms": at_ms,
            }
            event: HeyThere | Newspaper | Unreachable
            if kind == "hey_there":
                event = HeyThere(
                    **header,
                    started_at_ms=at_ms,
                    endpoints={"mesh": node_url(origin)},
                    transport="mesh",
                )
            elif kind == "newspaper":
                event = Newspaper(**header)
            else:
                event = Unreachable(**header, **fields)
            self._cache[key] = unseal(seal(event, self.identities[origin]), check_clock=False)
        return self._cache[key]

    def held(self, origin: int, version: int, since: int = -1) -> Iterator[SignedEvent]:
        """The events of ``origin`` a node holds at ``version`` (offsets) and did not at
        ``since``."""
        sim = self.sim
        if since < 0:
            yield self._signed(origin, "hey_there", sim.hey_at[origin])
        if version % 2:
            yield self._signed(origin, "newspaper", BASE_MS + version)
        for report in sim.reports.kept_at(origin, version):
            if report.at > since:
                yield self._signed(
                    origin,
                    "unreachable",
                    BASE_MS + report.at,
                    subject_did=sim.dids[report.subject],
                    last_seen_ms=BASE_MS + report.last_seen,
                )

    def projection(self, row: np.ndarray, now_ms: int) -> Projection:
        """A fresh projection of a node whose versions are ``row``, judged at ``now_ms``."""
        projection = Projection(CONFIG, observer_on_plaza=False)
        reports = []
        for origin, version in enumerate(row.tolist()):
            if version < 0:
                continue
            for event in self.held(origin, version):
                if event.kind == "unreachable":
                    reports.append(event)
                else:
                    projection.apply(event, now_ms)
        for event in reports:
            projection.apply(event, now_ms)
        # Judge every subject again, twice, now that every candidate's status is known.
        for _ in range(2):
            projection.observe_from_plaza(True, now_ms)
            projection.observe_from_plaza(False, now_ms)
        return projection


def converged(nodes: int, seed: int, warmup: int = 10) -> MeshSim:
    sim = MeshSim(
        MeshSimConfig(nodes=nodes, seed=seed, model="matrix", failure_rate=0.05, round_s=60)
    )
    assert sim.run().converged_round is not None
    for _ in range(warmup):
        sim.round(heartbeats=True)
    return sim


def judged_steps(views: MeshViews) -> list[tuple[np.ndarray, int, list[Changes]]]:
    """Wraps the views' judging steps: for each, the versions it judged and its changes."""
    steps: list[tuple[np.ndarray, int, list[Changes]]] = []
    kept = views.transitions

    def wrap(step: Callable[[int], None]) -> Callable[[int], None]:
        def judged(now_ms: int) -> None:
            before = len(kept.parts)
            versions = views.sim.V.copy()
            step(now_ms)
            steps.append((versions, now_ms, kept.parts[before:]))

        return judged

    views._judge = wrap(views._judge)  # type: ignore[method-assign]
    original = views.before_exchanges

    def timeouts(now_ms: int) -> None:
        before = len(kept.parts)
        versions = views.sim.V.copy()
        since = views._last_ms
        original(now_ms)
        steps.append((versions, since, kept.parts[before:]))

    views.before_exchanges = timeouts  # type: ignore[method-assign]
    return steps


def run_partition(sim: MeshSim, views: MeshViews, rounds: int, cut: int, heal: int) -> None:
    n = sim.config.nodes
    for number in range(rounds):
        if number == cut:
            sim.partition([0 if i < n // 2 else 1 for i in range(n)])
        if number == heal:
            sim.partition(None)
        sim.round(heartbeats=True)


def test_every_change_of_a_view_is_what_the_shipped_projection_says() -> None:
    sim = converged(40, seed=4)
    views = MeshViews(sim, SETTINGS, keep=True)
    steps = judged_steps(views)
    sim.watch = views
    views.start(sim.now_ms)
    run_partition(sim, views, rounds=40, cut=4, heal=24)
    signer = Signer(sim)
    checked = Counter_()
    for versions, when, batches in steps:
        for changes in batches:
            for k in range(changes.viewer.size):
                viewer, subject = int(changes.viewer[k]), int(changes.subject[k])
                at, c = int(changes.at_ms[k]), int(changes.confirmations[k])
                did = sim.dids[subject]
                projection = signer.projection(versions[viewer], when)
                if changes.cause == TIMEOUT:
                    # Silent since its latest event for exactly the threshold its standing
                    # reports give, to the millisecond (the projection's deadline).
                    assert projection.status(did, at - 1) is Status.ONLINE
                    assert projection.status(did, at) is Status.MISSING
                    view = projection.view(did, at)
                else:
                    expected = Status.MISSING if changes.to_missing else Status.ONLINE
                    assert projection.status(did, at) is expected, (changes.cause, k)
                    view = projection.view(did, at)
                assert view is not None and view.reports == c
                checked[changes.cause, changes.to_missing] += 1
    assert checked[TIMEOUT, True] > 50
    assert checked[REPORTS, True] > 50
    assert checked[NEWS, False] > 50


class Counter_(dict[tuple[int, bool], int]):
    def __missing__(self, key: tuple[int, bool]) -> int:
        return 0


def test_unchanged_views_agree_with_the_shipped_projection_at_every_round() -> None:
    sim = converged(30, seed=6)
    views = MeshViews(sim, SETTINGS)
    sim.watch = views
    views.start(sim.now_ms)
    signer = Signer(sim)
    n = sim.config.nodes
    watched = [0, 7, 19]
    for number in range(30):
        if number == 3:
            sim.partition([0 if i < n // 2 else 1 for i in range(n)])
        if number == 20:
            sim.partition(None)
        sim.round(heartbeats=True)
        for viewer in watched:
            projection = signer.projection(sim.V[viewer], sim.now_ms)
            for subject in range(n):
                if subject == viewer:
                    continue
                status = projection.status(sim.dids[subject], sim.now_ms)
                assert (status is Status.MISSING) == views.reads_missing[viewer, subject]


@pytest.fixture
def tight_duty(monkeypatch: pytest.MonkeyPatch) -> None:
    """Few looks a round and a short memory, so that both bind at 40 nodes."""
    monkeypatch.setattr(observing, "CHECKS_PER_ROUND", 3)
    monkeypatch.setattr(observing, "MAX_REMEMBERED", 12)


def test_each_node_probes_whom_the_shipped_observer_duty_names(tight_duty: None) -> None:
    sim = converged(40, seed=8)
    views = MeshViews(sim, SETTINGS)
    signer = Signer(sim)
    watched = [3, 11, 26]
    shadows: dict[int, tuple[Projection, ObserverDuty, list[int]]] = {}
    for node in watched:
        projection = signer.projection(sim.V[node], sim.now_ms)
        duty = ObserverDuty(did=sim.dids[node], projection=projection,
                            report_after_ms=REPORT_AFTER_MS)
        shadows[node] = (projection, duty, sim.V[node].tolist())
    probed: list[tuple[int, int, int]] = []
    probe = views._probe

    def recorded(observer: int, subject: int, version: int, now_ms: int) -> None:
        probed.append((observer, subject, version))
        probe(observer, subject, version, now_ms)

    views._probe = recorded  # type: ignore[method-assign]
    duty_of = views._duty
    compared = 0

    def compare(observer: int, found: np.ndarray, ours: np.ndarray, now_ms: int) -> None:
        nonlocal compared
        if observer not in shadows:
            duty_of(observer, found, ours, now_ms)
            return
        projection, duty, held = shadows[observer]
        row = sim.V[observer].tolist()
        for origin, (old, new) in enumerate(zip(held, row, strict=True)):
            if new > old:
                for event in signer.held(origin, new, since=old):
                    projection.apply(event, now_ms)
        shadows[observer] = (projection, duty, row)
        projection.tick(now_ms)
        for subject in range(sim.config.nodes):
            if subject != observer:
                shown = projection.reported(sim.dids[subject]) is Status.MISSING
                assert shown == views.reads_missing[observer, subject]
        expected = [(sim.index_of_did[did], last - BASE_MS) for did, last in duty.due(now_ms)]
        before = len(probed)
        duty_of(observer, found, ours, now_ms)
        assert [(s, v) for _, s, v in probed[before:]] == expected
        compared += len(expected)

    views._duty = compare  # type: ignore[method-assign]
    sim.watch = views
    views.start(sim.now_ms)
    n = sim.config.nodes
    for number in range(30):
        if number == 3:
            sim.partition([0 if i < n // 2 else 1 for i in range(n)])
        if number == 20:
            sim.partition(None)
        sim.round(heartbeats=True)
    assert compared > 30
    assert views.counts["reported"] > 0
    assert max(views.looked_count) <= observing.MAX_REMEMBERED


def test_the_sha256_ranking_is_the_shipped_observers_among_any_candidates() -> None:
    dids = [Identity.from_seed(bytes([i]) * 32).did for i in range(60)]
    rng = np.random.default_rng(1)
    for subject in (0, 17, 59):
        ranked = sha256_ranking(dids, subject, 59)
        assert subject not in ranked.tolist() and len(set(ranked.tolist())) == 59
        for _ in range(5):
            seen = [d for i, d in enumerate(dids) if rng.random() < 0.5 or i == subject]
            first = [dids[i] for i in ranked.tolist() if dids[i] in seen][: suspicion.OBSERVERS]
            assert first == suspicion.observers_of(dids[subject], seen)


def test_the_mixed_ranking_is_a_ranking_the_same_everywhere() -> None:
    dids = [Identity.from_seed(bytes([i, 1]) * 16).did for i in range(200)]
    keys = did_keys(dids)
    first = mixed_ranking(keys, 5, 24)
    assert np.array_equal(first, mixed_ranking(keys, 5, 24))
    assert 5 not in first.tolist() and len(set(first.tolist())) == 24
    whole = mixed_ranking(keys, 5, 199)
    assert np.array_equal(whole[:24], first)
    # Each node is among the five observers of about five subjects.
    duties = np.bincount(np.concatenate([mixed_ranking(keys, s, 5) for s in range(200)]),
                         minlength=200)
    assert duties.mean() == 5 and duties.max() < 20


def test_a_viewers_reports_count_only_from_the_subjects_observers() -> None:
    sim = converged(30, seed=2, warmup=4)
    views = MeshViews(sim, dataclasses.replace(SETTINGS))
    subject = 4
    ranked = views.ranking(subject).tolist()
    outsider = ranked[-1]
    now = sim.now_ms
    for reporter in [*ranked[:2], outsider]:
        sim.report(reporter, subject, now, BASE_MS + int(sim.V[reporter, subject]))
    everyone = np.arange(30)
    counted = views.confirmations(everyone, subject)
    assert counted[ranked[0]] == 1  # its own report; the others' have not reached it
    assert counted.max() <= 2  # the outsider never counts
    assert counted[outsider] == 0
    assert [views.confirmation(v, subject) for v in range(30)] == counted.tolist()
