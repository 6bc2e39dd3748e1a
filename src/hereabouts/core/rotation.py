"""The DID rotation schedule: epochs, and when one visitor heartbeats in one room.

Rules:

* **Epochs are global.** ``epoch = floor(unix_ms / duration_ms)``. Every visitor of every
  room starts a new epoch at the same wall-clock instants, so a watcher learns nothing from
  *when* a DID appeared or vanished at a boundary: all of them change at once.
* **One key per room per epoch.** The runtime asks for a fresh key whenever the epoch of a
  heartbeat differs from the last one it signed for that room, and forgets the old key.
* **The phase is redrawn every epoch.** A visitor heartbeats at once on joining and every
  ``interval_ms`` after. The last heartbeat of an epoch is the last one scheduled before the
  boundary; the first of the next epoch comes ``uniform(0, spread_ms)`` after the boundary,
  and the second ``spread_ms + uniform(0, interval_ms)`` after the boundary, which sets the
  phase for the rest of the epoch (a silence of at most ``interval_ms + spread_ms``, well
  inside the stale timeout). With a fixed phase a watcher could pair an old DID with the new one
  that beats at the same offset; with a fresh phase (and a random order right after the
  boundary) it cannot.
* **Load stays level.** Without the second draw every visitor's phase would fall inside
  the spread (1 s of each 10 s interval) for the whole epoch, and a hub would receive all
  of its heartbeats in one burst per interval instead of a steady stream. Only the first
  heartbeats after a boundary come as a burst, once per epoch.

The schedule takes the time and a uniform source in and returns times; it never reads a
clock or draws randomness itself.
"""

from __future__ import annotations

from typing import Protocol


class UniformSource(Protocol):
    """Anything with ``random() -> float`` in ``[0, 1)``, such as :class:`random.Random`."""

    def random(self) -> float: ...


def epoch_of(at_ms: int, duration_ms: int) -> int:
    """The epoch containing ``at_ms``."""
    return at_ms // duration_ms


def epoch_start_ms(epoch: int, duration_ms: int) -> int:
    """The first millisecond of ``epoch``."""
    return epoch * duration_ms


class HeartbeatPlan:
    """When one participant of one room sends its heartbeats."""

    __slots__ = ("_duration_ms", "_interval_ms", "_spread_ms", "_uniform")

    def __init__(
        self, *, interval_ms: int, duration_ms: int, spread_ms: int, uniform: UniformSource
    ) -> None:
        if interval_ms <= 0 or duration_ms <= 0 or spread_ms < 0:
            raise ValueError("interval and duration must be positive, spread not negative")
        self._interval_ms = interval_ms
        self._duration_ms = duration_ms
        self._spread_ms = spread_ms
        self._uniform = uniform

    def next_after(self, sent_at_ms: int) -> int:
        """When to send the heartbeat that follows one sent at ``sent_at_ms``."""
        start = epoch_start_ms(epoch_of(sent_at_ms, self._duration_ms), self._duration_ms)
        if sent_at_ms - start < self._spread_ms:
            # The first heartbeat of an epoch: the second, after the spread, draws the phase.
            regular = start + self._spread_ms + int(self._uniform.random() * self._interval_ms)
        else:
            regular = sent_at_ms + self._interval_ms
        boundary = start + self._duration_ms
        if regular < boundary:
            return regular
        return boundary + int(self._uniform.random() * self._spread_ms)
