"""Pulses on the wire: what a pulse is, and every way one is refused (``bad_pulse``)."""

from __future__ import annotations

import pytest

from hereabouts.errors import BadPulse, RemoteError
from hereabouts.identity import Identity
from hereabouts.peers.pulse import CONTEXT, MAX_PULSE_BYTES, open_pulse, seal_pulse

ALICE = Identity.from_seed(bytes(32))
BOB = Identity.from_seed(bytes([1]) * 32)


def test_a_pulse_opens_to_what_was_sealed_and_stays_small() -> None:
    payload = seal_pulse(ALICE, boot="b0ot", seq=7, at_ms=1_700_000_000_000, every_ms=1000)
    assert open_pulse(ALICE.did, payload) == ("b0ot", 7, 1_700_000_000_000, 1000)
    assert len(payload) < 100  # 64 of signature; the topic adds ~75 bytes


def test_a_pulse_under_another_key_s_topic_is_refused() -> None:
    payload = seal_pulse(ALICE, boot="b", seq=1, at_ms=1, every_ms=1000)
    with pytest.raises(BadPulse, match="not signed by"):
        open_pulse(BOB.did, payload)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"x" * 64,  # a signature and nothing else
        b"x" * (MAX_PULSE_BYTES + 1),
        b"\x00" * 64 + b"\x94\xa1b\x01\x01\xcd\x03\xe8",  # a body, no valid signature
    ],
)
def test_malformed_and_unsigned_pulses_are_refused(payload: bytes) -> None:
    with pytest.raises(BadPulse) as refused:
        open_pulse(ALICE.did, payload)
    assert isinstance(refused.value, RemoteError) and refused.value.reason == "bad_pulse"


def test_a_signed_body_that_is_not_a_pulse_is_refused() -> None:
    body = b"\x92\xa1b\x01"  # a list of two: not the four fields of a pulse
    payload = ALICE.sign(CONTEXT + ALICE.did.encode() + body) + body
    with pytest.raises(BadPulse, match="malformed"):
        open_pulse(ALICE.did, payload)


def test_a_signature_over_the_body_alone_is_not_a_pulse() -> None:
    body = seal_pulse(ALICE, boot="b", seq=1, at_ms=1, every_ms=1000)[64:]
    with pytest.raises(BadPulse):
        open_pulse(ALICE.did, ALICE.sign(body) + body)  # no context, no DID: refused
