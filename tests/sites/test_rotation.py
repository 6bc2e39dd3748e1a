"""The rotation schedule (core/rotation.py) and the spread's config: load through a
boundary, silences, phases, and which spreads the config takes."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

import pytest

from hereabouts.config import SitesConfig
from hereabouts.core.rotation import HeartbeatPlan, epoch_of, epoch_start_ms
from hereabouts.errors import ConfigError

DEFAULT = SitesConfig()
H = round(DEFAULT.heartbeat_interval_s * 1000)
D = round(DEFAULT.did_duration_s * 1000)
B = 5_700_000 * D  # an epoch boundary


class Scripted:
    """Draws from a list, and says how many were taken."""

    def __init__(self, draws: Sequence[float]) -> None:
        self.draws = list(draws)
        self.taken = 0

    def random(self) -> float:
        self.taken += 1
        return self.draws[self.taken - 1]


def plan_of(config: SitesConfig, uniform: random.Random | Scripted) -> HeartbeatPlan:
    return HeartbeatPlan(
        interval_ms=round(config.heartbeat_interval_s * 1000),
        duration_ms=round(config.did_duration_s * 1000),
        spread_ms=round(config.rotation_spread_s * 1000),
        uniform=uniform,
    )


def beats(config: SitesConfig, visitors: int, start: int, end: int, seed: int) -> list[list[int]]:
    """Each visitor's heartbeats from ``start`` (at a uniform phase, as in steady state) to
    ``end``, on the shipped schedule."""
    rng = random.Random(seed)
    plan = plan_of(config, rng)
    interval = round(config.heartbeat_interval_s * 1000)
    out = []
    for _ in range(visitors):
        at = start + rng.randrange(interval)
        times = []
        while at < end:
            times.append(at)
            at = plan.next_after(at)
        out.append(times)
    return out


def test_the_default_spread_is_one_heartbeat_interval() -> None:
    assert DEFAULT.rotation_spread_s == DEFAULT.heartbeat_interval_s == 10.0
    assert DEFAULT.settle_s == 13.0
    assert SitesConfig.from_env({}) == DEFAULT
    assert SitesConfig.from_env({"PRESENCE_ROTATION_SPREAD": " "}) == DEFAULT


def test_the_rate_through_a_boundary_stays_the_steady_rate() -> None:
    """With the default spread every one-second window around a boundary gets one interval's
    share of the visitors' heartbeats (N/H per second), the first second after it too; a
    1 s spread put every visitor's first new heartbeat there, ten times as many."""
    n = 5_000
    per_window = n * 1000 / H  # 500
    counts = [0] * 60  # one-second windows from B - 30 s
    for times in beats(DEFAULT, n, B - 40_000, B + 40_000, seed=1):
        for at in times:
            if B - 30_000 <= at < B + 30_000:
                counts[(at - B + 30_000) // 1000] += 1
    assert all(abs(c - per_window) < 0.25 * per_window for c in counts), counts
    # No dip and no extra heartbeats either: a minute's worth, within a few per cent.
    assert abs(sum(counts) - 60 * per_window) < 0.02 * 60 * per_window


def test_a_short_spread_brings_the_first_heartbeats_within_it() -> None:
    """An explicit 1 s spread is still honoured: the first second after the boundary gets
    every visitor's first new heartbeat, then the rate is level again (fresh phases)."""
    config = SitesConfig(rotation_spread_s=1.0)
    n = 2_000
    counts = [0] * 30
    for times in beats(config, n, B - 20_000, B + 30_000, seed=2):
        for at in times:
            if B - 10_000 <= at < B + 20_000:
                counts[(at - B + 10_000) // 1000] += 1
    first = counts[10]
    assert n <= first < n + 0.2 * n  # every visitor's first, plus a few regular ones
    rest = counts[:10] + counts[11:]
    assert all(abs(c - n / 10) < 0.3 * n / 10 for c in rest), counts


@pytest.mark.parametrize("spread_s", [10.0, 5.0, 1.0, 0.2])
def test_no_did_is_silent_for_more_than_one_interval(spread_s: float) -> None:
    """Between two heartbeats of one DID at most one interval passes, boundaries included
    (the stale timeout is what allows for losses); the old DID beats last within one
    interval before the boundary, the new one first within the spread after it."""
    config = SitesConfig(rotation_spread_s=spread_s)
    spread = round(spread_s * 1000)
    worst = 0
    for times in beats(config, 2_000, B - 3 * H, B + 3 * H, seed=3):
        old = [at for at in times if at < B]
        new = [at for at in times if at >= B]
        assert B - H <= old[-1] < B
        assert B <= new[0] < B + spread
        for epoch in (old, new):
            gaps = [b - a for a, b in itertools.pairwise(epoch)]
            assert all(0 < gap <= H for gap in gaps), gaps
            worst = max(worst, *gaps)
    assert worst == H  # the steady cadence itself


@pytest.mark.parametrize("spread_s", [10.0, 1.0])
def test_the_phase_is_drawn_afresh_and_uniform_over_the_interval(spread_s: float) -> None:
    """After the boundary each visitor's cadence sits at a uniform phase of the interval,
    whatever its phase before: a watcher cannot pair old and new DIDs by their offsets."""
    config = SitesConfig(rotation_spread_s=spread_s)
    rng = random.Random(4)
    plan = plan_of(config, rng)
    pairs = []
    for _ in range(10_000):
        old_phase = rng.randrange(H)
        at = B - H + old_phase  # the last old-epoch heartbeat
        for _ in range(3):
            at = plan.next_after(at)  # the first, the second and the third new heartbeats
        assert plan.next_after(at) == at + H
        pairs.append((old_phase * 10 // H, (at - B) % H * 10 // H))
    for old in range(10):
        new = [p for o, p in pairs if o == old]
        per_tenth = [new.count(tenth) for tenth in range(10)]
        assert min(per_tenth) > 0.5 * len(new) / 10, (old, per_tenth)


def test_the_schedule_draw_by_draw() -> None:
    draws = Scripted([0.05, 0.5, 0.05])
    short = plan_of(SitesConfig(did_duration_s=60, rotation_spread_s=1.0), draws)
    b = 1_000 * 60_000
    assert short.next_after(b + 1_234) == b + 11_234  # no draw inside an epoch
    assert short.next_after(b + 51_234) == b + 60_000 + 50  # a boundary: within the spread
    # The first heartbeat of an epoch draws its phase: past the spread (5 s), the next
    # heartbeat comes then; inside it (0.5 s), the cadence goes on from the first.
    assert short.next_after(b + 60_050) == b + 65_000
    assert short.next_after(b + 60_050) == b + 70_050
    assert draws.taken == 3
    draws = Scripted([0.25, 0.99])
    full = plan_of(DEFAULT, draws)
    assert full.next_after(B - 4_000) == B + 2_500
    assert full.next_after(B + 2_500) == B + 12_500  # the phase is the first heartbeat's
    assert draws.taken == 2
    assert epoch_start_ms(epoch_of(B - 1, D), D) == B - D


# --- the spread in the config ----------------------------------------------------------------


def test_the_spread_follows_a_changed_interval_unless_set() -> None:
    assert SitesConfig.from_env({"PRESENCE_HEARTBEAT_INTERVAL": "5"}).rotation_spread_s == 5.0
    assert SitesConfig(heartbeat_interval_s=2.5).rotation_spread_s == 2.5
    assert SitesConfig(heartbeat_interval_s=0.5).rotation_spread_s == 0.5  # 1 s was refused
    env = {"PRESENCE_HEARTBEAT_INTERVAL": "5", "PRESENCE_ROTATION_SPREAD": "2"}
    assert SitesConfig.from_env(env).rotation_spread_s == 2.0


def test_the_derived_spread_is_the_widest_the_other_timings_admit() -> None:
    """A whole interval where it fits; where the stale timeout or the epoch leave less
    room, the widest spread that keeps old DIDs fresh through the settle window and the
    window inside half an epoch."""
    assert SitesConfig(heartbeat_interval_s=15).rotation_spread_s == 9.0  # 30 - 15 - 2 x 3
    env = {"PRESENCE_HEARTBEAT_INTERVAL": "5", "PRESENCE_STALE_TIMEOUT": "15"}
    assert SitesConfig.from_env(env).rotation_spread_s == 4.0
    assert SitesConfig(did_duration_s=20).rotation_spread_s == 7.0  # 20 / 2 - 3
    assert SitesConfig(heartbeat_interval_s=15, stale_timeout_s=36).rotation_spread_s == 15.0


def _built(**timings: float) -> SitesConfig | None:
    try:
        return SitesConfig(**timings)  # type: ignore[arg-type]
    except ConfigError:
        return None


def test_the_derived_spread_keeps_the_rules_and_is_never_below_the_old_default() -> None:
    """Every timing accepts the derived spread as if it were set explicitly, and every
    timing that took the former default of 1 s takes the derived one, at least as wide."""
    grid = itertools.product(
        (20, 60, 300), (0.5, 1, 2, 5, 10, 15, 20), (0.5, 2, 20, 30, 60), (0, 0.5, 3)
    )
    derived_some = 0
    for d, h, s_over_h, k in grid:
        s = h + s_over_h
        timings = {
            "did_duration_s": d,
            "heartbeat_interval_s": h,
            "stale_timeout_s": s,
            "max_clock_skew_s": k,
        }
        derived = _built(**timings)
        if _built(**timings, rotation_spread_s=1.0) is not None:
            assert derived is not None and derived.rotation_spread_s >= 1.0, timings
        if derived is not None:
            derived_some += 1
            assert _built(**timings, rotation_spread_s=derived.rotation_spread_s) == derived
    assert derived_some > 100


@pytest.mark.parametrize(
    ("env", "says"),
    [
        (
            {"PRESENCE_HEARTBEAT_INTERVAL": "5", "PRESENCE_ROTATION_SPREAD": "10"},
            "must not exceed heartbeat_interval_s (PRESENCE_HEARTBEAT_INTERVAL, 5 s)",
        ),
        ({"PRESENCE_ROTATION_SPREAD": "0"}, "must be positive"),
        ({"PRESENCE_ROTATION_SPREAD": "-1"}, "must be positive"),
        (
            {"PRESENCE_STALE_TIMEOUT": "25", "PRESENCE_ROTATION_SPREAD": "10"},
            "the widest that fits is 9 s",
        ),
        (
            {"PRESENCE_DID_DURATION": "20", "PRESENCE_ROTATION_SPREAD": "8"},
            "must not exceed half an epoch",
        ),
        ({"PRESENCE_STALE_TIMEOUT": "16"}, "no rotation spread fits these timings"),
        ({"PRESENCE_ROTATION_SPREAD": "soon"}, "must be a number of seconds"),
    ],
)
def test_a_bad_spread_is_refused_with_a_clear_error(env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError, match=r"PRESENCE_ROTATION_SPREAD|no rotation spread") as err:
        SitesConfig.from_env(env)
    assert says in str(err.value)
