"""``hereabouts simulate``: mistakes are one line and exit 2; the table lines up."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hereabouts.cli import main
from hereabouts.progress import Spinner
from hereabouts.sim import scenario as scenarios
from hereabouts.sim.cli import BAR_WIDTH, _bar, summary_table
from hereabouts.sim.report_model import Figure
from tests.sim.running import COMMAND, NO_PLAZA, SMALL, plaza_ready, simulate


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


# --- the whole command, as a process, on a shipped scenario --------------------------------

needs_plaza = pytest.mark.skipif(not plaza_ready(), reason=NO_PLAZA)


@needs_plaza
def test_a_shipped_scenario_prints_its_table_and_writes_its_report(tmp_path: Path) -> None:
    result = simulate(*SMALL, "--out", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", "nothing but the table when stderr is not a terminal"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    lines = result.stdout.splitlines()
    assert lines[0].startswith("fleet-start: 50 nodes, seed ")
    assert lines[1].startswith("figure ") and "value" in lines[1]
    table = lines[2:-1]
    assert [line.split("  ")[0] for line in table] == [f["label"] for f in summary["figures"]]
    assert lines[-1] == f"report: {Path('out') / 'report.html'}"
    files = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"report.html", "summary.json", *(p["file"] for p in summary["plots"])} == files
    assert summary["plots"], "a plaza run draws plots"


@needs_plaza
def test_the_same_seed_writes_the_same_report_twice(tmp_path: Path) -> None:
    for out in ("first", "second"):
        assert simulate(*SMALL, "--seed", "7", "--out", out, cwd=tmp_path).returncode == 0
    first = {p.name: p.read_bytes() for p in (tmp_path / "first").iterdir()}
    second = {p.name: p.read_bytes() for p in (tmp_path / "second").iterdir()}
    assert first == second


@needs_plaza
def test_the_default_output_directory_is_named_after_the_scenario(tmp_path: Path) -> None:
    result = simulate(*SMALL, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "sim-fleet-start" / "report.html").is_file()


@needs_plaza
def test_the_list_names_every_shipped_scenario_with_its_description(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["simulate", "--list"]) == 0
    out = capsys.readouterr().out
    for name in scenarios.shipped():
        line = next(line for line in out.splitlines() if line.split()[0] == name)
        assert scenarios.load(name).description in line


@needs_plaza
@pytest.mark.parametrize(
    ("text", "said"),
    [
        (None, "no scenario named 'no-such-scenario'"),
        ('kind = "plaza"\nnodes = [1,\n', "not valid TOML"),
        ('kind = "plaza"\nnodes = 10\nno_such_setting = 1\n', "no_such_setting"),
        ('kind = "bazaar"\n', "kind must be one of"),
    ],
    ids=["unknown name", "bad TOML", "unknown key", "unknown kind"],
)
def test_a_bad_scenario_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str | None, said: str
) -> None:
    if text is None:
        target = "no-such-scenario"
    else:
        (tmp_path / "bad.toml").write_text(text, encoding="utf-8")
        target = str(tmp_path / "bad.toml")
    line = refused(capsys, target, "--out", str(tmp_path / "out"))
    assert line.startswith("hereabouts: error: ") and said in line
    assert not (tmp_path / "out").exists()


@needs_plaza
def test_on_a_terminal_a_bar_moves_and_ctrl_c_ends_the_run_quietly(tmp_path: Path) -> None:
    """stderr is a pseudo-terminal: the bar is drawn there; SIGINT (Ctrl-C) mid-run ends
    the command with 130, the bar's line wiped, no traceback and no report."""
    main_end, terminal = pty.openpty()
    process = subprocess.Popen(
        [*COMMAND, "fleet-start", "--nodes", "10000", "--out", "out"], cwd=tmp_path,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=terminal,
        env={**os.environ, "TERM": "xterm"},
    )
    os.close(terminal)
    shown = b""
    try:
        deadline = time.monotonic() + 120
        while b"%" not in shown and time.monotonic() < deadline and process.poll() is None:
            if select.select([main_end], [], [], 0.2)[0]:
                shown += _read(main_end)
        assert b"%" in shown, f"no progress bar on the terminal: {shown[-300:]!r}"
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    while chunk := _read(main_end):
        shown += chunk
    os.close(main_end)
    assert process.stdout is not None
    out = process.stdout.read().decode()
    process.stdout.close()
    text = shown.decode(errors="replace")
    assert code == 130, text[-300:]
    assert "simulating fleet-start, 10,000 nodes" in text
    assert "Traceback" not in text + out
    assert text.endswith("\r\x1b[K"), "the bar's line is wiped"
    assert not (tmp_path / "out" / "report.html").exists()


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # the other end has closed
        return b""


@needs_plaza
def test_without_matplotlib_the_command_stops_before_the_run(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['matplotlib'] = None; from hereabouts.cli import main; "
            f"sys.exit(main(['simulate', *{SMALL!r}, '--out', 'out']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "hereabouts: error: drawing the report needs matplotlib: pip install 'hereabouts[sim]'"
    ]
    assert not (tmp_path / "out").exists()
