"""Site events travel in the common signed envelope and are verified for real."""

from __future__ import annotations

import base64
import json

import pytest

from hereabouts.errors import (
    BadSignature,
    EmitterMismatch,
    MalformedEvent,
    RemoteError,
    UnknownKind,
)
from hereabouts.events import Chau
from hereabouts.identity import Identity
from hereabouts.sites.events import SITE_EVENTS, SiteHeartbeat, SiteLeave
from hereabouts.wire import seal, seal_as, unseal, unseal_as

ROOM = "abcdefghijklmnopqrstuvwxyz"


def heartbeat(key: Identity, at_ms: int = 1_700_000_000_000) -> SiteHeartbeat:
    return SiteHeartbeat(did=key.did, room_key=ROOM, epoch=at_ms // 300_000, at_ms=at_ms)


def test_round_trip_and_header() -> None:
    key = Identity.generate()
    sealed = seal_as(SITE_EVENTS, heartbeat(key), key)
    opened = unseal_as(SITE_EVENTS, sealed, now_ms=1_700_000_000_000)
    assert opened.event == heartbeat(key)
    body = json.loads(sealed)["body"]
    assert set(body) == {"kind", "did", "room_key", "epoch", "at_ms"}
    leave = SiteLeave(did=key.did, room_key=ROOM, epoch=1, at_ms=300_000)
    assert unseal_as(SITE_EVENTS, seal_as(SITE_EVENTS, leave, key), now_ms=300_000).event == leave


def test_a_forged_signature_is_refused() -> None:
    key, other = Identity.generate(), Identity.generate()
    envelope = json.loads(seal_as(SITE_EVENTS, heartbeat(key), key))
    envelope["sig"] = base64.b64encode(other.sign(b"x")).decode()
    with pytest.raises(BadSignature):
        unseal_as(SITE_EVENTS, compact(envelope), now_ms=1_700_000_000_000)
    envelope["signer"] = other.did
    with pytest.raises(EmitterMismatch):
        unseal_as(SITE_EVENTS, compact(envelope), now_ms=1_700_000_000_000)


def test_vocabularies_do_not_cross() -> None:
    key = Identity.generate()
    with pytest.raises(UnknownKind):
        unseal(seal_as(SITE_EVENTS, heartbeat(key), key), now_ms=1_700_000_000_000)
    chau = seal(Chau(name="n", did=key.did, boot_id="b", at_ms=1), key)
    with pytest.raises(UnknownKind):
        unseal_as(SITE_EVENTS, chau, now_ms=2)


def test_extra_fields_such_as_a_name_are_refused() -> None:
    key = Identity.generate()
    body = (
        b'{"kind":"site_heartbeat","did":"'
        + key.did.encode()
        + b'","room_key":"'
        + ROOM.encode()
        + b'","epoch":5666666,"at_ms":1700000000000,"name":"alice"}'
    )
    sig = base64.b64encode(key.sign(b"hereabouts/v1/event\n" + body)).decode()
    data = (
        b'{"body":' + body + b',"signer":"' + key.did.encode() + b'","sig":"' + sig.encode() + b'"}'
    )
    with pytest.raises(MalformedEvent):
        unseal_as(SITE_EVENTS, data, now_ms=1_700_000_000_000)


def compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def test_site_envelopes_and_bodies_have_one_spelling() -> None:
    """Found by the fuzzer: {"body":JUNK,…,"body":GOOD} verified as GOOD while the hub
    republished JUNK with it. Now a duplicate key, white space or another order is refused."""
    key = Identity.generate()
    sealed = seal_as(SITE_EVENTS, heartbeat(key), key)
    envelope = json.loads(sealed)
    body = json.dumps(envelope["body"], separators=(",", ":"))
    sig, signer = envelope["sig"], json.dumps(envelope["signer"])
    now = 1_700_000_000_000
    assert unseal_as(SITE_EVENTS, sealed, now_ms=now).event == heartbeat(key)
    for variant in (
        f'{{"body":{{"junk":1}},"body":{body},"signer":{signer},"sig":"{sig}"}}',
        f'{{"body": {body},"signer":{signer},"sig":"{sig}"}}',
        f'{{"body":{body},"sig":"{sig}","signer":{signer}}}',
        f'{{"body":{body.replace(",", ", ")},"signer":{signer},"sig":"{sig}"}}',
    ):
        with pytest.raises(RemoteError):
            unseal_as(SITE_EVENTS, variant.encode(), now_ms=now)
