"""TOFU keyring: first key wins a name; only the pinned key can hand it over."""

from __future__ import annotations

from pathlib import Path

import pytest

from hereabouts.errors import TofuViolation
from hereabouts.identity import Identity
from hereabouts.peers.keyring import Keyring, make_rotation
from tests.signers import T0, Peer


def test_first_key_seen_for_a_name_is_pinned() -> None:
    keyring = Keyring()
    alice = Peer("alice", seed=1)
    keyring.check(alice.hey_there(T0))
    assert keyring.pinned("alice") == alice.did
    keyring.check(alice.newspaper(T0 + 1))  # same key: fine


def test_another_key_under_a_pinned_name_is_refused() -> None:
    keyring = Keyring()
    keyring.check(Peer("alice", seed=1).hey_there(T0))
    impostor = Peer("alice", seed=66)
    with pytest.raises(TofuViolation):
        keyring.check(impostor.hey_there(T0 + 1))
    with pytest.raises(TofuViolation):
        keyring.check(impostor.newspaper(T0 + 1))
    assert keyring.pinned("alice") == Peer("alice", seed=1).did


def test_rotation_signed_by_the_pinned_key_moves_the_pin() -> None:
    keyring = Keyring()
    old = Peer("alice", seed=1)
    keyring.check(old.hey_there(T0))
    new = Peer("alice", seed=2)
    rotation = make_rotation(old.identity, name="alice", new_did=new.did, at_ms=T0 + 5)
    keyring.check(new.hey_there(T0 + 10, rotation=rotation))
    assert keyring.pinned("alice") == new.did
    with pytest.raises(TofuViolation):  # the old key has given the name away
        keyring.check(old.newspaper(T0 + 20))


@pytest.mark.parametrize("flaw", ["wrong_signer", "other_new_key", "other_name", "garbage_sig"])
def test_rotation_not_signed_by_the_pinned_key_for_this_change_is_refused(flaw: str) -> None:
    keyring = Keyring()
    old = Peer("alice", seed=1)
    keyring.check(old.hey_there(T0))
    new = Peer("alice", seed=2)
    signer, name, new_did = old.identity, "alice", new.did
    if flaw == "wrong_signer":
        signer = Identity.from_seed(bytes([3]) * 32)
    elif flaw == "other_new_key":
        new_did = Peer("x", seed=4).did
    elif flaw == "other_name":
        name = "bob"
    rotation = make_rotation(signer, name=name, new_did=new_did, at_ms=T0 + 5)
    if flaw == "garbage_sig":
        rotation = type(rotation)(old_did=rotation.old_did, at_ms=rotation.at_ms, sig="!!")
    with pytest.raises(TofuViolation):
        keyring.check(new.hey_there(T0 + 10, rotation=rotation))
    assert keyring.pinned("alice") == old.did


def test_seen_cannot_name_somebody_elses_key() -> None:
    keyring = Keyring()
    alice, bob = Peer("alice", seed=1), Peer("bob", seed=2)
    keyring.check(alice.hey_there(T0))
    liar_subject = Peer("alice", seed=66)  # claims to be alice
    with pytest.raises(TofuViolation):
        keyring.check(bob.seen(liar_subject, T0))
    keyring.check(bob.seen(alice, T0))
    assert keyring.pinned("alice") == alice.did


def test_pins_persist_in_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "keyring.sqlite3"
    alice = Peer("alice", seed=1)
    keyring = Keyring(path)
    keyring.check(alice.hey_there(T0))
    keyring.close()
    reopened = Keyring(path)
    assert reopened.pinned("alice") == alice.did
    with pytest.raises(TofuViolation):
        reopened.check(Peer("alice", seed=66).hey_there(T0))
    reopened.close()
