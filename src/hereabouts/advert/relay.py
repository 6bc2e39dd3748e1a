"""A relay's store of other nodes' presence documents, and the rules for serving them.

A node that cannot be reached directly lists relays in its document; a relay keeps the
document and serves it to whoever asks. Rules this module keeps:

* **The document is its own authentication.** A relay accepts a document only if it
  verifies completely (signature, times, shape) and its ``relays`` names *this* relay's DID
  with a delegation that has not expired. Nothing else is needed and nothing else counts.
* **Served until the earliest expiry** of: the document's ``expires_at``; the matching relay
  entry's ``expires_at``; and the time it was stored plus the relay's own TTL
  (``ttl_s``, default 900 s). After that it is gone, and pruned from disk.
* **Never older over newer.** A document whose ``issued_at`` is not later than the one held
  for the same DID is refused (:class:`PresenceStale`), so a replayed old document cannot
  roll a node's endpoints back.
* **Collision-free files.** Each DID's document lives in ``<dir>/<sha256(did) hex>.json``:
  a DID may contain characters no file system likes, and a hash cannot traverse paths.
* **Bounded.** At most ``max_entries`` DIDs; when full, expired entries are pruned, and if
  that frees nothing the document is refused (:class:`RelayFull`). An entry past its serving
  window is kept as a small tombstone (DID and ``issued_at``) until ``issued_at`` plus the
  longest allowed lifetime (7 days), so an older document cannot replace it even then.

The store is synchronous and takes ``now`` on every call; the HTTP layer supplies the clock.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hereabouts.advert.document import (
    MAX_LIFETIME_S,
    PresenceInfo,
    check_presence,
    encode_presence,
)
from hereabouts.advert.errors import PresenceRejected, PresenceStale, RelayFull, RelayNotNamed
from hereabouts.advert.timestamps import format_time, parse_time
from hereabouts.errors import StorageError
from hereabouts.files import write_atomically

#: How long a relay keeps a document at most, whatever the document says: 15 minutes. Longer
#: than the default 600 s document lifetime so the relay's own limit rarely bites, short
#: enough that a node whose delegation was revoked by omission drops out soon.
DEFAULT_RELAY_TTL_S = 900.0

#: Most DIDs one relay holds. At 16 KiB per document at worst this is 160 MiB of disk, and it
#: caps what a flood of freshly generated did:keys can make the relay store.
DEFAULT_MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class RelayedDocument:
    """A held document and the moment the relay stops serving it."""

    doc: dict[str, Any]
    stored_at: datetime
    serve_until: datetime


@dataclass(frozen=True, slots=True)
class _Record:
    """One file's contents; ``doc`` is None once the entry is only a tombstone."""

    did: str
    issued_at: datetime
    stored_at: datetime
    doc: dict[str, Any] | None


def relay_file_name(did: str) -> str:
    """The file name of ``did``'s entry: the SHA-256 of the DID in hex."""
    return hashlib.sha256(did.encode("utf-8")).hexdigest() + ".json"


class RelayStore:
    """Documents this relay holds for other nodes, one per DID, on disk."""

    def __init__(
        self,
        directory: Path,
        relay_did: str,
        *,
        ttl_s: float = DEFAULT_RELAY_TTL_S,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        if ttl_s <= 0 or max_entries < 1:
            raise ValueError("ttl_s must be positive and max_entries at least 1")
        self.directory = Path(directory)
        self.relay_did = relay_did
        self.ttl_s = ttl_s
        self.max_entries = max_entries

    def _path(self, did: str) -> Path:
        return self.directory / relay_file_name(did)

    def serve_until(self, info: PresenceInfo, stored_at: datetime) -> datetime:
        """The earliest of the three expiries (see the module docstring)."""
        limits = [info.expires_at, stored_at + timedelta(seconds=self.ttl_s)]
        for entry in info.relays:
            if entry.host == self.relay_did and entry.expires_at is not None:
                limits.append(entry.expires_at)
        return min(limits)

    def _read(self, path: Path) -> _Record | None:
        try:
            raw = json.loads(path.read_bytes())
            doc = raw["document"]
            record = _Record(
                did=str(raw["did"]),
                issued_at=parse_time(raw["issued_at"]),
                stored_at=parse_time(raw["stored_at"]),
                doc=doc if isinstance(doc, dict) else None,
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)  # damaged entry: drop it rather than serve it
            return None
        return record

    def _write(self, path: Path, record: _Record) -> None:
        body = {
            "did": record.did,
            "issued_at": format_time(record.issued_at),
            "stored_at": format_time(record.stored_at),
            "document": record.doc,
        }
        try:
            write_atomically(path, json.dumps(body, sort_keys=True).encode() + b"\n")
        except OSError as exc:
            raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from None

    def _live(self, path: Path, now: datetime) -> tuple[_Record | None, RelayedDocument | None]:
        """The entry at ``path`` and, if it may be served at ``now``, the servable document.

        An entry past its serving window becomes a tombstone (its document dropped, its
        ``issued_at`` kept) until no document issued that early can still be valid, so an
        older document cannot slip in after a newer one stopped being served.
        """
        record = self._read(path)
        if record is None:
            return None, None
        if record.issued_at + timedelta(seconds=MAX_LIFETIME_S) <= now:
            path.unlink(missing_ok=True)
            return None, None
        doc = record.doc
        if doc is None:
            return record, None
        try:
            # Re-check on the way out: the relay never serves what it would not accept now.
            info = check_presence(doc, now=now)
            until = self.serve_until(info, record.stored_at)
        except PresenceRejected:
            until = now
        if now >= until:
            record = _Record(record.did, record.issued_at, record.stored_at, None)
            self._write(path, record)
            return record, None
        return record, RelayedDocument(doc, record.stored_at, until)

    def accept(self, doc: dict[str, Any], now: datetime) -> bool:
        """Verify and store ``doc``; True if stored, False if the very same one is held.

        Raises a :class:`PresenceRejected` subclass for every refusal.
        """
        info = check_presence(doc, now=now)
        entry = next((r for r in info.relays if r.host == self.relay_did), None)
        if entry is None:
            raise RelayNotNamed(f"the document does not list relay {self.relay_did}")
        if entry.expires_at is not None and entry.expires_at <= now:
            raise RelayNotNamed(f"the delegation to {self.relay_did} has expired")
        path = self._path(info.did)
        held, servable = self._live(path, now)
        if held is not None:
            if servable is not None and encode_presence(servable.doc) == encode_presence(doc):
                return False
            if held.issued_at >= info.issued_at:
                raise PresenceStale(
                    f"already held a document of {info.did} issued at "
                    f"{format_time(held.issued_at)}"
                )
        elif self.count() >= self.max_entries:
            self.prune(now)
            if self.count() >= self.max_entries:
                raise RelayFull(f"this relay holds {self.max_entries} entries already")
        self._write(path, _Record(info.did, info.issued_at, now, doc))
        return True

    def get(self, did: str, now: datetime) -> RelayedDocument | None:
        """The document held for ``did`` if it may still be served at ``now``."""
        _, servable = self._live(self._path(did), now)
        if servable is None or servable.doc.get("did") != did:
            return None
        return servable

    def count(self) -> int:
        if not self.directory.is_dir():
            return 0
        return sum(1 for _ in self.directory.glob("*.json"))

    def prune(self, now: datetime) -> int:
        """Turn entries past their window into tombstones and drop old tombstones.

        Returns how many entries are not servable afterwards (tombstones included).
        """
        if not self.directory.is_dir():
            return 0
        removed = 0
        for path in list(self.directory.glob("*.json")):
            _, servable = self._live(path, now)
            if servable is None:
                removed += 1
        return removed
