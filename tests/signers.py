"""Test peers: identities that make real sealed events (signed, then verified back)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from hereabouts.core.effects import Vouch
from hereabouts.events import (
    AnyEvent,
    Chau,
    HeyThere,
    Howdy,
    Lost,
    Neighbour,
    Newspaper,
    Seen,
    SignedEvent,
    Unreachable,
)
from hereabouts.identity import Identity
from hereabouts.wire import seal, unseal

T0 = 1_800_000_000_000
"""A fixed "now" for tests (2027-01-15), in Unix milliseconds."""

SECOND = 1000
MINUTE = 60 * SECOND


class Peer:
    """A named identity with a boot id and session, making signed events on demand."""

    def __init__(
        self,
        name: str,
        *,
        seed: int | None = None,
        boot: str = "boot-1",
        transport: str = "plaza",
    ) -> None:
        self.name = name
        self.identity = (
            Identity.from_seed(bytes([seed]) * 32) if seed is not None else Identity.generate()
        )
        self.boot = boot
        self.session = 0
        self.transport = transport

    @property
    def did(self) -> str:
        return self.identity.did

    def _fields(self, at_ms: int, extra: dict[str, Any]) -> dict[str, Any]:
        """Header fields for an event by this peer, overridable through ``extra``."""
        fields = {
            "name": self.name,
            "did": self.did,
            "boot_id": self.boot,
            "session": self.session,
            "at_ms": at_ms,
        }
        fields.update(extra)
        return fields

    def sign(self, event: AnyEvent) -> SignedEvent:
        return unseal(seal(event, self.identity), check_clock=False)

    def sealed(self, event: AnyEvent) -> bytes:
        return seal(event, self.identity)

    def hey_there_event(self, at_ms: int, **extra: Any) -> HeyThere:
        extra = {"started_at_ms": at_ms, "transport": self.transport, **extra}
        return HeyThere(**self._fields(at_ms, extra))

    def hey_there(self, at_ms: int, **extra: Any) -> SignedEvent:
        return self.sign(self.hey_there_event(at_ms, **extra))

    def newspaper(self, at_ms: int, **extra: Any) -> SignedEvent:
        return self.sign(Newspaper(**self._fields(at_ms, extra)))

    def chau(self, at_ms: int, **extra: Any) -> SignedEvent:
        return self.sign(Chau(**self._fields(at_ms, extra)))

    def lost(self, at_ms: int, **extra: Any) -> SignedEvent:
        return self.sign(Lost(**self._fields(at_ms, extra)))

    def seen(self, subject: Peer, at_ms: int) -> SignedEvent:
        extra = {"subject_did": subject.did, "subject_name": subject.name}
        return self.sign(Seen(**self._fields(at_ms, extra)))

    def unreachable(self, subject: Peer, at_ms: int, last_seen_ms: int) -> SignedEvent:
        """A failure report about ``subject``, whose latest event we held was ``last_seen_ms``."""
        extra = {"subject_did": subject.did, "last_seen_ms": last_seen_ms}
        return self.sign(Unreachable(**self._fields(at_ms, extra)))

    def howdy(
        self, to: Peer, answers: str, at_ms: int, neighbours: Sequence[bytes | Vouch] = ()
    ) -> SignedEvent:
        """A howdy vouching for ``neighbours``: sealed hey_theres, or :class:`Vouch` pairs
        (a hey_there and the neighbour's latest event)."""
        extra = {
            "to_did": to.did,
            "answers": answers,
            "neighbours": [neighbour(n) for n in neighbours],
        }
        return self.sign(Howdy(**self._fields(at_ms, extra)))


def neighbour(item: bytes | Vouch) -> Neighbour:
    """A howdy's neighbour entry from a sealed hey_there or a :class:`Vouch`."""
    if isinstance(item, bytes):
        return Neighbour(hey_there=msgspec.Raw(item))
    latest = msgspec.Raw(item.latest or b"null")
    return Neighbour(hey_there=msgspec.Raw(item.hey_there), latest=latest)
