"""The keyring: proven keys survive restarts on disk; rotation statements are checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from hereabouts.config import TrustConfig
from hereabouts.core.keys import KeyBook
from hereabouts.identity import Identity
from hereabouts.peers.keyring import BadRotation, Keyring, check_rotation, make_rotation
from tests.signers import T0, Peer

SETTLE = 10_000


def book() -> KeyBook:
    return KeyBook(TrustConfig(settle_s=SETTLE / 1000), silence_ms=60_000, max_howdys=10)


def test_proven_keys_and_their_names_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "keyring.sqlite3"
    alice, drifter = Peer("alice", seed=1), Peer("drifter", seed=2)
    first = book()
    first.heard(alice.did, "alice", T0)
    first.heard(drifter.did, "drifter", T0)
    first.heard(alice.did, "alice", T0 + SETTLE)  # proven; the drifter is not
    keyring = Keyring(path)
    keyring.save(*first.dirty())
    keyring.close()

    again = Keyring(path)
    records = again.load()
    assert [r.did for r in records] == [alice.did]  # unproven keys never reach the disk
    second = book()
    second.load(records, T0 + SETTLE + 1)
    assert second.proven(alice.did)
    assert second.label(alice.did).status == "held"
    assert second.label(alice.did).text == "alice"
    assert not second.known(drifter.did)
    again.save([], [alice.did])
    assert len(again) == 0
    again.close()


def test_a_rotation_statement_must_be_signed_by_the_old_key_for_this_change() -> None:
    old, new = Peer("alice", seed=1), Peer("alice", seed=2)
    rotation = make_rotation(old.identity, name="alice", new_did=new.did, at_ms=T0)
    check_rotation("alice", new.did, rotation)
    with pytest.raises(BadRotation):
        check_rotation("mallory", new.did, rotation)  # another name
    with pytest.raises(BadRotation):
        check_rotation("alice", Identity.generate().did, rotation)  # another new key
    other = make_rotation(new.identity, name="alice", new_did=new.did, at_ms=T0)
    with pytest.raises(BadRotation):  # signed by a key that is not the one it names
        check_rotation(
            "alice", new.did, type(other)(old_did=old.did, at_ms=T0, sig=other.sig)
        )
