"""The sync endpoint's messages and the caller's request signature.

One message shape serves both directions (``POST /v1/mesh/sync`` and its answer)::

    {"v": 1, "digest": "<base64 of 16-byte entries>" | null, "events": [<sealed event>, ...]}

``digest`` is the sender's (:mod:`hereabouts.core.reconcile`); a request without one only
pushes events. ``events`` are sealed events exactly as their emitters signed them, embedded
unchanged; each is verified on its own by the receiver's ingest path.

The caller signs every request, so the responder knows whom to budget and whom to graylist;
event signatures remain what makes events believable. The signed text is::

    hereabouts-mesh-sync/1 \\n METHOD \\n PATH \\n hex(SHA-256(body)) \\n TIME_MS \\n DID

sent as ``X-Hereabouts-DID``, ``X-Hereabouts-Time`` (Unix milliseconds) and
``X-Hereabouts-Signature`` (base64, in its one canonical spelling). A request dated more
than ``max_clock_skew_s`` from the responder's clock is refused, which bounds replays of a
captured request to that window (and a replayed request only repeats an exchange).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from typing import Final

import msgspec

from hereabouts.core.reconcile import ENTRY_BYTES, decode_digest
from hereabouts.errors import BadSignature, InvalidDID, JsonTooDeep
from hereabouts.identity import Identity, signature_from_base64, verify
from hereabouts.jsonlimits import MAX_JSON_DEPTH, check_depth
from hereabouts.peers.mesh.errors import (
    SyncBadSignature,
    SyncMalformed,
    SyncOversize,
    SyncStale,
    SyncUnsigned,
)

SYNC_PATH: Final = "/v1/mesh/sync"
VERSION: Final = 1
DID_HEADER: Final = "x-hereabouts-did"
TIME_HEADER: Final = "x-hereabouts-time"
SIGNATURE_HEADER: Final = "x-hereabouts-signature"
MAX_EVENTS: Final = 4096
"""Events one message may carry: a 256 KiB budget holds about 600 heartbeats."""

MESSAGE_OVERHEAD: Final = 4096
"""Bytes of a message besides its events and digest (field names, commas, brackets)."""

_SYNC_DEPTH: Final = MAX_JSON_DEPTH + 2
"""The message (1) and its events list (2) hold sealed events, which may nest as deep as
any event does (a howdy carrying a neighbour's newspaper and credential goes past eight)."""


class _TooDeep(SyncMalformed, JsonTooDeep):
    """A message nested deeper than a sync message can be: malformed, counted as such."""

    reason = "sync_malformed"


class SyncMessage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    v: int
    digest: str | None = None
    events: list[msgspec.Raw] = []


_decoder = msgspec.json.Decoder(SyncMessage)
_encoder = msgspec.json.Encoder()


def max_message_bytes(*, exchange_bytes: int, max_origins: int) -> int:
    """The largest message a node sends or takes: its events, its digest, the frame."""
    digest_chars = (max_origins * ENTRY_BYTES + 2) // 3 * 4
    return exchange_bytes + digest_chars + MESSAGE_OVERHEAD


def encode_message(digest: bytes | None, events: Sequence[bytes]) -> bytes:
    text = None if digest is None else base64.b64encode(digest).decode("ascii")
    return _encoder.encode(
        SyncMessage(v=VERSION, digest=text, events=[msgspec.Raw(e) for e in events])
    )


def decode_message(
    data: bytes, *, max_bytes: int, max_origins: int
) -> tuple[dict[bytes, int] | None, list[bytes]]:
    """``(their digest or None, sealed events)`` from a message, or a :class:`SyncRefused`
    saying why not. Events are only split out here; each is verified when taken in."""
    if len(data) > max_bytes:
        raise SyncOversize(f"a sync message of {len(data)} bytes; at most {max_bytes}")
    check_depth(data, _SYNC_DEPTH, error=_TooDeep)
    try:
        message = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise SyncMalformed(f"not a sync message: {str(exc)[:200]}") from None
    if message.v != VERSION:
        raise SyncMalformed(f"sync message version {message.v}; this node speaks {VERSION}")
    if len(message.events) > MAX_EVENTS:
        raise SyncMalformed(f"{len(message.events)} events in one message; at most {MAX_EVENTS}")
    digest = None
    if message.digest is not None:
        try:
            raw = binascii.a2b_base64(message.digest, strict_mode=True)
        except (binascii.Error, ValueError):
            raise SyncMalformed("the digest is not base64") from None
        digest = decode_digest(raw, max_entries=max_origins)  # MalformedDigest is typed too
    return digest, [bytes(event) for event in message.events]


def _signed_text(method: str, path: str, body: bytes, at_ms: int, did: str) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return f"hereabouts-mesh-sync/1\n{method}\n{path}\n{digest}\n{at_ms}\n{did}".encode()


def sign_request(
    identity: Identity, method: str, path: str, body: bytes, now_ms: int
) -> dict[str, str]:
    """The headers that sign a request as ``identity``'s."""
    signature = identity.sign(_signed_text(method, path, body, now_ms, identity.did))
    return {
        DID_HEADER: identity.did,
        TIME_HEADER: str(now_ms),
        SIGNATURE_HEADER: base64.b64encode(signature).decode("ascii"),
    }


def caller_of(
    headers: Mapping[str, str],
    method: str,
    path: str,
    body: bytes,
    *,
    now_ms: int,
    max_skew_ms: int,
) -> str:
    """The DID that signed this request, or a :class:`SyncRefused` saying why not."""
    did = headers.get(DID_HEADER)
    at_text = headers.get(TIME_HEADER)
    signature_text = headers.get(SIGNATURE_HEADER)
    if not did or not at_text or not signature_text:
        raise SyncUnsigned(
            f"a sync request is signed: {DID_HEADER}, {TIME_HEADER} and {SIGNATURE_HEADER}"
        )
    if not at_text.isascii() or not at_text.isdigit() or len(at_text) > 16:
        raise SyncUnsigned(f"{TIME_HEADER} is Unix milliseconds")
    at_ms = int(at_text)
    if abs(now_ms - at_ms) > max_skew_ms:
        raise SyncStale(
            f"the request is dated {(at_ms - now_ms) / 1000:+.0f} s from this node's clock; "
            f"at most {max_skew_ms / 1000:.0f} s either way"
        )
    try:
        signature = signature_from_base64(signature_text)
        verify(did, _signed_text(method, path, body, at_ms, did), signature)
    except InvalidDID as exc:
        raise SyncUnsigned(f"{DID_HEADER}: {exc}") from None
    except BadSignature as exc:
        raise SyncBadSignature(f"the request's signature: {exc}") from None
    return did
