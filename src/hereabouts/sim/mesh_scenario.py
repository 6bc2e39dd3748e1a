"""Mesh scenarios: a mesh converges, heartbeats flow, then phases of failures and
partitions run while every node's views are judged by the shipped suspicion rules.

A scenario file (``kind = "mesh"``) reads::

    [mesh]
    model = "auto"            # auto | planner | matrix (auto: planner up to 100 nodes)
    failure_rate = 0.01       # share of exchanges failing while converging and warming up
    seeds_per_node = 3
    round_s = 30              # mesh.round_s, stretched by round_scale(N)
    heartbeat_s = 120         # each node's newspaper interval (the quiet one)
    exchange_bytes = 262144   # mesh.exchange_bytes, stretched as the round is
    warmup_rounds = 0         # heartbeat rounds before judging; 0: propagation_rounds(N) + 2

    [suspicion]
    mesh_missing_after_s = 0  # 0: 3,600 s, or what the config check needs for N if more
    reported_missing_after_s = 300
    report_after_s = 240

    [[phase]]                 # one or more, run in order
    minutes = 30
    failure_rate = 0.01       # share of exchanges and probes failing in this phase
    groups = 2                # 2 or more: equal groups that cannot reach each other
    settle_minutes = 0        # its first minutes run but are not counted in its figures

Every section and key is optional; unknown keys are refused. What runs is described in
:mod:`hereabouts.sim.mesh` (the peer books, planner and exchanges) and
:mod:`hereabouts.sim.mesh_views` (statuses, reports and observers); what is measured, in
:mod:`hereabouts.sim.mesh_figures`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

from hereabouts.config import THRESHOLD_FACTOR, HeartbeatConfig, MeshConfig, ProjectionConfig
from hereabouts.core.meshmath import propagation_rounds, propagation_s, round_scale
from hereabouts.sim.mesh import MeshSim, MeshSimConfig, RoundStats
from hereabouts.sim.mesh_figures import Collector, report_of
from hereabouts.sim.mesh_views import SHA256_RANKING_UP_TO, MeshViews, ViewSettings
from hereabouts.sim.report_model import SimReport
from hereabouts.sim.scenario import RunOptions, Scenario, ScenarioError, Settings

PLANNER_UP_TO: Final = 100
"""Largest mesh ``model = "auto"`` runs with the planner model (the real ``plan_reply`` on
real digests, O(N^2) per round in Python); past it the set model converges the mesh and the
matrix model, which makes the same choices (tested), carries on."""

MAX_MESH_NODES: Final = 12_000
"""Largest mesh simulated: every node's view of every other is held (versions, statuses,
the observer duty's memory), about 40 bytes per pair with the peer books: 3.8 GB at 10,000
nodes, 5.8 GB at 12,000."""

MAX_CONVERGE_ROUNDS: Final = 200
"""Rounds after which convergence is given up (it takes 10 to 20)."""

_MESH = MeshConfig()
_PROJECTION = ProjectionConfig()


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    minutes: float
    failure_rate: float
    groups: int
    """1: no partition; k: nodes split into k equal groups (by index) that cannot reach
    each other."""
    settle_minutes: float


@dataclass(frozen=True, slots=True)
class MeshScenario:
    """A mesh scenario's settings, read and resolved for a run."""

    nodes: int
    seed: int
    model: str
    """``planner`` or ``matrix`` (the set model converges the mesh first)."""
    failure_rate: float
    seeds_per_node: int
    round_s: float
    heartbeat_s: float
    exchange_bytes: int
    warmup_rounds: int
    missing_after_s: float
    needed_s: float
    """The shortest ``mesh_missing_after_s`` the config check accepts for this mesh."""
    shortest_s: float
    report_after_s: float
    phases: tuple[Phase, ...]

    @property
    def round_ms(self) -> int:
        return self.sim_config().round_ms

    @property
    def ranking(self) -> str:
        return "sha256" if self.nodes <= SHA256_RANKING_UP_TO else "mixed"

    def sim_config(self) -> MeshSimConfig:
        return MeshSimConfig(
            nodes=self.nodes,
            seed=self.seed,
            model="planner" if self.model == "planner" else "sets",
            seeds_per_node=self.seeds_per_node,
            failure_rate=self.failure_rate,
            budget_bytes=self.exchange_bytes,
            round_s=self.round_s,
            heartbeat_s=self.heartbeat_s,
            max_rounds=MAX_CONVERGE_ROUNDS,
        )

    def rounds(self, minutes: float) -> int:
        return math.ceil(minutes * 60_000 / self.round_ms - 1e-9)

    def settings(self) -> tuple[tuple[str, str], ...]:
        shown = [
            ("nodes", f"{self.nodes:,}"),
            ("seed", str(self.seed)),
            ("model", self.model),
            ("observer ranking", self.ranking),
            ("failure rate (converging, warm-up)", f"{self.failure_rate:.2%}"),
            ("seeds per node", str(self.seeds_per_node)),
            ("round", f"{self.round_s:g} s x round_scale {round_scale(self.nodes)} = "
                      f"{self.round_ms / 1000:g} s"),
            ("heartbeat", f"{self.heartbeat_s:g} s"),
            ("exchange budget", f"{self.exchange_bytes:,} B x round_scale"),
            ("warm-up", f"{self.warmup_rounds} rounds"),
            ("mesh_missing_after_s", f"{self.missing_after_s:g} s "
                                     f"(the config check needs {self.needed_s:g} s)"),
            ("reported_missing_after_s", f"{self.shortest_s:g} s"),
            ("report_after_s", f"{self.report_after_s:g} s"),
        ]
        for number, phase in enumerate(self.phases, 1):
            settle = (f", first {phase.settle_minutes:g} min not counted"
                      if phase.settle_minutes else "")
            shown.append((
                f"phase {number}",
                f"{phase.name}: {phase.minutes:g} min ({self.rounds(phase.minutes)} rounds)"
                f"{settle}",
            ))
        return tuple(shown)


def needed_threshold_s(nodes: int, round_s: float, heartbeat_s: float) -> float:
    """The least ``mesh_missing_after_s`` :class:`hereabouts.config.Config` accepts for a
    mesh of ``nodes``: 2.5 quiet heartbeats plus the propagation time."""
    return THRESHOLD_FACTOR * heartbeat_s + propagation_s(nodes, round_s)


def read(scenario: Scenario, options: RunOptions) -> MeshScenario:
    """The scenario's settings, with one clear error per bad value."""
    nodes = options.nodes if options.nodes is not None else scenario.nodes
    seed = options.seed if options.seed is not None else scenario.seed
    if not 2 <= nodes <= MAX_MESH_NODES:
        raise ScenarioError(
            f"{scenario.name}: a mesh simulation runs 2 to {MAX_MESH_NODES:,} nodes (it holds "
            f"every node's view of every other), not {nodes:,}"
        )
    top = Settings(scenario.settings, scenario.name)
    mesh = top.section("mesh")
    model = mesh.choice("model", "auto", ("auto", "planner", "matrix"))
    failure_rate = mesh.number("failure_rate", 0.01, high=0.9)
    seeds_per_node = mesh.whole("seeds_per_node", 3, low=1, high=64)
    round_s = mesh.number("round_s", _MESH.round_s, low=0.01, high=3600)
    heartbeat_s = mesh.number("heartbeat_s", HeartbeatConfig().max_interval_s, low=0.01,
                              high=3600)
    exchange_bytes = mesh.whole("exchange_bytes", _MESH.exchange_bytes, low=16 * 1024,
                                high=64 * 1024 * 1024)
    warmup_rounds = mesh.whole("warmup_rounds", 0, high=1000)
    mesh.done()
    suspicion = top.section("suspicion")
    missing_after_s = suspicion.number("mesh_missing_after_s", 0.0, high=30 * 86_400)
    shortest_s = suspicion.number("reported_missing_after_s", _PROJECTION.reported_missing_after_s,
                                  low=0.01, high=30 * 86_400)
    report_after_s = suspicion.number("report_after_s", _MESH.report_after_s, low=0.01,
                                      high=30 * 86_400)
    suspicion.done()
    phases: list[Phase] = []
    for table in top.sections("phase"):
        number = len(phases) + 1
        minutes = table.number("minutes", 60.0, low=0.01, high=7 * 24 * 60)
        rate = table.number("failure_rate", failure_rate, high=0.9)
        groups = table.whole("groups", 1, low=1, high=64)
        split = f"{groups} groups cut off, " if groups > 1 else ""
        phase = Phase(
            name=f"{split}{rate:.0%} failing" if rate * 100 == round(rate * 100)
            else f"{split}{rate:.1%} failing",
            minutes=minutes,
            failure_rate=rate,
            groups=groups,
            settle_minutes=table.number("settle_minutes", 0.0, high=7 * 24 * 60),
        )
        table.done()
        if phase.settle_minutes >= phase.minutes:
            raise ScenarioError(f"{scenario.name}: phase {number}: settle_minutes must be "
                                "shorter than minutes")
        if phase.groups * 2 > nodes:
            raise ScenarioError(f"{scenario.name}: phase {number}: {phase.groups} groups need "
                                f"at least {phase.groups * 2} nodes")
        phases.append(phase)
    top.done()
    if not phases:
        raise ScenarioError(f"{scenario.name}: a mesh scenario needs at least one [[phase]]")
    if seeds_per_node >= nodes:
        raise ScenarioError(f"{scenario.name}: seeds_per_node must be below nodes ({nodes})")
    if model == "auto":
        model = "planner" if nodes <= PLANNER_UP_TO else "matrix"
    needed = needed_threshold_s(nodes, round_s, heartbeat_s)
    if missing_after_s == 0:
        missing_after_s = max(_PROJECTION.mesh_missing_after_s, math.ceil(needed))
    return MeshScenario(
        nodes=nodes,
        seed=seed,
        model=model,
        failure_rate=failure_rate,
        seeds_per_node=seeds_per_node,
        round_s=round_s,
        heartbeat_s=heartbeat_s,
        exchange_bytes=exchange_bytes,
        warmup_rounds=warmup_rounds or propagation_rounds(nodes) + 2,
        missing_after_s=missing_after_s,
        needed_s=needed,
        shortest_s=shortest_s,
        report_after_s=report_after_s,
        phases=tuple(phases),
    )


@dataclass(slots=True)
class MeshRun:
    """A finished run: the report, and what tests look into."""

    report: SimReport
    settings: MeshScenario
    sim: MeshSim
    views: MeshViews | None
    converging: list[RoundStats] = field(default_factory=list)
    collector: Collector | None = None


def simulate_scenario(scenario: Scenario, options: RunOptions, *, keep: bool = False) -> MeshRun:
    """Run ``scenario``; ``keep`` keeps every view change (see :class:`MeshViews`)."""
    plan = read(scenario, options)
    tell = options.progress or (lambda share: None)
    phase_rounds = [plan.rounds(p.minutes) for p in plan.phases]
    bound = propagation_rounds(plan.nodes)
    total = bound + plan.warmup_rounds + sum(phase_rounds)
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        tell(min(1.0, done / total))

    tell(0.0)
    sim = MeshSim(plan.sim_config())
    converging: list[RoundStats] = []
    while sim.round_number < MAX_CONVERGE_ROUNDS:
        stats = sim.round()
        converging.append(stats)
        step()
        if stats.complete == plan.nodes:
            break
    converged = converging[-1].complete == plan.nodes
    collector = Collector(plan, sim, converging)
    views = None
    if converged:
        if plan.model == "matrix":
            sim.become_matrix()
        total += len(converging) - bound
        for _ in range(plan.warmup_rounds):
            sim.round(heartbeats=True)
            collector.warm()
            step()
        views = MeshViews(
            sim,
            ViewSettings(
                missing_after_ms=int(plan.missing_after_s * 1000),
                shortest_ms=int(plan.shortest_s * 1000),
                report_after_ms=int(plan.report_after_s * 1000),
                ranking="sha256" if plan.ranking == "sha256" else "mixed",
            ),
            sink=collector.take,
            keep=keep,
        )
        collector.views = views
        sim.watch = views
        views.start(sim.now_ms)
        for index, (phase, rounds) in enumerate(zip(plan.phases, phase_rounds, strict=True)):
            sim.failure_rate = phase.failure_rate
            sim.partition(None if phase.groups == 1 else groups_of(plan.nodes, phase.groups))
            collector.phase(index)
            settle = plan.rounds(phase.settle_minutes) if phase.settle_minutes else 0
            for number in range(rounds):
                collector.before_round(counted=number >= settle)
                stats = sim.round(heartbeats=True)
                collector.after_round(stats)
                step()
    tell(1.0)
    report = report_of(scenario, plan, collector)
    return MeshRun(report, plan, sim, views, converging, collector)


def run_scenario(scenario: Scenario, options: RunOptions) -> SimReport:
    """Simulate a mesh scenario (``kind = "mesh"``) and return its report."""
    return simulate_scenario(scenario, options).report


def groups_of(nodes: int, groups: int) -> list[int]:
    """Node ``i``'s group when ``nodes`` are split into ``groups`` equal blocks by index
    (indices are unrelated to keys, seeds and start order)."""
    return [i * groups // nodes for i in range(nodes)]


__all__ = [
    "MAX_CONVERGE_ROUNDS",
    "MAX_MESH_NODES",
    "PLANNER_UP_TO",
    "MeshRun",
    "MeshScenario",
    "Phase",
    "groups_of",
    "needed_threshold_s",
    "read",
    "run_scenario",
    "simulate_scenario",
]
