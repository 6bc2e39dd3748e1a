"""Simulator: wall time per simulated node-hour, against the bare event queue.

For each plaza scenario and size, the benchmark runs :class:`hereabouts.sim.plaza.PlazaSim`
(the shipped core objects at every node, projections at the observers) and times it. The
baseline, in the same run and process, pushes the same number of events through the same
:class:`~hereabouts.sim.queue.EventQueue` with handlers that do nothing but schedule the
next event: the cost of the discrete-event machinery alone. The ratio says how much of a
run is the protocol's own code; wall time per simulated node-hour says what a size and a
span cost. Each figure is the best of ``--repeat`` runs of each (the machine is shared).

Run: ``.venv/bin/python bench/sim.py [--scenarios fleet-start,broker-outage]
[--sizes 1000,10000] [--repeat 1] [--json]`` (about 5 minutes with the defaults).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from hereabouts.sim.plaza import START_MS, PlazaSim
from hereabouts.sim.plaza_settings import read
from hereabouts.sim.queue import EventQueue
from hereabouts.sim.scenario import RunOptions, load


def run_simulation(name: str, nodes: int) -> tuple[float, int, float]:
    """Wall seconds, events handled and simulated node-hours of one run."""
    settings = read(load(name), RunOptions(nodes=nodes))
    sim = PlazaSim(settings)
    started = time.perf_counter()
    sim.run()
    wall = time.perf_counter() - started
    return wall, sim.q.events_run, nodes * settings.duration_s / 3600


def run_baseline(events: int) -> float:
    """Wall seconds for ``events`` events through the queue, each scheduling the next."""
    queue = EventQueue(START_MS)
    left = [events]

    def step(now: int, _: object) -> None:
        left[0] -= 1
        if left[0] > 0:
            queue.at(now + 1, step)

    # Keep the heap as deep as a simulation's (every node has timers pending).
    for offset in range(1, 1001):
        queue.at(START_MS + 10**12 + offset, step)
    started = time.perf_counter()
    queue.at(START_MS, step)
    queue.run_until(START_MS + events + 1)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="fleet-start,broker-outage")
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    rows = []
    for name in [s for s in args.scenarios.split(",") if s]:
        for nodes in [int(n) for n in args.sizes.split(",") if n]:
            print(f"{name} at {nodes:,} nodes ...", file=sys.stderr, flush=True)
            best_sim = best_base = float("inf")
            events = 0
            node_hours = 0.0
            for _ in range(args.repeat):
                wall, events, node_hours = run_simulation(name, nodes)
                best_sim = min(best_sim, wall)
                best_base = min(best_base, run_baseline(events))
            rows.append(
                {
                    "scenario": name,
                    "nodes": nodes,
                    "events": events,
                    "node_hours": node_hours,
                    "wall_s": best_sim,
                    "s_per_node_hour": best_sim / node_hours,
                    "baseline_s": best_base,
                    "ratio": best_sim / best_base,
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print("| scenario | N | events | node-hours | wall | per node-hour | queue alone | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['scenario']} | {row['nodes']:,} | {row['events']:,} | "
            f"{row['node_hours']:,.0f} | {row['wall_s']:.1f} s | "
            f"{row['s_per_node_hour'] * 1000:.1f} ms | {row['baseline_s']:.2f} s | "
            f"{row['ratio']:.0f}x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
