"""``hereabouts simulate``: run a scenario, print its figures, write its report.

``hereabouts simulate SCENARIO [--nodes N] [--seed S] [--out DIR]`` reads a shipped
scenario by name (``--list`` shows them) or a scenario file by path, runs it, prints the
summary table on stdout and writes the report (:mod:`hereabouts.sim.report`) into ``DIR``,
by default ``./sim-<scenario name>``. Everything that can be checked before the run is: the
scenario, the values, where the report goes, that matplotlib is there. While it runs, a
progress bar is drawn on stderr if stderr is a terminal (:mod:`hereabouts.progress`), and
nothing otherwise, so logs and pipes get only the table.

The report writer, the simulator of the scenario's kind and matplotlib are imported only
when the command runs, so the rest of the command line does not pay for loading them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from hereabouts.errors import ConfigError
from hereabouts.progress import Spinner, say
from hereabouts.sim import scenario as scenarios

if TYPE_CHECKING:
    from hereabouts.sim.report_model import Figure

MAX_SEED: Final = 2**63 - 1
"""Largest ``--seed``: what a scenario file's ``seed`` may be."""

BAR_WIDTH: Final = 24
"""Cells of the progress bar: fine enough to move every few seconds on a minute-long run."""


def _whole(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip(), 10)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"must be a whole number from {low:,} to {high:,}, got {text!r}"
            )
        return value

    return parse


def _out_dir(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return Path(text)


def register(commands: Any) -> None:
    """Add the ``simulate`` command to the top-level sub-parsers."""
    simulate = commands.add_parser(
        "simulate",
        help="simulate a network running the shipped core, and draw a report",
        description="Run a scenario on a simulated clock with seeded randomness: the summary "
        "is printed, and plots and report.html are written to --out.",
    )
    simulate.add_argument(
        "scenario",
        nargs="?",
        metavar="SCENARIO",
        help="a shipped scenario's name (see --list) or the path of a scenario file",
    )
    simulate.add_argument(
        "--nodes",
        type=_whole(2, scenarios.MAX_NODES),
        metavar="N",
        help="how many nodes (default: the scenario's)",
    )
    simulate.add_argument(
        "--seed",
        type=_whole(0, MAX_SEED),
        metavar="S",
        help="seed of the run's randomness (default: the scenario's)",
    )
    simulate.add_argument(
        "--out",
        type=_out_dir,
        metavar="DIR",
        help="directory for the report (default: ./sim-SCENARIO)",
    )
    simulate.add_argument("--list", action="store_true", help="list the shipped scenarios and exit")
    simulate.set_defaults(func=_simulate)


def _simulate(args: argparse.Namespace) -> int:
    if args.list:
        _print_list()
        return 0
    if args.scenario is None:
        raise ConfigError(
            "which scenario? give a shipped name or a file (hereabouts simulate --list)"
        )
    from hereabouts.sim.report import check_out_dir, require_matplotlib, write_report
    from hereabouts.sim.run import run_scenario

    if args.out is not None:
        check_out_dir(args.out)  # before reading anything: a wrong --out is found at once
    scenario = scenarios.load(args.scenario)
    out_dir = args.out if args.out is not None else Path(f"sim-{scenario.name}")
    check_out_dir(out_dir)
    require_matplotlib()
    nodes = args.nodes if args.nodes is not None else scenario.nodes
    seed = args.seed if args.seed is not None else scenario.seed
    what = f"simulating {scenario.name}, {nodes:,} nodes, seed {seed}"
    with Spinner(what) as shown:
        options = scenarios.RunOptions(nodes=nodes, seed=seed, progress=_bar(shown, what))
        report = run_scenario(scenario, options)
    say(f"{scenario.name}: {nodes:,} nodes, seed {seed}")
    for line in summary_table(report.figures):
        say(line)
    with Spinner(f"drawing the report in {out_dir}") as shown:
        page = write_report(report, out_dir, progress=_bar(shown, shown.text))
    say(f"report: {page}")
    return 0


def _print_list() -> None:
    names = scenarios.shipped()
    width = max((len(name) for name in names), default=0)
    for name in names:
        description = scenarios.load(name).description
        say(f"{name:<{width}}  {description}".rstrip())


def _bar(spinner: Spinner, text: str) -> Callable[[float], None]:
    """A progress callback that shows the share done beside the spinner's text."""

    def show(share: float) -> None:
        share = min(max(share, 0.0), 1.0)
        filled = round(share * BAR_WIDTH)
        # The spinner's thread reads ``text`` at its next frame; one assignment is atomic.
        spinner.text = f"{text} {'█' * filled}{'·' * (BAR_WIDTH - filled)} {share:4.0%}"

    return show


def summary_table(figures: Sequence[Figure]) -> list[str]:
    """The figures as aligned lines: figure, value (numbers right-aligned, units beside
    them), detail."""
    rows = [("figure", "value", "", "detail")]
    for figure in figures:
        shown, unit = figure.shown(), figure.unit if figure.value is not None else ""
        rows.append((figure.label, shown.removesuffix(unit).rstrip(), unit, figure.detail))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    return [
        f"{label:<{widths[0]}}  {value:>{widths[1]}} {unit:<{widths[2]}}  {detail}".rstrip()
        for label, value, unit, detail in rows
    ]


__all__ = ["register", "summary_table"]
