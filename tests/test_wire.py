"""Sealing and unsealing: every refusal has its own type, and no byte can change unnoticed."""

from __future__ import annotations

import base64
import json

import msgspec
import pytest

from hereabouts.config import WireLimits
from hereabouts.errors import (
    BadSignature,
    DuplicateKey,
    EmitterMismatch,
    EventRejected,
    EventTooDeep,
    FromTheFuture,
    HereaboutsError,
    InvalidDID,
    MalformedEvent,
    MissingSignature,
    NotCanonical,
    NotJSON,
    Oversize,
    RemoteError,
    UnknownKind,
)
from hereabouts.events import HeyThere, Howdy, Newspaper, SignedEvent
from hereabouts.identity import Identity
from hereabouts.wire import SIGNING_TAG, InvalidOutgoingEvent, event_id, seal, unseal
from tests.signers import SECOND, T0, Peer

ALICE = Peer("alice", seed=1)
MALLORY = Peer("mallory", seed=66)


def sealed_hey_there(peer: Peer = ALICE) -> bytes:
    return peer.sealed(peer.hey_there_event(T0, endpoints={"mesh": "http://127.0.0.1:9000"}))


def reseal(
    envelope: dict[str, object],
    body: dict[str, object],
    identity: Identity,
    *,
    sig: str | None = None,
) -> bytes:
    """Build an envelope by hand: ``body`` as canonical JSON, signed by ``identity`` unless
    ``sig`` is given; other envelope fields from ``envelope``."""
    body_bytes = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    envelope = dict(envelope)
    envelope["body"] = "__BODY__"
    if sig is None:
        sig = base64.b64encode(identity.sign(SIGNING_TAG + body_bytes)).decode()
    envelope["sig"] = sig
    text = json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()
    return text.replace(b'"__BODY__"', body_bytes)


def parts(data: bytes) -> tuple[dict[str, object], dict[str, object]]:
    envelope = json.loads(data)
    return envelope, envelope.pop("body")


def test_round_trip_keeps_every_field_and_the_exact_bytes() -> None:
    data = sealed_hey_there()
    signed = unseal(data, now_ms=T0)
    assert isinstance(signed, SignedEvent)
    assert signed.raw == data
    assert signed.kind == "hey_there"
    event = signed.event
    assert isinstance(event, HeyThere)
    assert (event.name, event.did, event.boot_id, event.at_ms) == ("alice", ALICE.did, "boot-1", T0)
    assert event.endpoints == {"mesh": "http://127.0.0.1:9000"}


def test_event_id_is_the_hash_of_the_signed_body() -> None:
    data = sealed_hey_there()
    body = bytes(msgspec.json.decode(data, type=dict[str, msgspec.Raw])["body"])
    assert unseal(data, now_ms=T0).id == event_id(body)
    # Same content signed twice gives the same id (Ed25519 is deterministic) ...
    assert unseal(sealed_hey_there(), now_ms=T0).id == unseal(data, now_ms=T0).id
    # ... and any other content another id.
    other = ALICE.sealed(ALICE.hey_there_event(T0 + 1))
    assert unseal(other, now_ms=T0).id != unseal(data, now_ms=T0).id


def test_howdy_neighbours_are_signed_hey_theres_that_unseal_on_their_own() -> None:
    bob = Peer("bob", seed=2)
    neighbour = sealed_hey_there(bob)
    newcomer_hello = unseal(sealed_hey_there(), now_ms=T0)
    howdy = Peer("carol", seed=3).howdy(ALICE, newcomer_hello.id, T0, [neighbour])
    assert isinstance(howdy.event, Howdy)
    (inner,) = howdy.event.neighbours
    assert bytes(inner.hey_there) == neighbour and inner.latest_event is None
    assert unseal(bytes(inner.hey_there), now_ms=T0).did == bob.did


# --- one test per refusal ---------------------------------------------------------------------


def test_oversize_is_refused_before_parsing() -> None:
    with pytest.raises(Oversize):
        unseal(b"x" * (16 * 1024 + 1))
    small = WireLimits(max_event_bytes=100)
    with pytest.raises(Oversize):
        unseal(sealed_hey_there(), limits=small)


@pytest.mark.parametrize("data", [b"", b"{", b"not json", b"\xff\xfe", b'{"body": }'])
def test_not_json(data: bytes) -> None:
    with pytest.raises(NotJSON):
        unseal(data)


@pytest.mark.parametrize(
    "data",
    [
        b"[]",
        b"42",
        b'{"signer": "did:key:z6Mk", "sig": "AAAA"}',
        b'{"body": {}, "sig": "AAAA"}',
        b'{"body": {}, "signer": 7, "sig": "AAAA"}',
        b'{"body": {}, "signer": "x", "sig": "AAAA", "extra": 1}',
    ],
)
def test_wrong_envelope_shape_is_malformed(data: bytes) -> None:
    with pytest.raises(MalformedEvent):
        unseal(data)


def test_wrong_body_shape_or_types_is_malformed() -> None:
    envelope, body = parts(sealed_hey_there())
    for broken in (
        {**body, "at_ms": "yesterday"},
        {**body, "name": ""},
        {**body, "name": "x" * 65},
        {**body, "endpoints": ["http://a"]},
        {k: v for k, v in body.items() if k != "boot_id"},
        {**body, "at_ms": -1},
    ):
        with pytest.raises(MalformedEvent):
            unseal(reseal(envelope, broken, ALICE.identity), now_ms=T0)


def test_unknown_kind() -> None:
    envelope, body = parts(sealed_hey_there())
    with pytest.raises(UnknownKind, match="teleport"):
        unseal(reseal(envelope, {**body, "kind": "teleport"}, ALICE.identity), now_ms=T0)


def test_missing_signature() -> None:
    envelope, body = parts(sealed_hey_there())
    data = reseal(envelope, body, ALICE.identity, sig="")
    with pytest.raises(MissingSignature):
        unseal(data, now_ms=T0)
    without = {k: v for k, v in envelope.items() if k != "sig"}
    raw = json.dumps({**without, "body": body}).encode()
    with pytest.raises(MissingSignature):
        unseal(raw, now_ms=T0)


def test_bad_signature() -> None:
    envelope, body = parts(sealed_hey_there())
    zeros = base64.b64encode(bytes(64)).decode()
    with pytest.raises(BadSignature):
        unseal(reseal(envelope, body, ALICE.identity, sig=zeros), now_ms=T0)
    with pytest.raises(BadSignature):
        unseal(reseal(envelope, body, ALICE.identity, sig="%%%"), now_ms=T0)
    with pytest.raises(BadSignature, match="64 bytes"):
        unseal(reseal(envelope, body, ALICE.identity, sig="AAAA"), now_ms=T0)


def test_signature_by_another_key_under_the_emitters_name_is_bad() -> None:
    envelope, body = parts(sealed_hey_there())
    # Mallory signs Alice's event but leaves Alice as the signer.
    with pytest.raises(BadSignature):
        unseal(reseal(envelope, body, MALLORY.identity), now_ms=T0)


def test_emitter_did_not_matching_the_signing_key() -> None:
    envelope, body = parts(sealed_hey_there())
    # Mallory re-signs Alice's event with her own key and says so: the emitter is not her.
    with pytest.raises(EmitterMismatch):
        unseal(reseal(envelope | {"signer": MALLORY.did}, body, MALLORY.identity), now_ms=T0)


def test_signer_that_is_not_a_did_key() -> None:
    envelope, body = parts(sealed_hey_there())
    web = "did:web:evil.example"
    data = reseal(envelope | {"signer": web}, body | {"did": web}, ALICE.identity)
    with pytest.raises(InvalidDID):
        unseal(data, now_ms=T0)


def test_timestamp_too_far_in_the_future() -> None:
    ahead = T0 + 31 * SECOND
    data = ALICE.sealed(Newspaper(name="alice", did=ALICE.did, boot_id="b", at_ms=ahead))
    with pytest.raises(FromTheFuture):
        unseal(data, now_ms=T0)
    assert unseal(data, now_ms=T0 + SECOND).at_ms == T0 + 31 * SECOND  # within 30 s skew
    with pytest.raises(FromTheFuture):
        unseal(data, now_ms=T0 + SECOND, limits=WireLimits(max_future_skew_s=5))
    assert unseal(data, now_ms=T0, check_clock=False).kind == "newspaper"


def test_every_refusal_is_a_remote_hereabouts_error() -> None:
    refusals = (Oversize, NotJSON, MalformedEvent, UnknownKind, MissingSignature, BadSignature,
                EmitterMismatch, FromTheFuture)
    for cls in refusals:
        assert issubclass(cls, EventRejected)
        assert issubclass(cls, RemoteError)
    assert issubclass(InvalidDID, RemoteError)


def test_a_tampered_byte_anywhere_is_rejected() -> None:
    data = sealed_hey_there()
    unseal(data, now_ms=T0)
    for position in range(len(data)):
        for flip in (0x01, 0x20, 0x80):
            tampered = bytearray(data)
            tampered[position] ^= flip
            with pytest.raises(HereaboutsError):
                unseal(bytes(tampered), now_ms=T0)


# --- sealing refuses what receivers would refuse ----------------------------------------------


def test_seal_refuses_an_event_naming_another_emitter() -> None:
    event = ALICE.hey_there_event(T0)
    with pytest.raises(InvalidOutgoingEvent):
        seal(event, MALLORY.identity)


def test_seal_refuses_an_invalid_event() -> None:
    event = HeyThere(name="", did=ALICE.did, boot_id="b", at_ms=T0, started_at_ms=T0)
    with pytest.raises(InvalidOutgoingEvent):
        seal(event, ALICE.identity)


def test_seal_refuses_an_event_receivers_would_find_too_large() -> None:
    endpoints = {f"e{i}": "http://x/" + "a" * 500 for i in range(8)}
    event = ALICE.hey_there_event(T0, endpoints=endpoints)
    with pytest.raises(InvalidOutgoingEvent, match="refuse more than"):
        seal(event, ALICE.identity, limits=WireLimits(max_event_bytes=2048))


# --- strict events: one reading per signature -------------------------------------------------


def signed_text(body_text: str, identity: Identity = ALICE.identity) -> bytes:
    """A sealed event whose body is exactly ``body_text``, correctly signed."""
    sig = base64.b64encode(identity.sign(SIGNING_TAG + body_text.encode())).decode()
    return f'{{"body":{body_text},"sig":"{sig}","signer":"{identity.did}"}}'.encode()


def canonical_body(**changes: object) -> dict[str, object]:
    _, body = parts(ALICE.sealed(ALICE.newspaper(T0).event))
    body.update(changes)
    return body


def test_sealed_events_are_rfc8785_canonical() -> None:
    import rfc8785

    for data in (sealed_hey_there(), ALICE.newspaper(T0).raw, ALICE.chau(T0).raw):
        assert rfc8785.dumps(json.loads(data)) == data


def test_a_duplicate_key_is_refused_even_with_a_valid_signature() -> None:
    body = json.dumps(canonical_body(), separators=(",", ":"), sort_keys=True)
    doubled = body.replace('"name":"alice"', '"name":"mallory","name":"alice"')
    with pytest.raises(DuplicateKey, match="'name'"):
        unseal(signed_text(doubled), now_ms=T0)
    two_kinds = body.replace('"kind":"newspaper"', '"kind":"chau","kind":"newspaper"')
    with pytest.raises(MalformedEvent):
        unseal(signed_text(two_kinds), now_ms=T0)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda text: text.replace(",", ", "),  # white space
        lambda text: text.replace('{"at_ms"', '{ "at_ms"'),
        lambda text: text.replace('"session":0,', "")[:-1] + ',"session":0}',  # unsorted
        lambda text: text.replace(',"session":0', ""),  # a field left out
    ],
)
def test_non_canonical_bodies_are_refused(mangle: object) -> None:
    body = json.dumps(canonical_body(), separators=(",", ":"), sort_keys=True)
    text = mangle(body)  # type: ignore[operator]
    assert text != body
    with pytest.raises(NotCanonical):
        unseal(signed_text(text), now_ms=T0)
    # ... but read back from a ledger written before the rule (strict=False).
    if '"session"' in text and ", " not in text and "{ " not in text:
        unseal(signed_text(text), now_ms=T0, strict=False)


def test_unknown_fields_and_unbounded_integers_are_refused() -> None:
    with pytest.raises(MalformedEvent, match="unknown field"):
        unseal(reseal(*parts(ALICE.newspaper(T0).raw)[:1], canonical_body(extra=1),
                      ALICE.identity), now_ms=T0)
    status = {"next_in_s": 0, "online_peers": 2**40, "uptime_s": 0}
    with pytest.raises(MalformedEvent):
        unseal(reseal(*parts(ALICE.newspaper(T0).raw)[:1], canonical_body(status=status),
                      ALICE.identity), now_ms=T0)


def test_deep_nesting_is_refused_before_parsing() -> None:
    deep = b'{"body":' + b"[" * 5000 + b"]" * 5000 + b',"sig":"","signer":""}'
    with pytest.raises(EventTooDeep):
        unseal(deep)


@pytest.mark.parametrize(
    "name",
    [
        "ali\u202ece",  # right-to-left override
        "al\u200bice",  # zero-width space
        "alice\u2066",  # isolate
        " alice",  # leading space
        "alice ",
        "a\u00adlice",  # soft hyphen
        "\u3164",  # Hangul filler: looks blank
        "al\\nice",  # an escaped newline
    ],
)
def test_names_that_hide_or_reorder_text_are_refused(name: str) -> None:
    body = json.dumps(canonical_body(), separators=(",", ":"), sort_keys=True)
    text = body.replace('"name":"alice"', f'"name":"{name}"')
    with pytest.raises(MalformedEvent):
        unseal(signed_text(text), now_ms=T0)


def test_printable_names_in_any_script_are_fine() -> None:
    for name in ("Zoë's laptop", "東京-1", "μ-node", "ناصر", "a b"):
        event = Newspaper(name=name, did=ALICE.did, boot_id="b", at_ms=T0)
        assert unseal(seal(event, ALICE.identity), now_ms=T0).event.name == name


def test_endpoint_names_are_plain_lowercase() -> None:
    with pytest.raises(InvalidOutgoingEvent):
        ALICE.sealed(ALICE.hey_there_event(T0, endpoints={"Mesh Ω": "http://x"}))
    with pytest.raises(InvalidOutgoingEvent):
        ALICE.sealed(ALICE.hey_there_event(T0, endpoints={"mesh": "http://x y"}))


def test_the_envelope_is_canonical_too() -> None:
    data = ALICE.newspaper(T0).raw
    envelope = json.loads(data)
    body = json.dumps(envelope["body"], separators=(",", ":"), sort_keys=True)
    sig, signer = envelope["sig"], envelope["signer"]
    for variant in (
        f'{{"body":{body},"signer":"{signer}","sig":"{sig}"}}',  # reordered
        f'{{"body": {body},"sig":"{sig}","signer":"{signer}"}}',  # a space
        f'{{"body":{body},"sig":"{sig}","signer":"{signer}","sig":"{sig}"}}',  # twice
    ):
        with pytest.raises((NotCanonical, MalformedEvent)):
            unseal(variant.encode(), now_ms=T0)
    assert unseal(f'{{"body":{body},"sig":"{sig}","signer":"{signer}"}}'.encode(), now_ms=T0)
