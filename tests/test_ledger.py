"""Ledgers: idempotent, ordered, pruned with tombstones, durable across kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from hereabouts.errors import Replayed, StorageError
from hereabouts.ledger import Ledger, MemoryLedger, SqliteLedger
from tests.signers import MINUTE, T0, Peer

ALICE = Peer("alice", seed=1)


@pytest.fixture(params=["memory", "sqlite"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    store: Ledger = MemoryLedger() if request.param == "memory" else SqliteLedger(
        tmp_path / "ledger.sqlite3"
    )
    yield store
    store.close()


def test_append_is_idempotent(ledger: Ledger) -> None:
    event = ALICE.hey_there(T0)
    assert ledger.append(event) is True
    assert ledger.append(event) is False
    assert len(ledger) == 1
    assert event.id in ledger


def test_append_many_reports_new_and_duplicate(ledger: Ledger) -> None:
    a, b = ALICE.hey_there(T0), ALICE.newspaper(T0 + 1)
    ledger.append(a)
    assert ledger.append_many([a, b]) == [False, True]


def test_replay_verifies_and_keeps_append_order(ledger: Ledger) -> None:
    events = [ALICE.newspaper(T0 + i) for i in (5, 1, 3)]
    for event in events:
        ledger.append(event)
    assert [e.id for e in ledger.replay()] == [e.id for e in events]


def test_prune_keeps_pinned_and_recent_and_tombstones_the_rest(ledger: Ledger) -> None:
    old = [ALICE.newspaper(T0 + i) for i in range(3)]
    keep = ALICE.hey_there(T0 - MINUTE)
    recent = ALICE.newspaper(T0 + 10 * MINUTE)
    ledger.append_many([*old, keep, recent])
    dropped = ledger.prune(cutoff_ms=T0 + MINUTE, keep={keep.id})
    assert dropped == 3
    assert {e.id for e in ledger.replay()} == {keep.id, recent.id}
    assert ledger.tombstone_count() == 3
    with pytest.raises(Replayed):
        ledger.append(old[0])
    with pytest.raises(Replayed):
        ledger.admit(old[1])


def test_tombstones_are_forgotten_after_their_own_cutoff(ledger: Ledger) -> None:
    event = ALICE.newspaper(T0)
    ledger.append(event)
    ledger.prune(cutoff_ms=T0 + 1)
    assert ledger.tombstone_count() == 1
    ledger.prune(cutoff_ms=T0 + 2, tombstone_cutoff_ms=T0 + 1)
    assert ledger.tombstone_count() == 0


def test_sqlite_ledger_uses_wal_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    first = SqliteLedger(path)
    event = ALICE.hey_there(T0)
    first.append(event)
    first.prune(cutoff_ms=T0 + 1)
    first.close()
    assert (tmp_path / "ledger.sqlite3").exists()
    import sqlite3

    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    again = SqliteLedger(path)
    with pytest.raises(Replayed):  # tombstones persist too
        again.append(event)
    again.close()


def test_unopenable_ledger_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite3").mkdir()
    with pytest.raises(StorageError):
        SqliteLedger(tmp_path / "dir.sqlite3")


WRITER = textwrap.dedent(
    """
    import sys
    from hereabouts.ledger import SqliteLedger
    from tests.signers import Peer, T0

    ledger = SqliteLedger(sys.argv[1])
    peer = Peer("writer", seed=5)
    n = 0
    while True:
        batch = [peer.newspaper(T0 + n + i) for i in range(10)]
        ledger.append_many(batch)
        n += 10
        print(n, flush=True)  # everything up to n is committed
    """
)


def test_committed_events_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert proc.stdout is not None
        committed = 0
        for line in proc.stdout:
            committed = int(line)
            if committed >= 200:
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    ledger = SqliteLedger(path)
    try:
        assert len(ledger) >= committed
        stored = {e.at_ms for e in ledger.replay()}
        assert {T0 + i for i in range(committed)} <= stored
    finally:
        ledger.close()


def test_events_are_read_back_by_id(ledger: Ledger) -> None:
    event = ALICE.hey_there(T0)
    ledger.append(event)
    assert ledger.get(event.id) == event.raw
    assert ledger.get("00" * 32) is None


def test_forgetting_a_key_deletes_its_events_only(ledger: Ledger) -> None:
    bob = Peer("bob", seed=2)
    ledger.append_many([ALICE.hey_there(T0), ALICE.newspaper(T0 + 1), bob.hey_there(T0)])
    assert ledger.forget(ALICE.did) == 2
    assert len(ledger) == 1 and ledger.forget(ALICE.did) == 0
    assert ledger.append(ALICE.hey_there(T0)) is True  # no tombstone: it may come back
