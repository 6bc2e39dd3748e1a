"""Running a scenario: hands it to the simulator of its kind."""

from __future__ import annotations

import importlib
from typing import Final

from hereabouts.sim.report_model import SimReport
from hereabouts.sim.scenario import RunOptions, Scenario

RUNNERS: Final = {
    "plaza": "hereabouts.sim.plaza",
    "mesh": "hereabouts.sim.mesh_scenario",
    "sites": "hereabouts.sim.sites",
}
"""The module that runs each kind; each has ``run_scenario(scenario, options)``. Imported
only when needed, so running one kind never pays for loading another."""


def run_scenario(scenario: Scenario, options: RunOptions | None = None) -> SimReport:
    """Simulate ``scenario`` and return its report."""
    module = importlib.import_module(RUNNERS[scenario.kind])
    report: SimReport = module.run_scenario(scenario, options or RunOptions())
    return report


__all__ = ["RUNNERS", "run_scenario"]
