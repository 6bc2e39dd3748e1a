"""The node's HTTP surface: the peers API, the live stream, health, metrics and dashboard.

Routes:

* ``GET /v1/peers`` — ``{"node": {...}, "peers": [...]}`` (:mod:`hereabouts.web.payload`);
* ``GET /v1/stream`` — server-sent events (:mod:`hereabouts.web.stream`);
* ``GET /v1/history`` — the last hour of status changes, bounded, and the newest changes
  for the log (:mod:`hereabouts.web.history`);
* ``GET /v1/node`` — the node's health, refusals by reason and site rooms, for the
  dashboard (:mod:`hereabouts.web.overview`);
* ``GET /healthz`` — ``node.health()`` as JSON, with each of ``health_parts`` (e.g. the
  site hub's) under its own key; 200 when every ``ok`` is true, else 503;
* ``GET /metrics`` — Prometheus text exposition of ``node.registry``;
* ``GET /``, ``/static/...`` and ``/favicon.*`` — the dashboard
  (:mod:`hereabouts.web.dashboard`);
* then whatever ``extra_routes`` the caller adds (the node adds presence@2).

The web layer depends on the node only through :class:`NodeView`, so it can be served and
tested without a broker, a ledger or the runtime. While the app runs (its lifespan), a
:class:`~hereabouts.web.history.HistoryRecorder` follows ``node.changes()``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hereabouts.core.effects import StatusChanged
from hereabouts.core.projection import PeerView
from hereabouts.web.dashboard import dashboard_routes
from hereabouts.web.history import HistoryRecorder, StatusHistory
from hereabouts.web.overview import HealthCheck, RoomCounts, health_report, overview_json
from hereabouts.web.payload import peers_json
from hereabouts.web.stream import (
    DEFAULT_BUFFER,
    DEFAULT_KEEPALIVE_S,
    EventStreamResponse,
    EventStreams,
)

log = logging.getLogger(__name__)

JSON_TYPE = "application/json"
_NO_STORE = {"Cache-Control": "no-store"}  # live state: a cached copy is a wrong copy


class NodeView(Protocol):
    """What the web layer needs from a running node."""

    # Read-only properties, so plain attributes and properties both satisfy the protocol.
    @property
    def did(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def boot_id(self) -> str: ...

    @property
    def registry(self) -> CollectorRegistry:
        """Everything ``/metrics`` exports."""
        ...

    def peers(self) -> list[PeerView]:
        """The neighbourhood now (the node itself included), computed at call time."""
        ...

    def changes(self) -> AsyncIterator[StatusChanged]:
        """A new subscription per call, ending when the node stops.

        It should be subscribed by the time the iterator first waits (an async generator
        that registers before its first ``await`` does this), so that the stream's
        snapshot, taken just after, misses nothing."""
        ...

    def health(self) -> dict[str, object]:
        """``{"ok": bool, ...details}``; only ``ok`` is read here, the rest is passed on."""
        ...


__all__ = ["HealthCheck", "NodeView", "RoomCounts", "create_app"]


class _Handlers:
    """The route handlers, bound to one node."""

    def __init__(
        self,
        node: NodeView,
        streams: EventStreams,
        health_parts: Mapping[str, HealthCheck],
        rooms: RoomCounts | None,
        recorder: HistoryRecorder,
    ) -> None:
        self._node = node
        self._streams = streams
        self._health_parts = dict(health_parts)
        self._rooms = rooms
        self._recorder = recorder

    def _snapshot(self) -> dict[str, object]:
        return peers_json(self._node)

    async def peers(self, request: Request) -> Response:
        return JSONResponse(self._snapshot(), headers=_NO_STORE)

    async def stream(self, request: Request) -> Response:
        return EventStreamResponse(self._streams.open(self._node, self._snapshot))

    async def history(self, request: Request) -> Response:
        body = self._recorder.history.as_json(self._recorder.now_ms())
        return JSONResponse(body, headers=_NO_STORE)

    async def overview(self, request: Request) -> Response:
        origin = f"{request.url.scheme}://{request.url.netloc}"
        body = overview_json(self._node, self._health_parts, self._rooms, origin=origin)
        return Response(
            json.dumps(body, default=str), media_type=JSON_TYPE, headers=_NO_STORE
        )

    async def health(self, request: Request) -> Response:
        report = health_report(self._node, self._health_parts)
        status = 200 if report.get("ok") else 503
        # default=str: a detail such as a datetime or a Path must not turn 503 into 500.
        body = json.dumps(report, default=str)
        return Response(body, status_code=status, media_type=JSON_TYPE, headers=_NO_STORE)

    async def metrics(self, request: Request) -> Response:
        # Collected on the event loop, not in a thread: collectors read the node's live
        # counters, which only the loop mutates.
        body = generate_latest(self._node.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST, headers=_NO_STORE)


def create_app(
    node: NodeView,
    *,
    extra_routes: Sequence[BaseRoute] = (),
    health_parts: Mapping[str, HealthCheck] | None = None,
    rooms: RoomCounts | None = None,
    keepalive_s: float = DEFAULT_KEEPALIVE_S,
    stream_buffer: int = DEFAULT_BUFFER,
    history: StatusHistory | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The Starlette app serving ``node``.

    ``health_parts`` adds named sections to ``/healthz`` (each must be ``ok`` too).
    ``rooms`` gives the dashboard the site hub's room counts (``SiteHub.counts``; without
    it the dashboard says the node runs no hub). ``history`` holds the status changes the
    timelines draw (default: a :class:`~hereabouts.web.history.StatusHistory` with its
    documented bounds); ``clock`` is wall-clock seconds, to tell what is older than its
    window.

    ``keepalive_s`` (default 15 s) spaces the stream's comment lines; ``stream_buffer``
    (default 256) is how many changes a slow stream client may fall behind before it gets
    a fresh snapshot instead. See :mod:`hereabouts.web.stream` for both.
    """
    streams = EventStreams(keepalive_s=keepalive_s, buffer=stream_buffer)
    recorder = HistoryRecorder(node, history if history is not None else StatusHistory(), clock)
    handlers = _Handlers(node, streams, health_parts or {}, rooms, recorder)
    routes: list[BaseRoute] = [
        Route("/v1/peers", handlers.peers, methods=["GET"]),
        Route("/v1/stream", handlers.stream, methods=["GET"]),
        Route("/v1/history", handlers.history, methods=["GET"]),
        Route("/v1/node", handlers.overview, methods=["GET"]),
        Route("/healthz", handlers.health, methods=["GET"]),
        Route("/metrics", handlers.metrics, methods=["GET"]),
        *dashboard_routes(),
        *extra_routes,
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await recorder.start()
        try:
            yield
        finally:
            await recorder.stop()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.event_streams = streams  # so HttpServer can end live streams on shutdown
    app.state.history = recorder.history
    return app
