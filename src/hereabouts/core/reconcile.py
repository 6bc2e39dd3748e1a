"""Mesh anti-entropy as pure functions: digests of what each side holds, and replies that
carry only what the other side lacks.

The mesh's unit of knowledge is an *origin* (an emitter's DID) and its *version*: the
latest ``at_ms`` of any event of that origin we hold. Because the projection only ever uses
a handful of events per origin (rule 2 of :mod:`hereabouts.core.projection`: the most
recent event wins), a node never needs an origin's history, only its *evidence*: the events
the projection pins for it (latest hey_there, latest own event, the event deciding its
status, its lost wills). So an exchange works like Scuttlebutt reconciliation, cut down to
what presence needs:

1. The caller sends its digest: one 16-byte entry per origin (8 bytes of the DID's SHA-256,
   then the version as a 64-bit integer), sorted. Two nodes that agree exchange this and
   nothing else, and the digest is bounded by the projection's own bounds (forgotten and
   long-OFFLINE origins leave it).
2. The responder answers with the evidence of every origin it holds newer than the caller's
   version (newer than -1 for an origin the caller lacks), most important first (chau,
   lost, hey_there, then heartbeats and the rest; fresher first within a kind), cut at a
   byte budget; whatever did not fit is still newer next round, so it follows then.
3. The responder's own digest rides along, so the caller can push back what the responder
   lacks (push-pull) with the same planner.

Sans-I/O: no clock, no randomness, no sockets. Sizes are those of the sealed events, which
travel as their original bytes.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from hereabouts.errors import RemoteError

ORIGIN_KEY_BYTES: Final = 8
"""Bytes of an origin's key in a digest: the first 8 bytes of SHA-256 of its DID. A
collision between two of 10,000 origins has odds of about 3 in 10^12; an attacker who
grinds a key to collide with a victim's only hides the victim's newer events from peers
that already hold the colliding key's higher version, until the next fresher event of the
victim, and its own events are still verified one by one."""

_ENTRY: Final = struct.Struct(">8sq")
ENTRY_BYTES: Final = _ENTRY.size
"""16 bytes per origin on the wire."""

PRIORITY: Final[Mapping[str, int]] = {
    "chau": 0,
    "lost": 1,
    "unreachable": 2,
    "hey_there": 3,
    "newspaper": 4,
    "seen": 5,
    "howdy": 6,
}
"""Order in a reply: departures and failure reports first (the news that changes views
most), then announcements (a node needs an origin's hey_there before its other events mean much),
then heartbeats; howdys last, they are mostly the plaza's business."""


class MalformedDigest(RemoteError):
    """A digest that is not a whole number of sorted, distinct 16-byte entries, or too big."""

    reason = "digest_malformed"


@functools.lru_cache(maxsize=65_536)
def origin_key(did: str) -> bytes:
    """An origin's key in digests. Cached (an LRU as large as the largest digest read, so
    it only fills when the node holds that many subjects anyway): every digest and reply
    needs every origin's key, and hashing 10,000 DIDs costs about 20 ms."""
    return hashlib.sha256(did.encode()).digest()[:ORIGIN_KEY_BYTES]


@dataclass(frozen=True, slots=True)
class Item:
    """One event a reply may carry."""

    at_ms: int
    event_id: str
    kind: str
    size: int
    data: bytes | None = None
    """The sealed bytes, when the holder read them to learn ``size`` (so a reply does not
    read them again)."""


def encode_digest(versions: Mapping[str, int]) -> bytes:
    """The digest of ``versions`` (DID -> version): sorted entries, 16 bytes each."""
    entries = sorted((origin_key(did), version) for did, version in versions.items())
    return b"".join(_ENTRY.pack(key, version) for key, version in entries)


def decode_digest(data: bytes, *, max_entries: int) -> dict[bytes, int]:
    """A digest back as ``{origin key: version}``; :class:`MalformedDigest` if ``data`` is
    not one a node would send (length, order, duplicates, negative versions, size)."""
    if len(data) % ENTRY_BYTES:
        raise MalformedDigest(f"a digest is a multiple of {ENTRY_BYTES} bytes, not {len(data)}")
    count = len(data) // ENTRY_BYTES
    if count > max_entries:
        raise MalformedDigest(f"a digest of {count} origins; at most {max_entries} are read")
    versions: dict[bytes, int] = {}
    previous = b""
    for key, version in _ENTRY.iter_unpack(data):
        if key <= previous:
            raise MalformedDigest("digest entries must be sorted and distinct")
        if version < 0:
            raise MalformedDigest("a digest version is never negative")
        versions[key] = version
        previous = key
    return versions


@dataclass(frozen=True, slots=True)
class Reply:
    """What to send: event ids in order, and what was left for a later round."""

    event_ids: list[str]
    size: int
    left_out: int
    """Events the other side lacks that did not fit the budget."""
    items: list[Item]
    """The chosen events themselves, in the same order as ``event_ids``."""


def plan_reply(
    versions: Mapping[str, int],
    evidence: Callable[[str], Sequence[Item]],
    theirs: Mapping[bytes, int],
    *,
    budget_bytes: int,
) -> Reply:
    """The events the holder of ``theirs`` lacks, most important first, within
    ``budget_bytes`` (at least one event goes, however big, so nothing blocks for ever).

    ``versions`` maps each origin we hold to its version; ``evidence(did)`` lists the
    events we would vouch with. An origin is sent when our version is newer than theirs;
    of its evidence, only events newer than their version go."""
    wanted: list[tuple[int, int, str, Item]] = []
    for did, version in versions.items():
        their_version = theirs.get(origin_key(did), -1)
        if version <= their_version:
            continue
        for item in evidence(did):
            if item.at_ms > their_version:
                rank = PRIORITY.get(item.kind, len(PRIORITY))
                wanted.append((rank, -item.at_ms, item.event_id, item))
    wanted.sort()
    chosen: list[str] = []
    items: list[Item] = []
    size = 0
    seen: set[str] = set()
    for position, (_, _, event_id, item) in enumerate(wanted):
        if event_id in seen:
            continue
        if chosen and size + item.size > budget_bytes:
            return Reply(chosen, size, _distinct(wanted[position:], seen), items)
        seen.add(event_id)
        chosen.append(event_id)
        items.append(item)
        size += item.size
    return Reply(chosen, size, 0, items)


def _distinct(rest: Iterable[tuple[int, int, str, Item]], sent: set[str]) -> int:
    return len({event_id for _, _, event_id, _ in rest} - sent)
