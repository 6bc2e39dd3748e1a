"""RecentIds: bounded, oldest forgotten first, constant time however many come and go."""

from __future__ import annotations

import pytest

from hereabouts.sites.recent import RecentIds


def test_keeps_the_last_ids_and_forgets_the_oldest_first() -> None:
    ids = RecentIds(3)
    for n in range(5):
        ids.add(f"id{n}")
    assert len(ids) == 3
    assert "id0" not in ids and "id1" not in ids
    assert all(f"id{n}" in ids for n in (2, 3, 4))
    ids.add("id2")  # held already: not refreshed, still the oldest
    ids.add("id5")
    assert "id2" not in ids and "id5" in ids


def test_a_long_stream_stays_bounded() -> None:
    ids = RecentIds(1000)
    for n in range(200_000):
        ids.add(str(n))
    assert len(ids) == 1000 and "199999" in ids and "198999" not in ids


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RecentIds(0)
