"""The edge: raw bytes in, verified and admitted events into the ledger and the projection.

This is the one path by which anything comes to be believed:

    unseal: size, depth, shape, canonical form, kind, emitter, clock
    → precheck, before paying for the signature: in an invited network, is the key a
      member (or presenting a credential)? in an open one, is the key known, or is there
      room and an admission token for a new one? (:mod:`hereabouts.core.keys`)
    → signature (skipped for bytes already in the ledger)
    → age check (older than the retention window: refused)
    → the caller's gate (topic, rate limit) → tombstones
    → trust: credential checked, rotation statement checked, key heard (admitted, maybe
      proved); keys pushed out of the quarantine are forgotten
    → ledger append (duplicate: ignored) → projection apply (status changes out)

Bad input never raises out of :meth:`Ingestor.ingest`: it comes back as a :class:`Rejected`
with the typed error, and is counted by reason in ``events_rejected``. Nothing rejected
reaches the ledger, the projection or the key book. Local failures (storage) do raise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from hereabouts.config import LedgerConfig, WireLimits
from hereabouts.core.effects import StatusChanged
from hereabouts.core.keys import HEARD, HEARD_RESOLUTION_MS, Heard, KeyBook
from hereabouts.core.projection import Projection
from hereabouts.core.suspicion import report_problem
from hereabouts.errors import (
    BadReport,
    EventRejected,
    HereaboutsError,
    LocalError,
    RemoteError,
    TooOld,
)
from hereabouts.events import KIND_OF, AnyEvent, HeyThere, SignedEvent, Unreachable
from hereabouts.ledger import Ledger
from hereabouts.metrics import Counters
from hereabouts.peers.keyring import check_rotation
from hereabouts.peers.membership import Membership
from hereabouts.wire import unseal

HEARD_FRESH_MS: Final = 60_000
"""An event counts as hearing its emitter *now* (towards proof by time) only if it is new to
us and at most this old: an older one, or one we already had, is history that anybody can
relay, and relaying a key's old events must not prove it present."""


class NotAdmitted(EventRejected):
    """An unknown key's event, refused before its signature was checked: new keys are
    admitted at a bounded rate (``TrustConfig.admit_per_s``)."""

    reason = "admission"


class KeysFull(NotAdmitted):
    """An unknown key's event, refused because the node remembers its most keys."""

    reason = "keys_full"


@dataclass(slots=True)
class Accepted:
    """A verified event taken in (read-only by convention: one is made per event on the
    hot path, and a frozen dataclass costs four times as much to build)."""

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
    """Wires wire, trust, ledger and projection into one verified pipeline."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        projection: Projection,
        keys: KeyBook,
        membership: Membership | None = None,
        limits: WireLimits | None = None,
        retention_s: float = LedgerConfig().retention_s,
        counters: Counters | None = None,
        on_forget: Callable[[StatusChanged], None] | None = None,
    ) -> None:
        """``membership`` makes this an invited network's edge (None: open network).
        ``on_forget`` hears of every peer forgotten here that the projection had reported,
        as a change with cause ``forgotten`` (``new`` repeats its last status)."""
        self.ledger = ledger
        self.projection = projection
        self.keys = keys
        self.membership = membership
        self._limits = limits or WireLimits()
        self._retention_ms = int(retention_s * 1000)
        self.counters = counters or Counters()
        self._on_forget = on_forget
        self._known = ledger.contains
        self._known_dids = keys.known_dids
        self.counters.describe("events_in", "Events accepted, by kind.", "kind")
        self.counters.describe(
            "events_rejected", "Events refused at the edge, by reason.", "reason"
        )
        self.counters.describe("events_duplicate", "Events already in the ledger, by kind.", "kind")
        self.counters.describe("keys_forgotten", "Keys forgotten, by why.", "why")
        self.counters.describe("keys_proved", "Keys that proved themselves by time.", "how")

    # --- checks, cheapest first --------------------------------------------------------

    def _prechecker(self, now_ms: int) -> Callable[[AnyEvent], None]:
        """The check run before each signature, for one batch arriving at ``now_ms``."""
        membership, keys = self.membership, self.keys
        known = keys.known_dids

        def precheck(event: AnyEvent) -> None:
            if membership is not None:
                membership.precheck(event, now_ms)
            elif event.did not in known and not keys.admissible(event.did, now_ms):
                if keys.full():
                    raise KeysFull("this node remembers its most keys; new keys must wait")
                raise NotAdmitted("too many new keys at once; this one must wait")

        return precheck

    def _check(
        self,
        data: bytes,
        now_ms: int,
        gate: Gate | None,
        precheck: Callable[[AnyEvent], None],
    ) -> SignedEvent:
        signed = unseal(
            data,
            now_ms=now_ms,
            limits=self._limits,
            known=self._known,
            precheck=precheck,
            admitted=self._known_dids if self.membership is None else None,
        )
        at_ms = signed.event.at_ms
        if at_ms < now_ms - self._retention_ms:
            raise TooOld(
                f"{signed.kind} is {(now_ms - at_ms) / 3_600_000:.1f}h old; events older "
                f"than the retention window ({self._retention_ms / 3_600_000:g}h) are refused"
            )
        event = signed.event
        if type(event) is Unreachable:  # on every path: plaza, mesh, inside a howdy
            problem = report_problem(event.did, event.subject_did, at_ms, event.last_seen_ms)
            if problem is not None:
                raise BadReport(problem)
        self.ledger.admit(signed)
        if gate is not None:
            gate(signed)
        # The key's standing, after its signature: member, rotation, admission. A known key
        # is heard later, once the event turns out new to the ledger (:meth:`_heard`).
        if self.membership is not None:
            self.membership.admit(event, now_ms)
        if type(event) is HeyThere and event.rotation is not None:
            check_rotation(event.name, event.did, event.rotation)
        if event.did not in self._known_dids:
            self._heard(event, now_ms)
        return signed

    def _heard(self, event: AnyEvent, now_ms: int) -> None:
        heard = self.keys.heard(event.did, event.name, now_ms, member=self.membership is not None)
        self._settle(event, heard, now_ms)

    def _settle(self, event: AnyEvent, heard: Heard, now_ms: int) -> None:
        """Carry out what hearing a key decided: refuse it, count its proof, forget the keys
        it pushed out of the quarantine, hand a rotated name over."""
        if not heard.admitted:
            raise NotAdmitted("too many new keys at once; this one must wait")
        if heard.proved:
            self.counters.add("keys_proved", "time")
        for did in heard.evicted:
            self._forget(did, "quarantine_full", now_ms)
        rotation = event.rotation if type(event) is HeyThere else None
        if rotation is not None:
            self.keys.rotate(rotation.old_did, event.did, now_ms)

    def _reject(self, error: HereaboutsError) -> Rejected:
        self.counters.add("events_rejected", error.reason)
        return Rejected(error)

    # --- taking events in --------------------------------------------------------------

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
        precheck = self._prechecker(now_ms)
        for index, data in enumerate(items):
            try:
                signed = self._check(data, now_ms, gate, precheck)
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
        keys, member = self.keys, self.membership is not None
        record_of = keys.records.get
        new_kinds: dict[str, int] = {}
        for (index, signed), new in zip(good, flags, strict=True):
            kind = KIND_OF[type(signed.event)]
            if new:
                new_kinds[kind] = new_kinds.get(kind, 0) + 1
                event = signed.event
                record = record_of(event.did)
                if now_ms - event.at_ms <= HEARD_FRESH_MS and (
                    # A proven key heard within the second, under the same name, has nothing
                    # new to tell the key book: skip the call (this is most events).
                    record is None
                    or record.proven_ms is None
                    or now_ms - record.last_ms >= HEARD_RESOLUTION_MS
                    or record.name != event.name
                    or type(event) is HeyThere
                ):
                    heard = keys.heard(event.did, event.name, now_ms, member)
                    if heard is not HEARD or type(event) is HeyThere:
                        try:  # noqa: SIM105 - contextlib.suppress costs 0.7 µs an event here
                            self._settle(event, heard, now_ms)
                        except NotAdmitted:
                            pass  # pushed out of the quarantine by a key later in this batch
                outcomes[index] = Accepted(signed, True, self.projection.apply(signed, now_ms))
            else:
                self.counters.add("events_duplicate", kind)
                outcomes[index] = Accepted(signed, new=False)
        for kind, count in new_kinds.items():  # counted per batch: per event costs 1 µs
            self.counters.add("events_in", kind, count)
        return [outcome for outcome in outcomes if outcome is not None]

    def replay(self, now_ms: int, *, on_event: Callable[[SignedEvent], None] | None = None) -> int:
        """Rebuild the projection from the ledger (on start); returns the number of events.

        Our own ledger needs no admission tokens, but a member revoked since, or a
        credential expired since, keeps its events out of the view. ``on_event`` sees every
        event replayed."""
        count = 0
        for signed in self.ledger.replay(limits=self._limits):
            event = signed.event
            if self.membership is not None:
                try:
                    self.membership.precheck(event, now_ms)
                    self.membership.admit(event, now_ms)
                except RemoteError:
                    continue
            if not self.keys.known(event.did):
                heard = self.keys.heard(
                    event.did,
                    event.name,
                    now_ms,
                    member=self.membership is not None,
                    restore=True,
                )
                for did in heard.evicted:
                    self._forget(did, "quarantine_full", now_ms)
            self.projection.apply(signed, now_ms)
            if on_event is not None:
                on_event(signed)
            count += 1
        return count

    # --- forgetting ----------------------------------------------------------------------

    def expire(self, now_ms: int) -> list[str]:
        """Forget keys gone silent (see :meth:`KeyBook.expired`); returns their DIDs."""
        gone = self.keys.expired(now_ms)
        for did in gone:
            self._forget(did, "silent", now_ms)
        return gone

    def forget(self, did: str, why: str, now_ms: int) -> None:
        """Forget a key now (a revoked member), its record included."""
        self.keys.forget(did)
        self._forget(did, why, now_ms)

    def _forget(self, did: str, why: str, now_ms: int) -> None:
        last = self.projection.reported(did)
        view = self.projection.view(did, now_ms) if last is not None else None
        self.projection.forget(did)
        self.ledger.forget(did)
        self.counters.add("keys_forgotten", why)
        if self._on_forget is not None and last is not None:
            name = "" if view is None else view.name
            self._on_forget(
                StatusChanged(
                    did=did, name=name, old=last, new=last, at_ms=now_ms, cause="forgotten"
                )
            )

    def prune(self, now_ms: int) -> int:
        """Apply retention: drop old events the projection does not need; returns the count."""
        return self.ledger.prune(
            cutoff_ms=now_ms - self._retention_ms,
            keep=self.projection.pinned_event_ids(),
            tombstone_cutoff_ms=now_ms - 2 * self._retention_ms,
        )
