"""When to re-publish this node's presence@2 document: time in, a decision out.

Sans-I/O like the rest of ``core/``: no clock, no sleeping, no randomness. The asyncio
driver (:mod:`hereabouts.advert.republish`) asks :meth:`RepublishPolicy.decide` with the
current time and the times of the newest published document, carries out the answer, and
asks again.

Rules:

* With no document yet, publish now.
* Otherwise publish again at ``issued_at + fraction x lifetime`` (80 % by default), so a
  fresh document is out while the old one still has a fifth of its life to cover clock skew,
  fetch latency and one failed attempt.
* Never schedule a re-publish less than ``min_gap_s`` after the previous issue: documents
  are named by whole-second ``issued_at``, and two in one second would collide.
* After a failed attempt, retry after ``retry_s``, but not past the old document's expiry
  when that comes sooner (a last attempt just before the gap opens).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class PublishNow:
    """Publish a new document immediately."""


@dataclass(frozen=True, slots=True)
class WaitUntil:
    """Nothing to do before ``at``; ask again then."""

    at: datetime


Decision = PublishNow | WaitUntil


@dataclass(frozen=True, slots=True)
class RepublishPolicy:
    """How eagerly documents are refreshed."""

    fraction: float = 0.8
    """Share of a document's lifetime after which it is replaced. 0.8 of the default 600 s
    lifetime re-publishes every 8 minutes and leaves 2 minutes of overlap; higher saves a
    little work but leaves less slack for a slow or failed publish."""

    min_gap_s: float = 1.0
    """Least time between two issues: ``issued_at`` has one-second resolution."""

    retry_s: float = 30.0
    """Wait after a failed publish (disk full, index unreadable) before trying again.
    Short enough to recover well inside the 20 % overlap of a 600 s lifetime."""

    def __post_init__(self) -> None:
        if not 0 < self.fraction < 1:
            raise ValueError("fraction must be in (0, 1)")
        if self.min_gap_s < 0 or self.retry_s <= 0:
            raise ValueError("min_gap_s must be >= 0 and retry_s > 0")

    def due_at(self, issued_at: datetime, expires_at: datetime) -> datetime:
        """When the document issued at ``issued_at`` should be replaced."""
        lifetime = expires_at - issued_at
        due = issued_at + lifetime * self.fraction
        return max(due, issued_at + timedelta(seconds=self.min_gap_s))

    def decide(
        self, now: datetime, issued_at: datetime | None, expires_at: datetime | None
    ) -> Decision:
        """What to do at ``now`` given the newest published document's times (or None)."""
        if issued_at is None or expires_at is None:
            return PublishNow()
        due = self.due_at(issued_at, expires_at)
        if now >= due:
            return PublishNow()
        return WaitUntil(due)

    def after_failure(self, now: datetime, expires_at: datetime | None) -> datetime:
        """When to try again after a failed publish at ``now``."""
        retry = now + timedelta(seconds=self.retry_s)
        if expires_at is None:
            return retry
        last_chance = expires_at - timedelta(seconds=self.min_gap_s)
        return min(retry, last_chance) if last_chance > now else retry
