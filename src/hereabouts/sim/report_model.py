"""What a simulation hands back: figures for the terminal and plots for the report.

Every scenario kind (the plaza, the mesh, site rooms) returns one :class:`SimReport`. The
command line prints its :attr:`SimReport.figures` as a table; :mod:`hereabouts.sim.report`
draws its :attr:`SimReport.plots` as PNG files and writes ``report.html`` beside them. A
report holds nothing that depends on the machine or the hour (no wall time, no dates), so
the same scenario and seed give the same report, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

PlotStyle = Literal["line", "step", "bar"]


@dataclass(frozen=True, slots=True)
class Line:
    """One labelled series of a plot: ``y[i]`` belongs to the plot's ``x[i]``."""

    label: str
    y: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Plot:
    """One picture of the report."""

    name: str
    """File stem of the PNG (lower case letters, digits and ``-``), unique in a report."""
    title: str
    x_label: str
    y_label: str
    x: tuple[float, ...]
    lines: tuple[Line, ...]
    style: PlotStyle = "line"
    log_y: bool = False
    note: str = ""
    """A sentence shown under the plot: how to read it."""


@dataclass(frozen=True, slots=True)
class Figure:
    """One row of the summary table."""

    key: str
    """Stable machine name (``howdys_per_join``), used by tests and ``summary.json``."""
    label: str
    """What a person reads (``howdys per join``)."""
    value: float | int | None
    """None: not measured in this run (shown as a dash)."""
    unit: str = ""
    detail: str = ""
    """Context: a range, the closed form it is compared with."""

    def shown(self) -> str:
        """The value as the table prints it."""
        if self.value is None:
            return "-"
        if isinstance(self.value, int):
            text = f"{self.value:,}"
        elif abs(self.value) >= 100:
            text = f"{self.value:,.0f}"
        elif abs(self.value) >= 10:
            text = f"{self.value:.1f}"
        else:
            text = f"{self.value:.3g}"
        return f"{text} {self.unit}".strip()


@dataclass(frozen=True, slots=True)
class SimReport:
    """A finished run: the scenario as written, the settings used, figures and plots."""

    scenario: str
    """The scenario's name (``fleet-start``)."""
    description: str
    scenario_text: str
    """The scenario file exactly as read."""
    settings: tuple[tuple[str, str], ...]
    """Every setting the run used after defaults and command-line overrides, as text."""
    figures: tuple[Figure, ...]
    plots: tuple[Plot, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    """Sentences about the model's shortcuts in this run (shown in the report)."""

    def figure(self, key: str) -> Figure:
        """The figure named ``key`` (KeyError if the run has none)."""
        for figure in self.figures:
            if figure.key == key:
                return figure
        raise KeyError(key)

    def value(self, key: str) -> float | int | None:
        return self.figure(key).value


__all__ = ["Figure", "Line", "Plot", "PlotStyle", "SimReport"]
