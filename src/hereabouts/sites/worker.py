"""A hub worker process: one :class:`SiteHub` serving the browser connections it is handed.

Started by ``hereabouts up --workers N`` (:mod:`hereabouts.sites.workers`) as
``python -m hereabouts.sites.worker FD``, with ``FD`` its end of the channel
(:mod:`hereabouts.sites.worker_channel`). It connects its own hub to the plaza, as a
separate hub process would; hubs share counts through the plaza, so a room watched on
two workers has one count. Browser connections arrive already accepted, their upgrade
request read, and are served by :mod:`hereabouts.web.hub_socket` as in a single process.

It stops when the parent closes the channel (or dies), or on SIGTERM, after saying
goodbye (1001) to its browsers. Ctrl-C in a terminal reaches the whole process group;
the worker leaves that to the parent, which stops it in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys

import msgspec

from hereabouts.metrics import Counters
from hereabouts.sites.counts import RoomCount
from hereabouts.sites.hub import SiteHub
from hereabouts.sites.worker_channel import (
    MAX_REPORTED_ROOMS,
    REPORT_INTERVAL_S,
    WorkerReport,
    WorkerSettings,
    decode,
    encode,
    receive,
    send,
)
from hereabouts.sites.worker_peers import SiblingHints
from hereabouts.transports.mqtt import MqttTransport
from hereabouts.web.admission import raise_open_files_limit
from hereabouts.web.hub_socket import HubSockets

log = logging.getLogger("hereabouts.sites.worker")

FD_RESERVE = 64
"""Descriptors a worker keeps beyond its browsers: its plaza connection, the channel, its
siblings' sockets, the event loop's own."""


async def serve(channel: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    channel.setblocking(False)
    settings = await _first_message(channel)
    logging.basicConfig(
        level=settings.log_level,
        format=f"%(asctime)s %(levelname)s %(name)s [hub worker {settings.index}]: %(message)s",
    )
    # Browser sockets arrive as descriptors: room for this worker's share of them.
    raise_open_files_limit(settings.hub.max_connections + FD_RESERVE)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    transport = MqttTransport(
        node_name=f"{settings.node_name}-sites-{settings.index}", settings=settings.mqtt, quiet=True
    )
    counters = Counters()
    hints = SiblingHints(counters)
    hub = SiteHub(
        transport=transport,
        config=settings.sites,
        hub=settings.hub,
        wire_limits=settings.wire,
        listen_host=settings.listen_host,
        on_verified=hints.verified,
        counters=counters,
    )
    async with hub:
        sockets = HubSockets(hub)
        adopting: set[asyncio.Task[None]] = set()

        def on_message() -> None:
            while True:
                try:
                    message = receive(channel)
                except BlockingIOError:
                    return
                except OSError:
                    message = None
                if message is None:  # the parent closed its end, or is gone
                    stop.set()
                    loop.remove_reader(channel)
                    return
                data, fds = message
                _take(data, fds, sockets, hints, adopting)

        loop.add_reader(channel, on_message)
        send(channel, encode("ready", os.getpid()))
        reporter = asyncio.create_task(_report_forever(channel, hub), name="worker-report")
        await stop.wait()
        reporter.cancel()
        with contextlib.suppress(OSError):
            loop.remove_reader(channel)
        sockets.close_all()
        hints.close()
        for task in adopting:
            task.cancel()


def _take(
    data: bytes,
    fds: list[int],
    sockets: HubSockets,
    hints: SiblingHints,
    adopting: set[asyncio.Task[None]],
) -> None:
    """A connection handed over: adopt it; a sibling's socket: link it. Anything else is a
    parent bug, logged."""
    try:
        message = decode(data)
        if message[0] == "peer" and len(fds) == 1:
            hints.link(int(message[1]), socket.socket(fileno=fds[0]))
            return
        kind, client_host, request = message
        if kind != "connection" or len(fds) != 1:
            raise ValueError(f"unexpected {kind!r} with {len(fds)} descriptors")
    except (ValueError, TypeError, msgspec.DecodeError) as exc:
        for fd in fds:
            os.close(fd)
        log.warning("ignored a message from the parent: %s", exc)
        return
    connection = socket.socket(fileno=fds[0])
    task = asyncio.create_task(sockets.adopt_socket(connection, bytes(request), client_host))
    adopting.add(task)
    task.add_done_callback(adopting.discard)


async def _report_forever(channel: socket.socket, hub: SiteHub) -> None:
    while True:
        counts = hub.counts()
        busiest = sorted(counts, key=lambda key: -(counts[key].value or 0))[:MAX_REPORTED_ROOMS]
        report = WorkerReport(
            pid=os.getpid(),
            health=hub.health(),
            counters=hub.counters.snapshot(),
            rooms={key: _pair(counts[key]) for key in busiest},
        )
        with contextlib.suppress(BlockingIOError):  # the parent is busy: next time
            send(channel, encode("report", report))
        await asyncio.sleep(REPORT_INTERVAL_S)


def _pair(count: RoomCount) -> tuple[int | None, int | None]:
    return count.value, count.fewer_than


async def _first_message(channel: socket.socket) -> WorkerSettings:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(channel, readable)
    try:
        await ready
    finally:
        loop.remove_reader(channel)
    message = receive(channel)
    if message is None:
        raise SystemExit(0)
    kind, raw = decode(message[0])
    if kind != "start":
        raise SystemExit(f"hub worker: expected start, got {kind!r}")
    return msgspec.convert(raw, WorkerSettings)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print(
            "usage: python -m hereabouts.sites.worker FD (started by hereabouts up)",
            file=sys.stderr,
        )
        return 2
    channel = socket.socket(fileno=int(args[0]))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(channel))
    return 0


if __name__ == "__main__":
    sys.exit(main())
