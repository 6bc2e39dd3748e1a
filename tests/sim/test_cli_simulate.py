"""``hereabouts simulate``: mistakes are one line and exit 2; the table lines up."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from hereabouts.cli import main
from hereabouts.progress import Spinner
from hereabouts.sim import scenario as scenarios
from hereabouts.sim.cli import BAR_WIDTH, _bar, summary_table
from hereabouts.sim.report_model import Figure


def refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run the command, expect exit 2 and one line on stderr, and return that line."""
    try:
        code = main(["simulate", *args])
    except SystemExit as exit_:  # argparse's refusals
        code = exit_.code  # type: ignore[assignment]
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in out + err
    return lines[0]


@pytest.mark.parametrize("value", ["0", "1", "x", "-5", "1.5", str(scenarios.MAX_NODES + 1)])
def test_a_bad_node_count_is_refused(capsys: pytest.CaptureFixture[str], value: str) -> None:
    line = refused(capsys, "fleet-start", "--nodes", value)
    assert "--nodes" in line and "from 2 to 100,000" in line


def test_a_file_as_the_output_directory_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    taken = tmp_path / "taken"
    taken.write_text("someone's file\n")
    line = refused(capsys, "fleet-start", "--out", str(taken))
    said = f"{taken}: exists and is not a directory; choose another --out"
    assert line == f"hereabouts: error: {said}"
    line = refused(capsys, "fleet-start", "--out", str(taken / "under"))
    assert "cannot create the directory" in line
    assert taken.read_text() == "someone's file\n"


def test_no_scenario_says_how_to_find_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert "hereabouts simulate --list" in refused(capsys)


def test_the_summary_table_lines_up() -> None:
    lines = summary_table([
        Figure("a", "howdys per join", 3.25, detail="closed form 3.2"),
        Figure("b", "messages", 1_234_567, unit="msgs"),
        Figure("c", "false MISSING", None, detail="not measured"),
    ])
    assert lines == [
        "figure               value       detail",
        "howdys per join       3.25       closed form 3.2",
        "messages         1,234,567 msgs",
        "false MISSING            -       not measured",
    ]


def test_the_progress_bar_shows_the_share_done() -> None:
    spinner = Spinner("simulating", stream=io.StringIO(), enabled=False)
    show = _bar(spinner, "simulating")
    show(0.5)
    half = BAR_WIDTH // 2
    assert spinner.text == f"simulating {'█' * half}{'·' * (BAR_WIDTH - half)}  50%"
    show(1.7)  # never past full
    assert spinner.text == f"simulating {'█' * BAR_WIDTH} 100%"
