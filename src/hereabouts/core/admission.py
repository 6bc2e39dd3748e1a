"""Per-address budgets of the browser hub: what one client address may hold and send.

A connection's own limits restart with every reconnection, so they bound nothing a script
cares about. These budgets are kept per *client address* and survive reconnects:

* **Connections.** At most ``max_connections`` open at once per address. The table holds
  only addresses with an open connection, so it is bounded by the hub's connection limit.
* **Events.** A token bucket per address (``events_per_s``, ``event_burst``) spent by every
  event of every connection from that address.
* **Joins.** A *join* is a heartbeat of a DID the room does not hold yet. Per ``(address,
  room, epoch)`` at most ``joins`` are allowed; a signed leave of a DID that was counted
  gives one back. So one address can raise a room's count by at most ``joins``, however
  many connections, reconnections and keys it uses.

**Addresses** (:func:`address_key`): an IPv4 address as is; an IPv6 address by its /64,
because one IPv6 host is routinely handed a whole /64 and could otherwise take a fresh
address for every connection; an IPv4-mapped IPv6 address as its IPv4 address. A client
without an address (a Unix socket) shares the budget of ``"unknown"``.

**Bounded memory, and what forgetting costs.** The event buckets and the join table keep
at most :data:`MAX_ADDRESSES` and :data:`MAX_JOIN_ENTRIES` entries and forget the least
recently used first. A forgotten entry starts afresh: an address gets a new burst or a new
join budget for one room. Cycling a single entry out of the join table takes that many new
joins from elsewhere, far more than one address's event budget allows in an epoch.

**Proof of work** (:func:`pow_ok`): optional, for a DID the hub does not hold yet. The hub
hands each connection a random challenge; the client finds a nonce (decimal digits) such
that ``SHA-256(POW_TAG ‖ challenge ‖ did ‖ nonce)`` starts with ``bits`` zero bits. The
check costs one hash.

Sans-I/O: time comes in as ``now_ms``; nothing here reads a clock or draws randomness.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections import OrderedDict
from typing import Final

from hereabouts.core.ratelimit import RateLimiter
from hereabouts.errors import EventRejected, RateLimited, RemoteError

MAX_ADDRESSES: Final = 65_536
"""Event buckets kept (one per address seen lately), about 100 bytes each: 6 MiB at most.
A thousand connections come from at most a thousand addresses at once; the rest is
history, and forgetting it hands an address at worst one fresh burst."""

MAX_JOIN_ENTRIES: Final = 65_536
"""``(address, room, epoch)`` join tallies kept, about 150 bytes each: 10 MiB at most. A full
hub of a thousand widgets, each counted in one room, uses a thousand per epoch."""

IPV6_PREFIX: Final = 64
"""IPv6 clients are budgeted per /64: the prefix one subscriber or host is usually given."""

UNKNOWN_ADDRESS: Final = "unknown"

POW_TAG: Final = b"hereabouts/v1/site-pow\n"
"""Domain separation: no other hash of ours starts with these bytes."""

MAX_NONCE_DIGITS: Final = 16
"""A nonce is at most 16 decimal digits: every value a browser's integers count to
exactly, and far past the 2^20 tries the largest difficulty needs on average."""


class AddressBusy(RemoteError):
    """The client's address already holds its most connections to this hub."""

    reason = "address_busy"


class AddressRateLimited(RateLimited):
    """The client's address (over all its connections) sent events faster than its budget."""

    reason = "address_rate_limited"


class JoinBudgetSpent(EventRejected):
    """The client's address has brought its most new DIDs into this room this epoch."""

    reason = "join_budget"


class PowRequired(EventRejected):
    """A heartbeat of a DID the hub does not hold came without proof of work."""

    reason = "pow_required"


class PowInvalid(EventRejected):
    """A proof of work that does not have the leading zero bits asked for."""

    reason = "pow_invalid"


def address_key(host: str | None) -> str:
    """The budget key of a client address (see the module docstring)."""
    if not host:
        return UNKNOWN_ADDRESS
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone
    except ValueError:
        return UNKNOWN_ADDRESS
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)


def leading_zero_bits(digest: bytes) -> int:
    """How many zero bits ``digest`` starts with."""
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def pow_ok(challenge: bytes, did: str, nonce: str, bits: int) -> bool:
    """Whether ``nonce`` proves ``bits`` of work for ``did`` under ``challenge``."""
    if bits <= 0:
        return True
    if not 1 <= len(nonce) <= MAX_NONCE_DIGITS or not nonce.isascii() or not nonce.isdigit():
        return False
    digest = hashlib.sha256(POW_TAG + challenge + did.encode() + nonce.encode()).digest()
    return leading_zero_bits(digest) >= bits


class AddressBudgets:
    """Connections, events and joins per client address (keys from :func:`address_key`)."""

    def __init__(
        self,
        *,
        max_connections: int,
        events_per_s: float,
        event_burst: int,
        joins: int,
        max_addresses: int = MAX_ADDRESSES,
        max_join_entries: int = MAX_JOIN_ENTRIES,
    ) -> None:
        if max_connections < 1 or joins < 1 or max_join_entries < 1:
            raise ValueError("max_connections, joins and max_join_entries must be positive")
        self.max_connections = max_connections
        self.joins = joins
        self._open: dict[str, int] = {}
        self._events = RateLimiter(
            rate_per_s=events_per_s, burst=event_burst, max_keys=max_addresses
        )
        self._joined: OrderedDict[tuple[str, str, int], int] = OrderedDict()
        self._max_join_entries = max_join_entries

    # --- connections -----------------------------------------------------------------------

    def connect(self, address: str) -> None:
        """Take a connection slot of ``address``, or raise :class:`AddressBusy`."""
        held = self._open.get(address, 0)
        if held >= self.max_connections:
            raise AddressBusy(f"this address holds {held} connections, the most it may")
        self._open[address] = held + 1

    def disconnect(self, address: str) -> None:
        """Give back a slot taken by :meth:`connect`."""
        held = self._open.get(address, 0) - 1
        if held > 0:
            self._open[address] = held
        else:
            self._open.pop(address, None)

    def connections(self, address: str) -> int:
        return self._open.get(address, 0)

    @property
    def addresses(self) -> int:
        """Addresses with an open connection."""
        return len(self._open)

    # --- events ----------------------------------------------------------------------------

    def spend_event(self, address: str, now_ms: int) -> None:
        """Spend one of ``address``'s event tokens, or raise :class:`AddressRateLimited`."""
        if not self._events.allow(address, now_ms):
            raise AddressRateLimited("too many events from this address")

    # --- joins -----------------------------------------------------------------------------

    def check_join(self, address: str, room_key: str, epoch: int) -> None:
        """Raise :class:`JoinBudgetSpent` if ``address`` may bring no new DID into the room."""
        if self._joined.get((address, room_key, epoch), 0) >= self.joins:
            raise JoinBudgetSpent("this address brought its most visitors into the room")

    def joined(self, address: str, room_key: str, epoch: int) -> None:
        """A new DID from ``address`` was counted in the room."""
        entry = (address, room_key, epoch)
        self._joined[entry] = self._joined.pop(entry, 0) + 1
        if len(self._joined) > self._max_join_entries:
            self._joined.popitem(last=False)

    def left(self, address: str, room_key: str, epoch: int) -> None:
        """A counted DID left the room with a leave sent from ``address``: one join back."""
        entry = (address, room_key, epoch)
        held = self._joined.get(entry)
        if held is not None:
            self._joined[entry] = max(0, held - 1)

    def joins_used(self, address: str, room_key: str, epoch: int) -> int:
        return self._joined.get((address, room_key, epoch), 0)

    @property
    def join_entries(self) -> int:
        return len(self._joined)
