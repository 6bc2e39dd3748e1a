"""Mesh: how fast the gossip mesh converges and what it costs in bytes, in real node
processes and in the deterministic simulation.

**Real processes** (``--sizes``, 20 and 50 by default): N mesh-only nodes, each a
``hereabouts up --fast --no-plaza --no-sites`` process on 127.0.0.1 (round 1 s, stretched by
``round_scale``; heartbeats every 1-2 s), seeded as a chain (each node knows only the one
started before it) or from three random earlier nodes (``--topology seeds``). Measured:

* **convergence**: from the moment every node serves HTTP until every node lists all the
  others ONLINE, in seconds and in rounds (each node's own ``mesh.rounds`` from ``/healthz``,
  counted from when it served HTTP until it first listed everyone);
* **steady state**: over ``--steady`` seconds once converged, each node's sync bytes in
  and out (``hereabouts_mesh_bytes_total``), its rounds and the events it took in
  (``hereabouts_mesh_events_in_total``: ``new``, and ``known``, a duplicate). The baseline
  is the *floor* computed in the same run: one digest of N origins per round plus each new
  event once (a sealed newspaper of these nodes). Target: bytes in within 2x the floor.

**Simulation** (``--sim-sizes``, 1,000 and 10,000 by default): :mod:`hereabouts.sim.mesh`,
the shipped peer book and planner on a simulated clock, production mesh settings (30 s
rounds and 256 KiB replies, both stretched by ``round_scale``, heal every 4th round), three
random seeds per node, 20 % of exchanges failing. Up to 2,000 nodes the real planner runs and the
steady state is measured too (newspapers every 120 s); past that the exact set model runs
convergence only (see the module's docstring and docs/benchmarks.md). Measured: rounds to
full convergence against ``log2(N) + 4``, bytes per node per round, and in the steady state
the bytes against the floor and how far views lag.

Progress goes to stderr, figures to stdout. Misses are reported, not failed.

Run: ``.venv/bin/python bench/mesh.py [--sizes 20,50] [--sim-sizes 1000,10000] [--json]``
(about 10 minutes with the defaults on 2 cores; ``--sizes ''`` or ``--sim-sizes ''`` skips
a part).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the process launcher the mesh tests use

from tests.adversarial.processes import UpProcess  # noqa: E402

from hereabouts.core.meshmath import propagation_rounds  # noqa: E402
from hereabouts.events import Newspaper, NewspaperStatus  # noqa: E402
from hereabouts.identity import Identity  # noqa: E402
from hereabouts.sim.mesh import MeshSimConfig, MeshSimResult, message_bytes, simulate  # noqa: E402
from hereabouts.wire import seal  # noqa: E402

RATIO_TARGET = 2.0
"""Steady-state bytes within twice the floor (issue 12)."""
CONVERGE_TIMEOUT_S = 240.0
POLL_S = 0.5
PLANNER_UP_TO = 2000
"""Simulated sizes up to this run the real planner (and the steady state); larger ones the
set model (convergence only)."""

_METRIC = re.compile(r'^hereabouts_(mesh_bytes|mesh_events_in)_total\{\w+="(\w+)"\} (\S+)$')


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- real processes ---------------------------------------------------------------------------


@dataclasses.dataclass
class ProcessFigures:
    size: int
    topology: str
    converge_s: float = 0.0
    rounds: list[int] = dataclasses.field(default_factory=list)
    steady_s: float = 0.0
    bytes_in_per_s: float = 0.0
    bytes_out_per_s: float = 0.0
    rounds_per_s: float = 0.0
    new_per_s: float = 0.0
    known_per_s: float = 0.0
    digest_bytes: int = 0
    newspaper_bytes: int = 0

    @property
    def floor_per_s(self) -> float:
        return self.rounds_per_s * self.digest_bytes + self.new_per_s * (self.newspaper_bytes + 1)

    @property
    def ratio(self) -> float:
        return self.bytes_in_per_s / self.floor_per_s if self.floor_per_s else float("nan")


def newspaper_bytes(name: str, peers: int) -> int:
    """A sealed newspaper of a node named like these (same width), reporting ``peers``."""
    identity = Identity.generate()
    event = Newspaper(
        name=name, did=identity.did, boot_id="0123456789abcdef", at_ms=int(time.time() * 1000),
        status=NewspaperStatus(online_peers=peers, uptime_s=60, next_in_s=2),
    )
    return len(seal(event, identity))


async def counters(client: httpx.AsyncClient, node: UpProcess) -> dict[str, float]:
    """``{"bytes_in": ..., "bytes_out": ..., "events_new": ..., "events_known": ...,
    "rounds": ...}`` of one node now."""
    text = (await client.get(f"{node.url}/metrics")).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        match = _METRIC.match(line)
        if match:
            kind = "bytes" if match[1] == "mesh_bytes" else "events"
            found[f"{kind}_{match[2]}"] = float(match[3])
    health = (await client.get(f"{node.url}/healthz")).json()
    found["rounds"] = float(health["mesh"]["rounds"])
    return found


async def measure_processes(
    size: int, topology: str, steady_s: float, workdir: Path, rng: random.Random
) -> ProcessFigures:
    figures = ProcessFigures(size, topology)
    names = [f"mesh-{n:02d}" for n in range(size)]
    nodes: list[UpProcess] = []
    for name in names:
        seeds = nodes[-1:] if topology == "chain" else rng.sample(nodes, min(3, len(nodes)))
        args = [a for seed in seeds for a in ("--mesh-seed", seed.url)]
        nodes.append(UpProcess(workdir / name, "--name", name, "--no-sites", *args, plaza=False))
    everyone = set(names)
    async with contextlib.AsyncExitStack() as stack, httpx.AsyncClient(timeout=20) as client:
        for node in nodes:
            node.start()
            stack.callback(node.stop)
        await asyncio.gather(*(node.wait_http() for node in nodes))
        started = time.monotonic()
        first = await asyncio.gather(*(counters(client, n) for n in nodes))
        log(f"  {size} nodes serve HTTP; waiting for every node to list every other ONLINE")
        done: dict[int, int] = {}
        while len(done) < size:
            if time.monotonic() - started > CONVERGE_TIMEOUT_S:
                raise RuntimeError(f"{size - len(done)} nodes incomplete after "
                                   f"{CONVERGE_TIMEOUT_S:.0f} s")
            answers = await asyncio.gather(
                *(client.get(f"{n.url}/v1/peers") for i, n in enumerate(nodes) if i not in done)
            )
            pending = [i for i in range(size) if i not in done]
            for index, answer in zip(pending, answers, strict=True):
                online = {p["claimed_name"] for p in answer.json()["peers"]
                          if p["status"] == "ONLINE"}
                if online >= everyone - {names[index]}:
                    health = (await client.get(f"{nodes[index].url}/healthz")).json()
                    done[index] = int(health["mesh"]["rounds"]) - int(first[index]["rounds"])
            await asyncio.sleep(POLL_S)
        figures.converge_s = time.monotonic() - started
        figures.rounds = [done[i] for i in range(size)]
        log(f"  converged in {figures.converge_s:.1f} s, {max(figures.rounds)} rounds at most")
        await asyncio.sleep(3.0)  # let the last welcomes settle
        before = await asyncio.gather(*(counters(client, n) for n in nodes))
        t0 = time.monotonic()
        await asyncio.sleep(steady_s)
        after = await asyncio.gather(*(counters(client, n) for n in nodes))
        span = time.monotonic() - t0
        figures.steady_s = span

        def rate(key: str) -> float:
            total = sum(a.get(key, 0.0) - b.get(key, 0.0) for a, b in zip(after, before,
                                                                           strict=True))
            return total / size / span

        figures.bytes_in_per_s = rate("bytes_in")
        figures.bytes_out_per_s = rate("bytes_out")
        figures.rounds_per_s = rate("rounds")
        figures.new_per_s = rate("events_new")
        figures.known_per_s = rate("events_known")
    figures.digest_bytes = message_bytes(size, 0, 0)
    figures.newspaper_bytes = newspaper_bytes(names[0], size - 1)
    return figures


def report_processes(f: ProcessFigures) -> None:
    bound = propagation_rounds(f.size)
    worst = max(f.rounds)
    print(f"\nReal processes: N = {f.size} mesh-only nodes (hereabouts up --fast --no-plaza), "
          f"{f.topology} seeding")
    print(f"  convergence: {f.converge_s:.1f} s; rounds per node: median "
          f"{sorted(f.rounds)[len(f.rounds) // 2]}, max {worst} (log2 N + 4 = {bound}: "
          f"{'met' if worst <= bound else 'MISSED'}; the poll adds up to one round)")
    print(f"  steady state over {f.steady_s:.0f} s, per node per second: "
          f"{f.rounds_per_s:.2f} rounds, {f.new_per_s:.1f} new events "
          f"({f.known_per_s:.2f} duplicates)")
    print(f"    bytes in {f.bytes_in_per_s:,.0f}/s, out {f.bytes_out_per_s:,.0f}/s; floor "
          f"{f.floor_per_s:,.0f}/s (a {f.digest_bytes:,}-byte digest per round + "
          f"{f.newspaper_bytes}-byte newspapers)")
    verdict = "met" if f.ratio <= RATIO_TARGET else "MISSED"
    print(f"    ratio to floor: {f.ratio:.2f} (target ≤ {RATIO_TARGET:g}: {verdict})")


# --- simulation -------------------------------------------------------------------------------


@dataclasses.dataclass
class SimFigures:
    result: MeshSimResult
    seconds: float
    agrees: bool | None = None
    """At planner sizes: whether the set model gave the same rounds and holdings."""


def measure_sim(size: int, seed: int, failure_rate: float, steady_rounds: int) -> SimFigures:
    planner = size <= PLANNER_UP_TO
    config = MeshSimConfig(
        nodes=size,
        seed=seed,
        failure_rate=failure_rate,
        model="planner" if planner else "sets",
        steady_rounds=steady_rounds if planner else 0,
    )
    log(f"  simulating N = {size:,} ({config.model} model)")
    started = time.perf_counter()
    result = simulate(
        config,
        lambda r: log(f"    round {r.round}: {r.complete:,} nodes complete "
                      f"({time.perf_counter() - started:.0f} s)"),
    )
    figures = SimFigures(result, time.perf_counter() - started)
    if planner:
        check = simulate(dataclasses.replace(config, model="sets", steady_rounds=0))
        converging = [r for r in result.rounds if r.round <= (result.converged_round or 0)]
        figures.agrees = check.rounds == converging
    log(f"  done in {figures.seconds:.0f} s")
    return figures


def report_sim(f: SimFigures) -> None:
    r = f.result
    c = r.config
    print(f"\nSimulation: N = {c.nodes:,}, {c.model} model, seed {c.seed}, "
          f"{c.failure_rate:.0%} of exchanges failing, {c.seeds_per_node} random seeds per node, "
          f"{c.budget_bytes // 1024} KiB replies stretched by round_scale "
          f"({f.seconds:.0f} s to simulate)")
    print("  nodes holding everything after each round: "
          + " ".join(str(s.complete) for s in r.rounds if r.converged_round is None
                     or s.round <= r.converged_round))
    if r.converged_round is None:
        print(f"  did NOT converge within {c.max_rounds} rounds")
    else:
        verdict = "met" if r.converged_round <= r.bound else "MISSED"
        print(f"  converged in {r.converged_round} rounds (log2 N + 4 = {r.bound}: {verdict}); "
              f"{r.convergence_bytes_per_node():,.0f} bytes per node per round meanwhile "
              f"(hey_there {r.sizes.hey_there} B, newspaper {r.sizes.newspaper} B)")
    if f.agrees is not None:
        print(f"  set model on the same seed: {'identical' if f.agrees else 'DIFFERENT'}")
    s = r.steady
    if s is not None:
        verdict = "met" if s.ratio <= RATIO_TARGET else "MISSED"
        print(f"  steady state ({s.rounds} rounds after {c.warmup_rounds} of warm-up; a "
              f"newspaper every {c.heartbeat_s:g} s, rounds of {c.round_ms / 1000:g} s): "
              f"{s.changed_per_round:,.0f} origins changed per round, each node took in "
              f"{s.events_per_node:,.0f}")
        print(f"    {s.bytes_per_node:,.0f} bytes per node per round; floor "
              f"{s.floor_per_node:,.0f} (digest + what it took in): ratio {s.ratio:.2f} "
              f"(target ≤ {RATIO_TARGET:g}: {verdict}); every new event to every node would "
              f"be {s.every_event_per_node:,.0f}")
        print(f"    views: {s.up_to_date:.0%} at the latest newspaper, mean lag "
              f"{s.mean_lag_s:,.0f} s ({s.mean_lag_s * 1000 / c.round_ms:.1f} rounds), worst "
              f"{s.worst_lag_s:,.0f} s")


# --- main -------------------------------------------------------------------------------------


async def run_processes(args: argparse.Namespace, out: list[ProcessFigures]) -> None:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="mesh-bench-") as tmp:
        for size in args.sizes:
            log(f"real processes: N = {size}")
            workdir = Path(tmp) / f"n{size}"
            workdir.mkdir()
            out.append(await measure_processes(size, args.topology, args.steady, workdir, rng))


def sizes(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=sizes, default=sizes("20,50"),
                        help="real process mesh sizes (20,50; '' for none)")
    parser.add_argument("--topology", choices=("chain", "seeds"), default="chain",
                        help="real processes: a chain, or three random earlier seeds each")
    parser.add_argument("--steady", type=float, default=20.0,
                        help="seconds of steady state measured (20)")
    parser.add_argument("--sim-sizes", type=sizes, default=sizes("1000,10000"),
                        help="simulated mesh sizes (1000,10000; '' for none)")
    parser.add_argument("--sim-steady", type=int, default=3,
                        help="simulated steady-state rounds measured (3)")
    parser.add_argument("--failure-rate", type=float, default=0.2,
                        help="simulated share of failing exchanges (0.2)")
    parser.add_argument("--seed", type=int, default=1, help="simulation and seeding seed (1)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    started = time.monotonic()
    processes: list[ProcessFigures] = []
    asyncio.run(run_processes(args, processes))
    simulated = [
        measure_sim(size, args.seed, args.failure_rate, args.sim_steady)
        for size in args.sim_sizes
    ]
    log(f"done in {time.monotonic() - started:.0f} s")
    if args.json:
        print(json.dumps({
            "processes": [
                {**dataclasses.asdict(f), "floor_per_s": f.floor_per_s, "ratio": f.ratio}
                for f in processes
            ],
            "simulation": [
                {**s.result.summary(), "seconds": s.seconds, "sets_model_agrees": s.agrees,
                 "steady_ratio": None if s.result.steady is None else s.result.steady.ratio}
                for s in simulated
            ],
        }))
        return 0
    for figures in processes:
        report_processes(figures)
    for sim in simulated:
        report_sim(sim)
    return 0


if __name__ == "__main__":
    sys.exit(main())
