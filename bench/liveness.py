"""Liveness: how fast a network of node processes notices crashes, leaves and newcomers.

What it measures, for each network size N, on a Mosquitto it starts on a free 127.0.0.1 port
(every node a separate process running ``hereabouts up``'s ``run()``, discovery jitter off):

* **baseline**: the broker's own latency in the same run, once the N nodes are up: publish
  (QoS 1) with one MQTT client, receive with another, one message at a time.
* **crash**: ``kill -9`` of a node process, until every observer shows it MISSING (the
  broker publishes the node's pre-signed ``lost`` will when its socket dies).
* **leave**: SIGTERM to a node process (it says ``chau``, then disconnects), until every
  observer shows it OFFLINE.
* **hang**: SIGSTOP of a node process (it hangs with its socket open), until every observer
  shows it MISSING (its pulses stop: three missed, about 3 s; with ``--no-pulses``, when the
  broker gives the connection up and publishes its will, 1.5 x the keepalive on Mosquitto);
  then **resume**: SIGCONT, until every observer shows it ONLINE again.
* **newcomer**: a new node process, from its node's start until it knows 10 peers ONLINE
  (and, for information, from the process spawn, which adds the interpreter's start-up).
* **howdys per join**: howdy messages answering each newcomer's hey_there, counted by a
  plain MQTT subscriber (each howdy's ``answers`` is the hey_there's event id).

Observers are every other node process (each prints the status changes it sees, stamped
with ``time.monotonic()``, one clock for all processes of a Linux host) and a stealth node
inside the benchmark (it publishes nothing, so it disturbs no count). Nodes start in waves;
measuring begins once every node sees every other ONLINE and the welcomes are over. Each
round is: a newcomer joins, a node is killed, a newcomer joins, a node leaves, a node hangs
and resumes.

The nodes run the production configuration (30-120 s heartbeats, the 3 s howdy spread)
without discovery jitter, so a newcomer learns its peers from howdys, not heartbeats; its
time to know 10 peers therefore depends on the howdy spread. ``--preset fast`` runs the
``testing()`` preset (``hereabouts up --fast``: 1-2 s heartbeats, 0.5 s spread) instead.

``--cluster`` runs the same on a three-member RabbitMQ 3.10 cluster on 127.0.0.1 (the one
``tests/cluster/`` uses) instead of one Mosquitto: node number k connects to member k mod 3
first, its URL listing the other two as failover (MQTT 3.1.1 pinned, as RabbitMQ 3.10 speaks
no MQTT 5); the stealth observer is on member 1, the tap on member 2, and the baseline
publishes on member 1 and receives on member 2, so it is the cluster's own cross-member
latency. The same-member round trip (member 1 to member 1) is reported beside it. The hang
step is the same, but RabbitMQ 3.10 closes a silent connection when two keepalive checks in
a row (one per keepalive) saw no byte from it, not after 1.5 keepalives, so a hang is found
1-3 keepalives after it happened.

Targets: crash p95 ≤ 1 s, leave p95 ≤ 0.5 s, newcomer ≤ 1 s, hang ≤ 5 s, resume ≤ 1 s (with
``--no-pulses`` a hang is bound by the keepalive, 10 s by default: 15 s and more). Misses are
reported, not failed.
Progress goes to stderr, figures to stdout. Ctrl-C or SIGTERM stops every process the
benchmark started (nodes, broker, cluster members, epmd) and prints the partial figures.

Run: ``.venv/bin/python bench/liveness.py [--sizes 20,50] [--rounds R] [--cluster] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

from hereabouts.config import HowdyConfig
from hereabouts.core.howdy import expected_replies
from liveness_support import (
    Mosquitto,
    NodeProcess,
    Observer,
    PlazaTap,
    RabbitPlaza,
    Watcher,
    broker_round_trip,
    observer_config,
    percentile,
    wait_until,
)

TARGETS_S = {"crash": 1.0, "leave": 0.5, "newcomer": 1.0, "hang": 5.0, "resume": 1.0}
DETECT_TIMEOUT_S = 30.0
"""Longest wait for a crash or a leave to be seen everywhere before it counts as a miss.
Far below the production silence threshold (300 s): a miss means a will or a chau was lost."""
Plaza = Mosquitto | RabbitPlaza
SETTLE_TIMEOUT_S = 120.0
"""Longest wait for every node to see every other; production heartbeats (30 s at first)
fill any gap the howdys left well within it."""


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclasses.dataclass
class Figures:
    """Every sample of one network size, in seconds (howdys: messages per join)."""

    size: int
    broker: list[float] = dataclasses.field(default_factory=list)
    broker_one_member: list[float] = dataclasses.field(default_factory=list)  # --cluster
    crash: list[float] = dataclasses.field(default_factory=list)
    leave: list[float] = dataclasses.field(default_factory=list)
    hang: list[float] = dataclasses.field(default_factory=list)
    resume: list[float] = dataclasses.field(default_factory=list)
    newcomer: list[float] = dataclasses.field(default_factory=list)
    newcomer_spawn: list[float] = dataclasses.field(default_factory=list)
    hey_there_on_wire: list[float] = dataclasses.field(default_factory=list)
    first_howdy: list[float] = dataclasses.field(default_factory=list)
    lost_on_wire: list[float] = dataclasses.field(default_factory=list)
    chau_on_wire: list[float] = dataclasses.field(default_factory=list)
    howdys: list[int] = dataclasses.field(default_factory=list)
    misses: list[str] = dataclasses.field(default_factory=list)


class Network:
    """The node processes of one size, the observer, the howdy tap, and the measurements."""

    def __init__(
        self, args: argparse.Namespace, workdir: Path, plaza: Plaza, figures: Figures
    ) -> None:
        self.args = args
        self.workdir = workdir
        self.plaza = plaza
        self.figures = figures
        self.spread = args.howdy_spread
        self.observer = Observer(observer_config(args.preset, plaza.observer_url))
        self.tap = PlazaTap(plaza.tap_port)
        self.members: list[NodeProcess] = []
        self.spawned: list[NodeProcess] = []
        self.rng = random.Random(args.seed)

    async def spawn(self) -> NodeProcess:
        index = len(self.spawned)
        node = NodeProcess(f"n{self.figures.size}-{index + 1:03d}", self.workdir)
        self.spawned.append(node)
        url = self.plaza.node_url(index)
        await node.spawn(
            url, self.args.preset, self.spread, self.args.keepalive, pulses=not self.args.no_pulses
        )
        return node

    def check_alive(self) -> None:
        for node in self.members:
            if not node.running:
                tail = node.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{node.name} exited unexpectedly; its log ends:\n{tail}")

    def settled(self) -> bool:
        self.check_alive()
        dids = [m.did for m in self.members]
        return all(dids) and all(
            self.observer.sees(did, "ONLINE")
            and all(m.sees(did, "ONLINE") for m in self.members if m.did != did)
            for did in dids
        )

    async def grow(self, size: int) -> None:
        """Start nodes in waves of ``--wave``, each announced before the next starts."""
        while len(self.members) < size:
            count = min(self.args.wave, size - len(self.members))
            wave = [await self.spawn() for _ in range(count)]
            self.members += wave
            await wait_until(
                lambda wave=wave: all(self.observer.sees(n.did, "ONLINE") for n in wave),
                SETTLE_TIMEOUT_S,
                "a wave of nodes to announce itself",
            )
            log(f"  {len(self.members)}/{size} nodes up")
        await self.settle()
        await asyncio.sleep(2 * self.spread + 1.0)  # every howdy timer has fired

    async def settle(self) -> None:
        """Until every node sees every other ONLINE."""
        started = time.monotonic()
        await wait_until(self.settled, SETTLE_TIMEOUT_S, "every node to see every other")
        log(f"  settled in {time.monotonic() - started:.1f} s")

    async def join(self) -> None:
        node = await self.spawn()
        if await wait_until(lambda: node.ten_online_at is not None, 60, "a newcomer's 10 peers"):
            assert node.ten_online_at is not None and node.started_at is not None
            self.figures.newcomer.append(node.ten_online_at - node.started_at)
            self.figures.newcomer_spawn.append(node.ten_online_at - node.spawned_at)
        else:
            self.figures.misses.append(f"{node.name} did not know 10 peers within 60 s")
        await asyncio.sleep(2 * self.spread + 1.0)  # both reply windows are over everywhere
        hey_there = self.tap.first("hey_there", node.did)
        if hey_there is None:
            self.figures.misses.append(f"the tap never saw {node.name}'s hey_there")
        else:
            replies = self.tap.howdys_answering(hey_there[1].id, node.did)
            self.figures.howdys.append(len(replies))
            if node.started_at is not None and replies:
                self.figures.hey_there_on_wire.append(hey_there[0] - node.started_at)
                self.figures.first_howdy.append(min(at for at, _ in replies) - hey_there[0])
        self.members.append(node)
        await self.settle()

    async def depart(
        self, signum: int, status: str, samples: list[float], on_wire: list[float]
    ) -> None:
        """Kill (SIGKILL) or stop (SIGTERM) one node; time until every observer sees
        ``status``. Observers are the nodes that saw it ONLINE, and the stealth observer.
        ``on_wire`` gets the time until its will (``lost``) or ``chau`` reached the tap."""
        victim = self.members.pop(self.rng.randrange(len(self.members)))
        watchers = [m for m in self.members if m.sees(victim.did, "ONLINE")] + [self.observer]
        sent = await self.signal_and_time(victim, signum, status, watchers, samples)
        kind = "lost" if signum == signal.SIGKILL else "chau"
        arrival = self.tap.first(kind, victim.did, since=sent)
        if arrival is not None:
            on_wire.append(arrival[0] - sent)
        code = await victim.wait_exit()
        if signum == signal.SIGTERM and code != 0:
            self.figures.misses.append(f"{victim.name} exited with {code} after SIGTERM")

    async def hang(self) -> None:
        """SIGSTOP one node until every observer sees it MISSING, then SIGCONT until every
        observer sees it ONLINE again. It stays a member."""
        victim = self.rng.choice(self.members)
        watchers = [m for m in self.members if m is not victim and m.sees(victim.did, "ONLINE")]
        watchers.append(self.observer)
        missed = len(self.figures.misses)
        await self.signal_and_time(victim, signal.SIGSTOP, "MISSING", watchers, self.figures.hang)
        if len(self.figures.misses) > missed:
            victim.signal(signal.SIGCONT)
        else:
            await self.signal_and_time(
                victim, signal.SIGCONT, "ONLINE", watchers, self.figures.resume
            )
        await self.settle()

    async def signal_and_time(
        self,
        victim: NodeProcess,
        signum: int,
        status: str,
        watchers: list[Watcher],
        samples: list[float],
    ) -> float:
        """Send ``signum`` to ``victim``; add to ``samples`` the time until every watcher
        shows it ``status`` (or note a miss). The instant the signal left."""
        sent = victim.signal(signum)
        what = f"{victim.name} to be seen {status} ({signal.Signals(signum).name})"
        await wait_until(
            lambda: all(w.first_sighting(victim.did, status, sent) for w in watchers),
            DETECT_TIMEOUT_S,
            what,
        )
        seen = [w.first_sighting(victim.did, status, sent) for w in watchers]
        times = [t for t in seen if t is not None]
        if len(times) == len(watchers):
            samples.append(max(times) - sent)
        else:
            self.figures.misses.append(f"{len(watchers) - len(times)} observers missed {what}")
        return sent

    async def close(self) -> None:
        await asyncio.gather(*(node.stop() for node in self.spawned))


async def measure(
    size: int, args: argparse.Namespace, workdir: Path, figures: Figures, plazas: list[Plaza]
) -> None:
    plaza: Plaza = RabbitPlaza(workdir) if args.cluster else Mosquitto(workdir)
    plazas.append(plaza)
    log(f"N={size}: starting {plaza.description} and {size} node processes in waves of "
        f"{args.wave}")
    network: Network | None = None
    try:
        await plaza.start()
        network = Network(args, workdir, plaza, figures)
        await network.observer.start()
        async with network.tap:
            await network.grow(size)
            log(f"N={size}: broker round trip, {args.pings} messages")
            publisher, subscriber = plaza.ping_ports
            figures.broker = await broker_round_trip(publisher, args.pings, subscriber)
            if plaza.cross_member:
                figures.broker_one_member = await broker_round_trip(publisher, args.pings)
            for round_no in range(1, args.rounds + 1):
                await network.join()
                await network.depart(
                    signal.SIGKILL, "MISSING", figures.crash, figures.lost_on_wire
                )
                await network.join()
                await network.depart(
                    signal.SIGTERM, "OFFLINE", figures.leave, figures.chau_on_wire
                )
                await network.hang()
                log(
                    f"N={size} round {round_no}/{args.rounds}: newcomer "
                    + ", ".join(f"{t * 1000:.0f}" for t in figures.newcomer[-2:])
                    + f" ms, crash {figures.crash[-1] * 1000 if figures.crash else 0:.0f} ms, "
                    + f"leave {figures.leave[-1] * 1000 if figures.leave else 0:.0f} ms, "
                    + f"hang {figures.hang[-1] * 1000 if figures.hang else 0:.0f} ms, "
                    + f"resume {figures.resume[-1] * 1000 if figures.resume else 0:.0f} ms, "
                    + f"howdys {figures.howdys[-2:]}"
                )
    finally:
        if network is not None:
            await network.close()
            with contextlib.suppress(Exception):
                await network.observer.stop()
        plaza.stop()


def summary(figures: Figures) -> dict[str, object]:
    def stats(values: list[float]) -> dict[str, object]:
        return {"p50": percentile(values, 50), "p95": percentile(values, 95), "n": len(values)}

    return {
        "size": figures.size,
        **{
            name: stats(getattr(figures, name))
            for name in (
                "broker", "broker_one_member", "crash", "lost_on_wire", "leave",
                "chau_on_wire", "hang", "resume", "newcomer", "newcomer_spawn",
                "hey_there_on_wire", "first_howdy",
            )
        },
        "howdys_per_join": figures.howdys,
        "misses": figures.misses,
    }


def report(figures: Figures, args: argparse.Namespace) -> None:
    ms = lambda s: f"{s * 1000:9.1f} ms"  # noqa: E731
    if not figures.broker:
        print(f"\nN = {figures.size}: stopped before the first measurement")
        return
    broker = (percentile(figures.broker, 50), percentile(figures.broker, 95))
    plaza = "a three-member RabbitMQ cluster" if args.cluster else "one Mosquitto"
    print(
        f"\nN = {figures.size} node processes on {plaza}, {args.preset} config, howdy spread "
        f"{args.howdy_spread:g} s, keepalive {args.keepalive or 10} s, "
        f"{'no pulses' if args.no_pulses else 'pulses'}, {args.rounds} rounds"
    )
    if args.cluster:
        print("nodes round-robin over the members (own member first in each URL, MQTT 3.1.1); "
              "observer on member 1, tap on member 2")
    print(f"{'measure':<44}{'p50':>12}{'p95':>12}  {'target':<12}{'÷ broker p50 / p95':>20}")
    baseline = "broker round trip, member 1 → 2 (baseline)" if args.cluster else (
        "broker round trip (baseline)")
    print(f"{baseline:<44}{ms(broker[0])}{ms(broker[1])}")
    if figures.broker_one_member:
        one = figures.broker_one_member
        print(f"{'  (member 1 → member 1)':<44}{ms(percentile(one, 50))}{ms(percentile(one, 95))}")
    rows = (
        ("crash → MISSING everywhere", figures.crash, "crash"),
        ("  (kill → its lost will at a client)", figures.lost_on_wire, None),
        ("leave → OFFLINE everywhere", figures.leave, "leave"),
        ("  (SIGTERM → its chau at a client)", figures.chau_on_wire, None),
        ("hang (SIGSTOP) → MISSING everywhere", figures.hang, "hang"),
        ("resume (SIGCONT) → ONLINE everywhere", figures.resume, "resume"),
        ("newcomer start → 10 peers ONLINE", figures.newcomer, "newcomer"),
        ("  (start → its hey_there at a client)", figures.hey_there_on_wire, None),
        ("  (hey_there → first howdy at a client)", figures.first_howdy, None),
        ("  (from process spawn)", figures.newcomer_spawn, None),
    )
    for label, values, target_key in rows:
        p50, p95 = percentile(values, 50), percentile(values, 95)
        verdict = ""
        if target_key is not None and values:
            limit = TARGETS_S[target_key]
            verdict = f"≤ {limit:g} s " + ("met" if p95 <= limit else "MISSED")
        ratios = f"{p50 / broker[0]:8.0f}x / {p95 / broker[1]:.0f}x" if verdict else ""
        print(f"{label + f' (n={len(values)})':<44}{ms(p50)}{ms(p95)}  {verdict:<12}{ratios:>20}")
    if figures.howdys:
        bound = expected_replies(
            figures.size, latency_s=broker[0], config=HowdyConfig(jitter_max_s=args.howdy_spread)
        )
        mean = sum(figures.howdys) / len(figures.howdys)
        print(
            f"howdys per join: mean {mean:.1f}, min {min(figures.howdys)}, "
            f"max {max(figures.howdys)} (n={len(figures.howdys)}; design: about 10, "
            f"bound M + R·L/J = {bound:.2f} at the broker's p50)"
        )
    if args.cluster and figures.hang and args.no_pulses:
        keepalive = args.keepalive or 10
        print(
            f"hang on RabbitMQ 3.10: a silent connection is closed (and its will sent) when two "
            f"keepalive checks in a row saw no byte, 1-3 keepalives after the hang "
            f"({keepalive}-{3 * keepalive} s), not after 1.5 keepalives as on Mosquitto"
        )
    for miss in figures.misses:
        print(f"miss: {miss}")


async def run_all(args: argparse.Namespace, results: list[Figures], plazas: list[Plaza]) -> None:
    with tempfile.TemporaryDirectory(prefix="liveness-") as tmp:
        for size in args.sizes:
            workdir = Path(tmp) / f"n{size}"
            workdir.mkdir()
            figures = Figures(size)
            results.append(figures)
            await measure(size, args, workdir, figures, plazas)


async def run_bounded(
    args: argparse.Namespace, results: list[Figures], plazas: list[Plaza]
) -> str | None:
    """:func:`run_all` within ``--timeout``; the name of the signal that stopped it, if one
    did. One task all the way down, so the interrupt unwinds through every ``finally``."""
    asyncio.get_running_loop().set_exception_handler(quiet_about_interrupts)
    try:
        async with asyncio.timeout(args.timeout):
            await run_all(args, results, plazas)
    except TimeoutError:
        log(f"timed out after {args.timeout:.0f} s; the figures below are partial")
    except KeyboardInterrupt as stop:
        return str(stop) or "SIGINT"
    return None


def quiet_about_interrupts(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
    """A task the interrupt hit ends with it; that is expected, not worth a traceback."""
    if not isinstance(context.get("exception"), KeyboardInterrupt):
        loop.default_exception_handler(context)


def interrupt(signum: int, _frame: object) -> None:
    """Ctrl-C or SIGTERM: raise once, wherever the benchmark is (also in the cluster's
    blocking start), so every ``finally`` stops what it started; later signals would only
    cut that short, so they are ignored."""
    for other in (signal.SIGINT, signal.SIGTERM):
        signal.signal(other, signal.SIG_IGN)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20,50", help="network sizes, comma-separated (20,50)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per size (5); a round "
                        "is two joins, one crash, one leave and one hang")
    parser.add_argument("--preset", choices=("production", "fast"), default="production",
                        help="node configuration (production; fast = hereabouts up --fast)")
    parser.add_argument("--howdy-spread", type=float, default=None, metavar="S",
                        help="howdy reply spread (default: the preset's: 3 s, fast 0.5 s)")
    parser.add_argument("--wave", type=int, default=5, help="nodes started at once (5)")
    parser.add_argument("--keepalive", type=int, default=None, metavar="S",
                        help="the nodes' MQTT keepalive (default: the preset's, 10 s); the "
                        "broker gives a hung node up after 1.5 x this")
    parser.add_argument("--no-pulses", action="store_true",
                        help="nodes without pulses: hangs are found by the keepalive alone")
    parser.add_argument("--pings", type=int, default=200, help="baseline messages (200)")
    parser.add_argument("--seed", type=int, default=1, help="picks who crashes and leaves")
    parser.add_argument("--cluster", action="store_true",
                        help="a three-member RabbitMQ cluster instead of one Mosquitto")
    parser.add_argument("--timeout", type=float, default=900.0, help="whole run, seconds (900)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",")]
    if min(args.sizes) < 11:
        parser.error("every size must exceed 10: a newcomer must be able to know 10 peers")
    if args.howdy_spread is None:
        args.howdy_spread = 0.5 if args.preset == "fast" else HowdyConfig().jitter_max_s

    results: list[Figures] = []
    plazas: list[Plaza] = []
    started = time.monotonic()
    code = 0
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        stopped_by = asyncio.run(run_bounded(args, results, plazas))
    except KeyboardInterrupt as stop:  # it came while the event loop itself was running
        stopped_by = str(stop) or "SIGINT"
    finally:
        for plaza in plazas:  # already stopped, unless the interrupt hit its own stop
            plaza.stop()
    if stopped_by is not None:
        code = 128 + signal.Signals[stopped_by].value
        log(f"stopped by {stopped_by}; the figures below are partial")
    log(f"done in {time.monotonic() - started:.0f} s")
    if args.json:
        print(json.dumps({"plaza": "rabbitmq-cluster" if args.cluster else "mosquitto",
                          "preset": args.preset, "howdy_spread_s": args.howdy_spread,
                          "targets_s": TARGETS_S, "sizes": [summary(f) for f in results]}))
    else:
        for figures in results:
            report(figures, args)
    return code


if __name__ == "__main__":
    sys.exit(main())
