"""presence@2 documents: interoperable signing, and every reason to refuse one."""

from __future__ import annotations

import base64
import copy
import json
from datetime import timedelta
from typing import Any

import nacl.signing
import pytest

from hereabouts.advert import (
    MAX_DOCUMENT_BYTES,
    check_presence,
    decode_presence,
    encode_presence,
    sign_presence,
    verify_presence,
)
from hereabouts.advert.errors import (
    NotSignable,
    PresenceBadDID,
    PresenceBadEndpoint,
    PresenceBadLifetime,
    PresenceBadProof,
    PresenceBadRelay,
    PresenceBadSignature,
    PresenceExpired,
    PresenceFromTheFuture,
    PresenceIdMismatch,
    PresenceMalformed,
    PresenceOversize,
    PresenceRejected,
)
from hereabouts.advert.merkle import ConsistencyProof, MerkleTree, format_root
from hereabouts.errors import HereaboutsError, RemoteError
from hereabouts.identity import Identity, did_from_public_key
from tests.advert.conftest import ROOT, SEED, T0, independent_sign

NOW = T0 + timedelta(seconds=60)


def seed_shape(did: str) -> dict[str, Any]:
    """The seed document's example, with a real DID and root."""
    return {
        "did": did,
        "endpoints": {
            "mcp": "https://alice.example.net:7733",
            "presence": "https://alice.example.net/.well-known/hn/presence",
        },
        "relays": [{"host": "did:hn:relay123", "url": "https://relay.hn.net"}],
        "expires_at": "2025-01-01T12:00:00Z",
        "issued_at": "2025-01-01T11:50:00Z",
        "merkle_root": ROOT,
        "ttl_seconds": 600,
    }


def test_independent_signature_verifies_and_is_reproduced() -> None:
    key = nacl.signing.SigningKey(SEED)
    did = did_from_public_key(bytes(key.verify_key))
    fields = seed_shape(did)
    fields["relays"][0]["expires_at"] = "2025-01-01T12:10:00Z"
    theirs = independent_sign(fields, SEED, did)
    verify_presence(theirs, now=NOW)
    ours = sign_presence(dict(fields), Identity.from_seed(SEED))
    assert ours["signature"] == theirs["signature"]
    assert ours == theirs
    assert encode_presence(ours) == encode_presence(theirs)


def test_seed_example_shape_round_trips() -> None:
    identity = Identity.from_seed(SEED)
    doc = sign_presence(seed_shape(identity.did), identity)
    again = decode_presence(encode_presence(doc))
    assert again == doc
    verify_presence(again, now=NOW)
    info = check_presence(again, now=NOW)
    assert info.endpoints["presence"].endswith("/.well-known/hn/presence")
    assert info.relays[0].host == "did:hn:relay123" and info.relays[0].expires_at is None
    assert info.ttl_seconds == 600


def test_other_did_method_needs_the_key() -> None:
    key = nacl.signing.SigningKey(SEED)
    doc = independent_sign(seed_shape("did:hn:alice"), SEED, "did:hn:alice")
    with pytest.raises(PresenceBadDID):
        verify_presence(doc, now=NOW)
    verify_presence(doc, now=NOW, public_key=bytes(key.verify_key))
    other = nacl.signing.SigningKey(bytes(32)).verify_key
    with pytest.raises(PresenceBadSignature):
        verify_presence(doc, now=NOW, public_key=bytes(other))


def test_supplied_key_must_match_did_key(make_doc: Any) -> None:
    other = Identity.from_seed(bytes(32))
    with pytest.raises(PresenceBadDID):
        verify_presence(make_doc(), now=NOW, public_key=other.public_key)


def test_optional_fields_are_left_out(make_doc: Any) -> None:
    doc = make_doc()
    assert set(doc) == {"id", "did", "endpoints", "merkle_root", "issued_at", "expires_at",
                        "signature"}
    verify_presence(doc, now=NOW)


def test_errors_are_typed_remote_errors() -> None:
    for cls in (PresenceBadSignature, PresenceExpired, PresenceOversize, PresenceBadRelay):
        assert issubclass(cls, RemoteError) and issubclass(cls, HereaboutsError)
    slugs = [c.reason for c in PresenceRejected.__subclasses__()]
    assert len(slugs) == len(set(slugs))


# --- every reason to refuse ---------------------------------------------------------------


def resign(doc: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``doc`` with fields changed and a valid signature over them (no project checks)."""
    body = {k: v for k, v in doc.items() if k not in ("id", "signature")}
    body.update(changes)
    body = {k: v for k, v in body.items() if v is not None}
    return independent_sign(body, SEED, doc["did"])


def test_bad_signature(make_doc: Any) -> None:
    doc = make_doc()
    raw = bytearray(base64.b64decode(doc["signature"]))
    raw[0] ^= 1
    with pytest.raises(PresenceBadSignature):
        verify_presence({**doc, "signature": base64.b64encode(raw).decode()}, now=NOW)
    with pytest.raises(PresenceBadSignature):
        verify_presence({**doc, "signature": "not base64!"}, now=NOW)
    with pytest.raises(PresenceBadSignature):
        verify_presence({**doc, "signature": base64.b64encode(b"short").decode()}, now=NOW)


def test_signed_by_another_key(make_doc: Any) -> None:
    doc = make_doc()
    other = Identity.from_seed(bytes(32))
    forged = {**doc, "signature": base64.b64encode(other.sign(b"x" * 10)).decode()}
    with pytest.raises(PresenceBadSignature):
        verify_presence(forged, now=NOW)


def test_id_mismatch(make_doc: Any) -> None:
    doc = make_doc()
    with pytest.raises(PresenceIdMismatch):
        verify_presence({**doc, "id": doc["id"].replace("11:50:00", "11:51:00")}, now=NOW)
    other = Identity.from_seed(bytes(32))
    with pytest.raises(PresenceIdMismatch):
        verify_presence({**doc, "id": f"presence:{other.did}:{doc['issued_at']}"}, now=NOW)


def test_expired(make_doc: Any) -> None:
    doc = make_doc()
    verify_presence(doc, now=T0 + timedelta(seconds=599))
    with pytest.raises(PresenceExpired):
        verify_presence(doc, now=T0 + timedelta(seconds=600))


def test_from_the_future(make_doc: Any) -> None:
    doc = make_doc()
    verify_presence(doc, now=T0 - timedelta(seconds=30))  # within the skew
    with pytest.raises(PresenceFromTheFuture):
        verify_presence(doc, now=T0 - timedelta(seconds=31))


def test_expires_before_issued(make_doc: Any) -> None:
    doc = make_doc()
    with pytest.raises(PresenceBadLifetime):
        verify_presence(resign(doc, expires_at="2025-01-01T11:49:00Z"), now=NOW)
    with pytest.raises(PresenceBadLifetime):
        verify_presence(resign(doc, expires_at=doc["issued_at"]), now=NOW)
    with pytest.raises(PresenceBadLifetime):
        verify_presence(resign(doc, expires_at="2025-02-01T11:50:00Z"), now=NOW)


@pytest.mark.parametrize(
    "changes",
    [
        {"issued_at": "2025-01-01 11:50:00Z"},
        {"issued_at": "2025-01-01T11:50:00.5Z"},
        {"expires_at": "2025-01-01T12:00:00+00:00"},
        {"issued_at": "２０２５-01-01T11:50:00Z"},  # digits, but not ASCII ones
        {"expires_at": "2025-01-01T12:00:0٠Z"},
        {"merkle_root": "sha256:XYZ"},
        {"merkle_root": None},
        {"endpoints": ["https://a.example"]},
        {"ttl_seconds": 0},
        {"ttl_seconds": "600"},
        {"ttl_seconds": True},
        {"extra": "field"},
        {"did": 42},
    ],
)
def test_malformed_fields(make_doc: Any, changes: dict[str, Any]) -> None:
    doc = make_doc()
    body = {k: v for k, v in doc.items() if k not in ("id", "signature")}
    body.update(changes)
    body = {k: v for k, v in body.items() if v is not None}
    forged = {**body, "id": doc["id"], "signature": doc["signature"]}
    with pytest.raises((PresenceMalformed, PresenceBadDID)):
        verify_presence(forged, now=NOW)


def test_not_an_object() -> None:
    with pytest.raises(PresenceMalformed):
        verify_presence([1, 2], now=NOW)  # type: ignore[arg-type]
    with pytest.raises(PresenceMalformed):
        decode_presence(b'{"a": 1, "a": 2}')
    with pytest.raises(PresenceMalformed):
        decode_presence(b'{"a": NaN}')
    with pytest.raises(PresenceMalformed):
        decode_presence(b"\xff")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://node.example.org/",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "https://",
        "https://user:pw@node.example.org/",
        "https://node.example.org:99999/",
        "https://node.example.org/ space",
        "node.example.org",
    ],
)
def test_non_http_endpoint(make_doc: Any, url: str) -> None:
    with pytest.raises(PresenceBadEndpoint):
        verify_presence(resign(make_doc(), endpoints={"mcp": url}), now=NOW)


def test_bad_endpoint_name(make_doc: Any) -> None:
    with pytest.raises(PresenceBadEndpoint):
        verify_presence(resign(make_doc(), endpoints={"../x": "https://a.example"}), now=NOW)


@pytest.mark.parametrize(
    "relays",
    [
        {"host": "did:hn:r", "url": "https://r.example"},
        ["did:hn:r"],
        [{"url": "https://r.example"}],
        [{"host": "not-a-did", "url": "https://r.example"}],
        [{"host": "did:hn:r", "url": "gopher://r.example"}],
        [{"host": "did:hn:r", "url": "https://r.example", "expires_at": "soon"}],
        [{"host": "did:hn:r", "url": "https://r.example", "expires_at": "2025-01-01T11:00:00Z"}],
        [{"host": "did:hn:r", "url": "https://r.example", "weight": 3}],
        [{"host": "did:hn:r", "url": "https://r.example"}] * 2,
    ],
)
def test_malformed_relay(make_doc: Any, relays: Any) -> None:
    with pytest.raises(PresenceBadRelay):
        verify_presence(resign(make_doc(), relays=relays), now=NOW)


def test_oversize(make_doc: Any) -> None:
    doc = make_doc()
    big = resign(doc, endpoints={f"e{i}": "https://a.example/" + "x" * 2000 for i in range(9)})
    assert len(encode_presence(big)) > MAX_DOCUMENT_BYTES
    with pytest.raises(PresenceOversize):
        verify_presence(big, now=NOW)
    with pytest.raises(PresenceOversize):
        decode_presence(b" " * (MAX_DOCUMENT_BYTES + 1))


def test_proof_is_checked(make_doc: Any) -> None:
    tree = MerkleTree.from_leaves([b"%d" % i for i in range(10)])
    proof = ConsistencyProof.between(tree, 6)
    doc = make_doc(merkle_root=format_root(tree.root()), proof=proof)
    verify_presence(doc, now=NOW)
    assert check_presence(doc, now=NOW).proof == proof
    with pytest.raises(PresenceBadProof):  # the proof does not end at this root
        verify_presence(resign(doc, merkle_root=ROOT), now=NOW)
    with pytest.raises(PresenceBadProof):
        verify_presence(resign(doc, proof="!!!"), now=NOW)
    with pytest.raises(PresenceBadProof):
        verify_presence(resign(doc, proof=base64.b64encode(b"\x01" * 20).decode()), now=NOW)


SIGNED_FIELDS_TAMPERS: list[tuple[str, Any]] = [
    ("did", did_from_public_key(bytes(32 * [7]))),
    ("endpoints", {"mcp": "https://evil.example"}),
    ("endpoints", {"mcp": "https://node.example.org:7733", "more": "https://evil.example"}),
    ("merkle_root", "sha256:" + "0" * 64),
    ("expires_at", "2025-01-01T12:00:01Z"),
    ("issued_at", "2025-01-01T11:49:59Z"),
    ("ttl_seconds", 601),
    ("relays", [{"host": "did:hn:evil", "url": "https://evil.example"}]),
    ("relays", [{"host": "did:hn:relay", "url": "https://relay.example",
                 "expires_at": "2025-01-01T12:10:01Z"}]),
    ("relays", None),
    ("ttl_seconds", None),
]


@pytest.mark.parametrize(("field", "value"), SIGNED_FIELDS_TAMPERS)
def test_tampering_any_signed_field_is_rejected(
    make_doc: Any, field: str, value: Any
) -> None:
    doc = make_doc(
        relays=[{"host": "did:hn:relay", "url": "https://relay.example",
                 "expires_at": "2025-01-01T12:10:00Z"}],
        ttl_seconds=600,
    )
    verify_presence(doc, now=NOW)
    tampered = copy.deepcopy(doc)
    if value is None:
        del tampered[field]
    else:
        tampered[field] = value
    if field in ("did", "issued_at"):  # keep id consistent so only the signature can object
        tampered["id"] = f"presence:{tampered['did']}:{tampered['issued_at']}"
    with pytest.raises(PresenceRejected) as caught:
        verify_presence(tampered, now=NOW)
    assert isinstance(caught.value, PresenceBadSignature)


def test_sign_refuses_what_would_not_verify(identity: Identity, make_doc: Any) -> None:
    doc = make_doc()
    body = {k: v for k, v in doc.items() if k not in ("id", "signature")}
    with pytest.raises(NotSignable):
        sign_presence({**body, "endpoints": {"x": "ftp://a"}}, identity)
    with pytest.raises(NotSignable):
        sign_presence({**body, "did": "did:hn:someone"}, identity)
    without_did = {k: v for k, v in body.items() if k != "did"}
    assert sign_presence(without_did, identity) == doc


# --- numbers as RFC 8785 reads them ------------------------------------------------------


@pytest.mark.parametrize("spelling", ["600.0", "6e2", "600.000", "6.0E2"])
def test_integral_ttl_spelled_as_a_float_verifies(spelling: str) -> None:
    """RFC 8785 numbers are doubles: 600.0 is 600, and so are its signed bytes."""
    key = nacl.signing.SigningKey(SEED)
    did = did_from_public_key(bytes(key.verify_key))
    fields = seed_shape(did)
    as_int = independent_sign(fields, SEED, did)
    as_float = independent_sign({**fields, "ttl_seconds": 600.0}, SEED, did)
    assert as_float["signature"] == as_int["signature"]  # a JavaScript signer cannot differ
    # The document as a signer that keeps the float's spelling would send it.
    text = json.dumps(as_int).replace('"ttl_seconds": 600', f'"ttl_seconds": {spelling}')
    assert spelling in text
    received = decode_presence(text.encode())
    assert received["ttl_seconds"] == 600 and isinstance(received["ttl_seconds"], float)
    info = check_presence(received, now=NOW)
    assert info.ttl_seconds == 600 and type(info.ttl_seconds) is int
    assert encode_presence(received) == encode_presence(as_int)  # one canonical form


def test_signing_an_integral_float_writes_the_integer(identity: Identity) -> None:
    fields = seed_shape(identity.did)
    doc = sign_presence({**fields, "ttl_seconds": 600.0}, identity)
    assert doc == sign_presence(fields, identity)
    assert type(doc["ttl_seconds"]) is int


@pytest.mark.parametrize("ttl", [600.5, 0.0, -600.0, 604801.0, 1e300])
def test_ttl_that_is_no_whole_number_in_range_is_refused(ttl: float) -> None:
    key = nacl.signing.SigningKey(SEED)
    did = did_from_public_key(bytes(key.verify_key))
    doc = independent_sign({**seed_shape(did), "ttl_seconds": ttl}, SEED, did)
    with pytest.raises(PresenceMalformed) as caught:
        verify_presence(doc, now=NOW)
    assert "whole number of seconds" in str(caught.value)
    with pytest.raises(NotSignable, match="whole number of seconds"):
        sign_presence({**seed_shape(did), "ttl_seconds": ttl}, Identity.from_seed(SEED))
