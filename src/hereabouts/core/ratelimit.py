"""Per-emitter token buckets: a noisy or hostile peer cannot crowd out everyone else.

Each key (an emitter's DID) owns a bucket of ``burst`` tokens refilled at ``rate_per_s``.
An event spends one token; with none left it is refused. Buckets for at most ``max_keys``
emitters are kept; the least recently used is forgotten first, which at worst hands a
forgotten emitter a fresh burst — bounded memory matters more than perfect fairness.
Sans-I/O: the caller passes the time in.
"""

from __future__ import annotations

from collections import OrderedDict


class RateLimiter:
    """Token buckets keyed by emitter."""

    def __init__(self, *, rate_per_s: float, burst: int, max_keys: int = 100_000) -> None:
        if rate_per_s <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate_per_s and burst must be positive, max_keys at least 1")
        self._rate_per_ms = rate_per_s / 1000.0
        self._burst = float(burst)
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, int]] = OrderedDict()  # key -> (tokens, at)

    def allow(self, key: str, now_ms: int, cost: float = 1.0) -> bool:
        """Spend ``cost`` tokens (one event; or, say, a request's KiB) of ``key``'s bucket
        if it holds that many."""
        tokens, last_ms = self._buckets.pop(key, (self._burst, now_ms))
        tokens = min(self._burst, tokens + max(0, now_ms - last_ms) * self._rate_per_ms)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        self._buckets[key] = (tokens, now_ms)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return allowed

    def __len__(self) -> int:
        return len(self._buckets)
