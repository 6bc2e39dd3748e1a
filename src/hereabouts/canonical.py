"""RFC 8785 canonical JSON (JCS): the one byte form of a JSON value that signatures cover.

Used where two independent implementations must derive the same bytes from the same
*value* (presence@2 documents, key rotation statements). Sealed events do not need it: they
sign the exact bytes they carry. The ``rfc8785`` package does the work; it matched a
JavaScript engine on 200k doubles on our machines. Its errors (NaN, infinities, integers
outside ±2^53, non-JSON types) are re-raised as :class:`~hereabouts.errors.NotCanonicalizable`.

Cost: about 32 µs for a 300-byte object, as much as an Ed25519 verify, so keep it off hot paths.
"""

from __future__ import annotations

from typing import Any

import rfc8785

from hereabouts.errors import NotCanonicalizable


def canonicalize(obj: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 JSON bytes of ``obj``."""
    try:
        return rfc8785.dumps(obj)
    except rfc8785.CanonicalizationError as exc:
        raise NotCanonicalizable(f"cannot canonicalize: {exc}") from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise NotCanonicalizable(f"cannot canonicalize: {exc}") from None
