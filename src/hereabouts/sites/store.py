"""The visitor's own site-presence settings on disk: consents per origin, and ghost mode.

One SQLite file, ``<home>/sites.sqlite3``:

* ``consent(origin_hash PRIMARY KEY, granted_at_ms)`` — one row per origin the visitor
  allowed. The file never holds an origin string: rows are keyed by
  ``HMAC-SHA256(salt, normalised origin)`` with a random per-home salt stored beside them.
  A backup, a grep of the disk or a glance at the file shows no browsing history; checking
  and revoking an origin still work because the visitor names it. (Someone holding the file
  *and* guessing origins can test guesses; listing is deliberately impossible.)
* ``setting(name PRIMARY KEY, value)`` — ``ghost`` (``"1"`` / ``"0"``) and the ``salt``.

Every write commits before returning, so a consent revoked or a ghost mode switched on
survives a crash the instant the call returns. Reads go to the database each time: two
processes sharing a home see each other's choices.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Final

from hereabouts.errors import StorageError
from hereabouts.sites.rooms import normalize_origin

FILE_NAME: Final = "sites.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS consent (
    origin_hash TEXT PRIMARY KEY,
    granted_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS setting (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


def store_path(home: Path) -> Path:
    return Path(home) / FILE_NAME


class SiteStore:
    """Consents and the ghost flag of one home directory."""

    def __init__(self, path: Path, *, ghost_default: bool = False) -> None:
        self.path = Path(path)
        self._ghost_default = ghost_default
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            self._salt = self._load_salt()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open {self.path}: {exc}") from None

    @classmethod
    def in_home(cls, home: Path, *, ghost_default: bool = False) -> SiteStore:
        return cls(store_path(home), ghost_default=ghost_default)

    def _load_salt(self) -> bytes:
        row = self._db.execute("SELECT value FROM setting WHERE name = 'salt'").fetchone()
        if row is not None:
            return bytes.fromhex(row[0])
        salt = secrets.token_bytes(32)
        # INSERT OR IGNORE: if another process created the salt first, use theirs.
        self._db.execute(
            "INSERT OR IGNORE INTO setting(name, value) VALUES ('salt', ?)", (salt.hex(),)
        )
        row = self._db.execute("SELECT value FROM setting WHERE name = 'salt'").fetchone()
        return bytes.fromhex(row[0])

    def _key(self, origin: str) -> str:
        return hmac.new(self._salt, normalize_origin(origin).encode(), hashlib.sha256).hexdigest()

    # --- consent ---------------------------------------------------------------------------

    def grant(self, origin: str) -> None:
        self._write(
            "INSERT OR REPLACE INTO consent(origin_hash, granted_at_ms) VALUES (?, ?)",
            (self._key(origin), int(time.time() * 1000)),
        )

    def revoke(self, origin: str) -> None:
        self._write("DELETE FROM consent WHERE origin_hash = ?", (self._key(origin),))

    def granted(self, origin: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM consent WHERE origin_hash = ?", (self._key(origin),)
        ).fetchone()
        return row is not None

    def consent_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM consent").fetchone()[0])

    # --- ghost mode ------------------------------------------------------------------------

    @property
    def ghost(self) -> bool:
        row = self._db.execute("SELECT value FROM setting WHERE name = 'ghost'").fetchone()
        return self._ghost_default if row is None else row[0] == "1"

    def set_ghost(self, on: bool) -> None:
        self._write(
            "INSERT OR REPLACE INTO setting(name, value) VALUES ('ghost', ?)",
            ("1" if on else "0",),
        )

    def close(self) -> None:
        self._db.close()

    def _write(self, sql: str, params: tuple[object, ...]) -> None:
        try:
            self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot write {self.path}: {exc}") from None
