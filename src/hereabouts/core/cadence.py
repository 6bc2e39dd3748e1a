"""The newspaper cadence: how long to wait before the next heartbeat.

Rules:

1. **Short while things move.** The first interval, and the first one after any change
   nearby (:meth:`NewspaperCadence.note_change`), is ``min_interval_s`` (30 s). The runtime
   reports every peer status change, and booting is nothing but changes (every peer
   appears), so a booting node heartbeats at the minimum without a rule of its own.
2. **Longer while quiet.** Each interval with no change noted since the previous heartbeat
   is ``growth`` (2) times the one before, up to ``max_interval_s`` (120 s): 30, 60, 120,
   120, ... A fleet at rest sends N/120 newspapers per second.
3. **Jitter.** Every delay is the interval stretched or shrunk by up to ``jitter_fraction``
   (±10 %) with a uniform draw passed in, so nodes started together drift apart. Delays lie
   in ``[min·(1 − j), max·(1 + j)]``.
4. **A change does not move the heartbeat already scheduled.** Every node notices a peer's
   change in the same instant (the event that caused it went to all of them). If each
   rescheduled its pending heartbeat to "soon", the fleet would heartbeat in one burst and
   stay roughly in phase afterwards; news of the change has travelled anyway. The change
   only shortens the *next* interval chosen.
5. **Promise no less than is true.** :attr:`NewspaperCadence.next_in_s` is the longest the
   next delay can be, in whole seconds rounded up: what a newspaper published now should
   announce in ``status.next_in_s``, so a receiver can expect the next one within it.

Sans-I/O: time arrives as ``now_ms`` and randomness as a float in ``[0, 1)``.
"""

from __future__ import annotations

import math

from hereabouts.config import HeartbeatConfig
from hereabouts.errors import ConfigError, LocalError

DEFAULT_GROWTH = 2.0
"""Each quiet interval is twice the one before: a quiet node reaches the 120 s maximum after
two quiet heartbeats (30 s + 60 s), and a single change costs it only those three shorter
intervals. A smaller factor keeps news fresher for longer but sends more messages."""


class NewspaperCadence:
    """The adaptive heartbeat interval of one node (see the module rules)."""

    def __init__(
        self, config: HeartbeatConfig | None = None, *, growth: float = DEFAULT_GROWTH
    ) -> None:
        """``growth`` multiplies the interval after each quiet heartbeat; it must be ≥ 1
        (1 keeps the interval at ``min_interval_s`` for ever)."""
        if not growth >= 1.0:
            raise ConfigError(f"growth must be at least 1, got {growth!r}")
        self._config = config or HeartbeatConfig()
        self._growth = growth
        self._interval_s = self._config.min_interval_s
        self._sent_at_ms: int | None = None
        self._changed_at_ms: int | None = None
        self._last_delay_ms: int | None = None

    def note_change(self, now_ms: int) -> None:
        """A peer's status changed nearby: the next interval chosen will be the minimum."""
        if self._changed_at_ms is None or now_ms > self._changed_at_ms:
            self._changed_at_ms = now_ms

    def next_delay_ms(self, now_ms: int, unit_random: float) -> int:
        """A heartbeat is being sent (or the first is being planned) at ``now_ms``: the
        delay until the next one, jittered by ``unit_random`` (a uniform draw in ``[0, 1)``).
        """
        if not 0.0 <= unit_random < 1.0:
            raise LocalError(f"unit_random must be in [0, 1), got {unit_random!r}")
        self._interval_s = self._upcoming_interval_s()
        self._sent_at_ms = now_ms
        jitter = self._config.jitter_fraction * (2.0 * unit_random - 1.0)
        delay = round(self._interval_s * (1.0 + jitter) * 1000)
        self._last_delay_ms = delay
        return delay

    @property
    def current_interval_s(self) -> float:
        """The interval (before jitter) of the delay last returned; the minimum before any."""
        return self._interval_s

    @property
    def last_delay_ms(self) -> int | None:
        """The delay last returned by :meth:`next_delay_ms`, if any."""
        return self._last_delay_ms

    @property
    def next_in_s(self) -> int:
        """The longest the next call to :meth:`next_delay_ms` can return, in whole seconds
        rounded up (rule 5): announce it in the newspaper being published now."""
        longest = self._upcoming_interval_s() * (1.0 + self._config.jitter_fraction)
        return math.ceil(round(longest * 1000) / 1000)

    def _upcoming_interval_s(self) -> float:
        config = self._config
        changed = self._changed_at_ms is not None and (
            self._sent_at_ms is None or self._changed_at_ms >= self._sent_at_ms
        )
        if self._sent_at_ms is None or changed:
            return config.min_interval_s
        return min(config.max_interval_s, self._interval_s * self._growth)


__all__ = ["DEFAULT_GROWTH", "NewspaperCadence"]
