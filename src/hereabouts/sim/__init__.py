"""Deterministic simulations that drive the shipped core objects.

A simulation here runs many nodes' protocol rules (the objects under
:mod:`hereabouts.core`) on a simulated clock with one seeded :class:`random.Random`, so
the same seed gives the same figures byte for byte, and what it measures is the code a node
runs, not a model of it. :mod:`hereabouts.sim.mesh` simulates the gossip mesh.
"""

from hereabouts.sim.mesh import (
    EventSizes,
    MeshSim,
    MeshSimConfig,
    MeshSimResult,
    RoundStats,
    SteadyStats,
    event_sizes,
    simulate,
)

__all__ = [
    "EventSizes",
    "MeshSim",
    "MeshSimConfig",
    "MeshSimResult",
    "RoundStats",
    "SteadyStats",
    "event_sizes",
    "simulate",
]
