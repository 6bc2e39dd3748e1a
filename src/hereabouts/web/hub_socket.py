"""The site hub's WebSocket connections, served without ASGI.

A browser sends a heartbeat every ten seconds per room, and the hub's whole job for it is
one signature check, a few dictionary look-ups and a QoS 0 publish. Through uvicorn's
WebSocket protocol, ASGI message dictionaries, an ``asyncio.Queue``, Starlette's socket
wrapper and a reading coroutine per connection, the way in cost about as much as the
signature check itself (docs/benchmarks.md). Here a connection is one
:class:`asyncio.Protocol` driving the ``websockets`` library's sans-I/O
:class:`~websockets.server.ServerProtocol` (its frame parser, handshake and control frames),
and every frame a socket read brings is handled right there, in that one callback:
:meth:`SiteHub.receive_now <hereabouts.sites.hub.SiteHub.receive_now>` verifies, counts
and republishes it before the next frame is looked at. Only a ``watch`` (which may wait for
the broker to confirm a subscription) is awaited, and the frames behind it wait in order.

How a connection gets here: the HTTP server (:mod:`hereabouts.web.http_protocol`) parses
the upgrade request like any other, then hands the connection and the request's bytes to
:meth:`HubSockets.adopt` instead of to uvicorn's WebSocket protocol. In a hub worker
process (:mod:`hereabouts.sites.workers`) the same ``adopt`` takes a socket passed over
from the HTTP server's process.

The wire protocol is unchanged (:mod:`hereabouts.sites.hub_protocol`): the same frames, the
same refusals and close codes, no compression, messages of at most
:data:`~hereabouts.sites.hub_protocol.MAX_FRAME_BYTES` (close code 1009 past it).

Connections that go quiet are pinged: every :data:`KEEPALIVE_S` one timer looks at every
connection, pings those silent for that long, and drops those still silent a
:data:`KEEPALIVE_S` after their ping (a browser that vanished without closing; a widget
sends a heartbeat every ten seconds, so an open page never gets near it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import deque
from typing import Final, cast

from websockets.exceptions import PayloadTooBig
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

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
    Watch,
    encode,
)

log = logging.getLogger(__name__)

_wire_log = logging.getLogger(f"{__name__}.wire")
"""websockets' own logger for our connections: it says "connection open" at INFO for
every browser, which is the counters' job; it keeps its warnings."""
_wire_log.setLevel(logging.WARNING)

KEEPALIVE_S: Final = 20.0
"""A connection silent this long is pinged, and dropped if it stays silent as long again
(uvicorn's default ping interval and time-out, which the hub used before). A widget sends
a heartbeat every ten seconds, so only a vanished browser is ever pinged twice."""

READ_AHEAD: Final = 4
"""Frames one connection may have waiting behind a ``watch`` that is still subscribing
before its socket stops being read. A widget sends a ``watch`` and then its heartbeats;
anything past a few frames is a client that is not waiting for its answers."""

MAX_PINGS_PER_KEEPALIVE: Final = 16
"""Pings a client may send between two keepalive sweeps (:data:`KEEPALIVE_S`) before it is
closed with 1008. Browsers do not ping servers at all (scripts cannot), so this only
bounds the pongs a scripted client can make the hub write."""

CLOSE_INTERNAL: Final = 1011
"""Close code when handling a frame failed on the hub's side (a bug: logged, counted)."""

CLOSE_TIMEOUT_S: Final = 5.0
"""How long a client has to close its end after the closing handshake began; then the
connection is cut. A browser answers in a round trip."""


class HubSockets:
    """Every browser connection of one :class:`SiteHub`: adopts them, pings them, closes
    them all when the server stops."""

    def __init__(self, hub: SiteHub, *, keepalive_s: float = KEEPALIVE_S) -> None:
        self.hub = hub
        self._keepalive_s = keepalive_s
        self._open: set[HubSocket] = set()
        self._sweeper: asyncio.TimerHandle | None = None

    def adopt(self, transport: asyncio.Transport, request: bytes, client_host: str | None) -> None:
        """Take over ``transport``, whose upgrade ``request`` (its bytes up to the blank
        line) has been read and not answered, from the client at ``client_host`` (the
        address its budgets are kept under: the TCP peer's, or the one a trusted proxy
        forwarded)."""
        connection = HubSocket(self, client_host)
        transport.set_protocol(connection)
        connection.connection_made(transport)
        connection.data_received(request)
        if self._sweeper is None:
            self._schedule_sweep()

    async def adopt_socket(
        self, connection: socket.socket, request: bytes, client_host: str | None
    ) -> None:
        """:meth:`adopt` for a connected socket passed in from another process."""
        connection.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await loop.connect_accepted_socket(
                lambda: HubSocket(self, client_host), connection
            )
        except OSError:
            connection.close()  # gone before it could be served
            return
        protocol.data_received(request)
        if self._sweeper is None:
            self._schedule_sweep()

    @property
    def open(self) -> int:
        """Connections open now, handshake done or not."""
        return len(self._open)

    def close_all(self) -> None:
        """Say goodbye (1001) to every connection: the server is stopping."""
        for connection in list(self._open):
            connection.close(CLOSE_GOING_AWAY)
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def _opened(self, connection: HubSocket) -> None:
        self._open.add(connection)

    def _closed(self, connection: HubSocket) -> None:
        self._open.discard(connection)

    def _schedule_sweep(self) -> None:
        loop = asyncio.get_running_loop()
        self._sweeper = loop.call_later(self._keepalive_s, self._sweep)

    def _sweep(self) -> None:
        now = asyncio.get_running_loop().time()
        for connection in list(self._open):
            connection.keepalive(now, self._keepalive_s)
        if self._open:
            self._schedule_sweep()
        else:  # the next adopted connection starts it again
            self._sweeper = None


class HubSocket(asyncio.Protocol):
    """One browser's connection: the handshake, then frames in and counts out."""

    def __init__(self, sockets: HubSockets, client_host: str | None) -> None:
        self._sockets = sockets
        self._hub = sockets.hub
        self._client_host = client_host
        self._ws = ServerProtocol(max_size=MAX_FRAME_BYTES, logger=_wire_log)
        self._transport: asyncio.Transport | None = None
        self._client: HubClient | None = None
        self._fragments: list[bytes] = []
        self._waiting: deque[bytes] = deque()
        """Frames behind a ``watch`` that is still subscribing."""
        self._watching: asyncio.Task[None] | None = None
        self._can_write = True
        self._flush_soon = False
        self._heard_at = 0.0
        self._pinged = False
        self._told_too_big = False
        self._pings = 0
        """Pings received since the last keepalive sweep."""
        self._closing: asyncio.TimerHandle | None = None

    # --- asyncio's protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not an asyncio.Transport subclass, but is one).
        self._transport = cast(asyncio.Transport, transport)
        self._heard_at = asyncio.get_running_loop().time()
        self._sockets._opened(self)

    def data_received(self, data: bytes) -> None:
        self._heard_at = asyncio.get_running_loop().time()
        self._pinged = False
        self._ws.receive_data(data)
        self._handle(self._ws.events_received())
        if (
            isinstance(self._ws.parser_exc, PayloadTooBig)
            and self._client is not None
            and not self._told_too_big
        ):
            self._told_too_big = True  # websockets closes with 1009: count it, once
            self._hub.reject(self._client, "frame_too_large")
        self._write_out()

    def eof_received(self) -> bool | None:
        self._ws.receive_eof()
        self._write_out()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._sockets._closed(self)
        if self._closing is not None:
            self._closing.cancel()
        if self._watching is not None:
            self._watching.cancel()
        if self._client is not None:
            self._hub.close_client(self._client)
            self._client = None
        self._transport = None

    def pause_writing(self) -> None:
        self._can_write = False

    def resume_writing(self) -> None:
        self._can_write = True
        self._flush()

    # --- frames in -------------------------------------------------------------------------

    def _handle(self, events: list[Request | Response | Frame]) -> None:
        for event in events:
            if isinstance(event, Request):
                self._handshake(event)
            elif not isinstance(event, Frame):
                continue
            elif event.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                try:
                    self._frame(event)
                except Exception as exc:  # a bug must cost one connection, not the hub
                    log.warning("a browser frame failed: %s", type(exc).__name__)
                    if self._client is not None:
                        self._hub.reject(self._client, "internal")
                    self.close(CLOSE_INTERNAL)
                    return
            elif event.opcode is Opcode.PING:
                # websockets has queued the pong; a client pinging faster than a browser
                # ever does is making us write for nothing.
                self._pings += 1
                if self._pings > MAX_PINGS_PER_KEEPALIVE:
                    if self._client is not None:
                        self._hub.reject(self._client, "ping_flood")
                    self.close(CLOSE_POLICY)
                    return

    def _handshake(self, request: Request) -> None:
        response = self._ws.accept(request)
        self._ws.send_response(response)
        if response.status_code != 101:
            return  # not a WebSocket handshake: websockets answered why and closes
        try:
            self._client = self._hub.open_client(
                request.headers.get("Origin"),
                self._client_host,
                served_as=request.headers.get("Host"),
                wake=self._wake,
            )
        except RemoteError as exc:
            # Full or busy: come back later. A refused origin: do not come back.
            later = isinstance(exc, HubFull | AddressBusy)
            self._ws.send_close(CLOSE_TRY_LATER if later else CLOSE_POLICY, exc.reason)
            return
        self._send(self._hub.hello(self._client))

    def _frame(self, frame: Frame) -> None:
        client = self._client
        if client is None:
            return
        if frame.opcode is Opcode.BINARY or (frame.opcode is Opcode.CONT and not self._fragments):
            if not self._hub.reject(client, "binary_frame"):
                self.close(CLOSE_POLICY)
            return
        if not frame.fin or self._fragments:
            self._fragments.append(bytes(frame.data))
            if sum(map(len, self._fragments)) > MAX_FRAME_BYTES:
                self._hub.reject(client, "frame_too_large")
                self.close(CLOSE_TOO_BIG)
                return
            if not frame.fin:
                return
            data, self._fragments = b"".join(self._fragments), []
        else:
            data = bytes(frame.data)
        if self._watching is not None:
            self._waiting.append(data)
            if len(self._waiting) >= READ_AHEAD and self._transport is not None:
                self._transport.pause_reading()
            return
        self._receive(client, data)

    def _receive(self, client: HubClient, data: bytes) -> None:
        outcome = self._hub.receive_now(client, data)
        if isinstance(outcome, Watch):
            self._watching = asyncio.create_task(
                self._watch(client, outcome), name="site-hub-watch"
            )
        elif not outcome:
            self.close(CLOSE_POLICY)

    async def _watch(self, client: HubClient, frame: Watch) -> None:
        try:
            keep = await self._hub.receive_watch(client, frame)
        finally:
            self._watching = None
        if not keep:
            self.close(CLOSE_POLICY)
            return
        # The frames that came in meanwhile, in order, until the next watch.
        while self._waiting and self._watching is None and self._client is client:
            self._receive(client, self._waiting.popleft())
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()
        self._write_out()

    # --- frames out ------------------------------------------------------------------------

    def _wake(self) -> None:
        """The hub has something for this client: send it once this loop turn is over (a
        socket read of many frames gets one ``counts`` frame, not one per frame)."""
        if not self._flush_soon:
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_soon = False
        client = self._client
        if client is None or self._transport is None:
            return
        if client.closed:
            self.close(CLOSE_GOING_AWAY)
            return
        if self._can_write:  # else the counts wait, coalesced, for resume_writing
            for frame in client.take():
                self._send(frame)
        self._write_out()

    def _send(self, frame: dict[str, object]) -> None:
        self._ws.send_text(encode(frame).encode("utf-8"))

    def _write_out(self) -> None:
        transport = self._transport
        if transport is None:
            return
        for data in self._ws.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                with contextlib.suppress(OSError):
                    transport.write_eof()
        if self._ws.state is State.CLOSED:
            transport.close()
        elif self._ws.close_expected() and self._closing is None:
            # The client should now close its end; one that does not is cut off.
            loop = asyncio.get_running_loop()
            self._closing = loop.call_later(CLOSE_TIMEOUT_S, transport.abort)

    def close(self, code: int) -> None:
        """Close with ``code`` (the hub's reason is its counters')."""
        if self._client is not None and code != CLOSE_GOING_AWAY:
            self._hub.counters.add("site_hub_connections", f"closed_{code}")
        with contextlib.suppress(Exception):  # already closing: nothing more to say
            self._ws.send_close(code)
        self._write_out()

    def keepalive(self, now: float, every_s: float) -> None:
        """Ping a connection silent for ``every_s``; drop one silent since its ping."""
        self._pings = 0
        if now - self._heard_at < every_s or self._transport is None:
            return
        if self._pinged:
            self._hub.counters.add("site_hub_connections", "timed_out")
            self._transport.abort()
            return
        self._pinged = True
        self._heard_at = now
        with contextlib.suppress(Exception):
            self._ws.send_ping(b"")
        self._write_out()
