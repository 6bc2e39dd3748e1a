"""Sealing and unsealing events: the only door through which an event is believed.

A sealed event is one JSON object::

    {"body": {...the event...}, "signer": "did:key:z...", "sig": "<base64 Ed25519 signature>"}

Design rules:

* **Sign the exact bytes.** ``sig`` covers ``SIGNING_TAG ‖ body`` where ``body`` is the
  exact byte run of the ``body`` value as transmitted. The receiver keeps those bytes with
  ``msgspec.Raw`` and never re-serialises, so unsealing costs one signature check plus one
  decode, and no two implementations have to agree on a JSON form.
* **Domain separation.** ``SIGNING_TAG`` makes an event signature useless as a signature of
  anything else we sign (presence@2 documents, key rotations), and vice versa.
* **Ids come from the signed bytes.** ``id = sha256(body).hex()``. Relabelling an event
  changes its body, which breaks its signature; Ed25519 as libsodium checks it is not
  malleable, so one body has one valid signature per key.
* **Cheap checks first.** Size, JSON shape, signature format, the emitter/signer match and
  the clock are checked before the (expensive) signature, so junk is refused cheaply.
* **One envelope, several vocabularies.** Peer events (:mod:`hereabouts.events`) and site
  presence events (:mod:`hereabouts.sites.events`) share the envelope, the tag and this code
  path; each is a :class:`Vocabulary` (a decoder and its kinds). Kinds are unique across
  vocabularies, so a body decodes in exactly one of them and a signature made for one
  vocabulary is refused by the other as an unknown kind.
* **One reading per signature.** Peer events are *canonical*: the whole sealed message is
  the RFC 8785 form of what it decodes to (keys sorted, no white space, every field
  present, nothing unknown), which :func:`seal` produces and :func:`unseal` checks by
  encoding the decoded event again and comparing bytes (a fraction of a microsecond).
  Duplicate keys, which parsers resolve differently, therefore never pass. Nesting is
  bounded before parsing (:mod:`hereabouts.jsonlimits`). Site events, signed by browsers
  with ``JSON.stringify``, are checked field by field but not for key order.
* **Every refusal has its own type** (see :mod:`hereabouts.errors`): ``Oversize``,
  ``EventTooDeep``, ``NotJSON``, ``MalformedEvent``, ``NotCanonical``, ``DuplicateKey``,
  ``UnknownKind``, ``MissingSignature``, ``BadSignature``, ``EmitterMismatch``,
  ``FromTheFuture`` and ``InvalidDID``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import msgspec

from hereabouts.config import WireLimits
from hereabouts.errors import (
    DuplicateKey,
    EmitterMismatch,
    EventTooDeep,
    FromTheFuture,
    LocalError,
    MalformedEvent,
    MissingSignature,
    NotCanonical,
    NotJSON,
    Oversize,
    UnknownKind,
)
from hereabouts.events import KINDS, AnyEvent, SignedEvent, name_problem
from hereabouts.identity import Identity, signature_from_base64, verify
from hereabouts.jsonlimits import check_depth, refusing_duplicates

SIGNING_TAG = b"hereabouts/v1/event\n"
DEFAULT_LIMITS = WireLimits()


class InvalidOutgoingEvent(LocalError):
    """We tried to seal an event that receivers would refuse."""

    reason = "invalid_outgoing_event"


class _Envelope(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    body: msgspec.Raw
    signer: str
    sig: str = ""


class _Head(msgspec.Struct):
    kind: str


_encoder = msgspec.json.Encoder()
_canonical_encoder = msgspec.json.Encoder(order="sorted")
"""Sorted keys, no white space: RFC 8785 for what events hold (strings without control
characters, integers below 2^53, objects, arrays, null), as tests/test_wire.py checks."""
_envelope_decoder = msgspec.json.Decoder(_Envelope)
_event_decoder = msgspec.json.Decoder(AnyEvent)
_head_decoder = msgspec.json.Decoder(_Head)


SHALLOW_ENOUGH_BYTES = 1024
"""Messages up to this size skip the bracket count of :func:`check_depth`: they cannot nest
more than 512 levels, which msgspec's decoders take without trouble (their recursion guard
stops near 1,000) and which the typed event fields refuse at the first unexpected bracket.
An ordinary event is about 400 bytes, so the count is paid by howdys and by floods of
padding, never by heartbeats."""


def event_id(body: bytes) -> str:
    """The id of the event whose signed body is ``body``."""
    return hashlib.sha256(body).hexdigest()


class Emitted(Protocol):
    """What the envelope needs of any event: who emitted it and when."""

    @property
    def did(self) -> str: ...

    @property
    def at_ms(self) -> int: ...


E = TypeVar("E", bound=Emitted)


@dataclass(frozen=True, slots=True)
class Vocabulary(Generic[E]):
    """A family of event kinds sealed with the common envelope: its decoder and kind names."""

    decoder: msgspec.json.Decoder[E]
    kinds: frozenset[str]
    canonical: bool = False
    """Sealed messages must be canonical JSON (see the module rules); :func:`seal_as` then
    writes them so. Otherwise they must still be *exact*: the body as its fields are
    declared (tag first) and the envelope ``{"body":…,"signer":…,"sig":…}``, compact, which
    is what ``JSON.stringify`` writes in the widget; either way no duplicate key passes."""
    check: Callable[[E], str | None] | None = None
    """A rule the decoder does not check itself: returns what is wrong, or None."""


@dataclass(frozen=True, slots=True)
class Opened(Generic[E]):
    """A verified event of some vocabulary, its id and the exact bytes it arrived in."""

    id: str
    event: E
    raw: bytes


PEER_EVENTS: Vocabulary[AnyEvent] = Vocabulary(
    _event_decoder, KINDS, canonical=True, check=name_problem
)


def _kind(event: object) -> str:
    config = type(event).__struct_config__  # type: ignore[attr-defined]
    return str(config.tag)


def seal(event: AnyEvent, identity: Identity, *, limits: WireLimits = DEFAULT_LIMITS) -> bytes:
    """Sign ``event`` with ``identity`` and return the bytes to transmit.

    The event must name ``identity`` as its emitter and pass the same validation receivers
    apply; otherwise :class:`InvalidOutgoingEvent` is raised and nothing is signed.
    """
    return seal_as(PEER_EVENTS, event, identity, limits=limits)


def seal_as(
    vocabulary: Vocabulary[E],
    event: E,
    identity: Identity,
    *,
    limits: WireLimits = DEFAULT_LIMITS,
) -> bytes:
    """:func:`seal` for an event of any :class:`Vocabulary`."""
    if event.did != identity.did:
        raise InvalidOutgoingEvent(
            f"event names emitter {event.did}, but the key is {identity.did}"
        )
    encoder = _canonical_encoder if vocabulary.canonical else _encoder
    body = encoder.encode(event)
    try:
        decoded = vocabulary.decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidOutgoingEvent(f"{_kind(event)} event is invalid: {exc}") from None
    problem = None if vocabulary.check is None else vocabulary.check(decoded)
    if problem is not None:
        raise InvalidOutgoingEvent(f"{_kind(event)} event is invalid: {problem}")
    signature = identity.sign(SIGNING_TAG + body)
    sealed = encoder.encode(
        _Envelope(
            body=msgspec.Raw(body),
            signer=identity.did,
            sig=base64.b64encode(signature).decode("ascii"),
        )
    )
    if len(sealed) > limits.max_event_bytes:
        raise InvalidOutgoingEvent(
            f"sealed {_kind(event)} is {len(sealed)} bytes; receivers refuse more than "
            f"{limits.max_event_bytes}"
        )
    return sealed


_decode_signature = signature_from_base64


_duplicate_key = refusing_duplicates(DuplicateKey)


def _refuse_uncanonical(data: bytes, canonical: bool) -> None:
    """Say why ``data`` is not in its one spelling (only called once it is known not to be)."""
    with contextlib.suppress(ValueError):  # the strict decoder took it; the stdlib may not
        json.loads(data, object_pairs_hook=_duplicate_key)
    if canonical:
        raise NotCanonical(
            "a peer event must be canonical JSON: keys sorted, no white space, every field "
            "present (RFC 8785)"
        )
    raise NotCanonical(
        "an event must be compact JSON with its fields in their declared order, in an "
        'envelope {"body":…,"signer":…,"sig":…}'
    )


def _decode_body(body: bytes, vocabulary: Vocabulary[E]) -> E:
    try:
        return vocabulary.decoder.decode(body)
    except msgspec.ValidationError as exc:
        try:
            kind = _head_decoder.decode(body).kind
        except (msgspec.DecodeError, UnicodeDecodeError):
            kind = None
        if kind is not None and kind not in vocabulary.kinds:
            raise UnknownKind(f"unknown event kind {kind[:40]!r}") from None
        raise MalformedEvent(f"event body: {exc}") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise MalformedEvent(f"event body: {exc}") from None


def unseal(
    data: bytes,
    *,
    now_ms: int | None = None,
    limits: WireLimits = DEFAULT_LIMITS,
    check_clock: bool = True,
    known: Callable[[str], bool] | None = None,
    precheck: Callable[[AnyEvent], None] | None = None,
    admitted: Container[str] | None = None,
    strict: bool = True,
) -> SignedEvent:
    """Verify and decode a sealed event, or raise the typed error that says why not.

    ``now_ms`` is the receiver's clock in Unix milliseconds (read from the system clock when
    omitted). ``check_clock=False`` skips the future-timestamp check, for re-reading events
    already accepted (ledger replay). ``known(event_id)`` may say that an event with these
    exact body bytes was verified before (it is in the ledger); its signature is then not
    checked again — the same signed bytes mean the same thing — which makes the duplicates
    that gossip and howdys carry cost a hash instead of a signature check.

    ``precheck(event)`` runs on the decoded event just before the signature check and may
    raise an :class:`~hereabouts.errors.EventRejected` to refuse it without paying for the
    check (membership, admission of new keys); it is skipped for emitters in ``admitted``
    (keys already let in). ``strict=False`` skips the canonical-form check, for ledgers
    written before it existed.
    """
    identifier, event = _open(
        PEER_EVENTS, data, now_ms, limits, check_clock, known, precheck, admitted, strict
    )
    return SignedEvent(id=identifier, event=event, raw=bytes(data))


def unseal_as(
    vocabulary: Vocabulary[E],
    data: bytes,
    *,
    now_ms: int | None = None,
    limits: WireLimits = DEFAULT_LIMITS,
    check_clock: bool = True,
    known: Callable[[str], bool] | None = None,
) -> Opened[E]:
    """:func:`unseal` for an event of any :class:`Vocabulary`; same checks, same errors."""
    identifier, event = _open(
        vocabulary, data, now_ms, limits, check_clock, known, None, None, True
    )
    return Opened(id=identifier, event=event, raw=bytes(data))


def _open(
    vocabulary: Vocabulary[E],
    data: bytes,
    now_ms: int | None,
    limits: WireLimits,
    check_clock: bool,
    known: Callable[[str], bool] | None,
    precheck: Callable[[E], None] | None,
    admitted: Container[str] | None,
    strict: bool,
) -> tuple[str, E]:
    """Every check of :func:`unseal`; returns (event id, event). Shared by both entry points
    without an intermediate object, since it runs once per event on the ingest hot path."""
    if len(data) > limits.max_event_bytes:
        raise Oversize(f"{len(data)} bytes; the limit is {limits.max_event_bytes}")
    if len(data) > SHALLOW_ENOUGH_BYTES:
        check_depth(data, error=EventTooDeep)
    try:
        envelope = _envelope_decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise MalformedEvent(f"envelope: {exc}") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise NotJSON(str(exc)) from None
    if not envelope.sig:
        raise MissingSignature("the envelope carries no signature")
    signature = _decode_signature(envelope.sig)
    body = bytes(envelope.body)
    event = _decode_body(body, vocabulary)
    if vocabulary.check is not None:
        problem = vocabulary.check(event)
        if problem is not None:
            raise MalformedEvent(f"event body: {problem}")
    if event.did != envelope.signer:
        raise EmitterMismatch(
            f"{_kind(event)} claims emitter {event.did[:80]} but is signed by "
            f"{envelope.signer[:80]}"
        )
    if check_clock:
        now = int(time.time() * 1000) if now_ms is None else now_ms
        ahead_ms = event.at_ms - now
        if ahead_ms > limits.max_future_skew_s * 1000:
            raise FromTheFuture(
                f"{_kind(event)} is dated {ahead_ms / 1000:.1f}s ahead of our clock "
                f"(allowed skew: {limits.max_future_skew_s:g}s)"
            )
    if strict:
        # The body: exactly what the event encodes to. The envelope: its three fields in
        # their order (the second label where it must be), not one byte more (a duplicate
        # key or white space would add some). The signature is 88 ASCII characters (checked
        # above) and DIDs are ASCII, so characters are bytes.
        end = 8 + len(body)
        if vocabulary.canonical:
            exact = (
                _canonical_encoder.encode(event) == body
                and len(data) == end + 22 + len(envelope.sig) + len(envelope.signer)
                and data[end : end + 8] == b',"sig":"'
            )
        else:
            exact = (
                _encoder.encode(event) == body
                and len(data) == end + 22 + len(envelope.sig) + len(envelope.signer)
                and data[end : end + 11] == b',"signer":"'
            )
        if not (exact and data.startswith(b'{"body":')):
            _refuse_uncanonical(data, vocabulary.canonical)
    if precheck is not None and (admitted is None or event.did not in admitted):
        precheck(event)
    identifier = hashlib.sha256(body).hexdigest()  # event_id(), without the call
    if known is None or not known(identifier):
        verify(envelope.signer, SIGNING_TAG + body, signature)
    return identifier, event
