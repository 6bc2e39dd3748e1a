"""Rendezvous (highest-random-weight) hashing: which few nodes take on a duty for a key.

Every node ranks the candidates it sees by ``SHA-256(purpose || key || candidate)`` and the
top ``count`` take the duty. Nodes that see the same candidates agree without talking; when
a candidate leaves, only the keys it held move, each to the next in its ranking. Two duties
(``purpose``) rank independently, so the nodes that bridge an origin are not by design the
ones that watch it.

Used for the hybrid nodes that bridge a mesh-only node's events onto the plaza
(:data:`BRIDGE`) and for the observers whose failure reports about a node count
(:data:`OBSERVE`, see :mod:`hereabouts.core.suspicion`).
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable
from typing import Final

BRIDGE: Final = "bridge"
OBSERVE: Final = "observe"


def _weight(purpose: str, key: str, candidate: str) -> bytes:
    return hashlib.sha256(f"{purpose}\n{key}\n{candidate}".encode()).digest()


def chosen(purpose: str, key: str, candidates: Iterable[str], count: int) -> list[str]:
    """The ``count`` candidates (DIDs) that take ``purpose`` for ``key``, best first.
    O(N log count): one hash per candidate."""
    return heapq.nlargest(count, candidates, key=lambda node: _weight(purpose, key, node))
