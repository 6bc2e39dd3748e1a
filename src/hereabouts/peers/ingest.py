"""The edge: raw bytes in, verified events into the ledger and the projection, or a rejection.

This is the one path by which anything comes to be believed:

    unseal (size, shape, kind, signature, emitter, clock)
    → age check (older than the retention window: refused)
    → TOFU keyring (name pinned to another key: refused)
    → ledger append (duplicate: ignored; pruned before: refused)
    → projection apply (status changes out)

Bad input never raises out of :meth:`Ingestor.ingest`: it comes back as a :class:`Rejected`
with the typed error, and is counted by reason in ``events_rejected``. Nothing rejected
reaches the ledger or the projection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hereabouts.config import LedgerConfig, WireLimits
from hereabouts.core.effects import StatusChanged
from hereabouts.core.projection import Projection
from hereabouts.errors import HereaboutsError, LocalError, TooOld
from hereabouts.events import SignedEvent
from hereabouts.ledger import Ledger
from hereabouts.metrics import Counters
from hereabouts.peers.keyring import Keyring
from hereabouts.wire import unseal


@dataclass(frozen=True, slots=True)
class Accepted:
    event: SignedEvent
    new: bool
    """False when the ledger already held this event (nothing changed)."""
    changes: list[StatusChanged] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Rejected:
    error: HereaboutsError

    @property
    def reason(self) -> str:
        return self.error.reason


Outcome = Accepted | Rejected
Gate = Callable[[SignedEvent], None]


class Ingestor:
    """Wires wire, keyring, ledger and projection into one verified pipeline."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        projection: Projection,
        keyring: Keyring,
        limits: WireLimits | None = None,
        retention_s: float = LedgerConfig().retention_s,
        counters: Counters | None = None,
    ) -> None:
        self.ledger = ledger
        self.projection = projection
        self.keyring = keyring
        self._limits = limits or WireLimits()
        self._retention_ms = int(retention_s * 1000)
        self.counters = counters or Counters()
        self._known = ledger.__contains__
        self.counters.describe("events_in", "Events accepted, by kind.", "kind")
        self.counters.describe(
            "events_rejected", "Events refused at the edge, by reason.", "reason"
        )
        self.counters.describe("events_duplicate", "Events already in the ledger, by kind.", "kind")

    def _check(self, data: bytes, now_ms: int, gate: Gate | None) -> SignedEvent:
        signed = unseal(data, now_ms=now_ms, limits=self._limits, known=self._known)
        if signed.at_ms < now_ms - self._retention_ms:
            raise TooOld(
                f"{signed.kind} is {(now_ms - signed.at_ms) / 3_600_000:.1f}h old; events older "
                f"than the retention window ({self._retention_ms / 3_600_000:g}h) are refused"
            )
        self.ledger.admit(signed)
        if gate is not None:
            gate(signed)
        self.keyring.check(signed)
        return signed

    def _reject(self, error: HereaboutsError) -> Rejected:
        self.counters.add("events_rejected", error.reason)
        return Rejected(error)

    def ingest(self, data: bytes, now_ms: int, *, gate: Gate | None = None) -> Outcome:
        """Verify one sealed event and take it in; never raises on bad input."""
        return self.ingest_batch([data], now_ms, gate=gate)[0]

    def ingest_batch(
        self, items: Sequence[bytes], now_ms: int, *, gate: Gate | None = None
    ) -> list[Outcome]:
        """Verify several sealed events and store the good ones in one ledger transaction.

        ``gate`` runs on each verified event before the keyring and the ledger; it raises an
        :class:`~hereabouts.errors.EventRejected` to refuse one (rate limits, topic checks).
        """
        outcomes: list[Outcome | None] = [None] * len(items)
        good: list[tuple[int, SignedEvent]] = []
        seen_ids: set[str] = set()
        for index, data in enumerate(items):
            try:
                signed = self._check(data, now_ms, gate)
            except LocalError:
                raise  # our own storage failing is not the sender's fault
            except HereaboutsError as exc:
                outcomes[index] = self._reject(exc)
                continue
            if signed.id in seen_ids:  # the same event twice in one batch
                outcomes[index] = Accepted(signed, new=False)
                self.counters.add("events_duplicate", signed.kind)
                continue
            seen_ids.add(signed.id)
            good.append((index, signed))
        flags = self.ledger.append_many(signed for _, signed in good)
        for (index, signed), new in zip(good, flags, strict=True):
            if new:
                self.counters.add("events_in", signed.kind)
                outcomes[index] = Accepted(signed, True, self.projection.apply(signed, now_ms))
            else:
                self.counters.add("events_duplicate", signed.kind)
                outcomes[index] = Accepted(signed, new=False)
        return [outcome for outcome in outcomes if outcome is not None]

    def replay(self, now_ms: int) -> int:
        """Rebuild the projection from the ledger (on start); returns the number of events."""
        count = 0
        for signed in self.ledger.replay(limits=self._limits):
            self.projection.apply(signed, now_ms)
            count += 1
        return count

    def prune(self, now_ms: int) -> int:
        """Apply retention: drop old events the projection does not need; returns the count."""
        return self.ledger.prune(
            cutoff_ms=now_ms - self._retention_ms,
            keep=self.projection.pinned_event_ids(),
            tombstone_cutoff_ms=now_ms - 2 * self._retention_ms,
        )
