"""Deterministic simulations that drive the shipped core objects.

A simulation here runs many nodes' protocol rules (the objects under
:mod:`hereabouts.core`) on a simulated clock with seeded randomness, so the same seed gives
the same figures byte for byte, and what it measures is the code a node runs, not a model of
it. :mod:`hereabouts.sim.plaza` simulates the plaza, :mod:`hereabouts.sim.mesh` the gossip
mesh and :mod:`hereabouts.sim.sites` site rooms; ``hereabouts simulate`` runs scenario files
(:mod:`hereabouts.sim.scenario`).

Nothing is imported here eagerly: the simulators need numpy (the ``sim`` extra), and the
command line imports this package for every command, so a node without the extra must not
pay for it or fail on it. The mesh simulator's names are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_MESH_NAMES = (
    "EventSizes",
    "MeshSim",
    "MeshSimConfig",
    "MeshSimResult",
    "RoundStats",
    "SteadyStats",
    "event_sizes",
    "simulate",
)


def __getattr__(name: str) -> Any:
    if name in _MESH_NAMES:
        return getattr(importlib.import_module("hereabouts.sim.mesh"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_MESH_NAMES)
