"""Trust on first use: each name is pinned to the first key that signed for it.

Names are for people; keys are what we can check. Once a verified event has bound a name to a
DID, any event that uses the name with another key is refused with
:class:`~hereabouts.errors.TofuViolation` — unless it is a ``hey_there`` carrying a rotation
statement in which the *pinned* key hands the name to the new key. The statement signs
``ROTATION_TAG ‖ canonical JSON {name, old_did, new_did, at_ms}`` (RFC 8785), so another
implementation can rebuild the exact bytes from the values.

Only an event's own emitter can pin its name. A ``seen`` event's subject name is checked
against the pins but never pins anything: an observer cannot name somebody else's key.

Pins live in SQLite (``<home>/keyring.sqlite3``) and in a dictionary in front of it, so the
check on the hot path is a dictionary look-up; only a first pin or a rotation writes.
"""

from __future__ import annotations

import base64
import binascii
import sqlite3
from pathlib import Path

from hereabouts.canonical import canonicalize
from hereabouts.errors import BadSignature, InvalidDID, StorageError, TofuViolation
from hereabouts.events import HeyThere, Rotation, Seen, SignedEvent
from hereabouts.identity import Identity, verify

ROTATION_TAG = b"hereabouts/v1/rotation\n"
KEYRING_FILE_NAME = "keyring.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pins (
    name TEXT PRIMARY KEY,
    did TEXT NOT NULL,
    pinned_at_ms INTEGER NOT NULL,
    previous_did TEXT
)
"""


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


class Keyring:
    """Name → DID pins, persisted in SQLite (``":memory:"`` for a throw-away keyring)."""

    def __init__(self, path: Path | str = ":memory:") -> None:
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
            rows = self._db.execute("SELECT name, did FROM pins").fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open keyring {path}: {exc}") from None
        self._pins: dict[str, str] = dict(rows)

    def pinned(self, name: str) -> str | None:
        """The DID pinned for ``name``, if any."""
        return self._pins.get(name)

    def __len__(self) -> int:
        return len(self._pins)

    def check(self, signed: SignedEvent) -> None:
        """Accept ``signed`` under TOFU (pinning or rotating as needed) or raise TofuViolation."""
        event = signed.event
        pinned = self._pins.get(event.name)
        if pinned is None:
            self._pin(event.name, event.did, event.at_ms, previous=None)
        elif pinned != event.did:
            rotation = event.rotation if isinstance(event, HeyThere) else None
            if rotation is None:
                raise TofuViolation(
                    f"name {event.name!r} is pinned to another key; this {signed.kind} is "
                    "signed by a different one and carries no rotation statement"
                )
            self._check_rotation(event.name, pinned, event.did, rotation)
            self._pin(event.name, event.did, event.at_ms, previous=pinned)
        if isinstance(event, Seen):
            subject_pin = self._pins.get(event.subject_name)
            if subject_pin is not None and subject_pin != event.subject_did:
                raise TofuViolation(
                    f"seen names {event.subject_name!r} with a key other than its pinned one"
                )

    def _check_rotation(self, name: str, pinned: str, new_did: str, rotation: Rotation) -> None:
        if rotation.old_did != pinned:
            raise TofuViolation(
                f"rotation for {name!r} is signed by a key other than the pinned one"
            )
        message = rotation_message(
            name=name, old_did=rotation.old_did, new_did=new_did, at_ms=rotation.at_ms
        )
        try:
            signature = base64.b64decode(rotation.sig, validate=True)
            verify(rotation.old_did, message, signature)
        except (binascii.Error, ValueError, BadSignature, InvalidDID):
            raise TofuViolation(f"rotation statement for {name!r} does not verify") from None

    def _pin(self, name: str, did: str, at_ms: int, *, previous: str | None) -> None:
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO pins (name, did, pinned_at_ms, previous_did) "
                "VALUES (?, ?, ?, ?)",
                (name, did, at_ms, previous),
            )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot write keyring: {exc}") from None
        self._pins[name] = did

    def close(self) -> None:
        self._db.close()
