"""What has gone wrong inside a node, kept for ``/healthz`` and the log.

A node that cannot do its job must say so and say which part. Two kinds of fault are
tracked here, each with what ``/healthz`` reports about it:

* **Storage** (:class:`StorageFaults`): the ledger or keyring cannot be written (a full
  disk, a read-only file system). Messages that could not be stored are kept, at most
  :data:`RETRY_QUEUE` of them, and retried every :data:`RETRY_EVERY_S`; the node is unhealthy
  from the first failure until a write succeeds again. Nothing is lost while the queue
  holds; past it the oldest are dropped, and counted.
* **Shared key** (:class:`KeyClash`): another process is speaking with this node's key (its
  events carry our DID under another boot id, dated after we started). Two processes with one
  key corrupt each other's status everywhere; the node reports it until
  :data:`CLASH_REPORT_S` pass without another sign of it.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from hereabouts.metrics import Counters

log = logging.getLogger(__name__)

RETRY_QUEUE: Final = 1_000
"""Messages held while storage fails: about a minute of a 30-node network's traffic at a
flood's pace, a few hundred KiB at most."""

RETRY_EVERY_S: Final = 1.0
"""How often held messages are retried while storage fails: a freed disk is noticed within
a second, and a failing write costs a few syscalls."""

CLASH_REPORT_S: Final = 600.0
"""How long a sign of another process with our key is reported: several heartbeats of it."""


@dataclass(slots=True)
class Held:
    """A message that could not be stored, and the topic kind it came on."""

    payload: bytes
    kind: str | None


class StorageFaults:
    """Storage failures: the first, the latest, and the messages waiting for a retry."""

    def __init__(self, counters: Counters, on_failure: Callable[[], None] | None = None) -> None:
        """``on_failure`` is called at every failure (the runtime wakes its retry loop)."""
        self._counters = counters
        self._on_failure = on_failure
        self.failing_since_ms: int | None = None
        self.error: str | None = None
        self.failures = 0
        self.held: deque[Held] = deque()
        counters.describe("storage_failures", "Failed writes to the ledger or keyring.", "op")
        counters.describe("storage_dropped", "Messages dropped while storage failed.", "why")

    @property
    def failing(self) -> bool:
        return self.failing_since_ms is not None

    def failed(self, op: str, error: Exception, now_ms: int, held: Held | None = None) -> None:
        self.failures += 1
        self._counters.add("storage_failures", op)
        if self.failing_since_ms is None:
            self.failing_since_ms = now_ms
            log.error("storage failed (%s): %s; holding messages and retrying", op, error)
        self.error = str(error)
        if held is not None:
            if len(self.held) >= RETRY_QUEUE:
                self.held.popleft()
                self._counters.add("storage_dropped", "queue_full")
            self.held.append(held)
        if self._on_failure is not None:
            self._on_failure()

    def recovered(self) -> None:
        if self.failing_since_ms is not None:
            log.warning("storage works again after %d failures", self.failures)
        self.failing_since_ms = None
        self.error = None

    def report(self, now_ms: int) -> dict[str, object]:
        return {
            "ok": not self.failing,
            "error": self.error,
            "failing_for_s": (
                None if self.failing_since_ms is None
                else round((now_ms - self.failing_since_ms) / 1000, 1)
            ),
            "failures": self.failures,
            "held": len(self.held),
        }


class KeyClash:
    """Signs that another process uses this node's key."""

    def __init__(self, counters: Counters) -> None:
        self._counters = counters
        self.other_boot: str | None = None
        self.seen_at_ms: int | None = None
        self.events = 0
        counters.describe("key_shared", "Events signed with our key by another process.", "kind")

    def saw(self, boot_id: str, kind: str, now_ms: int) -> None:
        self.events += 1
        self._counters.add("key_shared", kind)
        if self.other_boot != boot_id or not self.active(now_ms):
            log.error(
                "another process is using this node's key (boot %s): two nodes with one key "
                "corrupt each other's status; give each node its own home", boot_id
            )
        self.other_boot = boot_id
        self.seen_at_ms = now_ms

    def active(self, now_ms: int) -> bool:
        return self.seen_at_ms is not None and now_ms - self.seen_at_ms <= CLASH_REPORT_S * 1000

    def report(self, now_ms: int) -> dict[str, object]:
        active = self.active(now_ms)
        report: dict[str, object] = {"ok": not active, "shared_key_events": self.events}
        if active:
            report["error"] = "another process is using this node's key"
            report["other_boot_id"] = self.other_boot
        return report
