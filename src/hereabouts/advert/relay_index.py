"""The relay's memory of what it holds: one record per DID, and the orders it evicts in.

:class:`RelayIndex` answers every question a relay request asks without touching the disk:
is this DID held, since when, until when, is it only a tombstone, which client address
pushed it, how many live entries does that address hold, which entry expires first, which
tombstone is oldest, which entry goes if the relay is full. Every operation costs O(1) or
O(log n) in the number of entries; none walks them all.

The rules of *when* to evict live in :mod:`hereabouts.advert.relay`; this module only keeps
the orders:

* live entries by ``serve_until`` (the first to stop being served is the first to bury);
* tombstones by the moment no document issued that early can still be valid
  (``issued_at`` + the longest lifetime): the oldest is the least useful;
* per client address, its live entries in the order they were stored, and the addresses by
  how many live entries each holds, so "the oldest entry of the address holding the most"
  is found at once.

:class:`TokenBucket` and :class:`AddressBudgets` are the rate limits (per DID, per
address). Nothing here reads a clock or does I/O: times are parameters.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hereabouts.advert.document import MAX_LIFETIME_S

#: The address key of a request whose peer address is unknown (no socket peer, e.g. a Unix
#: socket). All such requests share one budget.
UNKNOWN_ADDRESS = "unknown"

#: Most client addresses whose push rate is tracked at once. Each costs about 200 bytes; past
#: this the address heard from least recently is forgotten (and gets a full burst if it comes
#: back), which only matters to an attacker who already controls this many addresses.
MAX_TRACKED_ADDRESSES = 65_536

#: IPv6 clients are budgeted per /64: one subscriber usually holds a whole /64, so budgeting
#: single IPv6 addresses would hand an attacker 2^64 budgets.
IPV6_PREFIX = 64

TOMBSTONE_LIFETIME = timedelta(seconds=MAX_LIFETIME_S)


def address_key(host: str | None) -> str:
    """The budget a client address falls under: the IPv4 address itself (an IPv4-mapped IPv6
    address counts as IPv4), or the /64 of an IPv6 address."""
    if not host:
        return UNKNOWN_ADDRESS
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # an IPv6 zone says nothing
    except ValueError:
        return host[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)


@dataclass(slots=True)
class TokenBucket:
    """``burst`` tokens, refilled at ``rate_per_s``; a push takes one. Times are seconds."""

    tokens: float
    updated: float

    @classmethod
    def full(cls, burst: float, now_s: float) -> TokenBucket:
        return cls(float(burst), now_s)

    def take(self, now_s: float, rate_per_s: float, burst: float) -> float:
        """Take a token: 0.0 if one was there, else the seconds until one will be."""
        if now_s > self.updated:
            self.tokens = min(float(burst), self.tokens + (now_s - self.updated) * rate_per_s)
            self.updated = now_s
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / rate_per_s


class AddressBudgets:
    """Push rate per client address: a token bucket each, the least recently heard of
    forgotten past ``max_tracked``."""

    def __init__(
        self, rate_per_s: float, burst: int, *, max_tracked: int = MAX_TRACKED_ADDRESSES
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_tracked = max_tracked
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, address: str, now_s: float) -> float:
        """0.0 if ``address`` may push now, else the seconds until it may."""
        bucket = self._buckets.get(address)
        if bucket is None:
            bucket = self._buckets[address] = TokenBucket.full(self.burst, now_s)
            if len(self._buckets) > self.max_tracked:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(address)
        return bucket.take(now_s, self.rate_per_s, self.burst)


@dataclass(slots=True)
class IndexEntry:
    """What the relay knows about one DID's entry, without reading its file."""

    did: str
    issued_at: datetime
    stored_at: datetime
    serve_until: datetime
    size: int
    """Bytes of the held document's canonical JSON (0 for a tombstone)."""
    digest: bytes
    """The first 16 bytes of the held document's SHA-256, to recognise a repeated push."""
    address: str | None
    """The address key of the client that pushed it; None once it is a tombstone."""
    tombstone: bool = False
    bucket: TokenBucket = field(default_factory=lambda: TokenBucket(0.0, 0.0))
    """How often this DID may still replace its document (see ``RelayConfig``)."""

    @property
    def forget_at(self) -> datetime:
        """When no document issued as early as this one can still be valid."""
        return self.issued_at + TOMBSTONE_LIFETIME


class KeyedHeap:
    """A binary min-heap of DIDs ordered by a time, with removal by DID in O(log n)."""

    def __init__(self) -> None:
        self._items: list[tuple[datetime, str]] = []
        self._position: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, did: object) -> bool:
        return did in self._position

    def peek(self) -> tuple[datetime, str] | None:
        return self._items[0] if self._items else None

    def push(self, did: str, key: datetime) -> None:
        if did in self._position:
            self.remove(did)
        self._items.append((key, did))
        self._position[did] = len(self._items) - 1
        self._up(len(self._items) - 1)

    def remove(self, did: str) -> None:
        index = self._position.pop(did, None)
        if index is None:
            return
        last = self._items.pop()
        if index < len(self._items):
            self._items[index] = last
            self._position[last[1]] = index
            self._down(self._up(index))

    def _swap(self, i: int, j: int) -> None:
        items = self._items
        items[i], items[j] = items[j], items[i]
        self._position[items[i][1]] = i
        self._position[items[j][1]] = j

    def _up(self, index: int) -> int:
        while index > 0:
            parent = (index - 1) // 2
            if self._items[index] >= self._items[parent]:
                break
            self._swap(index, parent)
            index = parent
        return index

    def _down(self, index: int) -> None:
        size = len(self._items)
        while True:
            smallest = index
            for child in (2 * index + 1, 2 * index + 2):
                if child < size and self._items[child] < self._items[smallest]:
                    smallest = child
            if smallest == index:
                return
            self._swap(index, smallest)
            index = smallest


class RelayIndex:
    """Every entry of a relay, live or tombstone, with the orders eviction needs."""

    def __init__(self) -> None:
        self._entries: dict[str, IndexEntry] = {}
        self._expiry = KeyedHeap()  # live entries by serve_until
        self._graves = KeyedHeap()  # tombstones by forget_at
        # address -> its live DIDs, oldest stored first (dicts keep insertion order)
        self._by_address: dict[str, dict[str, None]] = {}
        # n -> the addresses holding exactly n live entries; _most is the largest such n
        self._by_count: dict[int, dict[str, None]] = {}
        self._most = 0
        self.live_bytes = 0

    # --- reading ---------------------------------------------------------------------------

    def get(self, did: str) -> IndexEntry | None:
        return self._entries.get(did)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def live(self) -> int:
        return len(self._expiry)

    @property
    def tombstones(self) -> int:
        return len(self._graves)

    @property
    def addresses(self) -> int:
        """Client addresses holding at least one live entry."""
        return len(self._by_address)

    def held_by(self, address: str) -> int:
        return len(self._by_address.get(address, ()))

    def oldest_of(self, address: str) -> IndexEntry | None:
        """The live entry ``address`` stored longest ago."""
        dids = self._by_address.get(address)
        return self._entries[next(iter(dids))] if dids else None

    def first_expired(self, now: datetime) -> str | None:
        """The live entry whose serving window closed first, if one has closed by ``now``."""
        top = self._expiry.peek()
        return top[1] if top is not None and top[0] <= now else None

    def oldest_tombstone(self, before: datetime | None = None) -> str | None:
        """The tombstone to forget first; with ``before``, only one due by then."""
        top = self._graves.peek()
        if top is None or (before is not None and top[0] > before):
            return None
        return top[1]

    def fair_victim(self) -> str | None:
        """The oldest live entry of the address holding the most live entries."""
        if self._most == 0:
            return None
        address = next(iter(self._by_count[self._most]))
        return next(iter(self._by_address[address]))

    # --- changing --------------------------------------------------------------------------

    def put_live(self, entry: IndexEntry) -> None:
        """Hold ``entry`` as its DID's live entry, replacing whatever was there."""
        assert entry.address is not None and not entry.tombstone
        self._detach(entry.did)
        self._entries[entry.did] = entry
        self._expiry.push(entry.did, entry.serve_until)
        self._add_to(entry.address, entry.did)
        self.live_bytes += entry.size

    def put_tombstone(self, entry: IndexEntry) -> None:
        """Hold ``entry`` as its DID's tombstone, replacing whatever was there."""
        self._detach(entry.did)
        entry.tombstone, entry.address, entry.size = True, None, 0
        self._entries[entry.did] = entry
        self._graves.push(entry.did, entry.forget_at)

    def bury(self, did: str) -> IndexEntry:
        """Turn ``did``'s live entry into a tombstone (its document is no longer served)."""
        entry = self._entries[did]
        self.put_tombstone(entry)
        return entry

    def forget(self, did: str) -> IndexEntry | None:
        """Drop ``did``'s entry altogether."""
        self._detach(did)
        return self._entries.pop(did, None)

    def _detach(self, did: str) -> None:
        entry = self._entries.get(did)
        if entry is None:
            return
        if entry.tombstone:
            self._graves.remove(did)
            return
        self._expiry.remove(did)
        self.live_bytes -= entry.size
        assert entry.address is not None
        self._remove_from(entry.address, did)

    def _add_to(self, address: str, did: str) -> None:
        dids = self._by_address.setdefault(address, {})
        before = len(dids)
        dids[did] = None
        self._recount(address, before, before + 1)

    def _remove_from(self, address: str, did: str) -> None:
        dids = self._by_address[address]
        before = len(dids)
        del dids[did]
        if not dids:
            del self._by_address[address]
        self._recount(address, before, before - 1)

    def _recount(self, address: str, before: int, after: int) -> None:
        if before:
            holders = self._by_count[before]
            del holders[address]
            if not holders:
                del self._by_count[before]
        if after:
            self._by_count.setdefault(after, {})[address] = None
        # counts move by one, so the largest count moves by at most one
        if after > self._most:
            self._most = after
        elif before == self._most and before not in self._by_count:
            self._most = after if after in self._by_count else 0
