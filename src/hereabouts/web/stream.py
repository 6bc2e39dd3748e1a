"""``GET /v1/stream``: a node's status changes as server-sent events, one stream per client.

What a client receives, in order:

1. ``retry: 3000`` — how long a browser's EventSource waits before reconnecting;
2. ``event: snapshot`` — the same JSON as ``GET /v1/peers``;
3. ``event: change`` — one per :class:`~hereabouts.core.effects.StatusChanged`, as
   :func:`~hereabouts.web.payload.change_json`;
4. a comment line (``: keepalive``) after every ``keepalive_s`` of silence.

A client that falls more than ``buffer`` changes behind is not allowed to hold memory or slow
the node: its backlog is dropped and it gets a fresh ``snapshot`` instead, which says
everything the dropped changes would have.

Lifetimes. Each stream subscribes with its own ``node.changes()`` and a *pump* task copies
that iterator into the stream's bounded queue (so a keepalive time-out never cancels the
node's iterator itself, which would end an async generator for good). The stream ends when
the client disconnects, when the node's iterator ends (the node stopped), or when the server
shuts down (:meth:`EventStreams.close_all`; uvicorn would otherwise wait forever for an
endless response). Whichever happens, :class:`EventStreamResponse` closes the stream, which
cancels and awaits its pump, so a vanished client leaves no task and no subscription behind.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Final

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from hereabouts.core.effects import StatusChanged
from hereabouts.web.payload import JsonObject, change_json

if TYPE_CHECKING:
    from hereabouts.web.app import NodeView

log = logging.getLogger(__name__)

DEFAULT_KEEPALIVE_S: Final = 15.0
"""Seconds of silence before a comment line is sent. Reverse proxies commonly drop idle
connections after 60 s (nginx's ``proxy_read_timeout``); 15 s stays well inside that, and it
also bounds how long a client that vanished without a FIN keeps its stream open."""

DEFAULT_BUFFER: Final = 256
"""Changes held for one slow client before its backlog is replaced by a fresh snapshot.
A whole neighbourhood flipping at once (a broker restart) is a few hundred changes for a
typical network; past that a snapshot is smaller than the backlog anyway."""

RETRY_MS: Final = 3000
"""Reconnection delay suggested to EventSource clients: quick enough that a dashboard
recovers from a node restart within seconds, slow enough not to hammer a node that is down."""

PUMP_EXIT_TIMEOUT_S: Final = 2.0
"""How long closing a stream waits for its pump to finish the node iterator's clean-up."""

MEDIA_TYPE: Final = "text/event-stream"

_END: Final = object()  # the stream is over
_RESYNC: Final = object()  # the backlog was dropped: send a snapshot


def sse_message(event: str, data: JsonObject) -> str:
    """One server-sent event. ``json.dumps`` escapes CR and LF, so ``data`` is one line
    whatever a peer put in its name."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class SseStream:
    """One client's subscription: a bounded queue fed by a pump task."""

    def __init__(
        self,
        node: NodeView,
        snapshot: Callable[[], JsonObject],
        registry: EventStreams,
        *,
        keepalive_s: float,
        buffer: int,
    ) -> None:
        self._snapshot = snapshot
        self._registry = registry
        self._keepalive_s = keepalive_s
        self._buffer = buffer
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=buffer)
        self._ended = False
        self._closed = False
        # Subscribe now, before the snapshot is taken, so no change falls between the two.
        self._changes = node.changes()
        self._pump = asyncio.create_task(self._run_pump(), name="hereabouts-web-sse-pump")

    def offer(self, item: object) -> None:
        """Queue a change, ``_RESYNC`` or ``_END`` without ever blocking the caller."""
        if self._ended:
            return
        if item is _END:
            self._ended = True
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(_END if item is _END else _RESYNC)
            if item is not _END:
                log.info("event stream fell %d changes behind; sending a snapshot", self._buffer)

    def end(self) -> None:
        self.offer(_END)

    async def _run_pump(self) -> None:
        try:
            async for change in self._changes:
                self.offer(change)
        except Exception:
            log.exception("the node's change feed failed; ending the event stream")
        finally:
            self.end()
            aclose = getattr(self._changes, "aclose", None)
            if aclose is not None:
                await aclose()

    async def events(self) -> AsyncIterator[str]:
        """The text of the stream, message by message."""
        try:
            # One turn of the loop lets the pump enter node.changes() (an async generator
            # subscribes only when first iterated) before the snapshot is computed.
            await asyncio.sleep(0)
            yield f"retry: {RETRY_MS}\n\n" + sse_message("snapshot", self._snapshot())
            while True:
                try:
                    async with asyncio.timeout(self._keepalive_s):
                        item = await self._queue.get()
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if item is _END:
                    return
                if item is _RESYNC:
                    yield sse_message("snapshot", self._snapshot())
                elif isinstance(item, StatusChanged):
                    yield sse_message("change", change_json(item))
        finally:
            await self.close()

    async def close(self) -> None:
        """Unsubscribe: cancel the pump and wait (briefly) for it. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._ended = True
        self._registry.discard(self)
        self._pump.cancel()
        await asyncio.wait({self._pump}, timeout=PUMP_EXIT_TIMEOUT_S)


class EventStreams:
    """Every live stream of one app, so a server shutting down can end them all."""

    def __init__(self, *, keepalive_s: float, buffer: int) -> None:
        if keepalive_s <= 0:
            raise ValueError("keepalive_s must be positive")
        if buffer < 1:
            raise ValueError("buffer must be at least 1")
        self.keepalive_s = keepalive_s
        self.buffer = buffer
        self._live: set[SseStream] = set()
        self._closing = False

    def open(self, node: NodeView, snapshot: Callable[[], JsonObject]) -> SseStream:
        stream = SseStream(
            node, snapshot, self, keepalive_s=self.keepalive_s, buffer=self.buffer
        )
        self._live.add(stream)
        if self._closing:
            stream.end()
        return stream

    def discard(self, stream: SseStream) -> None:
        self._live.discard(stream)

    def close_all(self) -> None:
        """End every stream after what it has queued; later streams end after the snapshot."""
        self._closing = True
        for stream in list(self._live):
            stream.end()

    def __len__(self) -> int:
        return len(self._live)


class EventStreamResponse(StreamingResponse):
    """A StreamingResponse that always closes its stream, however the response ends.

    Starlette stops iterating a body when the client goes away (by cancelling the task, or
    on a failed send) but does not close the iterator; closing here makes clean-up immediate
    instead of waiting for garbage collection.
    """

    def __init__(self, stream: SseStream) -> None:
        super().__init__(
            stream.events(),
            media_type=MEDIA_TYPE,
            headers={
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # nginx: pass events through unbuffered
            },
        )
        self._stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            body: Any = self.body_iterator
            await body.aclose()
            await self._stream.close()
