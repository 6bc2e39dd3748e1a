"""Mesh scenarios: every shipped one runs, one seed gives one report, and the figures agree
with the maths the code documents (rounds to converge, suspicion time-outs)."""

from __future__ import annotations

import numpy as np
import pytest

from hereabouts.core.meshmath import propagation_rounds
from hereabouts.core.suspicion import OBSERVERS, QUORUM, missing_after_ms
from hereabouts.sim import run
from hereabouts.sim.mesh_scenario import read, simulate_scenario
from hereabouts.sim.mesh_views import NEWS, REPORTS, TIMEOUT
from hereabouts.sim.scenario import RunOptions, Scenario, ScenarioError, load, parse, shipped

MESH = [name for name in shipped() if load(name).kind == "mesh"]

STABLE = {
    "nodes",
    "rounds_to_converge",
    "rounds_bound",
    "converge_s",
    "bytes_per_node_per_round",
    "converge_bytes_per_node_per_round",
    "false_missing_per_node_hour",
    "mesh_missing_after_s",
}

PARTITION = """
kind = "mesh"
description = "a short partition"
nodes = 60
seed = 2

[mesh]
failure_rate = {rate}

[suspicion]
mesh_missing_after_s = 1800

[[phase]]
minutes = 10
failure_rate = {rate}

[[phase]]
minutes = 50
groups = 2
failure_rate = {rate}

[[phase]]
minutes = 30
failure_rate = {rate}
"""


def scenario(text: str, name: str = "test") -> Scenario:
    return parse(text, name=name)


def test_the_mesh_scenarios_are_shipped() -> None:
    assert {"mesh-partition-heal", "mesh-loss"} <= set(MESH)


@pytest.mark.parametrize("name", MESH)
def test_each_shipped_mesh_scenario_runs_at_small_n_and_one_seed_gives_one_report(
    name: str,
) -> None:
    options = RunOptions(nodes=40, seed=3)
    first = run.run_scenario(load(name), options)
    again = run.run_scenario(load(name), options)
    assert first == again
    keys = {figure.key for figure in first.figures}
    assert keys >= STABLE, STABLE - keys
    assert first.value("rounds_bound") == propagation_rounds(40)
    if name == "mesh-partition-heal":
        assert {"heal_rounds", "heal_s", "side1_first_missing_s", "side2_nodes"} <= keys
        assert first.value("heal_rounds") is not None
    if name == "mesh-loss":
        assert {"false_missing_per_node_hour_1pct", "false_missing_per_node_hour_5pct"} <= keys
    names = {plot.name for plot in first.plots}
    assert {"mesh-convergence", "mesh-complete", "mesh-bytes", "mesh-missing"} <= names
    for plot in first.plots:
        assert plot.x and all(len(line.y) == len(plot.x) for line in plot.lines)
    assert any("planner" in note for note in first.notes)
    other = run.run_scenario(load(name), RunOptions(nodes=40, seed=4))
    assert other != first


@pytest.mark.parametrize(("nodes", "seed"), [(50, 1), (200, 2), (1000, 3)])
def test_a_mesh_converges_within_the_documented_rounds(nodes: int, seed: int) -> None:
    text = PARTITION.format(rate=0.01).replace("minutes = 50", "minutes = 1")
    text = text.replace("minutes = 10", "minutes = 1").replace("minutes = 30", "minutes = 1")
    report = simulate_scenario(scenario(text), RunOptions(nodes=nodes, seed=seed)).report
    rounds = report.value("rounds_to_converge")
    assert rounds is not None and rounds <= propagation_rounds(nodes), rounds
    assert report.value("rounds_bound") == propagation_rounds(nodes)


def test_suspicion_time_outs_are_missing_after_ms_for_the_confirmations_seen() -> None:
    seen: dict[str, int] = {}
    quiet = PARTITION.replace("[suspicion]", "[suspicion]\nreport_after_s = 1000000")
    for text in (PARTITION, quiet):  # observers probe and report; nobody ever probes
        done = simulate_scenario(scenario(text.format(rate=0.02)), RunOptions(), keep=True)
        views = done.views
        assert views is not None and done.collector is not None
        full, shortest = views.settings.missing_after_ms, views.settings.shortest_ms
        _, _, _, to_missing, silence, counted, cause = views.transitions.columns()
        expected = np.array(
            [missing_after_ms(full, shortest, c) for c in range(OBSERVERS + 1)]
        )
        timeouts = cause == TIMEOUT
        # A view times out the millisecond after the threshold its standing reports give.
        assert (silence[timeouts] == expected[counted[timeouts]] + 1).all()
        # Reports make a view MISSING only from the quorum on, and only past its threshold.
        by_reports = to_missing & (cause == REPORTS)
        assert (counted[by_reports] >= QUORUM).all()
        assert (silence[by_reports] > expected[counted[by_reports]]).all()
        # Back to ONLINE only within the threshold then in force.
        back = ~to_missing & (cause == NEWS)
        assert (silence[back] <= expected[counted[back]]).all()
        assert done.collector.timeout_mismatches == 0
        seen["full"] = seen.get("full", 0) + int((timeouts & (counted == 0)).sum())
        seen["short"] = seen.get("short", 0) + int((timeouts & (counted >= QUORUM)).sum())
        seen["reports"] = seen.get("reports", 0) + int(by_reports.sum())
    assert min(seen.values()) > 50, seen  # each kind happened


def test_a_partition_is_read_as_missing_across_and_heals_without_false_missing() -> None:
    done = simulate_scenario(scenario(PARTITION.format(rate=0.0)), RunOptions())
    report = done.report
    for side in (1, 2):
        assert report.value(f"side{side}_nodes") == 30
        assert report.value(f"side{side}_viewers_reading_missing") == 30
        first = report.value(f"side{side}_first_missing_s")
        assert first is not None and 0 < first <= 50 * 60
    heal = report.value("heal_rounds")
    assert heal is not None and heal <= propagation_rounds(60)
    assert report.value("missing_cleared_s") is not None
    # Nobody failed but across the cut: no view of a reachable node ever turned MISSING;
    # views across stay MISSING after the heal only until the news crosses.
    assert report.value("false_missing_per_node_hour") == 0
    records = done.collector.records
    healed = done.collector.heal_record
    assert healed is not None
    assert all(r.missing_false == 0 for r in records[:healed])
    assert records[healed].missing_false > 0 and records[-1].missing_false == 0


def test_progress_is_told_from_zero_to_one() -> None:
    text = PARTITION.format(rate=0.01).replace("minutes = 50", "minutes = 2")
    shares: list[float] = []
    simulate_scenario(scenario(text), RunOptions(nodes=30, progress=shares.append))
    assert shares[0] == 0.0 and shares[-1] == 1.0
    assert shares == sorted(shares) and len(shares) > 10


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("[mesh]", "[mesh]\nfailure_rat = 0.1"), "unknown setting(s): failure_rat"),
        (("[suspicion]", "[suspicion]\nreport_after_s = -1"), "report_after_s must be from"),
        (("groups = 2", "groups = 40"), "40 groups need at least 80 nodes"),
        (("minutes = 50", "minutes = 50\nsettle_minutes = 60"), "settle_minutes must be"),
        (("[mesh]", '[mesh]\nmodel = "sets"'), "model must be one of"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(
    change: tuple[str, str], message: str
) -> None:
    text = PARTITION.format(rate=0.01).replace(*change, 1)
    with pytest.raises(ScenarioError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read(scenario(text), RunOptions())


def test_a_mesh_too_large_to_hold_is_refused() -> None:
    with pytest.raises(ScenarioError, match="2 to 12,000 nodes"):
        read(load("mesh-loss"), RunOptions(nodes=50_000))


def test_a_mesh_scenario_needs_a_phase() -> None:
    with pytest.raises(ScenarioError, match="at least one"):
        read(scenario('kind = "mesh"\nnodes = 10\n'), RunOptions())


def test_the_threshold_defaults_to_what_the_config_check_needs() -> None:
    plain = 'kind = "mesh"\n[[phase]]\nminutes = 5\n'
    assert read(scenario(plain), RunOptions(nodes=1000)).missing_after_s == 3600
    big = read(scenario(plain), RunOptions(nodes=10_000))
    assert big.missing_after_s == 5700 == big.needed_s
