"""Other nodes' presence documents, verified, newest per DID, bounded, in memory.

Rules this module keeps:

* Nothing enters unverified: :meth:`PresenceCache.put` runs the full check at ``now``.
* **Never older over newer.** For each DID the cache keeps the document with the latest
  ``issued_at``; a document issued at the same time or earlier is refused with
  :class:`PresenceStale` (the identical document again is a harmless no-op), so a replayed
  or reordered fetch cannot roll endpoints back. The latest ``issued_at`` per DID is
  remembered after its document expires, so the rule holds across expiry too.
* Expired documents are never returned and are dropped when met.
* At most ``max_entries`` DIDs. When full, expired entries go first, then the entry that
  expires soonest, because it is the least useful to keep.
* The newer document's ``proof`` is checked against the held one when it links to it
  (:func:`proof_links`); a proof that starts from another root is not an error (documents in
  between may have been missed) but the result is reported as unlinked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hereabouts.advert.document import (
    MAX_LIFETIME_S,
    PresenceInfo,
    check_presence,
    encode_presence,
)
from hereabouts.advert.errors import PresenceStale
from hereabouts.advert.merkle import ConsistencyProof, format_root
from hereabouts.advert.timestamps import format_time, utc_now

#: Most DIDs held. A node follows its friends, typically tens to hundreds; 4096 leaves room
#: for a busy relay-side client while bounding memory at worst to 4096 x 16 KiB = 64 MiB.
DEFAULT_MAX_ENTRIES = 4096

#: "Latest issued_at" marks kept per held entry, so DIDs whose documents expired or were
#: evicted still refuse older documents for a while; marks are 100 bytes, documents 16 KiB.
MARKS_PER_ENTRY = 4


@dataclass(frozen=True, slots=True)
class Cached:
    """A held document with what its check established."""

    doc: dict[str, Any]
    info: PresenceInfo
    linked: bool | None
    """True when its proof starts from the previously held root, False when the proof
    starts elsewhere or is missing, None when there was nothing held to link to."""


def proof_links(previous_root: str, proof: ConsistencyProof | None) -> bool:
    """True when ``proof`` starts from ``previous_root`` (so the index only grew since)."""
    return proof is not None and format_root(proof.old_root) == previous_root


class PresenceCache:
    """Verified presence documents of other nodes, newest per DID."""

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, Cached] = {}
        # Latest issued_at seen per DID, kept after its document expires or is evicted, until
        # no document issued that early can still be valid (issued_at + MAX_LIFETIME_S).
        self._marks: dict[str, datetime] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, doc: dict[str, Any], *, now: datetime | None = None) -> bool:
        """Verify and hold ``doc``; True if it replaced or added an entry.

        Raises a :class:`~hereabouts.advert.errors.PresenceRejected` subclass when the
        document is invalid at ``now`` or older than the one held.
        """
        moment = self._clock() if now is None else now
        info = check_presence(doc, now=moment)
        held = self._entries.get(info.did)
        if held is not None and held.info.expires_at <= moment:
            del self._entries[info.did]
            held = None
        if held is not None and encode_presence(held.doc) == encode_presence(doc):
            return False
        mark = self._marks.get(info.did)
        if mark is not None and mark >= info.issued_at:
            raise PresenceStale(
                f"already saw a document of {info.did} issued at {format_time(mark)}; "
                f"{doc['issued_at']} is not newer"
            )
        linked: bool | None = None
        if held is not None:
            linked = held.info.merkle_root == info.merkle_root or proof_links(
                held.info.merkle_root, info.proof
            )
        elif len(self._entries) >= self.max_entries:
            self._make_room(moment)
        self._entries[info.did] = Cached(dict(doc), info, linked)
        self._marks[info.did] = info.issued_at
        if len(self._marks) > MARKS_PER_ENTRY * self.max_entries:
            self._forget_marks(moment)
        return True

    def get(self, did: str, *, now: datetime | None = None) -> Cached | None:
        """The held entry for ``did`` if it has not expired at ``now``."""
        moment = self._clock() if now is None else now
        held = self._entries.get(did)
        if held is None:
            return None
        if held.info.expires_at <= moment:
            del self._entries[did]
            return None
        return held

    def prune(self, *, now: datetime | None = None) -> int:
        """Drop expired entries; returns how many went."""
        moment = self._clock() if now is None else now
        dead = [did for did, c in self._entries.items() if c.info.expires_at <= moment]
        for did in dead:
            del self._entries[did]
        self._forget_marks(moment)
        return len(dead)

    def _forget_marks(self, now: datetime) -> None:
        horizon = now - timedelta(seconds=MAX_LIFETIME_S)
        for did in [d for d, at in self._marks.items() if at <= horizon]:
            del self._marks[did]
        excess = len(self._marks) - MARKS_PER_ENTRY * self.max_entries
        if excess > 0:  # still too many: forget the oldest marks of DIDs not held
            idle = sorted((at, d) for d, at in self._marks.items() if d not in self._entries)
            for _, did in idle[:excess]:
                del self._marks[did]

    def _make_room(self, now: datetime) -> None:
        if self.prune(now=now):
            return
        soonest = min(self._entries, key=lambda did: self._entries[did].info.expires_at)
        del self._entries[soonest]
