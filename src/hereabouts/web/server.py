"""Serve an ASGI app with uvicorn from inside a running asyncio program.

``async with HttpServer(app, port=0) as server: ... server.url`` starts uvicorn as a task
of the caller's event loop, returns once it is listening, and stops it on the way out.

Choices, and why:

* The socket is bound here, before uvicorn starts, so ``port=0`` yields one known free port
  (uvicorn binding ``localhost`` itself may pick a different port per address family) and a
  bind error surfaces as an ``OSError`` in the caller instead of uvicorn's ``sys.exit``.
* No signal handlers: uvicorn normally takes SIGINT and SIGTERM; inside the node, the node
  owns signals and decides the order of shutdown.
* Logging stays the program's: uvicorn's own logging configuration is not applied, its
  loggers are set to ``log_level`` (default ``warning``) and access logs are off.
* WebSockets: uvicorn's sans-I/O protocol, reading a few messages ahead
  (:mod:`hereabouts.web.websocket`), without compression (:data:`WS_PER_MESSAGE_DEFLATE`).
* Limits at the edge (:class:`~hereabouts.config.HttpLimits`): at most
  ``max_connections`` connections open at once, WebSockets included, the rest refused as
  they arrive (:mod:`hereabouts.web.admission`); request headers and bodies that do not
  arrive in time, and idle kept-alive connections, are closed
  (:mod:`hereabouts.web.http_protocol`). Refusals and time-outs are counted by reason in
  :attr:`HttpServer.counters`; :meth:`HttpServer.collector` exports open connections and
  the cap.
* Endless responses (the event stream) would keep uvicorn's graceful shutdown waiting
  forever, so stopping first ends the app's live streams
  (:meth:`~hereabouts.web.stream.EventStreams.close_all`), then lets uvicorn finish, and
  after ``shutdown_timeout_s`` cancels whatever request is still running.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import socket
from asyncio.selector_events import BaseSelectorEventLoop
from collections.abc import Generator, Iterator, Mapping
from types import TracebackType
from typing import Final

import uvicorn
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp

from hereabouts.config import HttpLimits
from hereabouts.metrics import Counters
from hereabouts.web.admission import ConnectionGate, GatedListener, open_files_limit
from hereabouts.web.forwarded import TrustedProxies
from hereabouts.web.http_protocol import Adopter, TimedH11Protocol, describe_counters
from hereabouts.web.stream import EventStreams
from hereabouts.web.websocket import ReadAheadWebSocketProtocol

DEFAULT_SHUTDOWN_TIMEOUT_S: Final = 5.0
"""How long requests still running at shutdown may take to finish before they are
cancelled. Ordinary requests here take milliseconds; this bounds a stuck one."""

DEFAULT_WS_MAX_SIZE: Final = 65_536
"""Largest WebSocket message uvicorn accepts (its own default is 16 MiB). The only socket
served, the site hub's, takes frames of a few hundred bytes; this bounds what a client can
make us buffer before the hub's own, smaller limit is checked."""

WS_PER_MESSAGE_DEFLATE: Final = False
"""WebSocket compression stays off. The hub's frames are a few hundred bytes of base58 and
base64, which deflate hardly shrinks, while each compressed connection keeps a zlib context
per direction (hundreds of KiB) and spends CPU on every frame: with it on, the hub's memory
per browser connection was several times that of the frames it buffers."""

DEFAULT_START_TIMEOUT_S: Final = 10.0
"""How long to wait for uvicorn to report that it is listening."""

_POLL_S: Final = 0.01  # uvicorn exposes "started" as a flag, not an event


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HttpServer:
    """A uvicorn server running as a task on the current event loop."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        shutdown_timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
        ws_max_size: int = DEFAULT_WS_MAX_SIZE,
        limits: HttpLimits | None = None,
        counters: Counters | None = None,
        upgrades: Mapping[str, Adopter] | None = None,
    ) -> None:
        """``host`` defaults to loopback: exposing a node beyond the machine is a decision
        the operator makes. ``port=0`` picks a free port; read it back from :attr:`port`.
        ``limits`` bound connections (default :class:`~hereabouts.config.HttpLimits`, the
        cap derived from this process's open-files limit when the server starts);
        refusals and time-outs are counted in ``counters`` (a fresh set by default).
        ``upgrades`` maps paths to what takes over a WebSocket upgrade there, past ASGI
        (:func:`hereabouts.web.site.site_upgrades` for the site hub's socket)."""
        self.app = app
        self.host = host
        self._requested_port = port
        self._log_level = log_level
        self._shutdown_timeout_s = shutdown_timeout_s
        self._start_timeout_s = start_timeout_s
        self._ws_max_size = ws_max_size
        self.limits = limits if limits is not None else HttpLimits()
        self.counters = counters if counters is not None else Counters()
        self.upgrades = dict(upgrades or {})
        describe_counters(self.counters)
        self._gate: ConnectionGate | None = None
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The port actually bound."""
        if self._port is None:
            raise RuntimeError("the server is not running")
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port``, with an IPv6 host in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def connection_limit(self) -> int:
        """The connection cap in force (derived when the server started)."""
        if self._gate is None:
            raise RuntimeError("the server is not running")
        return self._gate.limit

    @property
    def open_connections(self) -> int:
        """Connections open now, WebSockets included (0 when not running)."""
        return 0 if self._gate is None else self._gate.open

    def collector(self) -> Collector:
        """Gauges of open connections and of the cap, for a Prometheus registry."""
        return _ServerCollector(self)

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("the server was already started")
        if not isinstance(asyncio.get_running_loop(), BaseSelectorEventLoop):
            raise RuntimeError(
                "the HTTP server needs asyncio's selector event loop (its connection cap "
                "works through the listening socket's accept)"
            )
        sock = _bind(self.host, self._requested_port)
        self._port = sock.getsockname()[1]
        self._gate = ConnectionGate(
            limit=self.limits.connection_cap(open_files_limit()), counters=self.counters
        )
        sock.guard(self._gate)
        config = uvicorn.Config(
            self.app,
            log_config=None,
            log_level=self._log_level,
            access_log=False,
            ws_max_size=self._ws_max_size,
            ws_per_message_deflate=WS_PER_MESSAGE_DEFLATE,
            ws=ReadAheadWebSocketProtocol,
            # A callable, not a class: uvicorn only calls it, once per connection.
            http=functools.partial(  # type: ignore[arg-type]
                TimedH11Protocol,
                limits=self.limits,
                counters=self.counters,
                upgrades=self.upgrades,
                proxies=TrustedProxies(self.limits.trusted_proxies),
            ),
            lifespan="auto",
            # The client's address is the TCP peer's unless a listed proxy forwards it.
            proxy_headers=bool(self.limits.trusted_proxies),
            forwarded_allow_ips=list(self.limits.trusted_proxies) or "",
            # uvicorn takes whole seconds here; the margin in stop() covers the rounding.
            timeout_graceful_shutdown=math.ceil(self._shutdown_timeout_s),
        )
        server = self._server = _Server(config)
        self._task = asyncio.create_task(
            _serve(server, sock), name=f"hereabouts-web-http:{self._port}"
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_timeout_s
        try:
            while not server.started:
                if self._task.done():
                    raise RuntimeError("the HTTP server stopped while starting") from (
                        _failure(self._task)
                    )
                if loop.time() > deadline:
                    raise TimeoutError("the HTTP server did not start in time")
                await asyncio.sleep(_POLL_S)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.stop()
            sock.close()
            raise

    async def stop(self) -> None:
        """End live event streams, let uvicorn shut down, cancel it if it will not."""
        server, task = self._server, self._task
        if server is None or task is None:
            return
        streams = getattr(getattr(self.app, "state", None), "event_streams", None)
        if isinstance(streams, EventStreams):
            streams.close_all()
        server.should_exit = True
        # uvicorn's own time-out covers running requests; the margin covers the rest of
        # its shutdown (0.1 s pause, a 0.1 s tick, the lifespan).
        done, _ = await asyncio.wait({task}, timeout=math.ceil(self._shutdown_timeout_s) + 2.0)
        if not done:
            server.force_exit = True
            task.cancel()
            await asyncio.wait({task}, timeout=2.0)
        self._server = None
        self._task = None
        self._port = None
        self._gate = None
        failure = _failure(task) if task.done() else None
        if failure is not None:
            raise failure

    async def __aenter__(self) -> HttpServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class _ServerCollector(Collector):
    def __init__(self, server: HttpServer) -> None:
        self._server = server

    def collect(self) -> Iterator[Metric]:
        gate = self._server._gate
        if gate is not None:
            yield from gate.collector().collect()


def _bind(host: str, port: int) -> GatedListener:
    """A listening-ready TCP socket bound to ``host:port`` (the first address it resolves to)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = GatedListener(family, kind, proto)
    try:
        # Rebinding right after a restart must not fail on connections in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


async def _serve(server: uvicorn.Server, sock: socket.socket) -> None:
    try:
        await server.serve(sockets=[sock])
    except SystemExit as exc:
        # uvicorn exits the process when the app's startup fails; in a task, SystemExit
        # would escape the event loop and take the whole node down with it.
        raise RuntimeError(f"the HTTP server could not start (exit code {exc.code})") from None


def _failure(task: asyncio.Task[None]) -> BaseException | None:
    return None if task.cancelled() else task.exception()
