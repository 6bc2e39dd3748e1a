"""The baseline of ``bench/site_hub.py``: the hub's socket path, with a hub that drops frames.

It runs the hub's own stack: :class:`hereabouts.web.server.HttpServer` parses the upgrade
and hands the connection to :class:`hereabouts.web.hub_socket.HubSockets`, the same
protocol, parser and settings as the hub's. Only the hub behind it is replaced
(:class:`SinkHub`): it sends a ``hello``, answers a ``watch`` with a ``counts`` frame (the
load waits for one), and counts and drops every other frame, with no decoding, signature
check, counting or publishing. ``GET /metrics`` gives the count in the Prometheus text
format. Its CPU per frame is the socket path's own cost.

Run: ``.venv/bin/python bench/site_hub_sink.py --port PORT`` (started by the benchmark).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import signal
import sys
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from hereabouts.config import HttpLimits, SitesConfig
from hereabouts.metrics import Counters
from hereabouts.sites.counts import RoomCount
from hereabouts.sites.hub import HubClient
from hereabouts.web.admission import open_files_limit
from hereabouts.web.hub_socket import HubSockets
from hereabouts.web.server import HttpServer
from hereabouts.web.site import SOCKET_PATH


class SinkHub:
    """What :class:`~hereabouts.web.hub_socket.HubSocket` asks of a hub, doing nothing."""

    def __init__(self) -> None:
        config = SitesConfig()
        self.hello_frame: dict[str, object] = {
            "type": "hello",
            "heartbeat_interval_ms": round(config.heartbeat_interval_s * 1000),
            "did_duration_ms": round(config.did_duration_s * 1000),
            "rotation_spread_ms": round(config.rotation_spread_s * 1000),
            "max_rooms": 16,
        }
        self.counters = Counters()
        self.frames = 0
        self.connections = 0
        self._ids = itertools.count(1)

    def open_client(
        self,
        origin: str | None,
        host: str | None,
        *,
        served_as: str | None = None,
        wake: Callable[[], None] | None = None,
    ) -> HubClient:
        self.connections += 1
        return HubClient(str(next(self._ids)), origin=origin or "", address=host or "", wake=wake)

    def hello(self, client: HubClient) -> dict[str, object]:
        return self.hello_frame

    def receive_now(self, client: HubClient, data: bytes) -> Any:
        if data.startswith(b'{"type":"watch"'):
            client.push("sink", RoomCount(value=0))
        else:
            self.frames += 1
        return True

    def reject(self, client: HubClient, reason: str) -> bool:
        return True

    def close_client(self, client: HubClient) -> None:
        self.connections -= 1


async def run(port: int) -> None:
    sink = SinkHub()

    async def metrics(request: Request) -> PlainTextResponse:
        return PlainTextResponse(
            f"sink_frames_total {sink.frames}\nsink_connections {sink.connections}\n"
        )

    app = Starlette(routes=[Route("/metrics", metrics, methods=["GET"])])
    sockets = HubSockets(sink)  # type: ignore[arg-type]  # a hub that drops everything
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # A baseline of the stack, not of its cap: as many connections as the process can open.
    limits = HttpLimits(max_connections=max(1, open_files_limit() - HttpLimits().fd_reserve))
    async with HttpServer(
        app,
        host="127.0.0.1",
        port=port,
        shutdown_timeout_s=1.0,
        limits=limits,
        upgrades={SOCKET_PATH: sockets.adopt},
    ):
        print("sink: listening", flush=True)
        await stop.wait()
        sockets.close_all()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
