"""How long the plaza takes to hand a message to a subscriber, drawn from seeded sources.

A delivery takes a lognormal broker latency (median and 99th percentile as measured, cut at
a cap), plus the receiving node's processing time, plus TCP retransmissions when a packet
was lost: each loss adds the retransmission time-out, doubling, at most three times (past
that a real connection would be given up, which the outage model covers). QoS 0 pulses are
modelled the harsher way: a lost one is dropped (as a broker shedding QoS 0 under load
drops it), never delayed, so false MISSING from lost pulses is not understated. One draw per
delivery; numpy draws a whole fan-out at once, :mod:`random` single ones, both seeded.
"""

from __future__ import annotations

import math
import random
from typing import Final

import numpy as np

from hereabouts.sim.plaza_settings import PlazaSettings

Z99: Final = 2.3263478740408408
"""The standard normal's 99th percentile."""

MAX_RETRANSMITS: Final = 3

POOL: Final = 65_536
"""Single deliveries drawn at once."""

KEYED: Final = 1 << 20
"""Delays drawn once for :meth:`Latency.keyed`."""


class Latency:
    """Delivery delays in whole milliseconds."""

    def __init__(self, settings: PlazaSettings, rng: random.Random, gen: np.random.Generator):
        self._mu = math.log(settings.latency_ms)
        self._sigma = math.log(settings.latency_p99_ms / settings.latency_ms) / Z99
        self._cap = settings.latency_cap_ms
        self._processing = settings.processing_ms
        self._loss = settings.loss
        self._rto = settings.retransmit_ms
        self._rng = rng
        self._gen = gen
        self._pool: list[int] = []
        self._next = 0
        self._pool_qos0: list[int] = []
        self._next_qos0 = 0
        self._keyed = self.many(KEYED).tolist()
        self.median_ms = settings.latency_ms
        self.min_ms = int(self._processing)
        """No delivery is quicker."""
        retransmits = self._rto * (2**MAX_RETRANSMITS - 1) if self._loss else 0.0
        self.max_ms = math.ceil(self._cap + self._processing + retransmits)
        """No delivery is slower: a bound the lazy responders rely on."""

    def one(self) -> int:
        """One QoS 1 delivery (taken from a batch drawn by numpy: a draw a call costs
        microseconds in Python, and a fleet start makes tens of millions)."""
        if self._next >= len(self._pool):
            self._pool = self.many(POOL).tolist()
            self._next = 0
        value: int = self._pool[self._next]
        self._next += 1
        return value

    def keyed(self, first: int, second: int) -> int:
        """One QoS 1 delivery named by two numbers (a message and a receiver): the same pair
        always gets the same delay, however many other draws were made before, so a run
        that wakes more nodes (the simulator's exhaustive check) sees the same deliveries."""
        delay: int = self._keyed[(first * 0x9E3779B1 + second * 0x85EBCA77) % KEYED]
        return delay

    def at_most_once(self) -> int:
        """One QoS 0 delivery that was not dropped (see :meth:`dropped`): its packet was not
        lost, so no retransmission delays it."""
        if self._next_qos0 >= len(self._pool_qos0):
            self._pool_qos0 = self.many(POOL, retransmit=False).tolist()
            self._next_qos0 = 0
        value: int = self._pool_qos0[self._next_qos0]
        self._next_qos0 += 1
        return value

    def many(self, count: int, *, retransmit: bool = True) -> np.ndarray:
        """``count`` QoS 1 deliveries (an int64 array); ``retransmit=False``: deliveries
        whose packets were not lost."""
        base = np.minimum(self._cap, self._gen.lognormal(self._mu, self._sigma, count))
        delay = base + self._processing
        if self._loss and retransmit:
            lost = self._gen.geometric(1.0 - self._loss, count) - 1  # losses before success
            lost = np.minimum(lost, MAX_RETRANSMITS)
            delay += self._rto * (np.exp2(lost) - 1.0)
        return delay.astype(np.int64)

    def dropped(self) -> bool:
        """Whether a QoS 0 delivery is lost."""
        return bool(self._loss) and self._rng.random() < self._loss


__all__ = ["MAX_RETRANSMITS", "Latency"]
