"""An observer: one simulated node that keeps everything a real node keeps about its peers.

It runs the shipped :class:`~hereabouts.core.keys.KeyBook` (admission of unknown keys at a
bounded rate, proof by time), :class:`~hereabouts.core.projection.Projection` (statuses) and,
when pulses are simulated, :class:`~hereabouts.core.pulse.PulseWatch`, in the order the
runtime's ingest uses them: a duplicate event id is dropped (the ledger's dedupe), an unknown
key needs an admission token, an event that came on its own passes the per-emitter
:class:`~hereabouts.core.ratelimit.RateLimiter`, then the projection takes the event.
Signatures are not checked: every event here was made by the simulator, and what is
measured is the protocol's rules, not the edge's cryptography (which the real-process tests
cover).
"""

from __future__ import annotations

from collections.abc import Callable

from hereabouts.config import NodeConfig, ProjectionConfig, TrustConfig
from hereabouts.core.effects import Status, StatusChanged
from hereabouts.core.keys import KeyBook, KeyRecord
from hereabouts.core.projection import Projection
from hereabouts.core.pulse import PulseWatch
from hereabouts.core.ratelimit import RateLimiter
from hereabouts.events import SignedEvent

OnChange = Callable[[int, StatusChanged], None]
"""Called with the observer's index and each status change it reports."""


class Observer:
    """One node's full view of the plaza."""

    __slots__ = (
        "did",
        "index",
        "invited",
        "keys",
        "limited",
        "limiter",
        "on_change",
        "projection",
        "pulses",
        "refused",
        "seen",
    )

    def __init__(
        self,
        index: int,
        did: str,
        *,
        on_change: OnChange,
        max_howdys: int,
        pulses: PulseWatch | None = None,
        invited: bool = False,
    ) -> None:
        """``invited``: the network admits members by invitation; every node's credential
        proves its key, so no key waits for an admission token or for proof by time."""
        config = ProjectionConfig()
        self.index = index
        self.did = did
        self.projection = Projection(config)
        self.keys = KeyBook(
            silence_ms=int(config.plaza_missing_after_s * 1000), max_howdys=max_howdys
        )
        self.pulses = pulses
        self.invited = invited
        self.on_change = on_change
        node = NodeConfig()
        self.limiter = RateLimiter(
            rate_per_s=node.rate_limit_per_s,
            burst=node.rate_limit_burst,
            max_keys=TrustConfig().max_keys,
        )
        self.seen: set[str] = set()
        self.refused = 0
        """Events refused because their key could not be admitted."""
        self.limited = 0
        """Events refused by the per-emitter rate limit."""

    def restore(self, events: list[SignedEvent], now_ms: int) -> None:
        """Events from before the run, as a node restarting replays its ledger: their keys
        are taken as proven (one load for all: the key book elects name holders per load),
        their statuses as the events say."""
        records: dict[str, KeyRecord] = {}
        for signed in events:
            event = signed.event
            if event.did not in records and not self.keys.known(event.did):
                records[event.did] = KeyRecord(
                    did=event.did,
                    name=event.name,
                    first_ms=event.at_ms,
                    last_ms=event.at_ms,
                    proven_ms=event.at_ms,
                    claim_ms=event.at_ms,
                    member=self.invited,
                )
        self.keys.load(records.values(), now_ms)
        for signed in events:
            self.seen.add(signed.id)
            self._report(self.projection.apply(signed, now_ms))

    def take(self, signed: SignedEvent, now_ms: int, *, from_plaza: bool = True) -> bool:
        """A delivered event; whether it was taken in (False: a duplicate, or refused).
        ``from_plaza``: it came on its own (False: a neighbour inside a howdy), so the
        per-emitter rate limit applies, as the runtime's gate applies it."""
        if signed.id in self.seen:
            return False
        event = signed.event
        did = event.did
        keys = self.keys
        member = self.invited
        if (
            not member
            and did != self.did
            and not keys.known(did)
            and not keys.admissible(did, now_ms)
        ):
            self.refused += 1
            return False
        if from_plaza and did != self.did and not self.limiter.allow(did, now_ms):
            self.limited += 1
            return False
        heard = keys.heard(did, event.name, now_ms, member)
        if not heard.admitted:
            self.refused += 1
            return False
        for evicted in heard.evicted:
            self.projection.forget(evicted)
        self.seen.add(signed.id)
        self._report(self.projection.apply(signed, now_ms))
        return True

    def tick(self, now_ms: int) -> None:
        self._report(self.projection.tick(now_ms))
        pulses = self.pulses
        if pulses is not None:
            found = pulses.tick(now_ms)
            for did in found.quiet:
                self._report(self.projection.set_quiet(did, True, now_ms))

    def pulse(self, did: str, boot: str, seq: int, every_ms: int, now_ms: int) -> None:
        """A pulse arrived (only pulses of the boot the projection holds count)."""
        pulses = self.pulses
        if pulses is None:
            return
        if did == self.did:
            pulses.own(seq, now_ms)
            return
        if self.projection.boot_of(did) != boot:
            return
        taken, back = pulses.heard(did, boot=boot, seq=seq, every_ms=every_ms, now_ms=now_ms)
        if taken and back:
            self._report(self.projection.set_quiet(did, False, now_ms))

    def forget_pulses(self, did: str, now_ms: int) -> None:
        """The peer announced itself anew: watched afresh from its next pulse."""
        if self.pulses is not None and self.pulses.forget(did):
            self._report(self.projection.set_quiet(did, False, now_ms))

    def count(self, status: Status) -> int:
        return self.projection.count(status)

    def _report(self, changes: list[StatusChanged]) -> None:
        for change in changes:
            self.on_change(self.index, change)


__all__ = ["Observer", "OnChange"]
