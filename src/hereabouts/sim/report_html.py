"""``report.html``: one self-contained page showing a run, its settings and its plots.

The page needs nothing but the PNG files beside it: its style is inline, it runs no script
(its content security policy forbids any), and it names no other site. Every text from
the report is HTML-escaped, since a scenario file (and so its description) may come from
anyone.
"""

from __future__ import annotations

from html import escape
from typing import Final

from hereabouts.sim.report_model import SimReport

_STYLE: Final = """
body { font: 15px/1.5 system-ui, sans-serif; color: #1d2327; background: #fafafa;
       margin: 0; }
main { max-width: 860px; margin: 0 auto; padding: 1.5rem 1rem 3rem; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 .5rem; border-bottom: 1px solid #ddd; }
h3 { font-size: 1rem; margin: 1.5rem 0 .25rem; }
.description { color: #50575e; margin: 0; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .2rem .6rem .2rem 0; vertical-align: top;
         border-bottom: 1px solid #eee; }
td.value { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
figure { margin: 0 0 1.5rem; }
img { max-width: 100%; height: auto; background: #fff; border: 1px solid #ddd; }
figcaption { color: #50575e; font-size: .9rem; }
pre { background: #fff; border: 1px solid #ddd; padding: .75rem; overflow-x: auto;
      font-size: .85rem; }
"""

_POLICY: Final = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"
"""Images from beside the page, the inline style, and nothing else (no script at all)."""


def render_html(report: SimReport, image_size: tuple[int, int]) -> str:
    """The page for ``report``, as text; ``image_size`` is every PNG's width and height in
    pixels, so the page keeps its layout while the images load."""
    parts = [
        "<!doctype html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_POLICY}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>hereabouts simulate: {escape(report.scenario)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        "<main>",
        f"<h1>{escape(report.scenario)}</h1>",
        f'<p class="description">{escape(report.description)}</p>',
        *_summary(report),
        *_settings(report),
        *_notes(report),
        *_plots(report, image_size),
        "<h2>Scenario file</h2>",
        f"<pre>{escape(report.scenario_text)}</pre>",
        "</main>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def _summary(report: SimReport) -> list[str]:
    rows = [
        f'<tr><td>{escape(f.label)}</td><td class="value">{escape(f.shown())}</td>'
        f"<td>{escape(f.detail)}</td></tr>"
        for f in report.figures
    ]
    return [
        "<h2>Summary</h2>",
        "<table>",
        "<tr><th>figure</th><th>value</th><th>detail</th></tr>",
        *rows,
        "</table>",
    ]


def _settings(report: SimReport) -> list[str]:
    rows = [
        f"<tr><td>{escape(key)}</td><td>{escape(value)}</td></tr>" for key, value in report.settings
    ]
    return [
        "<h2>Settings</h2>",
        "<table>",
        "<tr><th>setting</th><th>value</th></tr>",
        *rows,
        "</table>",
    ]


def _notes(report: SimReport) -> list[str]:
    if not report.notes:
        return []
    return ["<h2>Notes</h2>", "<ul>", *(f"<li>{escape(n)}</li>" for n in report.notes), "</ul>"]


def _plots(report: SimReport, image_size: tuple[int, int]) -> list[str]:
    if not report.plots:
        return []
    width, height = image_size
    parts = ["<h2>Plots</h2>"]
    for plot in report.plots:
        parts += [
            "<figure>",
            f"<h3>{escape(plot.title)}</h3>",
            f'<img src="{escape(plot.name)}.png" alt="{escape(plot.title)}" '
            f'width="{width}" height="{height}">',
        ]
        if plot.note:
            parts.append(f"<figcaption>{escape(plot.note)}</figcaption>")
        parts.append("</figure>")
    return parts


__all__ = ["render_html"]
