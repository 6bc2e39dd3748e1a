"""The browser side of site presence over HTTP: the hub's WebSocket, the widget, a demo page.

Routes (``build_site_routes(hub)``, added to :func:`~hereabouts.web.app.create_app` through
``extra_routes``):

* ``WS /v1/site`` — the hub protocol (:mod:`hereabouts.sites.hub_protocol`);
* ``GET /widget.js`` — the drop-in ES module, served with ``Access-Control-Allow-Origin: *``
  because other sites load it as a module script (which is fetched in CORS mode);
* ``GET /demo/site`` — a page embedding the widget, under the dashboard's strict
  Content-Security-Policy (own scripts only; ``connect-src 'self'`` admits the socket).

This module only moves frames between the socket and :class:`~hereabouts.sites.hub.SiteHub`;
every decision (limits, verification, counting) is the hub's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from hereabouts.core.admission import AddressBusy
from hereabouts.errors import RemoteError
from hereabouts.sites.hub import HubClient, SiteHub
from hereabouts.sites.hub_protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CLOSE_TRY_LATER,
    MAX_FRAME_BYTES,
    HubFull,
    encode,
)
from hereabouts.web.dashboard import STATIC_HEADERS, read_static, serve_static

log = logging.getLogger(__name__)

WIDGET_PATH = "/widget.js"
DEMO_PATH = "/demo/site"
SOCKET_PATH = "/v1/site"

_JS = "text/javascript; charset=utf-8"
_WIDGET_HEADERS = {**STATIC_HEADERS, "Access-Control-Allow-Origin": "*"}


class _SiteSocket:
    """``WS /v1/site``: one reader loop and one writer task per connection."""

    def __init__(self, hub: SiteHub) -> None:
        self._hub = hub

    async def serve(self, websocket: WebSocket) -> None:
        await websocket.accept()
        peer = websocket.client
        try:
            client = self._hub.open_client(
                websocket.headers.get("origin"),
                peer.host if peer is not None else None,
                served_as=websocket.headers.get("host"),
            )
        except RemoteError as exc:
            # Full or busy: come back later. A refused origin: do not come back.
            later = isinstance(exc, HubFull | AddressBusy)
            await websocket.close(CLOSE_TRY_LATER if later else CLOSE_POLICY, reason=exc.reason)
            return
        writer: asyncio.Task[None] | None = None
        code: int | None = None
        try:
            await websocket.send_text(encode(self._hub.hello(client)))
            writer = asyncio.create_task(self._write(websocket, client), name="site-hub-writer")
            code = await self._read(websocket, client)
        except WebSocketDisconnect:
            pass
        finally:
            self._hub.close_client(client)
            if writer is not None:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await writer
        if code is not None:
            self._hub.counters.add("site_hub_connections", f"closed_{code}")
            with contextlib.suppress(Exception):
                await websocket.close(code)

    async def _read(self, websocket: WebSocket, client: HubClient) -> int | None:
        """Frames in until the client leaves (None) or must be closed (the close code)."""
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return None
            text = message.get("text")
            if text is None:
                if not self._hub.reject(client, "binary_frame"):
                    return CLOSE_POLICY
                continue
            data = text.encode("utf-8")
            if len(data) > MAX_FRAME_BYTES:
                self._hub.reject(client, "frame_too_large")
                return CLOSE_TOO_BIG
            if not await self._hub.receive(client, data):
                return CLOSE_POLICY

    async def _write(self, websocket: WebSocket, client: HubClient) -> None:
        while (frames := await client.outgoing()) is not None:
            for frame in frames:
                await websocket.send_text(encode(frame))
        # The hub closed this client (shutting down): say so.
        with contextlib.suppress(Exception):
            await websocket.close(CLOSE_GOING_AWAY)


def build_site_routes(hub: SiteHub) -> list[BaseRoute]:
    """The hub's socket, the widget and the demo page (files read from disk now, once)."""
    widget = read_static("widget.js")

    async def serve_widget(request: Request) -> Response:
        return Response(widget, media_type=_JS, headers=_WIDGET_HEADERS)

    return [
        WebSocketRoute(SOCKET_PATH, _SiteSocket(hub).serve),  # a method: objects are raw ASGI
        Route(WIDGET_PATH, serve_widget, methods=["GET"]),
        Route(
            DEMO_PATH,
            serve_static(read_static("demo-site.html"), "text/html; charset=utf-8"),
            methods=["GET"],
        ),
    ]
