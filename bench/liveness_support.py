"""Parts of ``bench/liveness.py``: the broker, node processes, the in-process eyes, figures.

* :class:`Mosquitto` — a private broker on a free 127.0.0.1 port, stopped at the end.
* :class:`RabbitPlaza` — instead, a three-member RabbitMQ cluster on 127.0.0.1 (the one
  ``tests/cluster/`` uses, from ``tests/fixtures/rabbit_cluster.py``), with the nodes spread
  over its members and the benchmark's own clients on two different members.
* :class:`NodeProcess` — one ``bench/liveness_node.py`` process; its stdout lines (start
  time, every status change it observes, with ``time.monotonic()``) are read as they come.
* :class:`Observer` — a stealth node inside the benchmark: it publishes nothing, so it
  changes no count, and it stamps every change it sees with the same monotonic clock.
* :class:`PlazaTap` — a plain MQTT subscriber recording hey_there, howdy, chau and lost
  events with their arrival times.
* :func:`broker_round_trip` — the baseline: publish with one client, receive with another.

Every child process is asked by the kernel to die with the benchmark (``PR_SET_PDEATHSIG``),
so even a benchmark killed with SIGKILL leaves no node or broker behind. RabbitMQ members
cannot be asked that way (each is a script whose Erlang node is its child, in a process group
of its own), so a :class:`Reaper` process kills them, and the cluster's epmd, when the
benchmark's end closes its pipe, however the benchmark ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiomqtt

from hereabouts import config as config_module
from hereabouts.config import Config
from hereabouts.events import Howdy, SignedEvent
from hereabouts.identity import Identity
from hereabouts.ledger import MemoryLedger
from hereabouts.peers.keyring import Keyring
from hereabouts.peers.node import Node
from hereabouts.transports.topics import plaza_topic
from hereabouts.wire import unseal

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the RabbitMQ cluster the cluster tests use
from tests.fixtures.rabbit_cluster import Member, RabbitCluster, find_rabbitmq  # noqa: E402

NODE_SCRIPT = Path(__file__).with_name("liveness_node.py")
PR_SET_PDEATHSIG = 1
STOP_WAIT_S = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it when the benchmark's thread dies."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100), interpolating linearly between order statistics."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


async def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> bool:
    """Poll ``predicate``; False (and a note on stderr) if it is still false at the timeout.
    Polling only costs wall time: every figure comes from the timestamps in the lines."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            print(f"  ! gave up after {timeout_s:.0f} s waiting for {what}", file=sys.stderr)
            return False
        await asyncio.sleep(0.02)
    return True


class Mosquitto:
    """``mosquitto -c`` with a loopback listener, anonymous access and no persistence;
    ``extra_conf`` adds configuration lines."""

    def __init__(self, workdir: Path, *, extra_conf: str = "") -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.access(binary, os.X_OK):
            raise SystemExit("mosquitto is not installed (Debian package `mosquitto`)")
        self.binary = binary
        self.port = free_port()
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            f"{extra_conf}log_dest stderr\nlog_type error\nlog_type warning\n"
        )
        self.log_path = workdir / "mosquitto.log"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [binary, "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        self.pid = self.process.pid
        self.url = f"mqtt://127.0.0.1:{self.port}"

    async def wait_listening(self, timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"mosquitto exited at start; see {self.log_path}")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            await asyncio.sleep(0.02)
        raise SystemExit(f"mosquitto did not listen on port {self.port}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


REAPER_CODE = """
import os, signal, sys
live = {}
for line in sys.stdin:
    kind, pid = line.split()
    if kind == "-":
        live.pop(pid, None)
    else:
        live[pid] = kind
for pid, kind in live.items():
    try:
        (os.killpg if kind == "g" else os.kill)(int(pid), signal.SIGKILL)
    except OSError:
        pass
"""


class Reaper:
    """A small process that SIGKILLs the processes it was told about once its stdin closes:
    at the benchmark's end, whatever ended it (the kernel closes the pipe even after SIGKILL).
    It has a session of its own, so a Ctrl-C at the terminal does not end it first."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", REAPER_CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _tell(self, line: str) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(OSError, ValueError):  # ValueError: already closed
            self.process.stdin.write(f"{line}\n".encode())
            self.process.stdin.flush()

    def watch_group(self, pgid: int) -> None:
        self._tell(f"g {pgid}")

    def watch_process(self, pid: int) -> None:
        self._tell(f"p {pid}")

    def forget(self, pid: int) -> None:
        """The benchmark stopped it itself; its number may be reused, so never kill it."""
        self._tell(f"- {pid}")

    def close(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class ReapedCluster(RabbitCluster):
    """The cluster of ``tests/fixtures/rabbit_cluster.py``, its processes told to a reaper."""

    def __init__(self, root: Path, reaper: Reaper) -> None:
        super().__init__(root)
        self.reaper = reaper

    def launch_epmd(self) -> subprocess.Popen[bytes]:
        epmd = super().launch_epmd()
        self.reaper.watch_process(epmd.pid)
        return epmd

    def launch(self, member: Member) -> None:
        super().launch(member)
        assert member.process is not None
        self.reaper.watch_group(member.process.pid)  # a session leader: its group's id

    def stop(self) -> None:
        pids = [m.process.pid for m in self.members if m.process is not None]
        if self.epmd is not None:
            pids.append(self.epmd.pid)
        super().stop()
        for pid in pids:
            self.reaper.forget(pid)


class RabbitPlaza:
    """A three-member RabbitMQ cluster (3.10, MQTT plugin) as the plaza of :mod:`liveness`.

    Node number k is placed on member k mod 3: its broker URL lists that member first, then
    the others (the failover order an operator would write), with MQTT 3.1.1 pinned, the
    only version RabbitMQ 3.10's MQTT plugin speaks. The stealth observer is on member 1,
    the tap on member 2, and the baseline publishes on member 1 and subscribes on member 2,
    so each of them measures delivery across members for two thirds of the nodes. Starting
    the cluster takes about 20-30 s; it blocks, since nothing else runs yet."""

    description = "a three-member RabbitMQ cluster"
    cross_member = True

    def __init__(self, workdir: Path) -> None:
        if find_rabbitmq() is None:
            raise SystemExit(
                "rabbitmq-server is not installed (Debian package rabbitmq-server; "
                "`bash scripts/system-deps.sh` installs it)"
            )
        self.reaper = Reaper()
        self.cluster = ReapedCluster(workdir / "rabbitmq", self.reaper)
        self.members = self.cluster.members

    @staticmethod
    def url(*members: Member) -> str:
        return f"mqtt://{','.join(m.mqtt for m in members)}?protocol=3.1.1"

    def node_url(self, index: int) -> str:
        first = index % len(self.members)
        return self.url(*self.members[first:], *self.members[:first])

    @property
    def observer_url(self) -> str:
        return self.node_url(0)

    @property
    def tap_port(self) -> int:
        return self.members[1].mqtt_port

    @property
    def ping_ports(self) -> tuple[int, int]:
        """(publisher's, subscriber's) broker port for the baseline: two members."""
        return self.members[0].mqtt_port, self.members[1].mqtt_port

    async def start(self) -> None:
        self.cluster.start()
        print(
            f"  RabbitMQ cluster of {len(self.members)} up in {self.cluster.started_in_s:.1f} s",
            file=sys.stderr,
            flush=True,
        )

    def stop(self) -> None:
        """Kill the members and the epmd; idempotent, and the reaper goes with them."""
        try:
            self.cluster.stop()
        finally:
            self.reaper.close()


@dataclasses.dataclass
class Sighting:
    """One status change as one observer saw it."""

    at: float  # time.monotonic() in the observer's process
    did: str
    status: str


class Watcher:
    """Anything whose status changes we read: a node process or the in-process observer."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.did = ""
        self.view: dict[str, str] = {}
        self.sightings: list[Sighting] = []
        self.ten_online_at: float | None = None  # when it first knew 10 other peers ONLINE

    def saw(self, sighting: Sighting) -> None:
        self.sightings.append(sighting)
        self.view[sighting.did] = sighting.status
        if self.ten_online_at is None and self.online_peers() >= 10:
            self.ten_online_at = sighting.at

    def online_peers(self) -> int:
        return sum(1 for did, s in self.view.items() if s == "ONLINE" and did != self.did)

    def sees(self, did: str, status: str) -> bool:
        return self.view.get(did) == status

    def first_sighting(self, did: str, status: str, since: float) -> float | None:
        for s in self.sightings:
            if s.at >= since and s.did == did and s.status == status:
                return s.at
        return None


class NodeProcess(Watcher):
    """A node process running ``bench/liveness_node.py``; stderr (its log) goes to a file."""

    def __init__(self, name: str, workdir: Path) -> None:
        super().__init__(name)
        self.home = workdir / name
        self.log_path = workdir / f"{name}.log"
        self.spawned_at = 0.0
        self.started_at: float | None = None  # when its node started, in its own words
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def spawn(
        self,
        broker_url: str,
        preset: str,
        spread: float | None,
        keepalive_s: int | None = None,
        *,
        pulses: bool = True,
    ) -> None:
        args = ["--home", str(self.home), "--name", self.name, "--broker", broker_url]
        args += ["--preset", preset]
        if not pulses:
            args.append("--no-pulses")
        if spread is not None:
            args += ["--howdy-spread", str(spread)]
        if keepalive_s is not None:
            args += ["--keepalive", str(keepalive_s)]
        with self.log_path.open("ab") as log:
            self.spawned_at = time.monotonic()
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, str(NODE_SCRIPT), *args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                preexec_fn=_die_with_parent,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self._reader = asyncio.create_task(self._read(), name=f"read-{self.name}")

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for raw in self.process.stdout:
            words = raw.decode(errors="replace").split()
            if words[:2] == ["bench:", "change"] and len(words) == 5:
                self.saw(Sighting(at=float(words[2]), did=words[3], status=words[4]))
            elif words[:2] == ["bench:", "started"]:
                self.started_at = float(words[2])
            elif words[:1] == ["hereabouts:"] and len(words) == 3 and words[2].startswith("("):
                self.did = words[2].strip("()")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def signal(self, signum: int) -> float:
        """Send ``signum``; return the monotonic time just before it left."""
        assert self.process is not None
        at = time.monotonic()
        self.process.send_signal(signum)
        return at

    async def wait_exit(self, timeout_s: float = STOP_WAIT_S) -> int | None:
        if self.process is None:
            return None
        try:
            return await asyncio.wait_for(self.process.wait(), timeout_s)
        except TimeoutError:
            return None

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited in time; never raises. SIGCONT too, as
        the benchmark may be stopped while the node hangs (SIGSTOP)."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                self.signal(signal.SIGTERM)
                self.signal(signal.SIGCONT)
            if await self.wait_exit() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.signal(signal.SIGKILL)
                await self.wait_exit()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


class Observer(Watcher):
    """A stealth node in the benchmark's own process, stamping the changes it sees."""

    def __init__(self, config: Config) -> None:
        super().__init__("bench-observer")
        self.node = Node(
            config,
            name=self.name,
            identity=Identity.generate(),
            ledger=MemoryLedger(),
            keyring=Keyring(),
            stealth=True,
            log_changes=False,
        )
        self.did = self.node.did
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="observer")
        await asyncio.sleep(0)
        await self.node.start()

    async def _watch(self) -> None:
        async for change in self.node.changes():
            self.saw(Sighting(at=time.monotonic(), did=change.did, status=change.new.value))

    async def stop(self) -> None:
        await self.node.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def observer_config(preset: str, broker_url: str) -> Config:
    """The node processes' preset, without discovery jitter."""
    base = config_module.testing() if preset == "fast" else config_module.production()
    node = dataclasses.replace(base.node, broker_url=broker_url, discovery_jitter_max_s=0.0)
    return base.replace(node=node)


class PlazaTap:
    """A plain MQTT subscriber on the plaza: what went out, and when it reached a client."""

    KINDS = ("hey_there", "howdy", "chau", "lost")

    def __init__(self, port: int) -> None:
        self.client = aiomqtt.Client("127.0.0.1", port, identifier=f"bench-tap-{os.getpid()}")
        self.arrivals: list[tuple[float, SignedEvent]] = []  # (time.monotonic(), event)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PlazaTap:
        await self.client.__aenter__()
        for kind in self.KINDS:
            await self.client.subscribe(plaza_topic(kind), qos=1)
        self._task = asyncio.create_task(self._collect(), name="plaza-tap")
        return self

    async def _collect(self) -> None:
        async for message in self.client.messages:
            at = time.monotonic()
            with contextlib.suppress(Exception):  # keep only what verifies
                signed = unseal(bytes(message.payload), check_clock=False)  # type: ignore[arg-type]
                self.arrivals.append((at, signed))

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.__aexit__(None, None, None)

    def first(self, kind: str, did: str, since: float = 0.0) -> tuple[float, SignedEvent] | None:
        """The first ``kind`` event of ``did`` that arrived at or after ``since``."""
        return next(
            ((at, e) for at, e in self.arrivals if at >= since and e.kind == kind and e.did == did),
            None,
        )

    def howdys_answering(self, hey_there_id: str, to_did: str) -> list[tuple[float, SignedEvent]]:
        """The howdys welcoming ``to_did`` for its hey_there ``hey_there_id``, as arrived."""
        return [
            (at, e) for at, e in self.arrivals
            if isinstance(e.event, Howdy)
            and e.event.answers == hey_there_id
            and e.event.to_did == to_did
        ]


async def broker_round_trip(port: int, count: int, rx_port: int | None = None) -> list[float]:
    """Seconds from ``publish`` (QoS 1, as nodes publish) by one client on ``port`` until
    another client (on ``rx_port``, by default the same) receives the message, one message
    at a time, ``count`` times. The clients speak MQTT 3.1.1, which every broker here does."""
    topic = f"bench/ping/{os.getpid()}"
    delays: list[float] = []
    async with (
        aiomqtt.Client(
            "127.0.0.1", rx_port or port, identifier=f"bench-rx-{os.getpid()}-{port}"
        ) as rx,
        aiomqtt.Client("127.0.0.1", port, identifier=f"bench-tx-{os.getpid()}-{port}") as tx,
    ):
        await rx.subscribe(topic, qos=1)
        messages = aiter(rx.messages)
        for number in range(count + 10):  # the first ten warm the path up
            sent = time.monotonic()
            await tx.publish(topic, str(number).encode(), qos=1)
            message = await asyncio.wait_for(anext(messages), 10)
            received = time.monotonic()
            if bytes(message.payload) != str(number).encode():  # type: ignore[arg-type]
                raise RuntimeError("broker round trip: messages out of order")
            if number >= 10:
                delays.append(received - sent)
    return delays

