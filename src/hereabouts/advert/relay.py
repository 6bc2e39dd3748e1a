"""A relay's store of other nodes' presence documents, and the rules for serving them.

A node that cannot be reached directly lists relays in its document; a relay keeps the
document and serves it to whoever asks. Rules this module keeps:

* **The document is its own authentication.** A relay accepts a document only if it
  verifies completely (signature, times, shape) and its ``relays`` names *this* relay's DID
  with a delegation that has not expired. Nothing else is needed and nothing else counts.
* **Served until the earliest expiry** of: the document's ``expires_at``; the matching relay
  entry's ``expires_at``; and the time it was stored plus the relay's own TTL
  (``RelayConfig.ttl_s``, default 900 s). After that it is a tombstone.
* **Never older over newer.** A document whose ``issued_at`` is not later than the one held
  for the same DID is refused (:class:`PresenceStale`), so a replayed old document cannot
  roll a node's endpoints back. An entry past its serving window (or evicted) is kept as a
  small *tombstone* (DID and ``issued_at``) until ``issued_at`` plus the longest allowed
  lifetime (7 days), so an older document cannot replace it even then.
* **Tombstones never lock out live documents.** Live entries and tombstones have separate
  bounds (``max_entries``, ``max_tombstones``). Past its bound the tombstone whose
  ``issued_at`` is oldest is forgotten first; that DID can then be rolled back by an older,
  still valid document until it pushes again.
* **Quotas.** Each client address may push ``address_pushes_per_minute`` (a token bucket,
  checked before the body is even parsed) and hold ``max_entries_per_address`` live
  entries; each DID may replace its document ``did_pushes_per_minute``. Refusals are
  :class:`RelayQuotaExceeded` subclasses carrying a retry time.
* **Full is not closed.** When the relay holds ``max_entries`` live entries, a new one first
  buries the entry whose window closed earliest; if none has closed, the oldest entry of the
  address holding the most live entries is buried. So a client within its own budget is
  always served, and a flood from one address displaces only that address's entries.
* **No directory scan on a request.** :class:`~hereabouts.advert.relay_index.RelayIndex`
  holds every entry's times, size, address and state in memory; it is built once, when the
  store is opened (call that off the event loop: it reads every file). A request reads or
  writes at most the file of the DID it names, plus a bounded amount of housekeeping
  (``HOUSEKEEPING_STEPS``).
* **Collision-free files.** Each DID's entry lives in ``<dir>/<sha256(did) hex>.json``:
  a DID may contain characters no file system likes, and a hash cannot traverse paths.

The store is synchronous and takes ``now`` on every call; the HTTP layer supplies the clock.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hereabouts.advert.document import PresenceInfo, check_presence, encode_presence
from hereabouts.advert.errors import (
    PresenceRejected,
    PresenceStale,
    RelayAddressFull,
    RelayAddressRateLimited,
    RelayDidRateLimited,
    RelayFull,
    RelayNotNamed,
)
from hereabouts.advert.relay_index import (
    UNKNOWN_ADDRESS,
    AddressBudgets,
    IndexEntry,
    RelayIndex,
    TokenBucket,
    address_key,
)
from hereabouts.advert.timestamps import format_time, parse_time, utc_now
from hereabouts.config import RelayConfig
from hereabouts.errors import HereaboutsError, StorageError
from hereabouts.files import write_atomically
from hereabouts.metrics import Counters

#: Most expired entries buried, and most aged tombstones forgotten, per push. Each costs one
#: small file rewrite or unlink (tens of microseconds); a push creates at most one future
#: expiry, so 8 per push keeps up with any rate of pushes while bounding a push's extra work.
HOUSEKEEPING_STEPS = 8

EVICTIONS = "relay_evictions"
"""Counter of entries buried or forgotten, labelled ``why``: ``expired`` (window closed),
``fair`` (buried to make room), ``tombstone_aged`` (nothing older can be valid any more),
``tombstone_overflow`` (forgotten early: more tombstones than ``max_tombstones``),
``damaged`` (an unreadable file, dropped when the store was opened)."""


@dataclass(frozen=True, slots=True)
class RelayedDocument:
    """A held document and the moment the relay stops serving it."""

    doc: dict[str, Any]
    stored_at: datetime
    serve_until: datetime


def relay_file_name(did: str) -> str:
    """The file name of ``did``'s entry: the SHA-256 of the DID in hex."""
    return hashlib.sha256(did.encode("utf-8")).hexdigest() + ".json"


def _digest(body: bytes) -> bytes:
    return hashlib.sha256(body).digest()[:16]


class RelayStore:
    """Documents this relay holds for other nodes, one per DID, on disk, indexed in memory.

    Opening reads every file of ``directory`` once (off the event loop, please); ``now``
    (default: the wall clock) decides which entries are still live. ``counters`` receives
    ``relay_evictions`` (a new set by default).
    """

    def __init__(
        self,
        directory: Path,
        relay_did: str,
        *,
        config: RelayConfig | None = None,
        counters: Counters | None = None,
        now: datetime | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.relay_did = relay_did
        self.config = config or RelayConfig()
        self.counters = counters if counters is not None else Counters()
        self.counters.describe(EVICTIONS, "Relay entries buried or forgotten, by why.", "why")
        self.index = RelayIndex()
        self.addresses = AddressBudgets(
            self.config.address_pushes_per_minute / 60.0, self.config.address_push_burst
        )
        self._load(utc_now() if now is None else now)

    # --- the rules -------------------------------------------------------------------------

    def serve_until(self, info: PresenceInfo, stored_at: datetime) -> datetime:
        """The earliest of the three expiries (see the module docstring)."""
        limits = [info.expires_at, stored_at + timedelta(seconds=self.config.ttl_s)]
        for entry in info.relays:
            if entry.host == self.relay_did and entry.expires_at is not None:
                limits.append(entry.expires_at)
        return min(limits)

    def admit(self, client: str | None, now: datetime) -> None:
        """Charge one push to ``client``'s address before anything else is done for it.

        Raises :class:`RelayAddressRateLimited` when the address has pushed too often.
        """
        wait = self.addresses.take(address_key(client), now.timestamp())
        if wait:
            raise RelayAddressRateLimited(
                f"too many pushes from this address (at most "
                f"{self.config.address_pushes_per_minute:g} a minute)",
                retry_after_s=wait,
            )

    def accept(self, doc: dict[str, Any], now: datetime, *, client: str | None = None) -> bool:
        """Verify and store ``doc`` pushed from ``client`` (an IP address); True if stored,
        False if the very same document is held already.

        Raises a :class:`PresenceRejected` subclass for every refusal.
        """
        self.housekeep(now)
        info = check_presence(doc, now=now)
        entry = next((r for r in info.relays if r.host == self.relay_did), None)
        if entry is None:
            raise RelayNotNamed(f"the document does not list relay {self.relay_did}")
        if entry.expires_at is not None and entry.expires_at <= now:
            raise RelayNotNamed(f"the delegation to {self.relay_did} has expired")
        body = encode_presence(doc)
        digest = _digest(body)
        address = address_key(client)
        held = self.index.get(info.did)
        if held is not None and not held.tombstone and held.serve_until <= now:
            self._bury(info.did, "expired", rewrite=False)  # its file is rewritten below
            held = self.index.get(info.did)
        if held is not None:
            if not held.tombstone and held.digest == digest:
                return False
            if held.issued_at >= info.issued_at:
                raise PresenceStale(
                    f"already held a document of {info.did} issued at "
                    f"{format_time(held.issued_at)}"
                )
        adds_live = held is None or held.tombstone
        gains = adds_live or (held is not None and held.address != address)
        if gains and self.index.held_by(address) >= self.config.max_entries_per_address:
            oldest = self.index.oldest_of(address)
            wait = (oldest.serve_until - now).total_seconds() if oldest else self.config.ttl_s
            raise RelayAddressFull(
                f"this address holds {self.config.max_entries_per_address} documents already",
                retry_after_s=max(wait, 1.0),
            )
        now_s = now.timestamp()
        if held is not None:
            bucket = held.bucket
            wait = bucket.take(now_s, self._did_rate, self.config.did_push_burst)
            if wait:
                raise RelayDidRateLimited(
                    f"{info.did} replaced its document too often here (at most "
                    f"{self.config.did_pushes_per_minute:g} a minute)",
                    retry_after_s=wait,
                )
        else:
            bucket = TokenBucket.full(self.config.did_push_burst, now_s)
            bucket.take(now_s, self._did_rate, self.config.did_push_burst)
        if adds_live:
            self._make_room(now)
        until = self.serve_until(info, now)
        self._write(
            info.did,
            {
                "did": info.did,
                "issued_at": format_time(info.issued_at),
                "stored_at": format_time(now),
                "serve_until": format_time(until),
                "pushed_from": address,
                "document": doc,
            },
        )
        self.index.put_live(
            IndexEntry(
                did=info.did,
                issued_at=info.issued_at,
                stored_at=now,
                serve_until=until,
                size=len(body),
                digest=digest,
                address=address,
                bucket=bucket,
            )
        )
        return True

    def get(self, did: str, now: datetime) -> RelayedDocument | None:
        """The document held for ``did`` if it may still be served at ``now``."""
        entry = self.index.get(did)
        if entry is None or entry.tombstone or entry.serve_until <= now:
            return None
        raw = self._read(self._path(did))
        doc = raw.get("document") if raw is not None else None
        if not isinstance(doc, dict) or doc.get("did") != did:
            return None
        try:
            # Re-check on the way out: the relay never serves what it would not accept now.
            check_presence(doc, now=now)
        except PresenceRejected:
            return None
        return RelayedDocument(doc, entry.stored_at, entry.serve_until)

    # --- bounds and housekeeping -----------------------------------------------------------

    @property
    def _did_rate(self) -> float:
        return self.config.did_pushes_per_minute / 60.0

    def count(self) -> int:
        """Entries held, tombstones included (one file each)."""
        return len(self.index)

    def housekeep(self, now: datetime, steps: int = HOUSEKEEPING_STEPS) -> int:
        """Bury up to ``steps`` entries whose window closed and forget up to ``steps``
        tombstones nothing older can beat any more. Returns how many changed."""
        changed = 0
        for _ in range(steps):
            did = self.index.first_expired(now)
            if did is None:
                break
            self._bury(did, "expired")
            changed += 1
        for _ in range(steps):
            did = self.index.oldest_tombstone(before=now)
            if did is None:
                break
            self._forget(did, "tombstone_aged")
            changed += 1
        return changed

    def sweep(self, now: datetime) -> int:
        """Housekeeping until nothing is due (maintenance and tests; not for requests)."""
        total = 0
        while changed := self.housekeep(now, steps=1024):
            total += changed
        return total

    def _make_room(self, now: datetime) -> None:
        """Make room for one more live entry: bury an expired entry, else a fair victim."""
        while self.index.live >= self.config.max_entries:
            did = self.index.first_expired(now)
            why = "expired"
            if did is None:
                did, why = self.index.fair_victim(), "fair"
            if did is None:
                raise RelayFull(f"this relay holds {self.config.max_entries} entries already")
            self._bury(did, why)

    def _bury(self, did: str, why: str, *, rewrite: bool = True) -> None:
        entry = self.index.bury(did)
        self.counters.add(EVICTIONS, why)
        if rewrite:
            self._write_tombstone(entry)
        while self.index.tombstones > self.config.max_tombstones:
            oldest = self.index.oldest_tombstone()
            assert oldest is not None
            self._forget(oldest, "tombstone_overflow")

    def _forget(self, did: str, why: str) -> None:
        self.index.forget(did)
        self.counters.add(EVICTIONS, why)
        with contextlib.suppress(OSError):
            self._path(did).unlink(missing_ok=True)

    # --- files -----------------------------------------------------------------------------

    def _path(self, did: str) -> Path:
        return self.directory / relay_file_name(did)

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            raw = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return None
        return raw if isinstance(raw, dict) else None

    def _write(self, did: str, body: dict[str, Any]) -> None:
        path = self._path(did)
        try:
            write_atomically(path, json.dumps(body, sort_keys=True).encode() + b"\n")
        except OSError as exc:
            raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from None

    def _write_tombstone(self, entry: IndexEntry) -> None:
        """Shrink an entry's file to its tombstone, atomically but without waiting for the
        disk: after a crash the old file, whose window is just as closed, says the same."""
        path = self._path(entry.did)
        body = {
            "did": entry.did,
            "issued_at": format_time(entry.issued_at),
            "stored_at": format_time(entry.stored_at),
            "document": None,
        }
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_bytes(json.dumps(body, sort_keys=True).encode() + b"\n")
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)

    def _load(self, now: datetime) -> None:
        """Build the index from the directory: every entry file read once."""
        if not self.directory.is_dir():
            return
        try:
            for path in self.directory.iterdir():
                if path.name.startswith(".") and path.name.endswith(".tmp"):
                    path.unlink(missing_ok=True)  # left by a crash mid-write
                elif path.suffix == ".json":
                    self._load_one(path, now)
        except OSError as exc:
            raise StorageError(
                f"cannot read the relay directory {self.directory}: {exc.strerror or exc}"
            ) from None
        # A smaller configuration than last time, or files from elsewhere: apply the bounds.
        self._make_room_at_load(now)
        while self.index.tombstones > self.config.max_tombstones:
            oldest = self.index.oldest_tombstone()
            assert oldest is not None
            self._forget(oldest, "tombstone_overflow")

    def _make_room_at_load(self, now: datetime) -> None:
        while self.index.live > self.config.max_entries:
            did = self.index.first_expired(now) or self.index.fair_victim()
            assert did is not None
            self._bury(did, "fair")

    def _load_one(self, path: Path, now: datetime) -> None:
        raw = self._read(path)
        try:
            if raw is None:
                raise ValueError("unreadable")
            did = str(raw["did"])
            issued_at = parse_time(raw["issued_at"])
            stored_at = parse_time(raw["stored_at"])
            doc = raw.get("document")
            if relay_file_name(did) != path.name or not (doc is None or isinstance(doc, dict)):
                raise ValueError("not this relay's entry")
        except (KeyError, TypeError, ValueError):
            path.unlink(missing_ok=True)  # damaged entry: drop it rather than serve it
            self.counters.add(EVICTIONS, "damaged")
            return
        entry = IndexEntry(
            did=did,
            issued_at=issued_at,
            stored_at=stored_at,
            serve_until=stored_at,
            size=0,
            digest=b"",
            address=None,
            bucket=TokenBucket.full(self.config.did_push_burst, now.timestamp()),
        )
        if entry.forget_at <= now:
            path.unlink(missing_ok=True)
            return
        if doc is not None:
            try:
                until = raw.get("serve_until")
                if isinstance(until, str):
                    entry.serve_until = parse_time(until)
                else:  # written before the index kept it
                    entry.serve_until = self.serve_until(check_presence(doc, now=now), stored_at)
                body = encode_presence(doc)
            except (HereaboutsError, ValueError):
                entry.serve_until = now
                body = b""
            if entry.serve_until > now:
                entry.size, entry.digest = len(body), _digest(body)
                entry.address = str(raw.get("pushed_from") or UNKNOWN_ADDRESS)
                self.index.put_live(entry)
                return
            self._write_tombstone(entry)
        self.index.put_tombstone(entry)
