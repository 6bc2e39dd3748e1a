"""Counts as they leave the process: exact, or "fewer than k" under the k-anonymity floor.

A count of 1 or 2 in a small room tells a watcher who is there. With
``PRESENCE_MIN_COUNT=k`` every count that leaves the process (JSON API, widget, metrics,
the ``presence_count_changed`` notice) below ``k`` is reported as "fewer than k" and
nothing finer — not even whether it is 0. Notices fire only when the *reported* value
changes, so movement below the floor is not visible by timing either.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RoomCount:
    """``value`` when it may be shown; otherwise ``value is None`` and ``fewer_than == k``."""

    value: int | None
    fewer_than: int | None = None

    @classmethod
    def of(cls, count: int, floor: int) -> RoomCount:
        """Apply the floor ``k`` (0 or 1 means no floor) to an exact count."""
        if floor > 1 and count < floor:
            return cls(value=None, fewer_than=floor)
        return cls(value=count)

    def as_dict(self) -> dict[str, int | None]:
        """For JSON: ``{"count": 7, "fewer_than": null}`` or ``{"count": null,
        "fewer_than": 5}``."""
        return {"count": self.value, "fewer_than": self.fewer_than}

    def __str__(self) -> str:
        if self.value is None:
            return f"fewer than {self.fewer_than} here"
        return f"{self.value} here"
