"""Site hub: verified browser heartbeats per second, count latency and memory per participant.

One ``hereabouts up --workers N`` (``--workers``, 1 by default: the hub in the node's
process; more: that many hub worker processes, each on its own MQTT connection) on a
Mosquitto the benchmark starts on a free 127.0.0.1 port, fed over real WebSockets by a
separate load process (``bench/site_hub_load.py``) that does per heartbeat what the widget
does: sign a fresh ``site_heartbeat`` with a key of its own per room per epoch, on the
widget's schedule (``core/rotation.py``; production cadence: 10 s heartbeats, 300 s
epochs, the rotation spread of one interval). Each connection watches
``--rooms-per-connection`` rooms with one participant (DID) in each; every room has
``--room-size`` visitors, who all watch it. The load connects from ``--sources`` loopback
addresses (16), as many for each worker (the hub hands every connection of one address to
the same worker), so a room's visitors are spread over every worker.

The load is offered in steps (``--steps``, participants; offered rate = participants ÷
10 s). Per step: connect the new connections, start their participants (first heartbeats
spread over one interval), wait until every one has sent a heartbeat plus ``--settle``
seconds, then measure a steady window of ``--duration`` seconds:

* **verified/s** — the hub's ``hereabouts_site_events_in_total{kind="heartbeat"}`` (events
  verified, counted and republished) at both ends of the window, ÷ the window; next to the
  rate offered by the schedule and the rate the load process actually sent, so a slow load
  generator is not blamed on the hub; the hub's refusals by reason
  (``hereabouts_site_hub_rejects_total``) and connections it closed explain a shortfall;
* **count latency** — all along, a probe in the load process makes a fresh DID join a room
  of its own (first heartbeat), then leave it (signed ``site_leave``), every 0.25 s after
  the last change was seen; a separate watcher connection of that room notes when its
  ``counts`` frame shows the change. One process, one monotonic clock. A change not seen
  within 10 s is a miss, counted at 10 s;
* **memory** — the hub's RSS (``/proc/<pid>/status``, summed over its processes) before
  the load connects and at the end of each window; the growth ÷ participants and ÷
  connections;
* **CPU** — of the hub (its process and its workers), the load and the broker over the
  window, in cores (1.0 = one core busy; the machine's cores are shared by all of them);
  and the hub's **CPU per verified heartbeat**, in µs and as a ratio to a **bare libsodium
  signature check** (``crypto_sign_open``, the call the hub makes, on a message of a
  heartbeat's size) measured in this process at the start and at the end of the run.

A step that overloads the hub ends the run: verified rate below 90 % of the offered rate,
the hub at ≥ 0.95 cores per process serving browsers (each runs one event loop), count
latency p95 over 5 s, or ``/metrics`` not answering. Larger steps would only queue more
(``--keep-going`` runs them anyway).

Every step is measured twice: a **steady** window of ``--duration`` seconds clear of epoch
boundaries (it starts at least ``--after-boundary`` seconds, 45, after one), and a
**boundary** window, the 30 s after the next epoch boundary, when every visitor sends its
first heartbeat of the new epoch under a new key (``--no-boundary-windows`` skips it;
waiting for a boundary takes up to an epoch). Whichever comes first is measured first.
``peak/s`` (the load's busiest second in a window) shows a burst.

**Baseline**, in the same run: the same load process against a sink
(``bench/site_hub_sink.py``): the hub's own socket path (:class:`HttpServer` handing the
upgrade to :mod:`hereabouts.web.hub_socket`) in front of a hub that drops every frame.
With the largest step's connections, the load sends freshly signed heartbeats as fast as
it can for ``--baseline-duration`` seconds: the most frames per second the load generator
and the socket path carry together on this machine, and the socket path's CPU per frame.
Each step's verified rate is reported as a ratio to it. The sink's RSS growth per
connection is the stack's own memory cost.

The load comes from a few addresses, so the hub's per-address budgets (connections, events
per second, new DIDs per room per epoch) are raised past what it sends
(:data:`UNBUDGETED`): every frame still goes through their checks, none is refused by
them. Its ``Origin`` is allowed (the hub listens on loopback).

Target: 10,000 verified heartbeats/s (100,000 participants at a 10 s interval) with count
latency p95 ≤ 1 s. Misses are reported, not failed. Progress goes to stderr, figures to
stdout. The hub may hold ``--max-connections`` (``PRESENCE_HUB_MAX_CONNECTIONS`` in its
environment); every process started is stopped at the end, or killed by the kernel if the
benchmark dies.

Run: ``.venv/bin/python bench/site_hub.py [--steps 10000,25000,50000,100000]
[--duration 30] [--json]`` (3-10 minutes with the defaults: the run ends at the first step
that overloads the hub).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from hereabouts.config import SitesConfig
from liveness_support import Mosquitto, percentile
from site_hub_support import (
    HubProcess,
    LoadProcess,
    Metrics,
    SinkProcess,
    balanced_sources,
    bare_verify_us,
    by_label,
    cpu_seconds,
    delta,
    log,
    rss_bytes,
)

SATURATED = 0.9
"""A step whose verified rate is below this share of the offered rate overloads the hub."""
SATURATED_CORES = 0.95
"""A step in which the hub's process kept this much of a core busy overloads it too: the
hub runs on one event loop, so it cannot use more than one core."""
SATURATED_P95_S = 5.0
"""And so does a step whose count latency p95 exceeds this (five times the target)."""
UNBUDGETED = 1_000_000_000
"""Per-address budgets of the hub under test: far past what one load process sends."""
TARGET_RATE = 10_000.0
TARGET_P95_S = 1.0
PROBE_TIMEOUT_S = 10.0  # the load's PROBE_TIMEOUT_S: a miss counts at this value
BOUNDARY_WATCH_S = 30.0


@dataclasses.dataclass
class Baseline:
    """The sink flooded by the load: what the generator and the WebSocket stack carry."""

    connections: int = 0
    participants: int = 0
    seconds: float = 0.0
    frames_per_s: float = 0.0
    sent_per_s: float = 0.0
    sink_cores: float = 0.0
    load_cores: float = 0.0
    rss_growth_per_connection: float = 0.0


@dataclasses.dataclass
class BoundaryWindow:
    """The :data:`BOUNDARY_WATCH_S` after an epoch boundary, while a step's load runs: every
    visitor's first heartbeat of the new epoch falls in it (rates per second, CPU in
    cores, latencies in seconds)."""

    seconds: float = 0.0
    sent_per_s: float = 0.0
    peak_per_s: float = 0.0
    verified_per_s: float = 0.0
    hub_cores: float = 0.0
    hub_us_per_heartbeat: float = 0.0
    latencies: list[float] = dataclasses.field(default_factory=list)
    misses: int = 0

    def latency(self, q: float) -> float:
        return percentile(self.latencies, q)


@dataclasses.dataclass
class Step:
    """One step of load on the hub and what its steady window showed (rates per second,
    CPU in cores, memory in bytes, latencies in seconds)."""

    target: int
    participants: int = 0
    connections: int = 0
    offered_per_s: float = 0.0
    seconds: float = 0.0
    sent_per_s: float = 0.0
    peak_per_s: float = 0.0
    verified_per_s: float = 0.0
    leaves_per_s: float = 0.0
    hub_rejects: dict[str, float] = dataclasses.field(default_factory=dict)
    plaza_rejects: dict[str, float] = dataclasses.field(default_factory=dict)
    republished_per_s: float = 0.0
    publish_failures: dict[str, float] = dataclasses.field(default_factory=dict)
    load_errors: dict[str, float] = dataclasses.field(default_factory=dict)
    closed: dict[str, float] = dataclasses.field(default_factory=dict)
    connect_failures: dict[str, int] = dataclasses.field(default_factory=dict)
    count_frames_per_s: float = 0.0
    latencies: list[float] = dataclasses.field(default_factory=list)
    misses: int = 0
    hub_cores: float = 0.0
    hub_us_per_heartbeat: float = 0.0
    """The hub's CPU (its process and its workers) ÷ heartbeats verified in the window."""
    load_cores: float = 0.0
    broker_cores: float = 0.0
    boundary: BoundaryWindow | None = None
    rss: int = 0
    hwm: int = 0
    rss_growth: int = 0
    load_lag_p95_ms: float | None = None
    load_backlog_bytes: int = 0
    crossed_boundary: bool = False
    unresponsive: bool = False

    def latency(self, q: float) -> float:
        return percentile(self.latencies, q)


@dataclasses.dataclass
class Figures:
    """Everything one run measured."""

    interval_s: float
    epoch_s: float
    rooms_per_connection: int
    room_size: int
    compressed: bool = False
    workers: int = 1
    sources: int = 1
    verify_us: list[float] = dataclasses.field(default_factory=list)
    """Bare libsodium checks, µs of CPU each, measured at the start and at the end."""
    baseline: Baseline | None = None
    rss_idle: int = 0
    steps: list[Step] = dataclasses.field(default_factory=list)
    boundaries: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)


def cadence() -> SitesConfig:
    """The cadence the hub runs (it reads the same ``PRESENCE_*`` variables)."""
    return SitesConfig.from_env()


async def measure_baseline(args: argparse.Namespace, workdir: Path, figures: Figures) -> None:
    sink = SinkProcess("sink", workdir)
    load = LoadProcess("load-baseline", workdir)
    config = cadence()
    top = max(args.steps)
    try:
        await sink.start()
        idle, _ = rss_bytes(sink.pid)
        await load.start(
            sink.socket_url,
            interval_s=config.heartbeat_interval_s,
            epoch_s=config.did_duration_s,
            spread_s=config.rotation_spread_s,
        )
        log(f"baseline: {top} participants' connections to the sink")
        opened = await load.call(
            "connect",
            participants=top,
            per_connection=args.rooms_per_connection,
            room_size=args.room_size,
        )
        if opened["failures"]:
            figures.notes.append(f"baseline connections failed: {opened['failures']}")
        await load.call("keys")
        rss, _ = rss_bytes(sink.pid)
        before, started = await sink.metrics(), time.monotonic()
        cpu = (cpu_seconds(sink.pid), cpu_seconds(load.pid))
        log(f"baseline: flooding the sink for {args.baseline_duration:g} s")
        flood = await load.call("flood", seconds=args.baseline_duration)
        after, elapsed = await sink.metrics(), time.monotonic() - started
        frames = after[("sink_frames_total", "")] - before[("sink_frames_total", "")]
        figures.baseline = Baseline(
            connections=opened["connections"],
            participants=opened["participants"],
            seconds=elapsed,
            frames_per_s=frames / elapsed,
            sent_per_s=flood["sent"] / elapsed,
            sink_cores=(cpu_seconds(sink.pid) - cpu[0]) / elapsed,
            load_cores=(cpu_seconds(load.pid) - cpu[1]) / elapsed,
            rss_growth_per_connection=(rss - idle) / max(1, opened["connections"]),
        )
        log(f"baseline: {figures.baseline.frames_per_s:,.0f} frames/s received by the sink")
    finally:
        await load.quit()
        await sink.stop()


def boundary_in(start_wall: float, end_wall: float, epoch_s: float) -> bool:
    return math.floor(start_wall / epoch_s) != math.floor(end_wall / epoch_s)


async def clear_of_boundaries(args: argparse.Namespace, config: SitesConfig) -> None:
    """Wait until a window from now would end before the next epoch boundary, or until the
    burst after a boundary is over (``--after-boundary``, at least the settle window, one
    interval and ``--settle``)."""
    margin_s = 2.0
    after_s = max(args.after_boundary, config.settle_s + config.heartbeat_interval_s + args.settle)
    while True:
        now = time.time()
        epoch_start = math.floor(now / config.did_duration_s) * config.did_duration_s
        if now < epoch_start + after_s:
            wait = epoch_start + after_s - now
        elif now + args.duration + margin_s > epoch_start + config.did_duration_s:
            wait = epoch_start + config.did_duration_s + after_s - now
        else:
            return
        log(f"  waiting {wait:.0f} s so that the window avoids an epoch boundary")
        await asyncio.sleep(wait)


async def wait_first_beats(load: LoadProcess, participants: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stats = await load.call("stats")
        if stats["first_beats"] >= participants:
            return
        await asyncio.sleep(1.0)
    log(f"  ! not every participant had sent a heartbeat after {timeout_s:.0f} s")


def window_rates(step: Step, metrics: tuple[Metrics, Metrics], stats: tuple[Any, Any]) -> None:
    """The hub's counters and the load's, from both ends of the window, as rates."""
    (metrics0, metrics1), (stats0, stats1) = metrics, stats

    def hub_delta(name: str) -> dict[str, float]:
        return delta(by_label(metrics1, name), by_label(metrics0, name))

    events = hub_delta("hereabouts_site_events_in_total")
    step.verified_per_s = events.get("heartbeat", 0.0) / step.seconds
    step.leaves_per_s = events.get("leave", 0.0) / step.seconds
    step.hub_rejects = hub_delta("hereabouts_site_hub_rejects_total")
    republished = hub_delta("hereabouts_site_hub_republished_total")
    step.republished_per_s = republished.get("heartbeat", 0.0) / step.seconds
    step.publish_failures = hub_delta("hereabouts_site_publish_failures_total")
    step.plaza_rejects = hub_delta("hereabouts_site_rejects_total")
    load_elapsed = stats1["monotonic"] - stats0["monotonic"]
    sent = stats1["sent"].get("heartbeat", 0) - stats0["sent"].get("heartbeat", 0)
    step.sent_per_s = sent / load_elapsed
    step.peak_per_s = stats1["peak_per_s"]
    step.load_errors = delta(stats1["errors"], stats0["errors"])
    step.closed = stats1["closed"]
    step.count_frames_per_s = (stats1["count_frames"] - stats0["count_frames"]) / load_elapsed
    step.load_lag_p95_ms = stats1["lag_ms"]["p95"]
    step.load_backlog_bytes = stats1["backlog_bytes"]


@dataclasses.dataclass
class Sampled:
    """Both ends of a measured window: the hub's metrics, the load's stats, CPU seconds of
    (hub processes summed, load, broker), wall and monotonic times."""

    metrics: tuple[Metrics, Metrics]
    stats: tuple[Any, Any]
    cores: tuple[float, float, float]
    walls: tuple[float, float]
    seconds: float
    probe: list[list[Any]]

    def latencies(self) -> tuple[list[float], int]:
        wall0, wall1 = self.walls
        inside = [s for s in self.probe if wall0 <= s[1] <= wall1]
        values = [PROBE_TIMEOUT_S if s[2] is None else s[2] for s in inside]
        return values, sum(1 for s in inside if s[2] is None)


async def sample_window(
    seconds: float, hub: HubProcess, load: LoadProcess, broker: Mosquitto
) -> Sampled:
    """Measure ``seconds`` from now (raises httpx.HTTPError when the hub does not answer)."""
    hub_pids = await hub.pids()

    def cpu() -> tuple[float, float, float]:
        return (
            sum(cpu_seconds(pid) for pid in hub_pids),
            cpu_seconds(load.pid),
            cpu_seconds(broker.process.pid),
        )

    metrics0, stats0 = await hub.metrics(), await load.call("stats")
    cpu0, wall0, mono0 = cpu(), time.time(), time.monotonic()
    await asyncio.sleep(seconds)
    metrics1, stats1 = await hub.metrics(), await load.call("stats")
    cpu1, wall1, elapsed = cpu(), time.time(), time.monotonic() - mono0
    probe = (await load.call("probe_take"))["samples"]
    cores = tuple((b - a) / elapsed for a, b in zip(cpu0, cpu1, strict=True))
    return Sampled(
        metrics=(metrics0, metrics1),
        stats=(stats0, stats1),
        cores=cores,  # type: ignore[arg-type]
        walls=(wall0, wall1),
        seconds=elapsed,
        probe=probe,
    )


async def hub_rss(hub: HubProcess) -> tuple[int, int]:
    """RSS and its high-water mark summed over the hub's processes (workers included)."""
    try:
        pids = await hub.pids()
    except httpx.HTTPError:
        pids = [hub.pid]
    pairs = [rss_bytes(pid) for pid in pids]
    return sum(p[0] for p in pairs), sum(p[1] for p in pairs)


def per_heartbeat_us(cores: float, verified_per_s: float) -> float:
    return cores * 1e6 / verified_per_s if verified_per_s else float("nan")


async def measure_steady(
    step: Step,
    args: argparse.Namespace,
    hub: HubProcess,
    load: LoadProcess,
    broker: Mosquitto,
    figures: Figures,
    samples: list[list[Any]],
) -> None:
    config = cadence()
    if args.boundaries == "avoid":
        await clear_of_boundaries(args, config)
    hub.check()
    samples += (await load.call("probe_take"))["samples"]
    log(f"  measuring {args.duration:g} s")
    try:
        window = await sample_window(args.duration, hub, load, broker)
    except httpx.HTTPError as exc:
        step.unresponsive = True
        step.rss, step.hwm = await hub_rss(hub)
        step.rss_growth = step.rss - figures.rss_idle
        log(f"  ! the hub's /metrics did not answer ({type(exc).__name__}): it is overloaded")
        return
    samples += window.probe
    step.seconds = window.seconds
    step.crossed_boundary = boundary_in(*window.walls, config.did_duration_s)
    step.hub_cores, step.load_cores, step.broker_cores = window.cores
    step.latencies, step.misses = window.latencies()
    window_rates(step, window.metrics, window.stats)
    step.hub_us_per_heartbeat = per_heartbeat_us(step.hub_cores, step.verified_per_s)
    figures.compressed = window.stats[1]["compressed"]
    step.rss, step.hwm = await hub_rss(hub)
    step.rss_growth = step.rss - figures.rss_idle
    log(
        f"  offered {step.offered_per_s:,.0f}/s, sent {step.sent_per_s:,.0f}/s, verified "
        f"{step.verified_per_s:,.0f}/s; count latency p95 {step.latency(95) * 1000:,.0f} ms "
        f"(n={len(step.latencies)}, misses {step.misses}); hub {step.hub_cores:.2f} cores "
        f"({step.hub_us_per_heartbeat:,.0f} µs a heartbeat), RSS {step.rss / 2**20:,.0f} MiB; "
        f"rejects {step.hub_rejects or 'none'}"
    )


async def measure_boundary(
    step: Step,
    hub: HubProcess,
    load: LoadProcess,
    broker: Mosquitto,
    samples: list[list[Any]],
) -> None:
    """Wait for the next epoch boundary and measure the :data:`BOUNDARY_WATCH_S` after it."""
    config = cadence()
    now = time.time()
    boundary = (math.floor(now / config.did_duration_s) + 1) * config.did_duration_s
    log(f"  waiting {boundary - now:.0f} s for the next epoch boundary")
    await asyncio.sleep(max(0.0, boundary - now - 0.2))
    samples += (await load.call("probe_take"))["samples"]
    log(f"  measuring the {BOUNDARY_WATCH_S:g} s after the boundary")
    try:
        window = await sample_window(BOUNDARY_WATCH_S, hub, load, broker)
    except httpx.HTTPError as exc:
        log(f"  ! the hub's /metrics did not answer ({type(exc).__name__}) after the boundary")
        return
    samples += window.probe
    events = delta(
        by_label(window.metrics[1], "hereabouts_site_events_in_total"),
        by_label(window.metrics[0], "hereabouts_site_events_in_total"),
    )
    stats0, stats1 = window.stats
    sent = stats1["sent"].get("heartbeat", 0) - stats0["sent"].get("heartbeat", 0)
    verified = events.get("heartbeat", 0.0) / window.seconds
    latencies, misses = window.latencies()
    step.boundary = BoundaryWindow(
        seconds=window.seconds,
        sent_per_s=sent / (stats1["monotonic"] - stats0["monotonic"]),
        peak_per_s=stats1["peak_per_s"],
        verified_per_s=verified,
        hub_cores=window.cores[0],
        hub_us_per_heartbeat=per_heartbeat_us(window.cores[0], verified),
        latencies=latencies,
        misses=misses,
    )
    b = step.boundary
    log(
        f"  after the boundary: sent {b.sent_per_s:,.0f}/s (peak {b.peak_per_s:,.0f}), "
        f"verified {b.verified_per_s:,.0f}/s; count latency p95 {b.latency(95) * 1000:,.0f} ms "
        f"(n={len(b.latencies)}, misses {b.misses}); hub {b.hub_cores:.2f} cores"
    )


async def measure_step(
    target: int,
    args: argparse.Namespace,
    hub: HubProcess,
    load: LoadProcess,
    broker: Mosquitto,
    figures: Figures,
    samples: list[list[Any]],
) -> Step:
    config = cadence()
    step = Step(target)
    log(f"step {target:,}: connecting")
    opened = await load.call(
        "connect",
        participants=target,
        per_connection=args.rooms_per_connection,
        room_size=args.room_size,
    )
    step.connect_failures = opened["failures"]
    step.participants, step.connections = opened["participants"], opened["connections"]
    step.offered_per_s = step.participants / config.heartbeat_interval_s
    failures = f"; failures {step.connect_failures}" if step.connect_failures else ""
    log(
        f"  {step.connections:,} connections, {step.participants:,} participants "
        f"({opened['seconds']:.1f} s){failures}"
    )
    await load.call("start")
    await wait_first_beats(load, step.participants, 6 * config.heartbeat_interval_s)
    await asyncio.sleep(args.settle)
    if not args.boundary_windows:
        await measure_steady(step, args, hub, load, broker, figures, samples)
        return step
    # Whichever comes first: a steady window that fits before the next boundary, or the
    # boundary (then the steady window after its burst).
    now = time.time()
    next_boundary = (math.floor(now / config.did_duration_s) + 1) * config.did_duration_s
    if now + args.duration + 5.0 < next_boundary:
        await measure_steady(step, args, hub, load, broker, figures, samples)
        if not step.unresponsive:
            await measure_boundary(step, hub, load, broker, samples)
    else:
        await measure_boundary(step, hub, load, broker, samples)
        await measure_steady(step, args, hub, load, broker, figures, samples)
    return step


def boundary_report(
    samples: list[list[Any]],
    epoch_s: float,
    steps: list[Step],
    started_wall: float,
    step_walls: list[float],
) -> list[dict[str, Any]]:
    """Probe latencies in the 30 s after each epoch boundary crossed while the load ran."""
    if not samples:
        return []
    first, last = min(s[1] for s in samples), max(s[1] for s in samples)
    reports = []
    boundary = (math.floor(first / epoch_s) + 1) * epoch_s
    while boundary <= last:
        near = [s for s in samples if boundary <= s[1] < boundary + BOUNDARY_WATCH_S]
        values = [PROBE_TIMEOUT_S if s[2] is None else s[2] for s in near]
        running = [st for st, at in zip(steps, step_walls, strict=False) if at <= boundary]
        reports.append(
            {
                "participants": running[-1].participants if running else None,
                "seconds_into_run": boundary - started_wall,
                "p50": percentile(values, 50),
                "p95": percentile(values, 95),
                "max": max(values) if values else float("nan"),
                "n": len(values),
                "misses": sum(1 for s in near if s[2] is None),
            }
        )
        boundary += epoch_s
    return reports


async def measure_hub(
    args: argparse.Namespace, workdir: Path, broker: Mosquitto, figures: Figures
) -> None:
    config = cadence()
    hub = HubProcess("hub", workdir)
    load = LoadProcess("load", workdir)
    samples: list[list[Any]] = []
    step_walls: list[float] = []
    started_wall = time.time()
    try:
        log(
            f"hub: starting hereabouts up --workers {args.workers} (at most "
            f"{args.max_connections:,} connections, from {args.sources} addresses)"
        )
        await hub.start(
            broker.url,
            workdir,
            {
                "PRESENCE_HUB_MAX_CONNECTIONS": str(args.max_connections),
                "PRESENCE_HUB_MAX_CONNECTIONS_PER_ADDRESS": str(args.max_connections),
                "PRESENCE_HUB_ADDRESS_EVENTS_PER_S": str(UNBUDGETED),
                "PRESENCE_HUB_ADDRESS_EVENT_BURST": str(UNBUDGETED),
                "PRESENCE_HUB_JOINS_PER_ADDRESS": str(UNBUDGETED),
                # HTTP's own cap (4,096 by default) must not turn browsers away before the hub.
                "HEREABOUTS_HTTP_MAX_CONNECTIONS": str(args.max_connections + 100),
                "PRESENCE_HUB_WORKERS": str(args.workers),
            },
        )
        await asyncio.sleep(2.0)
        figures.rss_idle, _ = await hub_rss(hub)
        await load.start(
            hub.socket_url,
            interval_s=config.heartbeat_interval_s,
            epoch_s=config.did_duration_s,
            spread_s=config.rotation_spread_s,
            sources=balanced_sources(args.sources, args.workers),
        )
        probe = await load.call("probe_start")
        if "error" in probe:
            raise RuntimeError(f"the probe could not connect: {probe['error']}")
        targets = sorted(args.steps)
        for number, target in enumerate(targets):
            step_walls.append(time.time())
            step = await measure_step(target, args, hub, load, broker, figures, samples)
            figures.steps.append(step)
            overloaded = (
                step.unresponsive
                or step.verified_per_s < SATURATED * step.offered_per_s
                or step.hub_cores >= SATURATED_CORES * args.workers
                or not step.latency(95) <= SATURATED_P95_S
            )
            if overloaded and not args.keep_going and number + 1 < len(targets):
                skipped = ", ".join(f"{t:,}" for t in targets[number + 1 :])
                figures.notes.append(
                    f"steps {skipped} skipped: the hub was overloaded at "
                    f"{step.participants:,} participants (--keep-going runs them anyway)"
                )
                log(f"  the hub is overloaded; skipping {skipped}")
                break
    finally:
        figures.boundaries = boundary_report(
            samples, config.did_duration_s, figures.steps, started_wall, step_walls
        )
        await load.quit()
        code = await hub.stop()
        if code not in (0, None):
            figures.notes.append(f"the hub exited with {code} after SIGTERM")


async def run_all(args: argparse.Namespace, figures: Figures) -> None:
    with tempfile.TemporaryDirectory(prefix="site-hub-") as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(workdir)
        try:
            await broker.wait_listening()
            figures.verify_us.append(bare_verify_us())
            log(f"bare signature check: {figures.verify_us[-1]:.1f} µs of CPU")
            if args.baseline_duration > 0:
                await measure_baseline(args, workdir, figures)
            await measure_hub(args, workdir, broker, figures)
        finally:
            broker.stop()
            figures.verify_us.append(bare_verify_us())
            log(f"bare signature check at the end: {figures.verify_us[-1]:.1f} µs of CPU")


# --- report ---------------------------------------------------------------------------------


def summary(figures: Figures) -> dict[str, Any]:
    def step(s: Step) -> dict[str, Any]:
        data = dataclasses.asdict(s)
        data.pop("latencies")
        data["count_latency_s"] = {
            "p50": s.latency(50),
            "p95": s.latency(95),
            "max": max(s.latencies, default=float("nan")),
            "n": len(s.latencies),
        }
        if s.boundary is not None:
            data["boundary"]["count_latency_s"] = {
                "p50": s.boundary.latency(50),
                "p95": s.boundary.latency(95),
                "max": max(s.boundary.latencies, default=float("nan")),
                "n": len(s.boundary.latencies),
            }
            data["boundary"].pop("latencies")
        data["hub_per_heartbeat_to_verify"] = s.hub_us_per_heartbeat / verify_us(figures)
        data["rss_growth_per_participant"] = s.rss_growth / max(1, s.participants)
        data["rss_growth_per_connection"] = s.rss_growth / max(1, s.connections)
        if figures.baseline is not None and figures.baseline.frames_per_s:
            data["verified_to_baseline"] = s.verified_per_s / figures.baseline.frames_per_s
        return data

    return {
        "config": {
            "interval_s": figures.interval_s,
            "epoch_s": figures.epoch_s,
            "rooms_per_connection": figures.rooms_per_connection,
            "room_size": figures.room_size,
            "permessage_deflate": figures.compressed,
            "workers": figures.workers,
            "source_addresses": figures.sources,
        },
        "bare_verify_us": figures.verify_us,
        "targets": {"verified_per_s": TARGET_RATE, "count_latency_p95_s": TARGET_P95_S},
        "baseline": dataclasses.asdict(figures.baseline) if figures.baseline else None,
        "hub_rss_idle": figures.rss_idle,
        "steps": [step(s) for s in figures.steps],
        "boundaries": figures.boundaries,
        "notes": figures.notes,
    }


def verify_us(figures: Figures) -> float:
    """The bare check's cost for this run: the mean of its measurements."""
    return sum(figures.verify_us) / len(figures.verify_us) if figures.verify_us else float("nan")


def _finite(value: Any) -> Any:
    """``value`` with NaN (no sample) as null, which JSON has and NaN it has not."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _ms(seconds: float) -> str:
    return "—" if math.isnan(seconds) else f"{seconds * 1000:,.0f} ms"


def _reasons(values: dict[str, float], seconds: float) -> str:
    return ", ".join(f"{k} {v / seconds:,.0f}/s" for k, v in sorted(values.items())) or "none"


def report(figures: Figures) -> None:
    base = figures.baseline
    print(
        f"\nSite hub: one `hereabouts up`, a load process over WebSockets; heartbeats every "
        f"{figures.interval_s:g} s, epochs of {figures.epoch_s:g} s; "
        f"{figures.rooms_per_connection} rooms (participants) per connection, "
        f"{figures.room_size} per room; permessage-deflate "
        f"{'negotiated' if figures.compressed else 'declined by the hub'}"
    )
    if base is not None:
        print(
            f"baseline: sink on the hub's socket path, {base.connections:,} connections, load "
            f"flooding: {base.frames_per_s:,.0f} frames/s received "
            f"(sink {base.sink_cores:.2f} cores, "
            f"{base.sink_cores * 1e6 / max(1.0, base.frames_per_s):.0f} µs a frame; load "
            f"{base.load_cores:.2f}); stack memory "
            f"{base.rss_growth_per_connection / 1024:,.1f} KiB per connection"
        )
    print(f"hub RSS before the load: {figures.rss_idle / 2**20:,.0f} MiB")
    checks = ", ".join(f"{v:.1f}" for v in figures.verify_us)
    print(
        f"hub: --workers {figures.workers}, load from {figures.sources} source addresses; "
        f"bare libsodium check {verify_us(figures):.1f} µs of CPU (measured {checks})\n"
    )
    header = (
        f"{'participants':>12} {'conns':>6} {'offered/s':>9} {'sent/s':>8} {'peak/s':>7} "
        f"{'verified/s':>10} {'÷offered':>8} {'÷sink':>6} {'hub cores':>9} "
        f"{'load':>5} {'broker':>6}"
    )
    print(header)
    for s in figures.steps:
        ratio = (
            f"{s.verified_per_s / base.frames_per_s:6.2f}"
            if base is not None and base.frames_per_s
            else f"{'—':>6}"
        )
        print(
            f"{s.participants:>12,} {s.connections:>6,} {s.offered_per_s:>9,.0f} "
            f"{s.sent_per_s:>8,.0f} {s.peak_per_s:>7,.0f} {s.verified_per_s:>10,.0f} "
            f"{s.verified_per_s / max(1e-9, s.offered_per_s):>8.2f} {ratio} "
            f"{s.hub_cores:>9.2f} {s.load_cores:>5.2f} {s.broker_cores:>6.2f}"
        )
    print(
        f"\n{'participants':>12} {'window':>9} {'sent/s':>8} {'peak/s':>7} {'verified/s':>10} "
        f"{'hub cores':>9} {'µs/heartbeat':>12} {'÷verify':>7} {'count p50':>10} {'p95':>10} "
        f"{'max':>10} {'n':>5} {'miss':>4}"
    )
    base_us = verify_us(figures)
    for s in figures.steps:
        windows: list[tuple[str, Any]] = [("steady", s)]
        if s.boundary is not None:
            windows.append(("boundary", s.boundary))
        for name, w in windows:
            print(
                f"{s.participants:>12,} {name:>9} {w.sent_per_s:>8,.0f} {w.peak_per_s:>7,.0f} "
                f"{w.verified_per_s:>10,.0f} {w.hub_cores:>9.2f} "
                f"{w.hub_us_per_heartbeat:>12,.0f} {w.hub_us_per_heartbeat / base_us:>7.2f} "
                f"{_ms(w.latency(50)):>10} {_ms(w.latency(95)):>10} "
                f"{_ms(max(w.latencies, default=float('nan'))):>10} {len(w.latencies):>5} "
                f"{w.misses:>4}"
            )
    print(
        f"\n{'participants':>12} {'count p50':>10} {'p95':>10} {'max':>10} {'n':>5} "
        f"{'miss':>4} {'hub RSS':>9} {'Δ/participant':>13} {'Δ/conn':>9}"
    )
    for s in figures.steps:
        print(
            f"{s.participants:>12,} {_ms(s.latency(50)):>10} {_ms(s.latency(95)):>10} "
            f"{_ms(max(s.latencies, default=float('nan'))):>10} {len(s.latencies):>5} "
            f"{s.misses:>4} {s.rss / 2**20:>5,.0f} MiB "
            f"{s.rss_growth / max(1, s.participants) / 1024:>9.2f} KiB "
            f"{s.rss_growth / max(1, s.connections) / 1024:>5.1f} KiB"
        )
    print()
    for s in figures.steps:
        if s.unresponsive:
            print(f"{s.participants:>12,}: the hub's /metrics did not answer: overloaded")
            continue
        details = [
            f"hub rejects: {_reasons(s.hub_rejects, s.seconds)}",
            f"republished {s.republished_per_s:,.0f}/s",
        ]
        if s.publish_failures:
            details.append(f"republish failures: {_reasons(s.publish_failures, s.seconds)}")
        if s.plaza_rejects:
            details.append(f"plaza rejects: {_reasons(s.plaza_rejects, s.seconds)}")
        if s.load_errors:
            details.append(f"error frames: {_reasons(s.load_errors, s.seconds)}")
        if s.closed:
            details.append(f"connections closed by the hub so far (by code): {s.closed}")
        if s.connect_failures:
            details.append(f"connect failures: {s.connect_failures}")
        details.append(
            f"counts frames {s.count_frames_per_s:,.0f}/s; load lateness p95 "
            f"{s.load_lag_p95_ms} ms, unsent {s.load_backlog_bytes / 1024:,.0f} KiB"
        )
        if s.crossed_boundary:
            details.append("window crossed an epoch boundary")
        print(f"{s.participants:>12,}: " + "; ".join(details))
    for b in figures.boundaries:
        print(
            f"epoch boundary {b['seconds_into_run']:,.0f} s into the hub run with "
            f"{b['participants'] or 0:,} participants: count latency in the next "
            f"{BOUNDARY_WATCH_S:g} s p50 {_ms(b['p50'])}, p95 {_ms(b['p95'])}, max "
            f"{_ms(b['max'])} (n={b['n']}, misses {b['misses']})"
        )
    top = max(figures.steps, key=lambda s: s.participants, default=None)
    if top is not None:
        rate_ok = top.verified_per_s >= TARGET_RATE
        p95_ok = top.latency(95) <= TARGET_P95_S
        print(
            f"target at {top.participants:,} participants: {TARGET_RATE:,.0f} verified/s "
            f"{'met' if rate_ok else 'MISSED'} ({top.verified_per_s:,.0f}/s), count p95 "
            f"≤ {TARGET_P95_S:g} s {'met' if p95_ok else 'MISSED'} ({_ms(top.latency(95))})"
        )
    for note in figures.notes:
        print(f"note: {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--steps",
        default="10000,25000,50000,100000",
        help="participants per step, comma-separated (10000,25000,50000,100000)",
    )
    parser.add_argument(
        "--duration", type=float, default=30.0, help="steady window per step, seconds (30)"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=5.0,
        help="wait after every participant has sent a heartbeat (5 s)",
    )
    parser.add_argument(
        "--rooms-per-connection",
        type=int,
        default=16,
        help="rooms each connection watches, one participant in each (16)",
    )
    parser.add_argument(
        "--room-size", type=int, default=20, help="participants (and watchers) per room (20)"
    )
    parser.add_argument(
        "--baseline-duration",
        type=float,
        default=20.0,
        help="seconds of flooding the sink; 0 skips the baseline (20)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=20_000,
        help="PRESENCE_HUB_MAX_CONNECTIONS for the hub (20000)",
    )
    parser.add_argument(
        "--boundaries",
        choices=("avoid", "include"),
        default="avoid",
        help="keep windows clear of epoch boundaries (avoid)",
    )
    parser.add_argument(
        "--after-boundary",
        type=float,
        default=45.0,
        help="with --boundaries avoid: earliest window start after a boundary, s (45)",
    )
    parser.add_argument(
        "--keep-going", action="store_true", help="run every step even after the hub fell behind"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="hereabouts up --workers for the hub (1)"
    )
    parser.add_argument(
        "--sources",
        type=int,
        default=16,
        help="source addresses the load connects from, as many per hub worker (16)",
    )
    parser.add_argument(
        "--boundary-windows",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure the 30 s after an epoch boundary at every step (waits for one)",
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="whole run, s (1800)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    args.steps = [int(s) for s in args.steps.split(",")]
    if not 1 <= args.rooms_per_connection <= 16:
        parser.error("--rooms-per-connection must be 1-16 (the hub's limit)")

    config = cadence()
    figures = Figures(
        workers=args.workers,
        sources=args.sources,
        interval_s=config.heartbeat_interval_s,
        epoch_s=config.did_duration_s,
        rooms_per_connection=args.rooms_per_connection,
        room_size=args.room_size,
    )
    started = time.monotonic()
    try:
        asyncio.run(asyncio.wait_for(run_all(args, figures), args.timeout))
    except TimeoutError:
        log(f"timed out after {args.timeout:.0f} s; the figures below are partial")
    except KeyboardInterrupt:
        log("interrupted; the figures below are partial")
    except RuntimeError as exc:
        log(f"failed: {exc}; the figures below are partial")
    log(f"done in {time.monotonic() - started:.0f} s")
    if args.json:
        print(json.dumps(_finite(summary(figures))))
    else:
        report(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
