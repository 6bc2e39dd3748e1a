"""The report writer: PNGs that decode, a summary that reads back, a page that escapes
what it shows, and the same bytes every time."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from hereabouts.errors import ConfigError
from hereabouts.sim.report import (
    REPORT_HTML,
    SUMMARY_JSON,
    PlottingUnavailable,
    ReportError,
    image_size,
    write_report,
)
from tests.sim.report_sample import sample_report

ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's header chunk (IHDR, always first)."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    return width, height


class Page(HTMLParser):
    """The images and the text of a page, as a browser would parse them."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.links: list[str] = []
        self.scripts = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs))
        if tag == "script":
            self.scripts += 1
        self.links += [v for k, v in attrs if k in ("src", "href") and v]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def read_page(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_every_plot_is_a_png_of_the_stated_size(tmp_path: Path) -> None:
    import matplotlib.image

    report = sample_report()
    page = write_report(report, tmp_path / "out")
    assert page == tmp_path / "out" / REPORT_HTML
    for plot in report.plots:
        path = tmp_path / "out" / f"{plot.name}.png"
        assert png_size(path.read_bytes()) == image_size() == (800, 450)
        pixels = matplotlib.image.imread(path)  # decodes the whole image, not just its header
        assert pixels.shape[:2] == (450, 800)
        assert pixels.std() > 0, f"{plot.name} is blank"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [REPORT_HTML, SUMMARY_JSON, *(f"{p.name}.png" for p in report.plots)]
    )


def test_the_summary_reads_back_as_the_report_says(tmp_path: Path) -> None:
    report = sample_report()
    write_report(report, tmp_path)
    summary = json.loads((tmp_path / SUMMARY_JSON).read_text(encoding="utf-8"))
    assert summary["scenario"] == report.scenario
    assert summary["settings"] == dict(report.settings)
    assert summary["notes"] == list(report.notes)
    assert [f["key"] for f in summary["figures"]] == [f.key for f in report.figures]
    for written, figure in zip(summary["figures"], report.figures, strict=True):
        assert set(written) == {"key", "label", "value", "unit", "detail"}
        assert (written["label"], written["unit"], written["detail"]) == (
            figure.label, figure.unit, figure.detail)
    values = {f["key"]: f["value"] for f in summary["figures"]}
    # JSON has no infinity: a value that is not finite is written as null, like "not measured".
    assert values == {"howdys_per_join": 3.25, "messages": 123_456, "false_missing": None,
                      "ratio": None}
    assert [p["file"] for p in summary["plots"]] == [f"{p.name}.png" for p in report.plots]


def test_the_page_shows_every_plot_and_escapes_every_text(tmp_path: Path) -> None:
    report = sample_report()
    html_path = write_report(report, tmp_path)
    html = html_path.read_text(encoding="utf-8")
    page = read_page(html_path)
    assert [img["src"] for img in page.images] == [f"{p.name}.png" for p in report.plots]
    assert [img["alt"] for img in page.images] == [p.title for p in report.plots]
    assert page.scripts == 0, "the <script> in the description must be text, not a script"
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "<b>" not in html and "<tags>" not in html and "<left>" not in html
    text = "".join(page.text)
    for shown in (report.description, *report.notes, report.scenario_text,
                  *(p.note for p in report.plots if p.note), "3.25", "123,456 msgs"):
        assert shown in text
    for key, value in report.settings:
        assert key in text and value in text
    # Self-contained: every reference is a file beside the page.
    assert all("/" not in link and ":" not in link for link in page.links), page.links
    assert "http://" not in html and "https://" not in html


def test_the_same_report_gives_the_same_bytes(tmp_path: Path) -> None:
    report = sample_report()
    write_report(report, tmp_path / "once")
    first = {p.name: p.read_bytes() for p in (tmp_path / "once").iterdir()}
    (tmp_path / "once" / "statuses.png").write_bytes(b"an earlier report's file")
    write_report(report, tmp_path / "once")  # written over
    again = {p.name: p.read_bytes() for p in (tmp_path / "once").iterdir()}
    assert again == first
    for chunk in (b"Software", b"matplotlib", b"tIME"):  # no version, no date
        assert all(chunk not in data for name, data in first.items() if name.endswith(".png"))


def test_two_interpreters_with_different_hash_seeds_write_the_same_bytes(
    tmp_path: Path,
) -> None:
    written = {}
    for hash_seed in ("1", "2"):
        out = tmp_path / f"seed-{hash_seed}"
        subprocess.run(
            [sys.executable, "-m", "tests.sim.report_sample", str(out)],
            check=True, cwd=ROOT, capture_output=True, timeout=120,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
        )
        written[hash_seed] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    assert len(written["1"]) == 5
    assert written["1"] == written["2"]


def test_a_file_is_refused_as_the_output_directory(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("someone's file\n")
    with pytest.raises(ReportError, match="exists and is not a directory") as refused:
        write_report(sample_report(), taken)
    assert isinstance(refused.value, ConfigError)
    assert taken.read_text() == "someone's file\n"
    with pytest.raises(ReportError, match="cannot create"):
        write_report(sample_report(), taken / "under")


def test_a_missing_directory_is_created_with_its_parents(tmp_path: Path) -> None:
    page = write_report(sample_report(), tmp_path / "a" / "b")
    assert page.is_file()


def test_progress_rises_to_one(tmp_path: Path) -> None:
    seen: list[float] = []
    write_report(sample_report(), tmp_path, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= len(sample_report().plots)


def test_without_matplotlib_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    with pytest.raises(PlottingUnavailable, match=r"hereabouts\[sim\]"):
        write_report(sample_report(), tmp_path / "out")
    assert not (tmp_path / "out").exists(), "nothing written before the refusal"


def test_importing_the_simulator_does_not_load_matplotlib() -> None:
    code = ("import sys, hereabouts.sim, hereabouts.sim.report, hereabouts.cli; "
            "print('matplotlib' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=60)
    assert result.stdout.strip() == "False"
