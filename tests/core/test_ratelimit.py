"""Token buckets per emitter."""

from __future__ import annotations

from hereabouts.core.ratelimit import RateLimiter


def test_burst_then_refill_at_the_rate() -> None:
    limiter = RateLimiter(rate_per_s=2, burst=3)
    assert [limiter.allow("a", 0) for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("a", 400) is False  # 0.8 tokens so far
    assert limiter.allow("a", 500) is True  # one token after 500 ms
    assert limiter.allow("b", 500) is True  # other emitters are not affected


def test_buckets_are_bounded_and_forget_the_least_recently_used() -> None:
    limiter = RateLimiter(rate_per_s=1, burst=1, max_keys=2)
    limiter.allow("a", 0)
    limiter.allow("b", 0)
    limiter.allow("c", 0)
    assert len(limiter) == 2
    assert limiter.allow("a", 0) is True  # "a" was forgotten, so it starts with a full bucket
    assert limiter.allow("c", 0) is False
