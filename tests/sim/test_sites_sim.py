"""The site-room simulation: repeatable, exact where the docs promise exactness, and in line
with the closed forms of the rotation schedule and of silent departures."""

from __future__ import annotations

import dataclasses
import random

import pytest

from hereabouts.config import SitesConfig
from hereabouts.sim import scenario as scenarios
from hereabouts.sim.report_model import SimReport
from hereabouts.sim.scenario import RunOptions, ScenarioError
from hereabouts.sim.site_model import (
    AFTER_SETTLE,
    SETTLE,
    STEADY,
    Churn,
    Network,
    SiteSimConfig,
    SiteSimResult,
    expected_heartbeats,
    simulate,
    uniform_sum_cdf,
)
from hereabouts.sim.sites import run_scenario

NO_CHURN = Churn(enabled=False)
MEASURED = (STEADY, SETTLE, AFTER_SETTLE)

REQUIRED = (
    "visitors",
    "worst_count_error",
    "boundary_count_error",
    "heartbeats_per_s_steady",
    "heartbeats_per_s_boundary_peak",
    "counter_entries_peak",
)


def worst(result: SiteSimResult, classes: tuple[int, ...] = MEASURED) -> int:
    return max(max(result.worst_high[k], -result.worst_low[k]) for k in classes)


def value(report: SimReport, key: str) -> float:
    measured = report.value(key)
    assert measured is not None, key
    return measured


def test_the_shipped_scenario_runs_at_small_n_and_reports_every_figure_and_plot() -> None:
    shares: list[float] = []
    report = run_scenario(
        scenarios.load("site-rotation"), RunOptions(nodes=2000, progress=shares.append)
    )
    for key in REQUIRED:
        assert report.value(key) is not None, key
    assert report.value("visitors") == 2000  # --nodes means visitors for this kind
    assert value(report, "boundaries_crossed") >= 3
    assert {p.name for p in report.plots} >= {
        "site-counts",
        "site-count-error",
        "site-heartbeats",
        "site-burst",
        "site-counter-entries",
    }
    for plot in report.plots:
        assert all(len(line.y) == len(plot.x) for line in plot.lines), plot.name
    assert shares[-1] == 1.0 and shares == sorted(shares) and len(shares) > 10
    # With churn the count errs by the visitors gone without a leave: a few % of a room.
    room = 2000 / value(report, "rooms")
    assert 0 < value(report, "worst_count_error") < 0.1 * room
    assert value(report, "counter_dids_peak") <= value(report, "counter_dids_bound")
    assert dict(report.settings)["sites.did_duration_s"] == "300"


def test_one_seed_gives_one_report_byte_for_byte() -> None:
    scenario = scenarios.load("site-rotation")
    first = run_scenario(scenario, RunOptions(nodes=600, seed=3))
    second = run_scenario(scenario, RunOptions(nodes=600, seed=3))
    assert first == second
    assert repr(first) == repr(second)
    other = run_scenario(scenario, RunOptions(nodes=600, seed=4))
    assert other.plots != first.plots


@pytest.mark.parametrize("hubs", [1, 2])
def test_without_churn_the_count_is_exact_through_every_rotation(hubs: int) -> None:
    """The exactness rules: clocks and delivery within the max skew, nobody comes or goes,
    and the shown count equals the visitors present at every instant, settle windows and
    boundaries included (and at both hubs when two share the count)."""
    for seed in (1, 2):
        network = Network(hubs=hubs, clock_offset_max_ms=1200, latency_max_ms=1500)
        config = SiteSimConfig(visitors=1500, seed=seed, rooms=3, churn=NO_CHURN, network=network)
        result = simulate(config)
        assert worst(result) == 0, (result.worst_high, result.worst_low)
        assert result.hubs[0].rejects == {}
        warm = round(config.warmup_s)
        assert all(shown[warm:] == result.true_total[warm:] for shown in result.shown_total)
        assert worst(result, (0,)) > 0  # the warm-up is not exact: a new hub needs H


def test_without_a_warm_up_the_first_instants_are_measured_too() -> None:
    config = SiteSimConfig(visitors=300, seed=1, rooms=1, churn=NO_CHURN, warmup_s=0)
    result = simulate(config)
    assert result.worst_low[STEADY] < -100  # the hub that has just started, now measured
    assert result.worst_high[0] == result.worst_low[0] == 0


def test_clocks_beyond_the_max_skew_break_exactness_so_the_check_can_fail() -> None:
    network = Network(clock_offset_max_ms=6000, latency_min_ms=0, latency_max_ms=0)
    config = SiteSimConfig(visitors=1000, seed=1, rooms=1, churn=NO_CHURN, network=network)
    result = simulate(config)
    assert worst(result) > 0
    assert result.hubs[0].rejects.get("future", 0) > 0  # dated past now + max skew


ONE_SECOND_SPREAD = SitesConfig(rotation_spread_s=1.0)
"""The former default spread: every visitor's first new heartbeat within 1 s."""


def test_a_hub_that_drains_a_burst_too_slowly_misses_visitors_after_the_settle_window() -> None:
    """Delivery includes the hub's own queue: the settle window covers clock offsets and
    delays up to the max skew (3 s), so a hub that needs longer to count a boundary burst
    (here, of a 1 s spread) closes the window before every first heartbeat of the new
    epoch is counted."""
    base = SiteSimConfig(visitors=2000, seed=1, rooms=2, churn=NO_CHURN, sites=ONE_SECOND_SPREAD)
    steady = 2000 / base.sites.heartbeat_interval_s
    fast = simulate(dataclasses.replace(base, hub_events_per_s=6 * steady))
    assert worst(fast) == 0
    assert 0 < max(fast.hub_delay_ms) < 3000
    slow = simulate(dataclasses.replace(base, hub_events_per_s=2 * steady))
    assert max(slow.hub_delay_ms) > 3000
    assert worst(slow, (STEADY,)) == 0  # between boundaries the hub keeps up
    assert slow.worst_low[AFTER_SETTLE] < -100  # right after a settle window it does not


def test_with_the_default_spread_a_hub_that_keeps_up_with_the_steady_rate_is_enough() -> None:
    """A spread of one interval brings no burst: a hub counting a fifth more than the
    steady rate never lets an event wait long (its queue is only the steady stream's
    randomness, far below the 3 s the max skew leaves), and counts exactly through every
    boundary; with a 1 s spread it would need about three times the steady rate."""
    base = SiteSimConfig(visitors=2000, seed=1, rooms=2, churn=NO_CHURN)
    steady = 2000 / base.sites.heartbeat_interval_s
    result = simulate(dataclasses.replace(base, hub_events_per_s=1.2 * steady))
    assert worst(result) == 0
    assert max(result.hub_delay_ms) < 1000
    burst = simulate(
        dataclasses.replace(base, sites=ONE_SECOND_SPREAD, hub_events_per_s=1.2 * steady)
    )
    assert max(burst.hub_delay_ms) > 3000
    assert burst.worst_low[AFTER_SETTLE] < -100


def test_the_first_heartbeats_of_an_epoch_take_the_place_of_the_regular_ones() -> None:
    """Exact clocks and delivery, the default spread of one interval: in the interval after
    each boundary every visitor sends exactly one heartbeat (its first of the new epoch),
    and each second of it gets about N / H."""
    exact = Network(clock_offset_max_ms=0, latency_min_ms=0, latency_max_ms=0)
    config = SiteSimConfig(visitors=2000, seed=5, rooms=2, churn=NO_CHURN, network=exact)
    result = simulate(config)
    h = round(config.sites.heartbeat_interval_s)
    for b in result.boundaries_ms:
        second = (b - result.start_ms) // 1000
        assert sum(result.heartbeats[second : second + h]) == 2000
        assert all(120 < n < 280 for n in result.heartbeats[second - h : second + 2 * h])
    assert max(result.heartbeats) < 280  # about N / H = 200 every second
    assert expected_heartbeats(config, (0, 1000), 0, 2000) == pytest.approx(200)


def test_a_one_second_spread_brings_every_visitor_within_it() -> None:
    """Exact clocks and delivery, a 1 s spread: every visitor's first heartbeat of the new
    epoch falls in [boundary, boundary + 1 s) and nothing else does (the old cadence stopped
    at the boundary, the new one starts after the spread), so the second after each
    boundary holds exactly one heartbeat per visitor."""
    exact = Network(clock_offset_max_ms=0, latency_min_ms=0, latency_max_ms=0)
    config = SiteSimConfig(
        visitors=2000, seed=5, rooms=2, churn=NO_CHURN, network=exact, sites=ONE_SECOND_SPREAD
    )
    result = simulate(config)
    for b in result.boundaries_ms:
        second = (b - result.start_ms) // 1000
        assert result.heartbeats[second] == 2000
        assert result.heartbeats[second - 1] < 400  # the cadence: about N / H = 200
        assert result.heartbeats[second + 1] < 400
    assert max(result.heartbeats) == 2000
    assert expected_heartbeats(config, (0, 1000), 0, 2000) == pytest.approx(2000)


@pytest.fixture(scope="module")
def five_thousand() -> SimReport:
    """The shipped scenario at 5,000 visitors (four rooms of 1,250)."""
    return run_scenario(scenarios.load("site-rotation"), RunOptions(nodes=5000, seed=2))


def test_the_rate_stays_level_through_boundaries_with_clocks_and_latency(
    five_thousand: SimReport,
) -> None:
    report = five_thousand
    steady = value(report, "heartbeats_per_s_steady")
    n, h = 5000, SitesConfig().heartbeat_interval_s
    assert steady == pytest.approx(n / h + value(report, "arrivals_per_s") / 2, rel=0.03)
    # The busiest second of the run is the steady rate plus noise, and so is the schedule's.
    assert value(report, "heartbeats_per_s_boundary_peak") < 1.25 * steady
    assert value(report, "heartbeats_per_s_boundary_predicted") == pytest.approx(steady, rel=0.03)


def test_a_burst_matches_the_schedule_with_clocks_and_latency() -> None:
    text = scenarios.load("site-rotation").text + "\n[sites]\nrotation_spread_s = 1\n"
    report = run_scenario(scenarios.parse(text, name="t"), RunOptions(nodes=5000, seed=2))
    peak = value(report, "heartbeats_per_s_boundary_peak")
    predicted = value(report, "heartbeats_per_s_boundary_predicted")
    assert peak == pytest.approx(predicted, rel=0.05)
    assert 5 * value(report, "heartbeats_per_s_steady") < peak


def test_the_mean_over_count_is_the_silent_departures_still_fresh(
    five_thousand: SimReport,
) -> None:
    """Little's law: visitors leave without a leave at rate λ(1 - p), and each stays counted
    for S - H/2 on average after going (its last heartbeat was H/2 earlier, on average)."""
    report = five_thousand
    s = SitesConfig()
    rate = value(report, "arrivals_per_s")
    predicted = rate * (1 - 0.8) * (s.stale_timeout_s - s.heartbeat_interval_s / 2) / 4
    assert value(report, "mean_count_error") == pytest.approx(predicted, rel=0.15)


def test_the_counter_holds_two_epochs_and_stays_within_its_bounds() -> None:
    config = SiteSimConfig(visitors=1200, seed=1, rooms=2)
    result = simulate(config)
    assert max(result.epochs_held) <= 3 * config.rooms
    assert max(result.dids) <= 3 * config.rooms * config.sites.max_room_participants
    # Before the last boundary the counter holds the previous epoch's DIDs as well.
    last = (result.boundaries_ms[-1] - result.start_ms) // 1000
    assert result.dids[last - 2] > 1.8 * 1200


def test_the_sybil_scenario_meets_each_bound_it_names() -> None:
    report = run_scenario(scenarios.load("site-sybil"), RunOptions(nodes=1000))
    # Through a hub: 50 addresses x 64 joins, reached and not passed across the boundary.
    assert value(report, "attack1_inflation_peak") == value(report, "attack1_inflation_bound")
    assert value(report, "attack1_inflation_bound") == 50 * 64
    # The plateau is held second after second (an error that stands still is still an error).
    plot = next(p for p in report.plots if p.name == "site-count-error")
    over = dict(zip(plot.x, plot.lines[0].y, strict=True))
    assert all(over[float(x)] >= 3000 for x in range(60, 140))
    # On the plaza: the count stops at max_room_participants, and visitors' new DIDs of the
    # next epoch are refused along with the attacker's.
    assert value(report, "attack2_inflation_peak") == 100_000 - 1000
    assert "room_full" in report.figure("honest_rejects").detail
    assert "join_budget" in report.figure("rejects").detail


def test_unknown_and_inconsistent_settings_are_refused() -> None:
    text = 'kind = "sites"\nnodes = 100\n'
    with pytest.raises(ScenarioError, match="stay_men_s"):
        run_scenario(scenarios.parse(text + "[churn]\nstay_men_s = 60\n", name="t"), RunOptions())
    with pytest.raises(ScenarioError, match=r"\[sites\]"):
        bad = text + "[sites]\nstale_timeout_s = 5\n"  # not above the heartbeat interval
        run_scenario(scenarios.parse(bad, name="t"), RunOptions())
    with pytest.raises(ScenarioError, match="room"):
        attack = text + "rooms = 2\n[[attack]]\nmode = 'hub'\nroom = 3\n"
        run_scenario(scenarios.parse(attack, name="t"), RunOptions())


def test_uniform_sum_cdf_matches_sampling() -> None:
    rng = random.Random(1)
    lows, widths = (20.0, -500.0, 0.0), (280.0, 1000.0, 1000.0)
    draws = [
        sum(lo + rng.random() * w for lo, w in zip(lows, widths, strict=True))
        for _ in range(40_000)
    ]
    for x in (-300.0, 0.0, 400.0, 900.0, 1500.0):
        sampled = sum(d <= x for d in draws) / len(draws)
        assert uniform_sum_cdf(x, lows, widths) == pytest.approx(sampled, abs=0.01)
    assert uniform_sum_cdf(5.0, (5.0,), (0.0,)) == 1.0  # a point mass


def test_an_attack_in_a_room_that_is_not_simulated_is_refused() -> None:
    from hereabouts.sim.site_model import Attack

    with pytest.raises(ValueError, match="room"):
        SiteSimConfig(visitors=10, rooms=1, attacks=(Attack("hub", 0, 10, 1, room=1),))
    with pytest.raises(ValueError, match="hubs"):
        SiteSimConfig(visitors=10, network=dataclasses.replace(Network(), hubs=3))
