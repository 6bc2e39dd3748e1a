"""A hand-built report with one plot of each style, for the report writer's tests.

Run as ``python -m tests.sim.report_sample DIR`` it writes the report into ``DIR``, so a
test can write it from two interpreters (two hash seeds) and compare the bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hereabouts.sim.report_model import Figure, Line, Plot, SimReport

SCENARIO_TEXT = """\
kind = "plaza"
description = "A sample <script>alert('x')</script> & friends"
nodes = 50
seed = 3
"""


def sample_report() -> SimReport:
    minutes = tuple(float(m) for m in range(0, 61, 5))
    return SimReport(
        scenario="sample",
        description="A sample <script>alert('x')</script> & friends",
        scenario_text=SCENARIO_TEXT,
        settings=(("nodes", "50"), ("seed", "3"), ("loss", "1 %")),
        figures=(
            Figure("howdys_per_join", "howdys per join", 3.25, detail="closed form: 3.2"),
            Figure("messages", "messages", 123_456, unit="msgs"),
            Figure("false_missing", "false MISSING per node-hour", None),
            Figure("ratio", "a ratio <b>", float("inf")),
        ),
        plots=(
            Plot(
                name="statuses",
                title="Statuses over time",
                x_label="minutes",
                y_label="nodes",
                x=minutes,
                lines=(
                    Line("ONLINE", tuple(min(50.0, 10.0 * m) for m in minutes)),
                    Line("MISSING", tuple(max(0.0, 50.0 - 10.0 * m) for m in minutes)),
                ),
                style="step",
                note="Every observer's view, summed: ONLINE rises as nodes are heard.",
            ),
            Plot(
                name="messages-per-second",
                title="Messages per second",
                x_label="minutes",
                y_label="messages/s",
                x=minutes,
                lines=(Line("all", tuple(1.0 + 1000.0 / (1.0 + m) for m in minutes)),),
                log_y=True,
            ),
            Plot(
                name="howdys-per-join",
                title="Howdys per join",
                x_label="howdys",
                y_label="joins",
                x=(0.0, 1.0, 2.0, 3.0, 4.0),
                lines=(Line("joins", (1.0, 4.0, 20.0, 15.0, 2.0)),
                       Line("expected", (0.0, 5.0, 18.0, 16.0, 3.0))),
                style="bar",
                note="Bars <left> & right: measured and expected.",
            ),
        ),
        notes=("Full projections at 50 observers of 50.", "A note with <tags> & ampersands."),
    )


if __name__ == "__main__":
    from hereabouts.sim.report import write_report

    print(write_report(sample_report(), Path(sys.argv[1])))
