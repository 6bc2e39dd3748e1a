"""What a mesh scenario measures, and the report it makes.

Per round, after judging starts (:class:`Collector`): wire bytes per node (exchanges and
probes), the views read MISSING (across a partition, per side, and of reachable nodes),
how far views lag behind each origin's latest event, and how many nodes hold all news from
``propagation_rounds(N)`` rounds ago (every node, in a healthy mesh: the documented
bound). Per change of a view: whether its subject was reachable from the viewer then (a
*false* MISSING if it was: every node is up in these scenarios), which threshold ran out
and after how many confirmations.

Times: a partition *cuts* just before the exchanges of its first round and *heals* just
before the exchanges of the first round after it; a view that times out between two rounds
is judged with the network as it was during that interval.
"""

from __future__ import annotations

import statistics
from collections import Counter, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np

from hereabouts.core.meshmath import propagation_rounds
from hereabouts.core.suspicion import OBSERVERS, QUORUM
from hereabouts.sim.mesh import BASE_MS, MeshSim, RoundStats, row_chunks
from hereabouts.sim.mesh_views import START, TIMEOUT, Changes, MeshViews
from hereabouts.sim.report_model import Figure, Line, Plot, SimReport

if TYPE_CHECKING:
    from hereabouts.sim.mesh_scenario import MeshScenario
    from hereabouts.sim.scenario import Scenario

MINUTE_MS: Final = 60_000
NEVER_MS: Final = 2**62


@dataclass(frozen=True, slots=True)
class RoundRecord:
    """One judged round."""

    minute: float
    """Simulated minutes since judging started (the end of the warm-up)."""
    phase: int
    counted: bool
    partitioned: bool
    bytes_per_node: float
    probes: int
    reports: int
    missing_across: tuple[int, ...]
    """Per side of the first partition: views of other sides' nodes read MISSING."""
    missing_false: int
    """Views read MISSING of nodes reachable from the viewer."""
    false_changes: int
    """Views that turned MISSING in this round while their subject was reachable (views
    across a healed partition aside, see :attr:`Collector.after_heal`)."""
    lagged_complete: int
    """Nodes holding every origin's news from ``propagation_rounds(N)`` rounds ago."""
    heal_complete: int
    """After the heal: nodes holding every origin's news from before the heal (else -1)."""
    lag_same_s: float
    """Mean time since the subject's latest event held, views within a side (all views
    when there is no partition)."""
    lag_across_s: float
    """The same across sides of the first partition (0 without one)."""


class Collector:
    """Watches a mesh scenario run; :func:`report_of` turns what it saw into a report."""

    def __init__(self, plan: MeshScenario, sim: MeshSim, converging: list[RoundStats]) -> None:
        self.plan = plan
        self.sim = sim
        self.converging = converging
        self.views: MeshViews | None = None
        self.records: list[RoundRecord] = []
        self.start_ms = 0
        n = plan.nodes
        self.phase_index = -1
        self.counted = False
        self._net_before: np.ndarray | None = None
        self._net_now: np.ndarray | None = None
        self.sides: np.ndarray | None = None
        """Each node's group in the first partition."""
        self.cut_ms: int | None = None
        self.heal_ms: int | None = None
        self.cut_record: int | None = None
        self.heal_record: int | None = None
        self._heal_target: np.ndarray | None = None
        self.healed_after: int | None = None
        """Rounds after the heal until every node held all news from before it."""
        self.cleared_after: int | None = None
        """Rounds after the heal until no view across the partition read MISSING."""
        self.first_across = np.full(n, NEVER_MS, dtype=np.int64)
        """Per viewer: when it first read a node of another side MISSING (ms)."""
        self.blocks: list[tuple[int, int]] = []
        """The first partition's sides, as ranges of node indices."""
        self.across_times: list[list[np.ndarray]] = []
        """Per side: times since the cut at which its views of other sides turned MISSING."""
        self.across_by_cause: Counter[str] = Counter()
        self.confirmations: Counter[int] = Counter()
        """Views that turned MISSING, by the confirmations they counted."""
        self.timeout_mismatches = 0
        """Time-outs whose silence was not the threshold for their confirmations plus 1 ms
        (the projection's deadline); 0 unless the model is wrong."""
        self.false_changes = 0
        self._false_round = 0
        self.after_heal = 0
        """Views across the former cut that turned MISSING after the heal (their silence
        began before it): reachable again, not yet heard from."""
        self._history: deque[np.ndarray] = deque(maxlen=propagation_rounds(n) + 1)
        self.lag_at_heal: tuple[float, float] | None = None
        split = next((phase.groups for phase in plan.phases if phase.groups > 1), None)
        if split is not None:
            from hereabouts.sim.mesh_scenario import groups_of

            self._sides(np.asarray(groups_of(n, split), dtype=np.int64))

    def _sides(self, groups: np.ndarray) -> None:
        """The first partition's sides, known from the start so that views across them can
        be followed before the cut as well."""
        self.sides = groups.copy()
        self.across_times = [[] for _ in range(int(groups.max()) + 1)]
        edges = np.flatnonzero(np.diff(groups)) + 1
        starts, ends = [0, *edges.tolist()], [*edges.tolist(), len(groups)]
        if len(starts) != len(self.across_times):
            raise ValueError("the sides of a partition are ranges of node indices")
        self.blocks = list(zip(starts, ends, strict=True))

    def warm(self) -> None:
        """A warm-up round passed: news from then counts for the lagged completeness."""
        self._history.append(self.sim.latest_off.copy())

    # --- the run's steps ------------------------------------------------------------------

    def phase(self, index: int) -> None:
        """Phase ``index`` begins: the network is now ``sim.groups``."""
        sim = self.sim
        if self.phase_index < 0:
            self.start_ms = sim.now_ms
        self.phase_index = index
        groups = sim.groups
        if groups is not None and self.cut_ms is None:
            self.cut_ms = sim.now_ms + self.plan.round_ms
            self.cut_record = len(self.records)
        elif groups is None and self.cut_ms is not None and self.heal_ms is None:
            self.heal_ms = sim.now_ms + self.plan.round_ms
            self.heal_record = len(self.records)
            self._heal_target = sim.latest_off.copy()
            if self.records:
                last = self.records[-1]
                self.lag_at_heal = (last.lag_same_s, last.lag_across_s)

    def before_round(self, *, counted: bool) -> None:
        self.counted = counted
        self._net_before = self._net_now
        self._net_now = self.sim.groups
        self._false_round = 0

    def take(self, changes: Changes) -> None:
        """One batch of view changes (the views' sink)."""
        if not changes.to_missing:
            return
        viewer, subject = changes.viewer, changes.subject
        groups = self._net_before if changes.cause == TIMEOUT else self._net_now
        if changes.cause == START:
            groups = None
        if groups is None:
            across = np.zeros(viewer.size, dtype=bool)
        else:
            across = groups[viewer] != groups[subject]
        if groups is None and self.heal_ms is not None and self.sides is not None:
            # After the heal: a view across the former cut still silent since before it is
            # the partition's doing, not the failures'.
            former = self.sides[viewer] != self.sides[subject]
            self.after_heal += int(np.count_nonzero(former))
            across = former
        false = int(viewer.size - np.count_nonzero(across))
        self._false_round += false
        if self.counted and self._net_now is None:
            self.false_changes += false
        for c, count in zip(*np.unique(changes.confirmations, return_counts=True), strict=True):
            self.confirmations[int(c)] += int(count)
        if changes.cause == TIMEOUT and self.views is not None:
            expected = self.views.thresholds[changes.confirmations.astype(np.int64)] + 1
            self.timeout_mismatches += int(np.count_nonzero(changes.silence_ms != expected))
        if across.any() and self.sides is not None and self.cut_ms is not None:
            at = changes.at_ms[across]
            viewers = viewer[across]
            sides = self.sides[viewers]
            for side, times in enumerate(self.across_times):
                mine = sides == side
                if mine.any():
                    times.append(at[mine] - self.cut_ms)
            np.minimum.at(self.first_across, viewers, at)
            quorum = int(np.count_nonzero(changes.confirmations[across] >= QUORUM))
            self.across_by_cause["reports"] += quorum
            self.across_by_cause["silence"] += int(at.size) - quorum

    def after_round(self, stats: RoundStats) -> None:
        sim, views, plan = self.sim, self.views, self.plan
        assert views is not None
        n = plan.nodes
        now_off = sim.now_ms - BASE_MS
        missing_total = int(views.missing_count.sum())
        seen = views.reads_missing
        across = tuple(
            int(seen[a:b, :a].sum()) + int(seen[a:b, b:].sum()) for a, b in self.blocks
        )
        partitioned = sim.groups is not None
        false_views = missing_total - (sum(across) if partitioned else 0)
        self._history.append(sim.latest_off.copy())
        lagged = -1
        if len(self._history) == self._history.maxlen:
            lagged = int(sim.holding(self._history[0]).sum())
        heal = -1
        if self._heal_target is not None:
            heal = int(sim.holding(self._heal_target).sum())
            since = len(self.records) + 1 - (self.heal_record or 0)
            if heal == n and self.healed_after is None:
                self.healed_after = since
            if self.cleared_after is None and not sum(across):
                self.cleared_after = since
        same, cross = self._lags(now_off)
        self.records.append(RoundRecord(
            minute=(sim.now_ms - self.start_ms) / MINUTE_MS,
            phase=self.phase_index,
            counted=self.counted,
            partitioned=partitioned,
            bytes_per_node=stats.bytes / n,
            probes=stats.probes,
            reports=stats.reports,
            missing_across=across,
            missing_false=false_views,
            false_changes=self._false_round,
            lagged_complete=lagged,
            heal_complete=heal,
            lag_same_s=same,
            lag_across_s=cross,
        ))

    def _lags(self, now_off: int) -> tuple[float, float]:
        """Mean view lag within sides and across them (seconds), own views left out."""
        V, n = self.sim.V, self.plan.nodes
        own = int(V.diagonal().astype(np.int64).sum())
        blocks = self.blocks or [(0, n)]
        same_sum = same_count = across_sum = across_count = 0
        for a, b in blocks:
            for rows in row_chunks(b - a, n):
                block = V[a + rows.start:a + rows.stop]
                inside = int(block[:, a:b].sum(dtype=np.int64))
                same_sum += inside
                across_sum += int(block.sum(dtype=np.int64)) - inside
            same_count += (b - a) ** 2
            across_count += (b - a) * (n - (b - a))
        same_sum -= own
        same_count -= n
        same = now_off - same_sum / max(1, same_count)
        across = now_off - across_sum / across_count if across_count else 0.0
        return same / 1000, across / 1000


# --- the report ---------------------------------------------------------------------------


def _pct_key(rate: float) -> str:
    return f"{rate * 100:g}".replace(".", "_") + "pct"


def report_of(scenario: Scenario, plan: MeshScenario, collector: Collector) -> SimReport:
    """The report of a finished run."""
    records = collector.records
    n = plan.nodes
    round_s = plan.round_ms / 1000
    bound = propagation_rounds(n)
    converging = collector.converging
    converged = bool(converging) and converging[-1].complete == n
    rounds = len(converging) if converged else None
    conv_bytes = (sum(r.bytes for r in converging) / len(converging) / n) if converging else 0.0
    figures = [
        Figure("nodes", "nodes", n),
        Figure("rounds_to_converge", "rounds until every node held every hey_there", rounds,
               detail=f"bound log2 N + 4 = {bound}; {plan.failure_rate:.0%} of exchanges failing"),
        Figure("rounds_bound", "documented bound, propagation_rounds(N)", bound),
        Figure("converge_s", "time to converge", None if rounds is None else rounds * round_s,
               "s", detail=f"rounds of {round_s:g} s"),
        Figure("converge_bytes_per_node_per_round", "bytes per node per round, converging",
               round(conv_bytes, 1), "B"),
        Figure("round_s", "round (stretched by round_scale)", round_s, "s"),
        Figure("mesh_missing_after_s", "MISSING threshold without reports",
               plan.missing_after_s, "s",
               detail=f"the config check needs {plan.needed_s:,.0f} s for {n:,} nodes"),
    ]
    counted = [r for r in records if r.counted]
    figures.append(Figure(
        "bytes_per_node_per_round", "bytes per node per round, judged phases",
        round(statistics.fmean(r.bytes_per_node for r in counted), 1) if counted else None, "B",
        detail="exchanges and probes; message bodies",
    ))
    figures.extend(_false_missing(plan, collector))
    figures.extend(_duty(plan, collector))
    figures.extend(_partition(plan, collector))
    figures.extend(_timeouts(collector))
    return SimReport(
        scenario=scenario.name,
        description=scenario.description,
        scenario_text=scenario.text,
        settings=plan.settings(),
        figures=tuple(figures),
        plots=tuple(_plots(plan, collector)),
        notes=tuple(_notes(plan, collector)),
    )


def _false_missing(plan: MeshScenario, collector: Collector) -> list[Figure]:
    """False MISSING per node-hour, in the judged rounds of phases without a partition."""
    by_rate: dict[float, list[RoundRecord]] = {}
    for record in collector.records:
        if record.counted and not record.partitioned:
            rate = plan.phases[record.phase].failure_rate
            by_rate.setdefault(rate, []).append(record)
    if not by_rate:
        return [Figure("false_missing_per_node_hour", "false MISSING per node-hour", None)]
    hours_per_round = plan.round_ms / 3_600_000
    values = {}
    for rate, records in sorted(by_rate.items()):
        node_hours = plan.nodes * hours_per_round * len(records)
        values[rate] = (sum(r.false_changes for r in records) / node_hours, node_hours)
    worst = max(values)
    aftermath = (" (after a heal, views within a side that fell behind during the "
                 "partition count too)" if collector.heal_ms is not None else "")
    figures = [Figure(
        "false_missing_per_node_hour", "false MISSING per node-hour",
        values[worst][0], detail=f"at {worst:.0%} failing, over {values[worst][1]:,.0f} "
        f"node-hours without a partition; a view of a reachable node turning MISSING{aftermath}",
    )]
    for rate, (value, node_hours) in values.items():
        figures.append(Figure(
            f"false_missing_per_node_hour_{_pct_key(rate)}",
            f"false MISSING per node-hour at {rate:.0%} failing", value,
            detail=f"{node_hours:,.0f} node-hours",
        ))
    if collector.cut_ms is not None:
        figures.append(Figure(
            "false_missing_within_sides", "views within a side turning MISSING during the "
            "partition", sum(r.false_changes for r in collector.records if r.partitioned),
        ))
    return figures


def _duty(plan: MeshScenario, collector: Collector) -> list[Figure]:
    views = collector.views
    if views is None or not collector.records:
        return []
    hours = len(collector.records) * plan.round_ms / 3_600_000 * plan.nodes
    counts = views.counts
    assigned = counts["probes"] + counts["no_address"]
    return [
        Figure("probes_per_node_hour", "probes per node-hour", counts["probes"] / hours,
               detail=f"{counts['answered']:,} answered of {counts['probes']:,}"),
        Figure("reports_per_node_hour", "failure reports per node-hour",
               counts["reported"] / hours),
        Figure("probe_no_address_share", "assigned probes with no address in the book",
               counts["no_address"] / assigned if assigned else None,
               detail=f"{counts['no_address']:,} of {assigned:,}; a book holds "
               f"{collector.sim.config.max_peers:,} peers"),
    ]


def _partition(plan: MeshScenario, collector: Collector) -> list[Figure]:
    if collector.sides is None or collector.cut_ms is None:
        return []
    round_s = plan.round_ms / 1000
    heal_ms = collector.heal_ms
    figures = [Figure(
        "partition_minutes", "partition",
        None if heal_ms is None else (heal_ms - collector.cut_ms) / MINUTE_MS, "min",
        detail=f"{len(collector.across_times)} groups cut off from each other",
    )]
    healed = collector.healed_after
    figures += [
        Figure("heal_rounds", "rounds after the heal until every node held all news from "
               "before it", healed,
               detail=f"a healthy mesh: within {propagation_rounds(plan.nodes)}"),
        Figure("heal_s", "time after the heal until every node held all news from before it",
               None if healed is None else healed * round_s, "s"),
        Figure("missing_cleared_s", "time after the heal until no view across read MISSING",
               None if collector.cleared_after is None else collector.cleared_after * round_s,
               "s"),
        Figure("missing_after_heal", "views across turning MISSING after the heal",
               collector.after_heal,
               detail="silent since before the heal, their news not yet across"),
    ]
    if collector.lag_at_heal is not None:
        same, across = collector.lag_at_heal
        figures += [
            Figure("lag_within_side_s", "mean view lag within a side at the heal", same, "s"),
            Figure("lag_across_s", "mean view lag across sides at the heal", across, "s"),
        ]
    sides = collector.sides
    heal_record = collector.heal_record
    last = None
    if heal_record:
        last = collector.records[heal_record - 1]
    for side, times in enumerate(collector.across_times):
        members = sides == side
        size = int(members.sum())
        views_across = size * (plan.nodes - size)
        joined = np.concatenate(times) if times else np.zeros(0, dtype=np.int64)
        before_heal = joined[joined < (heal_ms or NEVER_MS) - collector.cut_ms]
        first = collector.first_across[members]
        reading = int(np.count_nonzero(first < (heal_ms or NEVER_MS)))
        name = f"side{side + 1}"
        figures += [
            Figure(f"{name}_nodes", f"side {side + 1}: nodes", size),
            Figure(f"{name}_viewers_reading_missing",
                   f"side {side + 1}: nodes that read a node across MISSING before the heal",
                   reading),
            Figure(f"{name}_missing_share_at_heal",
                   f"side {side + 1}: views across read MISSING at the heal",
                   None if last is None else last.missing_across[side] / views_across,
                   detail=f"of {views_across:,} views"),
            Figure(f"{name}_first_missing_s", f"side {side + 1}: first view across MISSING",
                   int(before_heal.min()) / 1000 if before_heal.size else None, "s",
                   detail="after the cut"),
            Figure(f"{name}_median_missing_s",
                   f"side {side + 1}: median view across turning MISSING",
                   float(np.median(before_heal)) / 1000 if before_heal.size else None, "s",
                   detail=f"after the cut, over {before_heal.size:,} views"),
        ]
    by_cause = collector.across_by_cause
    figures += [
        Figure("missing_across_on_reports", "views across turning MISSING on a quorum of "
               "reports", by_cause["reports"], detail="a shortened threshold"),
        Figure("missing_across_on_silence", "views across turning MISSING on silence alone",
               by_cause["silence"], detail="the full threshold"),
    ]
    return figures


def _timeouts(collector: Collector) -> list[Figure]:
    views = collector.views
    if views is None:
        return []
    figures = []
    for c in range(OBSERVERS + 1):
        count = collector.confirmations.get(c, 0)
        if count:
            figures.append(Figure(
                f"threshold_s_c{c}", f"threshold with {c} standing report(s)",
                int(views.thresholds[c]) / 1000, "s",
                detail=f"{count:,} views turned MISSING with {c} counted",
            ))
    return figures


def _plots(plan: MeshScenario, collector: Collector) -> list[Plot]:
    plots = []
    converging = collector.converging
    bound = propagation_rounds(plan.nodes)
    if converging:
        plots.append(Plot(
            name="mesh-convergence",
            title=f"Convergence: {plan.nodes:,} nodes, {plan.failure_rate:.0%} failing",
            x_label="round",
            y_label="nodes holding every hey_there",
            x=tuple(float(r.round) for r in converging),
            lines=(Line("nodes complete", tuple(float(r.complete) for r in converging)),),
            style="step",
            note=f"The documented bound, propagation_rounds(N) = log2 N + 4 = {bound} rounds.",
        ))
    records = collector.records
    if not records:
        return plots
    x = tuple(r.minute for r in records)
    complete = [float(max(0, r.lagged_complete)) for r in records]
    lines = [Line(f"news from {bound} rounds ago", tuple(complete))]
    if collector.heal_record is not None:
        lines.append(Line("news from before the heal",
                          tuple(float(max(0, r.heal_complete)) for r in records)))
    plots.append(Plot(
        name="mesh-complete",
        title="Nodes holding every origin's news" + _marks(collector),
        x_label="minutes", y_label="nodes", x=x, lines=tuple(lines), style="step",
        note="A node is counted once it holds, for every origin, news at least as new as the "
             f"origin's latest {bound} rounds ago (the documented bound: in a healthy mesh, "
             "every node), or, from the heal on, its latest from before the heal.",
    ))
    plots.append(Plot(
        name="mesh-bytes", title="Wire bytes per node per round" + _marks(collector),
        x_label="minutes", y_label="bytes", x=x,
        lines=(Line("bytes per node", tuple(r.bytes_per_node for r in records)),),
        note="Message bodies of every exchange and probe, both ways, divided by the nodes.",
    ))
    missing = [Line("reachable nodes read MISSING (false)",
                    tuple(float(r.missing_false) for r in records))]
    for side in range(len(collector.across_times)):
        missing.append(Line(f"side {side + 1} reads other sides MISSING",
                            tuple(float(r.missing_across[side] if r.missing_across else 0)
                                  for r in records)))
    plots.append(Plot(
        name="mesh-missing", title="Views read MISSING" + _marks(collector),
        x_label="minutes", y_label="views", x=x, lines=tuple(missing),
        note="A view is one node's status of another; N x (N - 1) views in all. After a "
             "heal, views across stay MISSING until news crosses, and count as views of "
             "reachable nodes until then.",
    ))
    lag = [Line("within a side" if collector.sides is not None else "all views",
                tuple(r.lag_same_s / 60 for r in records))]
    if collector.sides is not None:
        lag.append(Line("across sides", tuple(r.lag_across_s / 60 for r in records)))
    plots.append(Plot(
        name="mesh-lag", title="Mean view lag" + _marks(collector),
        x_label="minutes", y_label="minutes behind the origin's latest event", x=x,
        lines=tuple(lag),
        note="How old, on average, the latest event a node holds of each other node is.",
    ))
    return plots


def _marks(collector: Collector) -> str:
    if collector.cut_ms is None:
        return ""
    cut = (collector.cut_ms - collector.start_ms) / MINUTE_MS
    if collector.heal_ms is None:
        return f" (cut at {cut:g} min)"
    heal = (collector.heal_ms - collector.start_ms) / MINUTE_MS
    return f" (cut at {cut:g} min, healed at {heal:g} min)"


def _notes(plan: MeshScenario, collector: Collector) -> list[str]:
    sim = collector.sim
    notes = []
    if plan.model == "planner":
        notes.append(
            "Model: planner. Every node holds its events as the projection pins them, and "
            "every reply and push is planned by the shipped reconcile.plan_reply on real "
            "digests; every node has the shipped MeshPeers book."
        )
    else:
        notes.append(
            "Model: the set model until every node held every hey_there, then the matrix "
            "model (hereabouts.sim.mesh_matrix): both make exactly the planner's choices "
            "(tests/sim/test_mesh_sim.py runs them side by side), at numpy speed; every node "
            "has the shipped MeshPeers book."
        )
    notes.append(
        "Views and observers: the shipped rules (hereabouts.sim.mesh_views): thresholds from "
        "suspicion.missing_after_ms, observers by rendezvous ranking "
        + ("(SHA-256, as shipped)" if plan.ranking == "sha256" else
           "(a 64-bit mixing hash in place of SHA-256 past 2,000 nodes: same properties, "
           "different picks)")
        + ", the observer duty's 64 looks a round and 4,096 remembered; views judged at round "
        "instants, time-outs dated to the millisecond."
    )
    notes.append(
        f"Judging starts after {plan.warmup_rounds} rounds of heartbeats following "
        "convergence, so that views lag as they do in a running mesh; all nodes are up "
        "throughout, so every MISSING of a reachable node is false."
    )
    if plan.missing_after_s < plan.needed_s:
        notes.append(
            f"mesh_missing_after_s = {plan.missing_after_s:g} s is shorter than the "
            f"{plan.needed_s:,.0f} s the config check requires for {plan.nodes:,} nodes: a "
            "node would refuse this configuration."
        )
    if plan.nodes > sim.config.max_peers + 1:
        notes.append(
            f"Peer books are full ({sim.config.max_peers:,} peers of {plan.nodes - 1:,}): a "
            "full simulated book keeps the first peers it learnt instead of evicting the "
            "least recently heard one for every further hey_there. An observer probes only "
            "subjects its book has an address for, as the runtime does."
        )
    if sim.reports_cut:
        notes.append(
            f"{sim.reports_cut:,} replies were cut among failure reports, which the matrix "
            "model does not represent exactly (hereabouts.sim.mesh_matrix)."
        )
    return notes


__all__ = ["Collector", "RoundRecord", "report_of"]
