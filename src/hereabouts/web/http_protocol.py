"""uvicorn's HTTP/1.1 protocol (h11) with the time-outs it lacks: request headers and body.

uvicorn closes a kept-alive connection that stays silent after a response
(``timeout_keep_alive``), and nothing else. A connection that opens and never completes
its request headers, or starts a next request and stops half-way (any byte cancels the
keep-alive clock), or stops sending a body, stays open for ever: 2,000 of them were all
still open a minute later, and nothing would have closed them.

This subclass runs one clock per connection, chosen from h11's view of the client and the
limits in :class:`~hereabouts.config.HttpLimits`:

=====================================================  ========================  =============
the client ...                                         clock                     reason
=====================================================  ========================  =============
has just connected, or sent part of a next request     ``header_timeout_s``      ``headers``
got its response and has sent nothing since            ``keep_alive_timeout_s``  ``keep_alive``
is sending a request body                              ``body_timeout_s``        ``body``
waits for its response, or was upgraded to WebSocket   none
=====================================================  ========================  =============

The clock is chosen again after every read and every response, and restarts only when the
row changes: dribbling bytes does not reset it. When it expires the connection is aborted
(nothing is owed to a client that never finished asking) and counted in
``http_timed_out{reason}``. The keep-alive row is uvicorn's own clock, counted here.

WebSockets are handed over to :mod:`hereabouts.web.websocket`'s protocol after the
upgrade request, which has its own ping time-outs; an upgrade to a path listed in
``upgrades`` (the site hub's socket) is handed to that path's :data:`Adopter` instead,
with the request's bytes and the client's address (:mod:`hereabouts.web.forwarded`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeAlias

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from hereabouts.config import HttpLimits
from hereabouts.metrics import Counters
from hereabouts.web.forwarded import TrustedProxies

Adopter: TypeAlias = Callable[[asyncio.Transport, bytes, "str | None"], None]
"""Takes over an upgraded connection: ``adopt(transport, request_bytes, client_host)``."""

TIMED_OUT: Final = "http_timed_out"
"""Counter of connections closed by a time-out, by reason."""

HEADERS: Final = "headers"
"""Time-out reason: the request headers did not arrive whole in time."""

BODY: Final = "body"
"""Time-out reason: the request body did not arrive whole in time."""

KEEP_ALIVE: Final = "keep_alive"
"""Time-out reason: a kept-alive connection stayed idle (normal; counted for the record)."""


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header and body time-outs and counted closes.

    uvicorn builds one per connection with ``config``, ``server_state`` and ``app_state``;
    bind ``limits`` and ``counters`` with :func:`functools.partial` and pass the result as
    uvicorn's ``http`` protocol.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: HttpLimits,
        counters: Counters,
        upgrades: Mapping[str, Adopter] | None = None,
        proxies: TrustedProxies | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._upgrades = upgrades or {}
        self._proxies = proxies if proxies is not None else TrustedProxies(limits.trusted_proxies)
        # uvicorn's keep-alive clock, which takes whole seconds in its own config.
        self.timeout_keep_alive = limits.keep_alive_timeout_s  # type: ignore[assignment]
        self._limits = limits
        self._counters = counters
        self._clock: asyncio.TimerHandle | None = None
        self._clock_reason: str | None = None

    # --- uvicorn's hooks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._choose_clock()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._choose_clock()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._choose_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        path = event.target.partition(b"?")[0].decode("latin-1")
        adopt = self._upgrades.get(path)
        if adopt is None:
            super().handle_websocket_upgrade(event)
            return
        self.connections.discard(self)  # uvicorn's shutdown no longer closes it: its owner does
        self._stop_clock()
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None
        lines = [event.method, b" ", event.target, b" HTTP/1.1\r\n"]
        for name, value in self.headers:
            lines += [name, b": ", value, b"\r\n"]
        lines.append(b"\r\n")
        peer = self.client[0] if self.client else None
        forwarded = [value for name, value in self.headers if name == b"x-forwarded-for"]
        adopt(self.transport, b"".join(lines), self._proxies.client(peer, forwarded))

    def timeout_keep_alive_handler(self) -> None:
        if not self.transport.is_closing():
            self._counters.add(TIMED_OUT, KEEP_ALIVE)
        super().timeout_keep_alive_handler()

    # --- the clock --------------------------------------------------------------------------

    def _wanted_clock(self) -> str | None:
        transport = self.transport
        if transport is None or transport.is_closing() or transport.get_protocol() is not self:
            return None  # closing, or upgraded to a WebSocket
        state = self.conn.their_state
        if state is h11.IDLE:
            # uvicorn's keep-alive clock runs until the first byte of a next request.
            return None if self.timeout_keep_alive_task is not None else HEADERS
        if state is h11.SEND_BODY:
            return BODY
        return None

    def _choose_clock(self) -> None:
        wanted = self._wanted_clock()
        if wanted == self._clock_reason:
            return
        self._stop_clock()
        if wanted is None:
            return
        delay = self._limits.header_timeout_s if wanted == HEADERS else self._limits.body_timeout_s
        self._clock = self.loop.call_later(delay, self._expire, wanted)
        self._clock_reason = wanted

    def _stop_clock(self) -> None:
        if self._clock is not None:
            self._clock.cancel()
        self._clock = None
        self._clock_reason = None

    def _expire(self, reason: str) -> None:
        self._clock = None
        self._clock_reason = None
        if self.transport.is_closing():
            return
        self._counters.add(TIMED_OUT, reason)
        self.transport.abort()


def describe_counters(counters: Counters) -> None:
    """Declare the time-out counter's help text and label."""
    counters.describe(TIMED_OUT, "HTTP connections closed by a time-out, by reason.", "reason")
