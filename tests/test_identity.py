"""Identities: RFC 8032 vectors, did:key encoding, and the key file's safety rules."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hereabouts.errors import BadSignature, InvalidDID, KeyFileCorrupt, KeyFileInsecure
from hereabouts.identity import (
    Identity,
    b58decode,
    b58encode,
    did_from_public_key,
    key_file_path,
    load_identity,
    load_or_create_identity,
    public_key_from_did,
    verify,
)
from tests.load_vectors import load

RFC8032 = load("rfc8032")["vectors"]
DID_KEY = load("did_key")


@pytest.mark.parametrize("vector", RFC8032, ids=lambda v: v["name"])
def test_rfc8032_vectors(vector: dict[str, str]) -> None:
    identity = Identity.from_seed(bytes.fromhex(vector["seed"]))
    assert identity.public_key.hex() == vector["public_key"]
    signature = identity.sign(bytes.fromhex(vector["message"]))
    assert signature.hex() == vector["signature"]
    verify(identity.did, bytes.fromhex(vector["message"]), signature)


@pytest.mark.parametrize("did", DID_KEY["round_trip"])
def test_w3c_did_key_examples_round_trip(did: str) -> None:
    assert did_from_public_key(public_key_from_did(did)) == did


def test_did_key_matches_published_base58_key() -> None:
    for entry in DID_KEY["public_key_base58"]:
        assert public_key_from_did(entry["did"]) == b58decode(entry["public_key_base58"])


def test_did_key_from_seed() -> None:
    for entry in DID_KEY["from_seed"]:
        identity = Identity.from_seed(bytes.fromhex(entry["seed"]))
        assert identity.did == entry["did"]
        assert base64.urlsafe_b64encode(identity.public_key).rstrip(b"=").decode() == (
            entry["public_key_base64url"]
        )


def test_ed25519_did_key_starts_with_z6mk() -> None:
    assert Identity.generate().did.startswith("did:key:z6Mk")


@given(st.binary(max_size=40))
def test_base58_round_trips(data: bytes) -> None:
    assert b58decode(b58encode(data)) == data


@pytest.mark.parametrize(
    ("did", "why"),
    [
        ("", "not a DID"),
        ("key:z6Mk", "not a DID"),
        ("did:web:example.com", "method 'web'"),
        ("did:key:", "base58btc"),
        ("did:key:m6Mk", "base58btc"),
        ("did:key:z0OIl", "base58btc"),
        # secp256k1-pub (0xe7 0x01) instead of ed25519-pub
        ("did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme", "multicodec"),
        ("did:key:z" + b58encode(b"\xed\x01" + bytes(31)), "31 key bytes"),
        ("did:key:z" + b58encode(b"\xed\x01" + bytes(33)), "33 key bytes"),
        ("did:key:z" + "1" * 200, "longer than"),
    ],
)
def test_bad_dids_raise_invalid_did(did: str, why: str) -> None:
    with pytest.raises(InvalidDID, match=why):
        public_key_from_did(did)


def test_public_key_of_wrong_length_is_refused() -> None:
    with pytest.raises(InvalidDID):
        did_from_public_key(bytes(31))


def test_from_seed_needs_32_bytes() -> None:
    with pytest.raises(ValueError):
        Identity.from_seed(bytes(31))


def test_verify_refuses_a_tampered_message_and_a_short_signature() -> None:
    identity = Identity.generate()
    signature = identity.sign(b"hello")
    with pytest.raises(BadSignature):
        verify(identity.did, b"hellO", signature)
    with pytest.raises(BadSignature):
        verify(identity.did, b"hello", signature[:-1])
    with pytest.raises(BadSignature):
        verify(Identity.generate().did, b"hello", signature)


# --- the key file -------------------------------------------------------------------------------


def test_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first, created = load_or_create_identity(home)
    assert created
    path = key_file_path(home)
    assert path.stat().st_mode & 0o777 == 0o600
    again, created_again = load_or_create_identity(home)
    assert not created_again
    assert again.did == first.did
    assert not [p for p in home.iterdir() if p.name.endswith(".tmp")]


def test_key_file_readable_by_others_is_refused_not_replaced(tmp_path: Path) -> None:
    identity, _ = load_or_create_identity(tmp_path)
    path = key_file_path(tmp_path)
    os.chmod(path, 0o644)
    before = path.read_bytes()
    with pytest.raises(KeyFileInsecure, match="chmod 600"):
        load_or_create_identity(tmp_path)
    assert path.read_bytes() == before
    os.chmod(path, 0o600)
    assert load_identity(path).did == identity.did


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        b"[]",
        b'{"type": "rsa", "seed": "AAAA"}',
        b'{"type": "ed25519-seed", "seed": "not base64!"}',
        b'{"type": "ed25519-seed", "seed": "AAAA"}',
    ],
)
def test_corrupt_key_file_is_refused_not_replaced(tmp_path: Path, content: bytes) -> None:
    path = key_file_path(tmp_path)
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with pytest.raises(KeyFileCorrupt):
        load_or_create_identity(tmp_path)
    assert path.read_bytes() == content


def test_key_file_whose_did_disagrees_with_its_seed_is_corrupt(tmp_path: Path) -> None:
    load_or_create_identity(tmp_path)
    path = key_file_path(tmp_path)
    record = json.loads(path.read_text())
    record["did"] = Identity.generate().did
    path.write_text(json.dumps(record))
    with pytest.raises(KeyFileCorrupt, match="names DID"):
        load_identity(path)


def test_a_signature_has_one_base64_spelling() -> None:
    from hereabouts.errors import BadSignature
    from hereabouts.identity import signature_from_base64

    signature = Identity.generate().sign(b"x")
    text = base64.b64encode(signature).decode()
    assert signature_from_base64(text) == signature
    # The last data character carries 4 unused bits; setting one spells the same bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    twin = text[:85] + alphabet[alphabet.index(text[85]) + 1] + "=="
    assert base64.b64decode(twin) == signature
    with pytest.raises(BadSignature):
        signature_from_base64(twin)
