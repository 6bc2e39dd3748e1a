"""The baseline of ``bench/site_hub.py``: a WebSocket endpoint that takes frames and drops them.

It runs on the hub's own stack (Starlette routes served by
:class:`hereabouts.web.server.HttpServer`, so the same uvicorn WebSocket implementation
and settings) and its socket loop does what the hub's does
before the hub's own work starts: accept, send a ``hello``, then receive each text frame
and encode it to bytes. A ``watch`` is answered with an empty ``counts`` frame (the load
waits for one); every other frame is counted and dropped. ``GET /metrics`` gives the count
in the Prometheus text format.

Run: ``.venv/bin/python bench/site_hub_sink.py --port PORT`` (started by the benchmark).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from hereabouts.config import HttpLimits, SitesConfig
from hereabouts.web.admission import open_files_limit
from hereabouts.web.server import HttpServer
from hereabouts.web.site import SOCKET_PATH


class Sink:
    def __init__(self) -> None:
        config = SitesConfig()
        self.hello = json.dumps(
            {
                "type": "hello",
                "heartbeat_interval_ms": round(config.heartbeat_interval_s * 1000),
                "did_duration_ms": round(config.did_duration_s * 1000),
                "rotation_spread_ms": round(config.rotation_spread_s * 1000),
                "max_rooms": 16,
            }
        )
        self.frames = 0
        self.connections = 0

    async def serve(self, websocket: WebSocket) -> None:
        await websocket.accept()
        self.connections += 1
        try:
            await websocket.send_text(self.hello)
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                text = message.get("text")
                if text is None:
                    continue
                data = text.encode("utf-8")
                if data.startswith(b'{"type":"watch"'):
                    await websocket.send_text('{"type":"counts","rooms":{}}')
                else:
                    self.frames += 1
        finally:
            self.connections -= 1

    async def metrics(self, request: Request) -> PlainTextResponse:
        return PlainTextResponse(
            f"sink_frames_total {self.frames}\nsink_connections {self.connections}\n"
        )


async def run(port: int) -> None:
    sink = Sink()
    app = Starlette(
        routes=[
            WebSocketRoute(SOCKET_PATH, sink.serve),
            Route("/metrics", sink.metrics, methods=["GET"]),
        ]
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # A baseline of the stack, not of its cap: as many connections as the process can open.
    limits = HttpLimits(max_connections=max(1, open_files_limit() - HttpLimits().fd_reserve))
    async with HttpServer(app, host="127.0.0.1", port=port, shutdown_timeout_s=1.0, limits=limits):
        print("sink: listening", flush=True)
        await stop.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
