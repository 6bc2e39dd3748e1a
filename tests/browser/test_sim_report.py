"""A simulation's ``report.html`` in a real headless Chromium: every plot loads.

Two reports: one written from a hand-built report with a plot of every style, and one
written by ``hereabouts simulate`` for a shipped scenario at small N. Each is opened the two
ways people open it: from the disk (``file://``) and served by a plain HTTP server on
127.0.0.1. Each time, every ``<img>`` must have loaded (complete, with
a natural width), there must be one per plot of the report (counted from its
``summary.json``), and the page must raise no script error or policy violation and run no
script (the hand-built description holds a ``<script>``). Screenshots of the pages go to
``test-output/sim-report/``.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hereabouts.sim.report import write_report
from tests.browser.support import TIMEOUT_MS, PageProblems, chromium, needs_chromium
from tests.sim.report_sample import sample_report
from tests.sim.running import NO_PLAZA, SMALL, plaza_ready, simulate

pytestmark = needs_chromium

OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "sim-report"

IMAGES = """() => [...document.images].map((img) => ({
  src: img.getAttribute('src'), complete: img.complete, width: img.naturalWidth,
}))"""


@dataclass(frozen=True)
class WrittenReport:
    source: str
    folder: Path
    plots: int
    """How many plots the report has, from its summary.json."""


@pytest.fixture(scope="module", params=["hand-built", "hereabouts simulate"])
def written_report(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> WrittenReport:
    """A report with a plot of every style, written by :func:`write_report`; and one that
    ``hereabouts simulate`` wrote for a shipped scenario at small N, as a user runs it."""
    folder = tmp_path_factory.mktemp("sim-report") / "report"
    if request.param == "hand-built":
        write_report(sample_report(), folder)
    else:
        if not plaza_ready():
            pytest.skip(NO_PLAZA)
        result = simulate(*SMALL, "--out", str(folder))
        assert result.returncode == 0, result.stderr
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    plots = len(summary["plots"])
    return WrittenReport(source=request.param.replace(" ", "-"), folder=folder, plots=plots)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def served(folder: Path) -> Iterator[str]:
    """``folder`` over HTTP on 127.0.0.1, for as long as the block runs."""
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="report-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/report.html"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("opened", ["file", "http"])
async def test_every_plot_of_the_report_loads(written_report: WrittenReport, opened: str) -> None:
    assert written_report.plots >= 1
    problems = PageProblems()
    dialogs: list[str] = []
    with contextlib.ExitStack() as stack:
        if opened == "http":
            url = stack.enter_context(served(written_report.folder))
        else:
            url = (written_report.folder / "report.html").as_uri()
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1000, "height": 800})  # type: ignore[attr-defined]
            problems.watch(page, opened)
            page.on("dialog", lambda d: dialogs.append(d.message))
            await page.goto(url, wait_until="load", timeout=TIMEOUT_MS)
            images = await page.evaluate(IMAGES)
            OUTPUT.mkdir(parents=True, exist_ok=True)
            shot = OUTPUT / f"{written_report.source}-{opened}.png"
            await page.screenshot(path=str(shot), full_page=True)
    assert len(images) == written_report.plots, images
    unloaded = [img for img in images if not (img["complete"] and img["width"] > 0)]
    assert not unloaded, f"plots that did not load: {unloaded}"
    assert not problems.problems, problems.problems
    assert not dialogs, "a script from the scenario's text ran"
