"""The newspaper cadence: short while things move, long while quiet, always jittered."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hereabouts.config import HeartbeatConfig
from hereabouts.core.cadence import NewspaperCadence
from hereabouts.errors import ConfigError, LocalError
from tests.signers import SECOND, T0

CONFIG = HeartbeatConfig()  # 30 s to 120 s, ±10 %
MIDDLE = 0.5  # the draw that gives no jitter at all


def run_quiet(cadence: NewspaperCadence, beats: int, start_ms: int = T0) -> list[int]:
    """Delays of ``beats`` heartbeats with nothing happening, each sent when the last said."""
    delays, now = [], start_ms
    for _ in range(beats):
        delay = cadence.next_delay_ms(now, MIDDLE)
        delays.append(delay)
        now += delay
    return delays


def test_starts_at_the_minimum_and_doubles_to_the_maximum_while_quiet() -> None:
    cadence = NewspaperCadence(CONFIG)
    assert cadence.current_interval_s == 30
    assert run_quiet(cadence, 5) == [30_000, 60_000, 120_000, 120_000, 120_000]
    assert cadence.current_interval_s == CONFIG.max_interval_s


def test_a_change_brings_the_next_interval_back_to_the_minimum() -> None:
    cadence = NewspaperCadence(CONFIG)
    delays = run_quiet(cadence, 4)
    now = T0 + sum(delays)
    cadence.note_change(now - 5 * SECOND)  # while the 120 s heartbeat was pending
    assert cadence.next_delay_ms(now, MIDDLE) == 30_000
    assert cadence.current_interval_s == CONFIG.min_interval_s
    assert run_quiet(cadence, 3, now + 30_000) == [60_000, 120_000, 120_000]


def test_changes_keep_a_booting_node_at_the_minimum() -> None:
    cadence = NewspaperCadence(CONFIG)
    now = T0
    for _ in range(5):
        cadence.note_change(now + SECOND)  # peers keep appearing during the first sync
        delay = cadence.next_delay_ms(now + SECOND, MIDDLE)
        assert delay == 30_000
        now += SECOND + delay


def test_a_change_does_not_reschedule_the_pending_heartbeat() -> None:
    cadence = NewspaperCadence(CONFIG)
    run_quiet(cadence, 3)
    assert cadence.last_delay_ms == 120_000
    cadence.note_change(T0 + 200 * SECOND)
    assert cadence.last_delay_ms == 120_000  # nothing to do for the runtime until it fires


def test_jitter_follows_the_draw() -> None:
    cadence = NewspaperCadence(CONFIG)
    assert cadence.next_delay_ms(T0, 0.0) == 27_000
    assert NewspaperCadence(CONFIG).next_delay_ms(T0, 0.75) == 31_500
    assert NewspaperCadence(CONFIG).next_delay_ms(T0, 0.999999) == 33_000


def test_next_in_s_is_the_longest_the_next_delay_can_be() -> None:
    cadence = NewspaperCadence(CONFIG)
    assert cadence.next_in_s == 33  # 30 s + 10 %
    cadence.next_delay_ms(T0, MIDDLE)
    assert cadence.next_in_s == 66
    cadence.next_delay_ms(T0 + 30 * SECOND, MIDDLE)
    assert cadence.next_in_s == 132
    cadence.next_delay_ms(T0 + 90 * SECOND, MIDDLE)
    assert cadence.next_in_s == 132
    cadence.note_change(T0 + 100 * SECOND)
    assert cadence.next_in_s == 33


def test_growth_is_configurable_and_checked() -> None:
    cadence = NewspaperCadence(CONFIG, growth=1.5)
    assert run_quiet(cadence, 5) == [30_000, 45_000, 67_500, 101_250, 120_000]
    steady = NewspaperCadence(CONFIG, growth=1.0)
    assert run_quiet(steady, 3) == [30_000, 30_000, 30_000]
    with pytest.raises(ConfigError):
        NewspaperCadence(CONFIG, growth=0.5)


@pytest.mark.parametrize("draw", [-0.1, 1.0, float("nan")])
def test_draws_outside_the_unit_interval_are_misuse(draw: float) -> None:
    with pytest.raises(LocalError):
        NewspaperCadence(CONFIG).next_delay_ms(T0, draw)


configs = st.builds(
    HeartbeatConfig,
    min_interval_s=st.floats(min_value=0.5, max_value=60),
    max_interval_s=st.floats(min_value=60, max_value=600),
    jitter_fraction=st.floats(min_value=0, max_value=0.5),
)
steps = st.lists(
    st.tuples(st.booleans(), st.floats(min_value=0, max_value=1, exclude_max=True)),
    min_size=1,
    max_size=30,
)


def _drive(config: HeartbeatConfig, plan: list[tuple[bool, float]]) -> list[tuple[int, int]]:
    cadence = NewspaperCadence(config)
    now, out = T0, []
    for changed, draw in plan:
        if changed:
            cadence.note_change(now)
        promised = cadence.next_in_s
        delay = cadence.next_delay_ms(now, draw)
        out.append((delay, promised))
        now += delay
    return out


@settings(max_examples=200, deadline=None)
@given(config=configs, plan=steps)
def test_delays_stay_in_bounds_keep_their_promise_and_are_deterministic(
    config: HeartbeatConfig, plan: list[tuple[bool, float]]
) -> None:
    j = config.jitter_fraction
    low = config.min_interval_s * (1 - j) * 1000
    high = config.max_interval_s * (1 + j) * 1000
    results = _drive(config, plan)
    for delay, promised in results:
        assert low - 1 <= delay <= high + 1  # whole milliseconds
        assert delay <= promised * 1000
    assert _drive(config, plan) == results


@settings(max_examples=100, deadline=None)
@given(config=configs, draws=st.lists(st.floats(0, 1, exclude_max=True), min_size=12))
def test_quiet_reaches_the_maximum_and_a_change_returns_to_the_minimum(
    config: HeartbeatConfig, draws: list[float]
) -> None:
    cadence = NewspaperCadence(config)
    now = T0
    for draw in draws:
        now += cadence.next_delay_ms(now, draw)
    # From 0.5 s, doubling reaches any maximum up to 600 s within 11 quiet heartbeats.
    assert cadence.current_interval_s == config.max_interval_s
    cadence.note_change(now)
    cadence.next_delay_ms(now, draws[0])
    assert cadence.current_interval_s == config.min_interval_s
