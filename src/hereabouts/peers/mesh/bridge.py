"""Which hybrid nodes carry a mesh-only node's events onto the plaza.

Every hybrid node that hears a mesh-only node's event could republish it on the plaza, and
the plaza would then see each event once per hybrid node. Instead each origin gets
``count`` bridges by rendezvous (highest-random-weight) hashing: every hybrid node ranks
the hybrid nodes it sees by ``SHA-256(origin || node)`` and bridges only if it is among the
top ``count``. Nodes that see the same hybrid set agree without talking; when a bridge
leaves, only the origins it carried move, each to the next in its ranking.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def _weight(origin: str, node: str) -> bytes:
    return hashlib.sha256(f"{origin}\n{node}".encode()).digest()


def bridges_for(origin: str, hybrids: Iterable[str], count: int) -> list[str]:
    """The ``count`` hybrid nodes (DIDs) that bridge ``origin``'s events, best first."""
    ranked = sorted(hybrids, key=lambda node: _weight(origin, node), reverse=True)
    return ranked[:count]
