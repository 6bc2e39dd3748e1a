"""The DID rotation schedule: epochs, and when one visitor heartbeats in one room.

Rules:

* **Epochs are global.** ``epoch = floor(unix_ms / duration_ms)``. Every visitor of every
  room starts a new epoch at the same wall-clock instants, so a watcher learns nothing from
  *when* a DID appeared or vanished at a boundary: all of them change at once.
* **One key per room per epoch.** The runtime asks for a fresh key whenever the epoch of a
  heartbeat differs from the last one it signed for that room, and forgets the old key.
* **The phase is redrawn every epoch.** A visitor heartbeats at once on joining and every
  ``interval_ms`` after. The last heartbeat of an epoch is the last one scheduled before the
  boundary; the first of the next epoch comes ``u = uniform(0, spread_ms)`` after the
  boundary. That first heartbeat draws the epoch's phase ``w = uniform(0, interval_ms)``:
  if ``w >= spread_ms`` the second heartbeat comes ``w`` after the boundary, otherwise one
  interval after the first (the phase is then ``u``). The phase is uniform over the
  interval (past the spread it is ``w``; inside it ``u``, chosen with probability
  ``spread_ms / interval_ms`` and uniform there), it is drawn afresh, and no DID is ever
  silent for more than one interval. With a fixed phase a watcher could pair an old DID
  with the new one that beats at the same offset; with a fresh phase (and a random order
  right after the boundary) it cannot.
* **Load stays level.** Seen from a hub, a visitor beats at density ``1 / interval`` up to
  the boundary (its phase is uniform), once within the spread, and at density
  ``1 / interval`` again from ``spread`` after the boundary on. The first heartbeats of N
  visitors after a boundary thus come at ``N / spread`` per second, ``interval / spread``
  times the steady rate: with ``spread == interval`` (the default,
  :attr:`~hereabouts.config.SitesConfig.rotation_spread_s`) the first heartbeat of the
  new epoch takes the place of the one the visitor would have sent anyway, ``w`` is always
  inside the spread, and the rate through a boundary is the steady rate. (Were the cadence
  to go on from the first heartbeat whatever the spread, a short spread would hold every
  visitor's phase inside it for the whole epoch: a burst every interval.)

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
        regular = sent_at_ms + self._interval_ms
        if sent_at_ms - start < self._spread_ms:
            # The first heartbeat of an epoch draws the phase of the rest: past the spread,
            # the next heartbeat; inside it, this heartbeat's own (the cadence goes on).
            phase = int(self._uniform.random() * self._interval_ms)
            if phase >= self._spread_ms:
                regular = start + phase
        boundary = start + self._duration_ms
        if regular < boundary:
            return regular
        return boundary + int(self._uniform.random() * self._spread_ms)
