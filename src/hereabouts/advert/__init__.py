"""presence@2: signed WAN presence documents, their Merkle index proofs, storage, serving
and relaying. See ``docs/advert.md`` for the format and the rules."""

from hereabouts.advert.document import (
    DEFAULT_LIFETIME_S,
    MAX_DOCUMENT_BYTES,
    MAX_FUTURE_SKEW_S,
    MAX_LIFETIME_S,
    PresenceInfo,
    RelayEntry,
    build_presence,
    check_presence,
    check_untimed,
    decode_presence,
    encode_presence,
    presence_id,
    sign_presence,
    signing_payload,
    verify_presence,
)
from hereabouts.advert.merkle import ConsistencyProof, MerkleTree

__all__ = [
    "DEFAULT_LIFETIME_S",
    "MAX_DOCUMENT_BYTES",
    "MAX_FUTURE_SKEW_S",
    "MAX_LIFETIME_S",
    "ConsistencyProof",
    "MerkleTree",
    "PresenceInfo",
    "RelayEntry",
    "build_presence",
    "check_presence",
    "check_untimed",
    "decode_presence",
    "encode_presence",
    "presence_id",
    "sign_presence",
    "signing_payload",
    "verify_presence",
]
