"""``hereabouts up --workers N``: the site hub in N processes behind one port.

One process runs one event loop on one core, and a hub verifies one signature per
heartbeat: past about 8,000 heartbeats a second it is saturated (docs/benchmarks.md).
With ``--workers N`` the node's process keeps its HTTP server and hands every browser
connection to one of N hub worker processes (:mod:`hereabouts.sites.worker`), each with
its own plaza connection; they share counts through the plaza exactly as separate hubs
do, so a room watched on two workers shows one count.

Why hand sockets over instead of ``SO_REUSEPORT``: with several processes accepting on
one port the kernel spreads one client's connections over all of them, and every
per-address budget (connections at once, events per second, new DIDs per room and epoch)
would be N times as large, the attacker's included. Here the parent parses the upgrade
request like any other (so ``/widget.js``, the dashboard and the API stay where the node
is), then passes the socket to the worker chosen by the client's address
(:func:`~hereabouts.core.admission.address_key`, the budgets' key): one address, one
worker, budgets exact. A worker that is down passes its addresses to the next one alive
until it is back.

What the parent keeps: each worker reports every second (:mod:`~.worker_channel`); the
parent's ``/healthz`` shows every worker (``ok`` only when each is alive, reporting and
healthy), ``/metrics`` sums their counters, and the dashboard shows their rooms. A worker
that exits unexpectedly is started again after :data:`RESTART_DELAYS_S`; its browsers
reconnect as widgets do after any outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import socket
import sys
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from hereabouts.config import HubConfig, SitesConfig, WireLimits
from hereabouts.core.admission import address_key
from hereabouts.metrics import Counters
from hereabouts.sites.counts import RoomCount
from hereabouts.sites.hub import HUB_COUNTERS
from hereabouts.sites.metrics import RoomCountCollector, site_counters
from hereabouts.sites.worker_channel import (
    REPORT_STALE_S,
    WorkerReport,
    WorkerSettings,
    decode,
    encode,
    receive,
    send,
)
from hereabouts.transports.mqtt import MqttSettings

log = logging.getLogger(__name__)

START_TIMEOUT_S: Final = 30.0
"""How long a worker may take to import, connect its hub and say it is ready."""

STOP_TIMEOUT_S: Final = 5.0
"""How long a stopping worker may take to say goodbye to its browsers before it is killed."""

RESTART_DELAYS_S: Final = (1.0, 2.0, 5.0, 10.0, 30.0)
"""Waits before starting a crashed worker again, one per crash in a row (the last
repeats): a worker that dies at once is not restarted in a tight loop. A worker that ran
a minute starts the sequence afresh."""

_SERVICE_UNAVAILABLE: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 28\r\nconnection: close\r\n\r\nno site hub worker is up now"
)


@dataclass
class _Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    channel: socket.socket | None = None
    ready: asyncio.Future[int] | None = None
    report: WorkerReport | None = None
    reported_at: float = 0.0
    started_at: float = 0.0
    crashes: int = 0
    handed: int = 0
    """Connections handed to this worker since it started."""
    last_exit: int | None = None
    retired: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Counters of the worker's earlier lives, so sums never go backwards."""

    @property
    def alive(self) -> bool:
        return (
            self.process is not None
            and self.process.returncode is None
            and (self.ready is not None and self.ready.done() and not self.ready.exception())
        )


class HubWorkers:
    """N hub worker processes, and what the parent shows of them."""

    def __init__(
        self,
        count: int,
        *,
        node_name: str,
        mqtt: MqttSettings,
        sites: SitesConfig,
        hub: HubConfig,
        wire: WireLimits,
        listen_host: str,
        counters: Counters | None = None,
    ) -> None:
        """``hub.max_connections`` is for the whole hub: each worker holds its share.
        ``counters`` receives the sum of the workers' counters."""
        if not 1 <= count <= HubConfig.MAX_WORKERS:
            raise ValueError(f"workers must be 1-{HubConfig.MAX_WORKERS}")
        share = -(-hub.max_connections // count)
        if count > 1 and hub.max_connections_per_address >= share:
            # An address is one worker's, and a worker holds only its share: one script
            # could take every connection of its worker, and every other address that
            # worker serves would be refused (hub_full) while the others have room.
            log.warning(
                "one address may hold %d browser connections, all a hub worker holds "
                "(%d of %d, over %d workers): raise PRESENCE_HUB_MAX_CONNECTIONS or lower "
                "PRESENCE_HUB_MAX_CONNECTIONS_PER_ADDRESS",
                hub.max_connections_per_address,
                share,
                hub.max_connections,
                count,
            )
        self._settings = [
            WorkerSettings(
                index=index,
                node_name=node_name,
                mqtt=mqtt,
                sites=sites,
                hub=dataclasses.replace(hub, max_connections=share),
                wire=wire,
                listen_host=listen_host,
                log_level=logging.getLogger("hereabouts").getEffectiveLevel(),
            )
            for index in range(count)
        ]
        self._workers = [_Worker(index) for index in range(count)]
        self.counters = site_counters(counters)
        for name, (help_text, label) in HUB_COUNTERS.items():
            self.counters.describe(name, help_text, label)
        self._supervisors: set[asyncio.Task[None]] = set()
        self._stopping = False

    # --- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> HubWorkers:
        try:
            await asyncio.gather(*(self._start(worker) for worker in self._workers))
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop every worker (each says goodbye to its browsers), then kill stragglers."""
        self._stopping = True
        for task in self._supervisors:
            task.cancel()
        await asyncio.gather(*(self._stop(worker) for worker in self._workers))

    async def _start(self, worker: _Worker) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "hereabouts.sites.worker",
                str(theirs.fileno()),
                pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        ours.setblocking(False)
        worker.process, worker.channel = process, ours
        worker.ready = loop.create_future()
        worker.started_at = time.monotonic()
        worker.handed = 0
        send(ours, encode("start", self._settings[worker.index]))
        loop.add_reader(ours, self._on_message, worker)
        waiting = asyncio.ensure_future(process.wait())
        try:
            done, _ = await asyncio.wait(
                {worker.ready, waiting}, timeout=START_TIMEOUT_S, return_when="FIRST_COMPLETED"
            )
        finally:
            waiting.cancel()
        if worker.ready not in done:
            code = process.returncode
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            raise RuntimeError(
                f"site hub worker {worker.index} did not start"
                + (f" (exit code {code})" if code is not None else " in time")
            )
        self._link_siblings(worker)
        supervisor = asyncio.create_task(self._supervise(worker), name=f"hub-worker-{worker.index}")
        self._supervisors.add(supervisor)
        supervisor.add_done_callback(self._supervisors.discard)

    def _link_siblings(self, worker: _Worker) -> None:
        """A socket pair between ``worker`` and every other worker alive, for the ids of
        the signatures each has checked (:mod:`~.worker_peers`)."""
        for other in self._workers:
            if other is worker or not other.alive or other.channel is None:
                continue
            assert worker.channel is not None
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                send(worker.channel, encode("peer", other.index), ours.fileno())
                send(other.channel, encode("peer", worker.index), theirs.fileno())
            except OSError as exc:  # a busy channel: these two check signatures themselves
                log.warning(
                    "site hub workers %d and %d not linked: %s", worker.index, other.index, exc
                )
            finally:
                ours.close()
                theirs.close()

    async def _supervise(self, worker: _Worker) -> None:
        """Wait for the worker to exit; unless we are stopping, start it again."""
        assert worker.process is not None
        code = await worker.process.wait()
        self._forget(worker)
        if self._stopping:
            return
        worker.last_exit = code
        ran_s = time.monotonic() - worker.started_at
        worker.crashes = 1 if ran_s > 60 else worker.crashes + 1
        delay = RESTART_DELAYS_S[min(worker.crashes, len(RESTART_DELAYS_S)) - 1]
        log.warning(
            "site hub worker %d exited (code %s); starting it again in %g s",
            worker.index,
            code,
            delay,
        )
        await asyncio.sleep(delay)
        try:
            await self._start(worker)
        except RuntimeError as exc:
            log.warning("%s", exc)
            retry = asyncio.create_task(self._supervise(worker))
            self._supervisors.add(retry)
            retry.add_done_callback(self._supervisors.discard)

    async def _stop(self, worker: _Worker) -> None:
        process = worker.process
        self._forget(worker)
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    def _forget(self, worker: _Worker) -> None:
        """Close our end of a worker's channel; keep its counters for the sums."""
        if worker.report is not None:
            for name, value, n in worker.report.counters:
                worker.retired[(name, value)] += n
            worker.report = None
            self._sum_counters()
        channel, worker.channel = worker.channel, None
        if channel is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(channel)
            channel.close()
        if worker.ready is not None and not worker.ready.done():
            worker.ready.set_exception(RuntimeError("the worker exited"))
            worker.ready.exception()  # retrieved: nobody else may be waiting

    # --- connections -----------------------------------------------------------------------

    def adopt(self, transport: asyncio.Transport, request: bytes, client_host: str | None) -> None:
        """Hand a browser's upgraded connection to the worker of its address."""
        worker = self._worker_for(client_host)
        sock = transport.get_extra_info("socket")
        if worker is None or worker.channel is None or sock is None:
            transport.write(_SERVICE_UNAVAILABLE)
            transport.close()
            self.counters.add("site_hub_connections", "no_worker")
            return
        fd = os.dup(sock.fileno())
        try:
            send(worker.channel, encode("connection", client_host, request), fd)
        except OSError:  # the worker is not reading (stuck) or gone
            transport.write(_SERVICE_UNAVAILABLE)
            transport.close()
            self.counters.add("site_hub_connections", "worker_busy")
            return
        finally:
            os.close(fd)
        worker.handed += 1
        transport.abort()  # our descriptor only: the worker holds the connection now

    def _worker_for(self, client_host: str | None) -> _Worker | None:
        """The worker of this address, or the next one alive after it."""
        start = worker_of(client_host, len(self._workers))
        for step in range(len(self._workers)):
            worker = self._workers[(start + step) % len(self._workers)]
            if worker.alive:
                return worker
        return None

    # --- reports ---------------------------------------------------------------------------

    def _on_message(self, worker: _Worker) -> None:
        channel = worker.channel
        while channel is not None:
            try:
                message = receive(channel)
            except BlockingIOError:
                return
            except OSError:
                message = None
            if message is None:  # the worker is gone; its supervisor takes it from here
                with contextlib.suppress(Exception):
                    asyncio.get_running_loop().remove_reader(channel)
                return
            data, fds = message
            for fd in fds:  # a worker never sends descriptors
                os.close(fd)
            try:
                kind, value = decode(data)
                if kind == "ready" and worker.ready is not None and not worker.ready.done():
                    worker.ready.set_result(int(value))
                elif kind == "report":
                    worker.report = msgspec.convert(value, WorkerReport)
                    worker.reported_at = time.monotonic()
                    self._sum_counters()
            except (ValueError, TypeError, msgspec.ValidationError) as exc:
                log.warning("site hub worker %d sent a bad message: %s", worker.index, exc)

    def _sum_counters(self) -> None:
        self.counters.replace(
            item
            for worker in self._workers
            for item in itertools.chain(
                ((name, value, n) for (name, value), n in worker.retired.items()),
                worker.report.counters if worker.report else (),
            )
        )

    def health(self) -> dict[str, object]:
        """The hub's part of ``/healthz``: ``ok`` when every worker is alive, has reported
        within :data:`REPORT_STALE_S` and reports its own hub healthy."""
        now = time.monotonic()
        workers: list[dict[str, Any]] = []
        for worker in self._workers:
            report = worker.report
            age = None if report is None else now - worker.reported_at
            entry: dict[str, Any] = {
                "index": worker.index,
                "pid": None if worker.process is None else worker.process.pid,
                "alive": worker.alive,
                "report_age_s": None if age is None else round(age, 1),
                "connections_handed": worker.handed,
                "restarts_in_a_row": worker.crashes,
                "last_exit_code": worker.last_exit,
            }
            if report is not None:
                entry["hub"] = report.health
            entry["ok"] = bool(
                worker.alive
                and report is not None
                and age is not None
                and age <= REPORT_STALE_S
                and report.health.get("ok")
            )
            workers.append(entry)
        return {"ok": all(entry["ok"] for entry in workers), "workers": workers}

    def counts(self) -> dict[str, RoomCount]:
        """Every room a worker reports, by key. Workers count one room alike through the
        plaza; for the moment they disagree (a heartbeat on its way) the larger stands."""
        merged: dict[str, RoomCount] = {}
        for worker in self._workers:
            if worker.report is None:
                continue
            for key, (value, fewer_than) in worker.report.rooms.items():
                count = RoomCount(value=value, fewer_than=fewer_than)
                shown = merged.get(key)
                if shown is None or (count.value or 0) > (shown.value or 0):
                    merged[key] = count
        return merged

    def collector(self) -> RoomCountCollector:
        return RoomCountCollector(self.counts)

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process is not None]


def worker_of(client_host: str | None, workers: int) -> int:
    """The worker (0 to ``workers - 1``) whose budgets a client address is kept in: the
    same for every connection of one address (an IPv6 /64 counts as one), spread evenly
    over many addresses, and the same after a restart."""
    return zlib.crc32(address_key(client_host).encode()) % workers
