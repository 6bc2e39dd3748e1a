"""Writing a finished run to a directory: one PNG per plot, ``summary.json``, ``report.html``.

Rules this module keeps:

* **Same report, same bytes.** Nothing that depends on the hour or the machine's history
  goes into a file: the PNGs carry no software or date metadata, plots are drawn with
  matplotlib's own defaults (a user's ``matplotlibrc`` is ignored), and JSON and HTML are
  written from the report alone. Two runs of one scenario and seed give identical files.
* **matplotlib only when drawing.** It is imported inside :func:`write_report`, so
  importing the simulator (or the command line) never loads it; without it the error says
  which extra to install.
* **The directory is ours to write in, not to clear.** It is created if missing, and our
  own files in it are replaced; a path that exists and is not a directory is refused.

``report.html`` is drawn by :mod:`hereabouts.sim.report_html`.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any, Final

from hereabouts.errors import ConfigError, LocalError
from hereabouts.sim.report_html import render_html
from hereabouts.sim.report_model import Plot, SimReport

REPORT_HTML: Final = "report.html"
SUMMARY_JSON: Final = "summary.json"

PLOT_SIZE_IN: Final = (8.0, 4.5)
"""Width and height of every plot in inches: 16:9, wide enough for an hour of samples to
show detail, and small enough that a report of ten plots stays quick to scroll."""

PLOT_DPI: Final = 100
"""800 x 450 pixels at this resolution: sharp on an ordinary screen; doubling it would
quadruple the files for little a reader can see."""

PLOT_NAME: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
"""What a plot's file stem may be: safe in any file system and in a URL without escaping."""


def image_size() -> tuple[int, int]:
    """Every plot's width and height in pixels."""
    return round(PLOT_SIZE_IN[0] * PLOT_DPI), round(PLOT_SIZE_IN[1] * PLOT_DPI)


_PNG_METADATA: Final = {"Software": None}
"""Drop the "matplotlib version ..." text chunk, so files do not change with the library."""


class ReportError(ConfigError):
    """The report cannot be written where it was asked to go."""

    reason = "report"


class PlottingUnavailable(LocalError):
    """matplotlib, which draws the plots, is not installed."""

    reason = "no_matplotlib"


def require_matplotlib() -> None:
    """Raise :class:`PlottingUnavailable` unless the plots can be drawn.

    The command line calls this before a run, so nobody waits a minute to learn it.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlottingUnavailable(
            "drawing the report needs matplotlib: pip install 'hereabouts[sim]'"
        ) from None


def check_out_dir(out_dir: Path) -> None:
    """Refuse an output path that exists and is not a directory, or that cannot be created
    (a file where a parent directory should be, a parent we may not write in).

    Nothing is created: the command line checks this before a run that may take minutes.
    """
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ReportError(f"{out_dir}: exists and is not a directory; choose another --out")
        return
    parent = out_dir.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ReportError(f"{out_dir}: cannot create the directory ({parent} is not one)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ReportError(f"{out_dir}: cannot create the directory ({parent} is not writable)")


def write_report(
    report: SimReport, out_dir: Path, progress: Callable[[float], None] | None = None
) -> Path:
    """Write ``report`` into ``out_dir`` and return the path of its ``report.html``.

    ``progress``, if given, is called with the share of the plots drawn so far.
    """
    _check_plots(report)
    require_matplotlib()
    check_out_dir(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"{out_dir}: cannot create the directory ({exc.strerror})") from None
    total = len(report.plots)
    for done, plot in enumerate(report.plots, start=1):
        (out_dir / f"{plot.name}.png").write_bytes(draw_png(plot))
        if progress is not None:
            progress(done / total)
    summary = json.dumps(summary_of(report), indent=2, ensure_ascii=False, allow_nan=False)
    (out_dir / SUMMARY_JSON).write_text(summary + "\n", encoding="utf-8")
    page = out_dir / REPORT_HTML
    page.write_text(render_html(report, image_size()), encoding="utf-8")
    if progress is not None:
        progress(1.0)
    return page


def summary_of(report: SimReport) -> dict[str, Any]:
    """What ``summary.json`` holds: the run's figures for scripts, in the table's order.

    A value that is not a finite number is written as null (JSON has no NaN or infinity).
    """
    return {
        "scenario": report.scenario,
        "description": report.description,
        "settings": dict(report.settings),
        "figures": [
            {
                "key": figure.key,
                "label": figure.label,
                "value": _finite(figure.value),
                "unit": figure.unit,
                "detail": figure.detail,
            }
            for figure in report.figures
        ],
        "plots": [
            {"name": plot.name, "file": f"{plot.name}.png", "title": plot.title}
            for plot in report.plots
        ],
        "notes": list(report.notes),
    }


def _finite(value: float | int | None) -> float | int | None:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _check_plots(report: SimReport) -> None:
    """A simulator's mistakes (not the user's): caught before any file is written."""
    seen: set[str] = set()
    for plot in report.plots:
        if not PLOT_NAME.fullmatch(plot.name) or plot.name in seen:
            raise ValueError(f"plot name {plot.name!r} is not a unique file stem")
        seen.add(plot.name)
        for line in plot.lines:
            if len(line.y) != len(plot.x):
                raise ValueError(
                    f"plot {plot.name}: line {line.label!r} has "
                    f"{len(line.y)} values for {len(plot.x)} x values"
                )


def draw_png(plot: Plot) -> bytes:
    """The plot as PNG bytes (matplotlib's Agg renderer, no pyplot and no global state)."""
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.style.context("default"):
        figure = Figure(figsize=PLOT_SIZE_IN, dpi=PLOT_DPI, layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        _draw_lines(axes, plot)
        axes.set_title(plot.title)
        axes.set_xlabel(plot.x_label)
        axes.set_ylabel(plot.y_label)
        axes.grid(True, alpha=0.3)
        if plot.log_y and _any_positive(plot):
            axes.set_yscale("log")
        if len(plot.lines) > 1:
            axes.legend()
        if not plot.x:
            axes.text(0.5, 0.5, "no data", transform=axes.transAxes, ha="center")
        out = io.BytesIO()
        figure.savefig(out, format="png", metadata=_PNG_METADATA)
    return out.getvalue()


def _draw_lines(axes: Any, plot: Plot) -> None:
    if plot.style == "bar":
        width = 0.8 * _spacing(plot.x) / max(len(plot.lines), 1)
        middle = (len(plot.lines) - 1) / 2
        for index, line in enumerate(plot.lines):
            shift = (index - middle) * width
            axes.bar([x + shift for x in plot.x], line.y, width=width, label=line.label)
        return
    marker = "o" if len(plot.x) == 1 else None  # a single point draws no line
    for line in plot.lines:
        if plot.style == "step":
            axes.step(plot.x, line.y, where="post", label=line.label, marker=marker)
        else:
            axes.plot(plot.x, line.y, label=line.label, marker=marker)


def _spacing(xs: tuple[float, ...]) -> float:
    """The smallest gap between neighbouring x values (1 if there is none): bar groups
    fill most of it and never overlap."""
    ordered = sorted(set(xs))
    gaps = [b - a for a, b in pairwise(ordered)]
    return min(gaps) if gaps else 1.0


def _any_positive(plot: Plot) -> bool:
    """A log axis needs a value above zero; without one the plot stays linear."""
    return any(v > 0 and math.isfinite(v) for line in plot.lines for v in line.y)


__all__ = [
    "PLOT_DPI",
    "PLOT_SIZE_IN",
    "REPORT_HTML",
    "SUMMARY_JSON",
    "PlottingUnavailable",
    "ReportError",
    "check_out_dir",
    "draw_png",
    "image_size",
    "require_matplotlib",
    "summary_of",
    "write_report",
]
