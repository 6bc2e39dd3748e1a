"""The ledger: an append-only store of sealed events, the node's one source of truth.

Statuses are a projection of the ledger; replaying it into a fresh projection gives the
same statuses. The ledger therefore stores the *exact sealed bytes* each event arrived in,
and replay verifies them again, so a tampered file cannot smuggle in an event.

Rules:

* **Idempotent.** Appending an event whose id is already stored changes nothing and reports
  a duplicate. Ids derive from the signed bytes (:mod:`hereabouts.wire`).
* **Retention with tombstones.** :meth:`Ledger.prune` drops events older than a cut-off
  (except the ones the caller must keep: each peer's latest events, see
  :meth:`hereabouts.core.projection.Projection.pinned_event_ids`) and remembers their ids, so
  a re-gossiped old event is refused with :class:`~hereabouts.errors.Replayed` instead of
  being accepted a second time. Tombstones themselves are forgotten once older than a second
  cut-off, by which time the arrival age check refuses such events anyway.
* **Forgetting a key.** :meth:`Ledger.forget` deletes every event of one emitter, for keys
  the node has decided to forget (unproven keys gone silent, peers gone for a week); no
  tombstones are kept for them, since such a key has to be admitted again to come back.
* **Durable once committed.** :class:`SqliteLedger` uses WAL mode; a committed append
  survives the process being killed (``kill -9``). ``synchronous=NORMAL`` trades the last
  transactions before a *power* loss for commits that cost microseconds, the usual choice
  for WAL. :meth:`append_many` commits a batch in one transaction.

Two implementations share the :class:`Ledger` interface: :class:`SqliteLedger` (the
default, at ``<home>/ledger.sqlite3``) and :class:`MemoryLedger` (tests, the simulator).
"""

from __future__ import annotations

import abc
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path

from hereabouts.config import WireLimits
from hereabouts.errors import Replayed, StorageError
from hereabouts.events import SignedEvent
from hereabouts.wire import unseal

LEDGER_FILE_NAME = "ledger.sqlite3"


class Ledger(abc.ABC):
    """What every ledger does. Subclasses store; this class holds the shared logic."""

    @abc.abstractmethod
    def _store(self, batch: list[SignedEvent]) -> list[bool]:
        """Store events not yet tombstoned; one flag per event, True when newly stored."""

    @abc.abstractmethod
    def _is_tombstoned(self, event_id: str) -> bool: ...

    @abc.abstractmethod
    def __contains__(self, event_id: object) -> bool: ...

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def raw_events(self) -> Iterator[bytes]:
        """The sealed bytes of every stored event, in the order they were appended."""

    @abc.abstractmethod
    def _prune(self, cutoff_ms: int, keep: Collection[str], tombstone_cutoff_ms: int) -> int: ...

    @abc.abstractmethod
    def tombstone_count(self) -> int: ...

    @abc.abstractmethod
    def get(self, event_id: str) -> bytes | None:
        """The sealed bytes of one stored event."""

    @abc.abstractmethod
    def forget(self, did: str) -> int:
        """Delete every stored event emitted by ``did``; returns how many."""

    def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Release the store."""

    @property
    def contains(self) -> Callable[[str], bool]:
        """``event_id in ledger`` as a plain callable (the ingest path asks per event)."""
        return self.__contains__

    def probe_write(self) -> None:  # noqa: B027 - memory can always be written
        """Write something small, or raise :class:`~hereabouts.errors.StorageError`: how a
        node tells that a store which failed (a full disk) works again."""

    def append(self, signed: SignedEvent) -> bool:
        """Store one event. True if new, False if already stored; Replayed if pruned before."""
        return self.append_many([signed])[0]

    def append_many(self, events: Iterable[SignedEvent]) -> list[bool]:
        """Store a batch in one transaction; a tombstoned event in it raises Replayed and
        nothing of the batch is stored (check with :meth:`admit` first to filter)."""
        batch = list(events)
        for signed in batch:
            if self._is_tombstoned(signed.id):
                raise Replayed(f"event {signed.id[:16]}… was pruned and cannot be accepted again")
        return self._store(batch)

    def admit(self, signed: SignedEvent) -> None:
        """Raise Replayed if ``signed`` was pruned before; cheap, for filtering a batch."""
        if self._is_tombstoned(signed.id):
            raise Replayed(f"event {signed.id[:16]}… was pruned and cannot be accepted again")

    def replay(self, *, limits: WireLimits | None = None) -> Iterator[SignedEvent]:
        """Every stored event, verified again, in append order (events stored before the
        canonical-form rule existed are still read)."""
        for raw in self.raw_events():
            if limits is None:
                yield unseal(raw, check_clock=False, strict=False)
            else:
                yield unseal(raw, check_clock=False, limits=limits, strict=False)

    def prune(
        self,
        *,
        cutoff_ms: int,
        keep: Collection[str] = (),
        tombstone_cutoff_ms: int | None = None,
    ) -> int:
        """Drop events dated before ``cutoff_ms`` whose ids are not in ``keep``; tombstone them.

        Tombstones dated before ``tombstone_cutoff_ms`` are forgotten (none when omitted).
        Returns the number of events dropped.
        """
        if tombstone_cutoff_ms is None:
            tombstone_cutoff_ms = -1
        return self._prune(cutoff_ms, frozenset(keep), tombstone_cutoff_ms)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MemoryLedger(Ledger):
    """The in-memory twin: same behaviour, nothing on disk."""

    def __init__(self) -> None:
        # id -> (at_ms, emitter, raw); dicts keep insertion order
        self._events: dict[str, tuple[int, str, bytes]] = {}
        self._by_did: dict[str, set[str]] = {}
        self._tombstones: dict[str, int] = {}

    def _store(self, batch: list[SignedEvent]) -> list[bool]:
        flags = []
        for signed in batch:
            new = signed.id not in self._events
            if new:
                self._events[signed.id] = (signed.at_ms, signed.did, signed.raw)
                self._by_did.setdefault(signed.did, set()).add(signed.id)
            flags.append(new)
        return flags

    @property
    def contains(self) -> Callable[[str], bool]:
        return self._events.__contains__  # the dict's own: no Python frame per call

    def get(self, event_id: str) -> bytes | None:
        held = self._events.get(event_id)
        return None if held is None else held[2]

    def forget(self, did: str) -> int:
        ids = self._by_did.pop(did, set())
        for event_id in ids:
            self._events.pop(event_id, None)
        return len(ids)

    def _is_tombstoned(self, event_id: str) -> bool:
        return event_id in self._tombstones

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._events

    def __len__(self) -> int:
        return len(self._events)

    def raw_events(self) -> Iterator[bytes]:
        return iter([raw for _, _, raw in self._events.values()])

    def _prune(self, cutoff_ms: int, keep: Collection[str], tombstone_cutoff_ms: int) -> int:
        doomed = [
            (event_id, at_ms, did)
            for event_id, (at_ms, did, _) in self._events.items()
            if at_ms < cutoff_ms and event_id not in keep
        ]
        for event_id, at_ms, did in doomed:
            del self._events[event_id]
            self._tombstones[event_id] = at_ms
            ids = self._by_did.get(did)
            if ids is not None:
                ids.discard(event_id)
                if not ids:
                    del self._by_did[did]
        self._tombstones = {i: t for i, t in self._tombstones.items() if t >= tombstone_cutoff_ms}
        return len(doomed)

    def tombstone_count(self) -> int:
        return len(self._tombstones)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    did TEXT NOT NULL,
    raw BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_at ON events (at_ms);
CREATE INDEX IF NOT EXISTS events_did ON events (did);
CREATE TABLE IF NOT EXISTS probe (  -- one row, rewritten to test that writes work
    one INTEGER PRIMARY KEY CHECK (one = 1),
    n INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tombstones (
    id TEXT PRIMARY KEY,
    at_ms INTEGER NOT NULL
) WITHOUT ROWID;
"""


class SqliteLedger(Ledger):
    """The durable ledger: one SQLite file in WAL mode."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._probes = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            # Tombstones are few (at most a retention's worth of pruned ids) and checked on
            # every append, so they live in memory too.
            self._tombstones = {
                row[0] for row in self._db.execute("SELECT id FROM tombstones")
            }
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open ledger {self.path}: {exc}") from None

    def _store(self, batch: list[SignedEvent]) -> list[bool]:
        flags = []
        db = self._db
        try:
            db.execute("BEGIN")
            for signed in batch:
                before = db.total_changes
                db.execute(
                    "INSERT OR IGNORE INTO events (id, at_ms, kind, did, raw) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (signed.id, signed.at_ms, signed.kind, signed.did, signed.raw),
                )
                flags.append(db.total_changes != before)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StorageError(f"cannot append to ledger {self.path}: {exc}") from None
        return flags

    def _is_tombstoned(self, event_id: str) -> bool:
        return event_id in self._tombstones

    def __contains__(self, event_id: object) -> bool:
        row = self._db.execute("SELECT 1 FROM events WHERE id = ?", (event_id,)).fetchone()
        return row is not None

    def probe_write(self) -> None:
        self._probes += 1  # a new value each time, so every probe really writes a page
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO probe (one, n) VALUES (1, ?)", (self._probes,)
            )
        except sqlite3.Error as exc:
            raise StorageError(f"ledger {self.path} still cannot be written: {exc}") from None

    def get(self, event_id: str) -> bytes | None:
        row = self._db.execute("SELECT raw FROM events WHERE id = ?", (event_id,)).fetchone()
        return None if row is None else bytes(row[0])

    def forget(self, did: str) -> int:
        db = self._db
        try:
            cursor = db.execute("DELETE FROM events WHERE did = ?", (did,))
        except sqlite3.Error as exc:
            raise StorageError(f"cannot forget events in ledger {self.path}: {exc}") from None
        return cursor.rowcount

    def __len__(self) -> int:
        count: int = self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        return count

    def raw_events(self) -> Iterator[bytes]:
        for (raw,) in self._db.execute("SELECT raw FROM events ORDER BY seq"):
            yield bytes(raw)

    def _prune(self, cutoff_ms: int, keep: Collection[str], tombstone_cutoff_ms: int) -> int:
        db = self._db
        candidates = db.execute(
            "SELECT id, at_ms FROM events WHERE at_ms < ?", (cutoff_ms,)
        ).fetchall()
        doomed = [(event_id, at_ms) for event_id, at_ms in candidates if event_id not in keep]
        try:
            db.execute("BEGIN")
            db.executemany("DELETE FROM events WHERE id = ?", [(i,) for i, _ in doomed])
            db.executemany("INSERT OR REPLACE INTO tombstones (id, at_ms) VALUES (?, ?)", doomed)
            db.execute("DELETE FROM tombstones WHERE at_ms < ?", (tombstone_cutoff_ms,))
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StorageError(f"cannot prune ledger {self.path}: {exc}") from None
        self._tombstones = {row[0] for row in db.execute("SELECT id FROM tombstones")}
        return len(doomed)

    def tombstone_count(self) -> int:
        return len(self._tombstones)

    def close(self) -> None:
        self._db.close()
