"""presence@2 documents: build, sign, parse and verify them, with nothing trusted unchecked.

A document says "this DID is reachable here, its index has this Merkle root, believe this
until ``expires_at``". Rules this module keeps:

* Fields are exactly the seed's table: ``id``, ``did``, ``endpoints``, ``merkle_root``,
  ``expires_at``, ``issued_at``, ``signature``, and optionally ``proof``, ``relays``,
  ``ttl_seconds``. Unknown fields are refused: the signature would cover them, but no reader
  would know what it had just believed.
* Timestamps are RFC 3339 UTC whole seconds with ``Z`` (:mod:`hereabouts.advert.timestamps`).
  ``id`` is ``presence:<did>:<issued_at>``, so it names one issue of one DID's document.
* The signed payload is the RFC 8785 canonical JSON of the document without ``id`` and
  ``signature`` (optional fields are left out when unset, never written as ``null``);
  ``signature`` is standard padded base64 of the 64-byte Ed25519 signature. ``id`` is left
  out because it is derived from signed fields and checked separately.
* One size rule: the whole document as it is sent and stored (canonical JSON *with* ``id``
  and ``signature``) is at most :data:`MAX_DOCUMENT_BYTES`. Signing checks the signed result,
  verifying checks what it was given, so nothing we sign is refused by anyone for its size.
* Numbers are RFC 8785 numbers, that is doubles: ``ttl_seconds`` written ``600.0`` or
  ``6e2`` is the number 600, canonicalises to ``600`` and is accepted as 600 (a JavaScript
  signer cannot tell them apart). A ``ttl_seconds`` that is not a whole number is refused.
* The key comes from the ``did:key`` DID itself. Other DID methods need the caller to supply
  the key, because resolving them would mean trusting a lookup.
* Checks run cheapest first (shape, size, formats, times, proof) and the signature last, so
  junk costs little. Every refusal is a typed error from :mod:`hereabouts.advert.errors`.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import nacl.exceptions
import nacl.signing

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
from hereabouts.advert.merkle import ConsistencyProof, parse_root
from hereabouts.advert.timestamps import format_time, parse_time, utc_now
from hereabouts.canonical import canonicalize
from hereabouts.errors import BadSignature, InvalidDID, JsonTooDeep, NotCanonicalizable
from hereabouts.identity import (
    DID_KEY_PREFIX,
    MAX_DID_LENGTH,
    Identity,
    public_key_from_did,
    signature_from_base64,
)
from hereabouts.jsonlimits import check_depth, refusing_duplicates

#: Largest document, in bytes of the canonical JSON of the *whole* signed document (``id`` and
#: ``signature`` included), and of an HTTP body carrying one. Signing refuses a document whose
#: signed form would be larger, so what is published always passes this check. A document
#: with 32 endpoints, 16 relays and a full-length proof is about 12 KiB; 16 KiB is also the
#: cap on sealed events (``WireLimits.max_event_bytes``), so one limit fits both.
MAX_DOCUMENT_BYTES = 16 * 1024

#: How far ``issued_at`` may lie ahead of our clock. Matches ``WireLimits.max_future_skew_s``:
#: tolerant of a badly synced laptop, too short for a forged future document to win for long.
MAX_FUTURE_SKEW_S = 30.0

#: Longest lifetime (``expires_at - issued_at``) accepted. A week lets a node that publishes
#: rarely stay discoverable; longer would let a stolen-then-rotated key's endpoints linger.
MAX_LIFETIME_S = 7 * 24 * 3600

#: Lifetime given to documents built without an explicit one: ten minutes, as in the seed's
#: example, so a vanished node drops out of caches quickly at one publish per 8 minutes.
DEFAULT_LIFETIME_S = 600

MAX_ENDPOINTS = 32
"""Most endpoints in one document; a node has a handful (mcp, presence, gossip, ...)."""
MAX_RELAYS = 16
"""Most relay descriptors; clients try them in turn, so more than a few only adds latency."""
MAX_URL_LENGTH = 2048
"""Longest URL accepted, the common browser and proxy limit."""

REQUIRED_FIELDS = frozenset({"id", "did", "endpoints", "merkle_root", "expires_at",
                             "issued_at", "signature"})
OPTIONAL_FIELDS = frozenset({"proof", "relays", "ttl_seconds"})
UNSIGNED_FIELDS = frozenset({"id", "signature"})
RELAY_FIELDS = frozenset({"host", "url", "expires_at"})

_ENDPOINT_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_DID = re.compile(r"\Adid:[a-z0-9]+:[A-Za-z0-9._:%-]+\Z")


@dataclass(frozen=True, slots=True)
class RelayEntry:
    """One ``relay@1`` descriptor: which relay may serve this document, and until when."""

    host: str
    url: str
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class PresenceInfo:
    """The parsed, checked contents of a document (what a verifier learned)."""

    did: str
    issued_at: datetime
    expires_at: datetime
    endpoints: Mapping[str, str]
    merkle_root: str
    relays: tuple[RelayEntry, ...]
    proof: ConsistencyProof | None
    ttl_seconds: int | None


def presence_id(did: str, issued_at: str) -> str:
    """The ``id`` a document of ``did`` issued at ``issued_at`` must carry."""
    return f"presence:{did}:{issued_at}"


def signing_payload(doc: Mapping[str, Any]) -> bytes:
    """The bytes the signature covers: canonical JSON without ``id`` and ``signature``."""
    body = {k: v for k, v in doc.items() if k not in UNSIGNED_FIELDS}
    try:
        return canonicalize(body)
    except NotCanonicalizable as exc:
        raise PresenceMalformed(str(exc)) from None


def encode_presence(doc: Mapping[str, Any]) -> bytes:
    """The whole document (with ``id`` and ``signature``) as canonical JSON bytes."""
    try:
        return canonicalize(dict(doc))
    except NotCanonicalizable as exc:
        raise PresenceMalformed(str(exc)) from None


_refuse_duplicates = refusing_duplicates(PresenceMalformed)


def _refuse_constant(name: str) -> Any:
    raise PresenceMalformed(f"{name} is not JSON")


def decode_presence(raw: bytes, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> dict[str, Any]:
    """Parse document bytes into a dict (not yet verified); size is checked before parsing."""
    if len(raw) > max_bytes:
        raise PresenceOversize(f"document is {len(raw)} bytes; the limit is {max_bytes}")
    try:
        check_depth(raw)
    except JsonTooDeep as exc:
        raise PresenceMalformed(f"document is not acceptable JSON: {exc}") from None
    try:
        value = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_refuse_duplicates,
            parse_constant=_refuse_constant,
        )
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError, UnicodeDecodeError and the integer of more than
        # 4,300 digits that Python refuses to read (sys.get_int_max_str_digits()).
        raise PresenceMalformed(f"document is not JSON: {str(exc)[:200]}") from None
    if not isinstance(value, dict):
        raise PresenceMalformed("a presence document is a JSON object")
    return value


# --- field checks --------------------------------------------------------------------------


def _string(doc: Mapping[str, Any], name: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str):
        raise PresenceMalformed(f"{name} must be a string")
    return value


def _time(value: Any, name: str, error: type[PresenceRejected] = PresenceMalformed) -> datetime:
    try:
        return parse_time(value)
    except ValueError as exc:
        raise error(f"{name}: {exc}") from None


def check_url(url: Any, error: type[PresenceRejected]) -> str:
    """An absolute http(s) URL with a host, no credentials, no whitespace, bounded length."""
    if not isinstance(url, str) or not url:
        raise error("a URL must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise error(f"URL longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise error("URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a non-numeric or out-of-range port
    except ValueError as exc:
        raise error(f"URL {url!r} does not parse: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise error(f"URL {url!r} is not http or https")
    if not parts.hostname:
        raise error(f"URL {url!r} has no host")
    if "@" in parts.netloc:
        raise error(f"URL {url!r} carries credentials; a public document must not")
    return url


def _check_endpoints(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise PresenceMalformed("endpoints must be an object of name -> URL")
    if len(value) > MAX_ENDPOINTS:
        raise PresenceBadEndpoint(f"more than {MAX_ENDPOINTS} endpoints")
    for name, url in value.items():
        if not _ENDPOINT_NAME.match(name):
            raise PresenceBadEndpoint(f"endpoint name {name!r} is not [A-Za-z0-9_.-], 1-64 long")
        check_url(url, PresenceBadEndpoint)
    return dict(value)


def check_generic_did(value: Any, error: type[PresenceRejected]) -> str:
    """Any syntactically valid DID (any method), bounded in length."""
    if not isinstance(value, str) or len(value) > MAX_DID_LENGTH or not _DID.match(value):
        raise error(f"{value!r} is not a DID")
    return value


def _check_relays(value: Any, issued_at: datetime) -> tuple[RelayEntry, ...]:
    if not isinstance(value, list):
        raise PresenceBadRelay("relays must be a list of relay@1 descriptors")
    if len(value) > MAX_RELAYS:
        raise PresenceBadRelay(f"more than {MAX_RELAYS} relays")
    entries: list[RelayEntry] = []
    seen: set[str] = set()
    for item in value:
        if not isinstance(item, dict):
            raise PresenceBadRelay("a relay descriptor is an object")
        unknown = set(item) - RELAY_FIELDS
        if unknown:
            raise PresenceBadRelay(f"unknown relay field(s): {', '.join(sorted(unknown))}")
        host = check_generic_did(item.get("host"), PresenceBadRelay)
        if host in seen:
            raise PresenceBadRelay(f"relay {host} is listed twice")
        seen.add(host)
        url = check_url(item.get("url"), PresenceBadRelay)
        expires: datetime | None = None
        if "expires_at" in item:
            expires = _time(item["expires_at"], "relay expires_at", PresenceBadRelay)
            if expires <= issued_at:
                raise PresenceBadRelay(f"delegation to {host} expires before it is issued")
        entries.append(RelayEntry(host, url, expires))
    return tuple(entries)


def check_size(doc: Mapping[str, Any]) -> int:
    """The size of ``doc`` as sent and stored (canonical JSON); raises past the limit.

    The one size rule of presence@2: :func:`sign_presence` applies it to the document it is
    about to return, :func:`check_presence` to the document it was given.
    """
    size = len(encode_presence(doc))
    if size > MAX_DOCUMENT_BYTES:
        raise PresenceOversize(f"document is {size} bytes; the limit is {MAX_DOCUMENT_BYTES}")
    return size


def whole_seconds(value: Any) -> int | None:
    """``value`` as an int when it is a JSON number with no fraction, else None.

    RFC 8785 numbers are IEEE doubles, so ``600``, ``600.0`` and ``6e2`` are one number,
    canonicalised as ``600``; a signer in JavaScript cannot even write the difference.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _check_ttl(value: Any) -> int:
    ttl = whole_seconds(value)
    if ttl is None or not 0 < ttl <= MAX_LIFETIME_S:
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise PresenceMalformed(
            f"ttl_seconds must be a whole number of seconds in 1..{MAX_LIFETIME_S}, "
            f"written as a JSON number such as 600 (got {shown})"
        )
    return ttl


def _check_body(doc: Any) -> PresenceInfo:
    """Everything about a document that does not need its id, signature, size or the clock."""
    if not isinstance(doc, Mapping):
        raise PresenceMalformed("a presence document is a JSON object")
    unknown = set(doc) - REQUIRED_FIELDS - OPTIONAL_FIELDS
    if unknown:
        raise PresenceMalformed(f"unknown field(s): {', '.join(sorted(unknown))}")
    missing = (REQUIRED_FIELDS - UNSIGNED_FIELDS) - set(doc)
    if missing:
        raise PresenceMalformed(f"missing field(s): {', '.join(sorted(missing))}")
    did = check_generic_did(doc["did"], PresenceBadDID)
    issued_at = _time(doc["issued_at"], "issued_at")
    expires_at = _time(doc["expires_at"], "expires_at")
    if expires_at <= issued_at:
        raise PresenceBadLifetime("expires_at is not after issued_at")
    if expires_at - issued_at > timedelta(seconds=MAX_LIFETIME_S):
        raise PresenceBadLifetime(f"lifetime is longer than {MAX_LIFETIME_S} s")
    endpoints = _check_endpoints(doc["endpoints"])
    merkle_root = _string(doc, "merkle_root")
    try:
        root = parse_root(merkle_root)
    except ValueError as exc:
        raise PresenceMalformed(f"merkle_root: {exc}") from None
    ttl = _check_ttl(doc["ttl_seconds"]) if "ttl_seconds" in doc else None
    relays = _check_relays(doc["relays"], issued_at) if "relays" in doc else ()
    proof: ConsistencyProof | None = None
    if "proof" in doc:
        proof = ConsistencyProof.decode(doc["proof"])
        if not proof.verify(root):
            raise PresenceBadProof("proof does not link its old root to merkle_root")
    return PresenceInfo(did, issued_at, expires_at, endpoints, merkle_root, relays, proof, ttl)


def _verify_key(did: str, public_key: bytes | None) -> bytes:
    if did.startswith(DID_KEY_PREFIX):
        try:
            embedded = public_key_from_did(did)
        except InvalidDID as exc:
            raise PresenceBadDID(str(exc)) from None
        if public_key is not None and bytes(public_key) != embedded:
            raise PresenceBadDID("the supplied key is not the key inside the did:key")
        return embedded
    if public_key is None:
        raise PresenceBadDID(f"{did} is not a did:key; its key must be supplied to verify it")
    return bytes(public_key)


def check_presence(
    doc: Any,
    *,
    now: datetime | None = None,
    public_key: bytes | None = None,
    max_future_skew_s: float = MAX_FUTURE_SKEW_S,
) -> PresenceInfo:
    """Verify ``doc`` completely and return what it says; raises on the first problem."""
    moment = utc_now() if now is None else now
    if moment.tzinfo is None:
        raise ValueError("now must be a timezone-aware datetime")
    return _check(doc, moment, public_key, max_future_skew_s)


def check_untimed(doc: Any, *, public_key: bytes | None = None) -> PresenceInfo:
    """Every check of :func:`check_presence` except the clock's (expiry, future issue).

    For documents read back from storage, whose state in time the caller reports apart
    (``advert show`` lists expired documents as expired, not as broken).
    """
    return _check(doc, None, public_key, MAX_FUTURE_SKEW_S)


def _check(
    doc: Any, moment: datetime | None, public_key: bytes | None, max_future_skew_s: float
) -> PresenceInfo:
    if not isinstance(doc, Mapping):
        raise PresenceMalformed("a presence document is a JSON object")
    check_size(doc)
    info = _check_body(doc)
    key = _verify_key(info.did, public_key)
    if not isinstance(doc.get("id"), str) or not isinstance(doc.get("signature"), str):
        raise PresenceMalformed("id and signature must be strings")
    if doc["id"] != presence_id(info.did, doc["issued_at"]):
        raise PresenceIdMismatch(f"id must be {presence_id(info.did, doc['issued_at'])!r}")
    if moment is not None:
        if moment >= info.expires_at:
            raise PresenceExpired(f"document expired at {doc['expires_at']}")
        if info.issued_at > moment + timedelta(seconds=max_future_skew_s):
            raise PresenceFromTheFuture(f"issued_at {doc['issued_at']} is in the future")
    try:
        signature = signature_from_base64(doc["signature"])
    except BadSignature:
        raise PresenceBadSignature("signature is not canonical standard base64") from None
    try:
        nacl.signing.VerifyKey(key).verify(signing_payload(doc), signature)
    except nacl.exceptions.BadSignatureError:
        raise PresenceBadSignature("signature does not verify") from None
    except (nacl.exceptions.ValueError, nacl.exceptions.TypeError, ValueError) as exc:
        raise PresenceBadSignature(f"signature cannot be checked: {exc}") from None
    return info


def verify_presence(
    doc: dict[str, Any],
    *,
    now: datetime | None = None,
    public_key: bytes | None = None,
    max_future_skew_s: float = MAX_FUTURE_SKEW_S,
) -> None:
    """Raise a :class:`PresenceRejected` subclass unless ``doc`` is valid at ``now``.

    ``now`` defaults to the current time; ``public_key`` (32 raw bytes) is needed only for
    DIDs other than ``did:key``.
    """
    check_presence(doc, now=now, public_key=public_key, max_future_skew_s=max_future_skew_s)


def sign_presence(doc: dict[str, Any], identity: Identity) -> dict[str, Any]:
    """A copy of ``doc`` with ``id`` and ``signature`` filled in by ``identity``.

    ``did`` is filled in when absent and must be the identity's own otherwise. A document
    that would not pass :func:`verify_presence` (times aside) is refused with
    :class:`NotSignable`, so we never publish what others will reject; that includes the
    size of the signed result, checked exactly as verifiers check it. A ``ttl_seconds``
    given as an integral float (``600.0``) is written as the integer it is.
    """
    body = {k: v for k, v in doc.items() if k not in UNSIGNED_FIELDS}
    body.setdefault("did", identity.did)
    if body["did"] != identity.did:
        raise NotSignable(f"document names {body['did']}, but the signer is {identity.did}")
    try:
        info = _check_body(body)
        if info.ttl_seconds is not None:
            body["ttl_seconds"] = info.ttl_seconds
        signature = identity.sign(signing_payload(body))
        signed = {
            **body,
            "id": presence_id(identity.did, body["issued_at"]),
            "signature": base64.b64encode(signature).decode("ascii"),
        }
        check_size(signed)
    except PresenceRejected as exc:
        raise NotSignable(f"{exc} ({exc.reason})") from None
    return signed


def build_presence(
    identity: Identity,
    *,
    endpoints: Mapping[str, str],
    merkle_root: str,
    issued_at: datetime,
    lifetime_s: int = DEFAULT_LIFETIME_S,
    relays: Iterable[Mapping[str, str]] = (),
    proof: ConsistencyProof | None = None,
    ttl_seconds: int | None = None,
) -> dict[str, Any]:
    """Assemble and sign a document issued at ``issued_at`` (truncated to whole seconds)."""
    issued = format_time(issued_at)
    doc: dict[str, Any] = {
        "did": identity.did,
        "endpoints": dict(endpoints),
        "merkle_root": merkle_root,
        "issued_at": issued,
        "expires_at": format_time(parse_time(issued) + timedelta(seconds=lifetime_s)),
    }
    relay_list = [dict(r) for r in relays]
    if relay_list:
        doc["relays"] = relay_list
    if proof is not None:
        doc["proof"] = proof.encode()
    if ttl_seconds is not None:
        doc["ttl_seconds"] = ttl_seconds
    return sign_presence(doc, identity)
