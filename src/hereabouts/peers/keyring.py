"""The keyring: proven keys and the names they hold, on disk; and key rotation statements.

Which key holds which name is decided by :class:`~hereabouts.core.keys.KeyBook` (a name
is a label held by the key that proved itself under it first; nobody is refused for using
a name). This module keeps the book's *proven* records across restarts, in SQLite
(``<home>/keyring.sqlite3``), written in one transaction now and then
(:meth:`Keyring.save`), so a restart neither forgets who holds a name nor makes every peer
prove itself again. Unproven keys are never written: a flood of fresh keys costs no disk.

A rotation statement lets a key hand its name, and its place as holder, to a new key. It
is signed by the *old* key over ``ROTATION_TAG ‖ canonical JSON {name, old_did, new_did,
at_ms}`` (RFC 8785), so another implementation can rebuild the exact bytes from the values,
and travels in the new key's ``hey_there``.
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from hereabouts.canonical import canonicalize
from hereabouts.core.keys import KeyRecord
from hereabouts.errors import BadSignature, InvalidDID, StorageError, TofuViolation
from hereabouts.events import Rotation
from hereabouts.identity import Identity, signature_from_base64, verify

ROTATION_TAG = b"hereabouts/v1/rotation\n"
KEYRING_FILE_NAME = "keyring.sqlite3"

_SCHEMA = """
DROP TABLE IF EXISTS pins;  -- first-use pins, replaced by proven keys (docs/security.md)
CREATE TABLE IF NOT EXISTS keys (
    did TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    first_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,
    proven_ms INTEGER NOT NULL,
    claim_ms INTEGER NOT NULL,
    rotated_to TEXT
) WITHOUT ROWID;
"""


class BadRotation(TofuViolation):
    """A rotation statement that the key it names did not sign for this name and new key."""

    reason = "bad_rotation"


def rotation_message(*, name: str, old_did: str, new_did: str, at_ms: int) -> bytes:
    """The bytes a rotation statement signs."""
    statement = {"name": name, "old_did": old_did, "new_did": new_did, "at_ms": at_ms}
    return ROTATION_TAG + canonicalize(statement)


def make_rotation(old: Identity, *, name: str, new_did: str, at_ms: int) -> Rotation:
    """A statement, signed by ``old``, that hands ``name`` over to ``new_did``."""
    message = rotation_message(name=name, old_did=old.did, new_did=new_did, at_ms=at_ms)
    return Rotation(
        old_did=old.did, at_ms=at_ms, sig=base64.b64encode(old.sign(message)).decode("ascii")
    )


def check_rotation(name: str, new_did: str, rotation: Rotation) -> None:
    """Raise :class:`BadRotation` unless ``rotation.old_did`` signed it over to ``new_did``."""
    message = rotation_message(
        name=name, old_did=rotation.old_did, new_did=new_did, at_ms=rotation.at_ms
    )
    try:
        verify(rotation.old_did, message, signature_from_base64(rotation.sig))
    except (BadSignature, InvalidDID):
        raise BadRotation(f"rotation statement for {name!r} does not verify") from None


class Keyring:
    """Proven key records in SQLite (``":memory:"`` for a throw-away keyring)."""

    def __init__(self, path: Path | str = ":memory:") -> None:
        self.path = str(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open keyring {path}: {exc}") from None

    def load(self) -> list[KeyRecord]:
        """Every stored record."""
        try:
            rows = self._db.execute(
                "SELECT did, name, first_ms, last_ms, proven_ms, claim_ms, rotated_to FROM keys"
            ).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read keyring {self.path}: {exc}") from None
        return [
            KeyRecord(
                did=did,
                name=name,
                first_ms=first,
                last_ms=last,
                proven_ms=proven,
                claim_ms=claim,
                rotated_to=rotated,
            )
            for did, name, first, last, proven, claim, rotated in rows
        ]

    def save(self, changed: Iterable[KeyRecord], dropped: Iterable[str]) -> None:
        """Write changed proven records and delete dropped ones, in one transaction."""
        rows = [
            (r.did, r.name, r.first_ms, r.last_ms, r.proven_ms, r.claim_ms or r.proven_ms,
             r.rotated_to)
            for r in changed
        ]
        gone = [(did,) for did in dropped]
        if not rows and not gone:
            return
        db = self._db
        try:
            db.execute("BEGIN")
            db.executemany(
                "INSERT OR REPLACE INTO keys (did, name, first_ms, last_ms, proven_ms, "
                "claim_ms, rotated_to) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            db.executemany("DELETE FROM keys WHERE did = ?", gone)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StorageError(f"cannot write keyring {self.path}: {exc}") from None

    def __len__(self) -> int:
        count: int = self._db.execute("SELECT COUNT(*) FROM keys").fetchone()[0]
        return count

    def close(self) -> None:
        self._db.close()
