"""The mesh's formulas: how rounds stretch as the mesh grows, and how many rounds news
needs to reach everyone. Pure arithmetic, shared by the configuration check, the peer
book and the docs (docs/mesh.md)."""

from __future__ import annotations

import math
from typing import Final

SCALE_FROM: Final = 32
"""Up to this many peers a round takes ``round_s``; past it, one more ``round_s`` per
doubling (memberlist's push-pull scaling): each node then syncs less often, so the total
sync traffic grows as ``N / log N`` instead of ``N``."""

EXTRA_ROUNDS: Final = 4
"""Rounds on top of ``log2(N)`` that push-pull needs to reach every node with high
probability (the rumour's doubling phase is ``log2 N`` rounds; the last few holdouts take a
few more), measured in the simulation (docs/benchmarks.md)."""


def round_scale(peers: int) -> int:
    """The factor a round's interval is stretched by with ``peers`` known peers."""
    if peers <= SCALE_FROM:
        return 1
    return math.ceil(math.log2(peers) - math.log2(SCALE_FROM)) + 1


def exchange_budget(exchange_bytes: int, peers: int) -> int:
    """Event bytes one reply (or push) may carry in a mesh of ``peers`` nodes:
    ``exchange_bytes`` stretched by the same :func:`round_scale` as the round. A node's
    sync bandwidth so stays at most ``exchange_bytes`` per ``round_s`` however large the
    mesh grows, while a newcomer's catch-up (every node's hey_there: about 485 bytes a
    node) still fits in a handful of exchanges: 2.5 MiB at 10,000 nodes, where a fixed
    256 KiB needed about twenty rounds more to converge (docs/benchmarks.md)."""
    return exchange_bytes * round_scale(peers)


def propagation_rounds(peers: int) -> int:
    """Rounds within which news reaches every node of a mesh of ``peers`` nodes."""
    return math.ceil(math.log2(max(2, peers))) + EXTRA_ROUNDS


def propagation_s(peers: int, round_s: float) -> float:
    """Seconds within which news reaches every node, rounds stretched by the scale."""
    return propagation_rounds(peers) * round_s * round_scale(peers)


def reported_missing_s(
    peers: int,
    *,
    round_s: float,
    report_after_s: float,
    request_timeout_s: float,
    shortest_s: float,
) -> float:
    """Seconds from a mesh node's last word until every node shows it MISSING once its
    assigned observers agree it is down (:mod:`hereabouts.core.suspicion`): they notice
    its silence (``report_after_s``, checked once a round), probe it (at worst a timed-out
    request), and their reports cross the mesh; and never sooner than ``shortest_s``."""
    noticed = report_after_s + round_s * round_scale(peers) + request_timeout_s
    return max(shortest_s, noticed + propagation_s(peers, round_s))
