"""Backoff maths: full jitter stays inside [0, min(cap, base * 2**n)) and is reproducible."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hereabouts.core.backoff import Backoff
from hereabouts.errors import ConfigError

bases = st.floats(min_value=0.001, max_value=60.0, allow_nan=False)
extra = st.floats(min_value=0.0, max_value=600.0, allow_nan=False)
attempts = st.integers(min_value=0, max_value=5_000)
units = st.floats(min_value=0.0, max_value=1.0, exclude_max=True, allow_nan=False)


@given(base=bases, extra=extra, attempt=attempts, unit=units)
def test_delay_is_within_full_jitter_bounds(
    base: float, extra: float, attempt: int, unit: float
) -> None:
    backoff = Backoff(base_s=base, cap_s=base + extra)
    ceiling = min(backoff.cap_s, base * 2.0 ** min(attempt, 1023))
    delay = backoff.delay(attempt, unit)
    assert 0.0 <= delay <= ceiling
    assert delay <= backoff.cap_s


@given(base=bases, extra=extra, attempt=attempts)
def test_ceiling_never_shrinks_and_reaches_the_cap(base: float, extra: float, attempt: int) -> None:
    backoff = Backoff(base_s=base, cap_s=base + extra)
    assert backoff.ceiling(attempt) <= backoff.ceiling(attempt + 1)
    assert backoff.ceiling(attempt) <= backoff.cap_s
    assert backoff.ceiling(5_000) == backoff.cap_s


@given(base=bases, extra=extra, attempt=attempts, seed=st.integers())
def test_same_seed_same_delays(base: float, extra: float, attempt: int, seed: int) -> None:
    backoff = Backoff(base_s=base, cap_s=base + extra)
    first = backoff.delay_from(random.Random(seed), attempt)
    again = backoff.delay_from(random.Random(seed), attempt)
    assert first == again


@pytest.mark.parametrize(
    ("attempt", "unit", "expected"),
    [
        (0, 0.0, 0.0),
        (0, 0.5, 0.5),
        (1, 0.5, 1.0),
        (3, 0.25, 2.0),
        (5, 0.5, 15.0),  # 2**5 = 32 > 30: capped
        (100, 0.5, 15.0),
    ],
)
def test_default_table(attempt: int, unit: float, expected: float) -> None:
    assert Backoff().delay(attempt, unit) == pytest.approx(expected)


def test_defaults_are_documented_values() -> None:
    assert Backoff().base_s == 1.0
    assert Backoff().cap_s == 30.0


def test_draws_spread_over_the_whole_window() -> None:
    rng = random.Random(7)
    delays = [Backoff().delay_from(rng, 10) for _ in range(2_000)]
    # Full jitter: both ends of [0, 30) are used, not a narrow band around one value.
    assert min(delays) < 3.0
    assert max(delays) > 27.0


@pytest.mark.parametrize(
    "kwargs", [{"base_s": 0.0}, {"base_s": -1.0}, {"base_s": 5.0, "cap_s": 1.0}]
)
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        Backoff(**kwargs)


@pytest.mark.parametrize("unit", [-0.1, 1.0, 2.0])
def test_unit_outside_range_is_refused(unit: float) -> None:
    with pytest.raises(ConfigError):
        Backoff().delay(0, unit)


def test_negative_attempt_is_refused() -> None:
    with pytest.raises(ConfigError):
        Backoff().ceiling(-1)


def test_backoff_module_stays_sans_io() -> None:
    import hereabouts.core.backoff as module

    tree = ast.parse(Path(module.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"asyncio", "socket", "time", "random"}
