"""Reconnect delays: capped exponential backoff with full jitter, as pure maths.

Rules of this module (it lives in ``core/``, so it is sans-I/O):

* It never reads the clock and never draws random numbers itself. The caller passes either a
  uniform draw in ``[0, 1)`` (:meth:`Backoff.delay`) or an object with a ``random()`` method
  (:meth:`Backoff.delay_from`), so tests and the simulator get exactly reproducible delays.
* The delay for attempt ``n`` (0-based) is ``uniform(0, min(cap, base * 2**n))`` — "full
  jitter". When a broker restarts, every node loses its connection in the same instant; with
  a fixed or "equal jitter" delay they would all come back within the same second. Full
  jitter spreads the reconnects over the whole window, which is what keeps a freshly
  restarted broker from being flattened by its own fleet (see the AWS Architecture Blog
  article "Exponential Backoff And Jitter", whose simulations favour full jitter).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from hereabouts.errors import ConfigError

#: Exponents past this are clamped before ``2.0 ** n`` is computed: 2**1023 is the largest
#: power of two a float holds, and any cap a human would configure is reached long before.
_MAX_EXPONENT = 1023


class UniformSource(Protocol):
    """Anything with ``random() -> float`` in ``[0, 1)``, such as :class:`random.Random`."""

    def random(self) -> float: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Capped exponential backoff with full jitter."""

    base_s: float = 1.0
    """Ceiling of the first retry's delay, in seconds. The first retry after a lost connection
    waits ``uniform(0, 1 s)``: quick enough that a blip costs about half a second, spread
    enough that a fleet of a few thousand nodes reconnects at a few thousand per second
    rather than all in one millisecond. Fleets of 10,000+ nodes on one broker may raise it."""

    cap_s: float = 30.0
    """Largest ceiling, in seconds. After ``log2(cap / base)`` (about 5) failed attempts every
    retry waits ``uniform(0, 30 s)``: a node notices a recovered broker within 30 s at worst
    and 15 s on average, while a broker that stays down costs each node only one connection
    attempt per 15 s on average."""

    def __post_init__(self) -> None:
        if not self.base_s > 0:
            raise ConfigError(f"backoff base_s must be positive, got {self.base_s!r}")
        if not self.cap_s >= self.base_s:
            raise ConfigError(
                f"backoff cap_s ({self.cap_s!r}) must be at least base_s ({self.base_s!r})"
            )

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the delay before retry number ``attempt`` (0-based)."""
        if attempt < 0:
            raise ConfigError(f"attempt must not be negative, got {attempt}")
        grown = self.base_s * 2.0 ** min(attempt, _MAX_EXPONENT)
        return min(self.cap_s, grown)

    def delay(self, attempt: int, unit: float) -> float:
        """The delay before retry ``attempt`` for a uniform draw ``unit`` in ``[0, 1)``.

        ``unit`` is scaled onto ``[0, ceiling(attempt))``. Passing the draw in (rather than an
        RNG) keeps this a plain function that a table test can pin down exactly.
        """
        if not 0.0 <= unit < 1.0:
            raise ConfigError(f"unit must be in [0, 1), got {unit!r}")
        return unit * self.ceiling(attempt)

    def delay_from(self, rng: UniformSource, attempt: int) -> float:
        """The delay before retry ``attempt``, drawing the jitter from ``rng``."""
        return self.delay(attempt, rng.random())
