"""The connection cap: at most N connections open at once, the rest refused as they arrive.

Without a cap, every connection a client opens costs the node a file descriptor until the
client lets go; 2,000 half-sent requests once took a node to its limit of 1,024 open
files, after which it served nobody and asyncio logged a traceback for every failed
``accept`` (hundreds of MiB of log a minute). The cap keeps the server's descriptors below
the process limit with room to spare (:meth:`hereabouts.config.HttpLimits.connection_cap`).

Why at ``accept``, and not in the HTTP protocol: asyncio accepts up to ``backlog``
connections per wake-up and builds a transport for each before any protocol code runs,
so a check in the protocol comes after the descriptors are already taken. Here the
listening socket's own ``accept`` admits a connection only while fewer than ``limit`` are
open; anything past it gets a canned ``503`` (one non-blocking write; a client that already
sent its request may see a reset instead) and is closed before ``accept`` returns. Nothing
waits in a queue, and a refusal costs no task, transport or protocol.

uvicorn's ``limit_concurrency`` is not used: it judges a connection only once its request
headers have arrived (so it cannot stop connections that never send them), and then answers
``503`` to exactly the clients that did send a request.

A connection counts from ``accept`` until its socket is closed, whatever it speaks:
plain requests, event streams and the site hub's WebSockets all hold one slot.

If the process runs out of descriptors anyway (something else took them), the listener
frees a spare descriptor it keeps for that moment, accepts and refuses the waiting
connection, and takes the spare back: clients hear at once, and asyncio's accept loop
does not spin on a listener it cannot serve.

This relies on asyncio's selector event loop calling ``accept()`` on the socket it was
given (CPython's default loop on Linux and macOS does); a loop that accepts on its own
(uvloop, Windows' proactor) would bypass the cap, so :class:`~hereabouts.web.server.HttpServer`
refuses to start on one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Iterator
from typing import Any, Final

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hereabouts.metrics import Counters

REFUSED: Final = "http_refused"
"""Counter of connections refused at accept, by reason."""

AT_CAPACITY: Final = "at_capacity"
"""Refusal reason: ``limit`` connections were already open."""

OUT_OF_FILES: Final = "out_of_files"
"""Refusal reason: the process had no file descriptor left to serve it with."""

REFUSAL_RESPONSE: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 21\r\n"
    b"retry-after: 1\r\n"
    b"connection: close\r\n"
    b"\r\n"
    b"too many connections\n"
)
"""What a refused client reads, if it reads before it writes."""

_OUT_OF_FILES_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE})


class ConnectionGate:
    """How many connections of one server are open, and whether one more may be."""

    def __init__(self, *, limit: int, counters: Counters) -> None:
        if limit < 1:
            raise ValueError(f"the connection limit must be positive, got {limit}")
        self.limit = limit
        self.open = 0
        self.counters = counters
        counters.describe(REFUSED, "HTTP connections refused at accept, by reason.", "reason")

    def admit(self) -> bool:
        """Take a slot if one is free."""
        if self.open >= self.limit:
            self.counters.add(REFUSED, AT_CAPACITY)
            return False
        self.open += 1
        return True

    def release(self) -> None:
        """Give back the slot of a connection that closed."""
        self.open -= 1

    def collector(self) -> Collector:
        """Gauges of open connections and of the cap, for ``/metrics``."""
        return _GateCollector(self)


class GatedListener(socket.socket):
    """A listening socket whose ``accept`` admits connections through a :class:`ConnectionGate`.

    Create it like a socket, then :meth:`guard` it before the server starts.
    """

    _gate: ConnectionGate | None = None
    _spare: int | None = None

    def guard(self, gate: ConnectionGate) -> None:
        """Admit through ``gate`` from now on; keeps the spare descriptor ready."""
        self._gate = gate
        if self._spare is None:
            self._spare = _open_spare()

    def accept(self) -> tuple[socket.socket, Any]:
        gate = self._gate
        if gate is None:
            return super().accept()
        while True:  # ends by returning a connection, or BlockingIOError: nobody waits
            try:
                fd, address = self._accept()  # type: ignore[attr-defined]
            except OSError as exc:
                if exc.errno not in _OUT_OF_FILES_ERRNOS or not self._refuse_without_files():
                    raise
                continue
            if not gate.admit():
                self._refuse(fd)
                continue
            connection = _AdmittedSocket(self.family, self.type, self.proto, fileno=fd)
            connection.hold(gate)
            return connection, address

    def close(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            os.close(spare)
        super().close()

    def _refuse(self, fd: int) -> None:
        refused = socket.socket(self.family, self.type, self.proto, fileno=fd)
        try:
            refused.setblocking(False)
            refused.send(REFUSAL_RESPONSE)
        except OSError:
            pass  # the client has gone, or its window is full: closing is the answer
        finally:
            refused.close()

    def _refuse_without_files(self) -> bool:
        """Out of descriptors: refuse one waiting connection with the spare. False if there
        is no spare (the error then goes to asyncio as before)."""
        spare, self._spare = self._spare, None
        if spare is None:
            return False
        os.close(spare)
        try:
            fd, _ = self._accept()  # type: ignore[attr-defined]
        except BlockingIOError:
            raise  # nobody waits any more: this round of accepting is over
        except OSError:
            return False  # still no room: let asyncio pause accepting
        else:
            if self._gate is not None:
                self._gate.counters.add(REFUSED, OUT_OF_FILES)
            self._refuse(fd)
            return True
        finally:
            try:
                self._spare = _open_spare()
            except OSError:
                self._spare = None


class _AdmittedSocket(socket.socket):
    """An accepted connection that gives its slot back when it is closed."""

    _gate: ConnectionGate | None = None

    def hold(self, gate: ConnectionGate) -> None:
        self._gate = gate

    def close(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.release()
        super().close()

    def __del__(self) -> None:
        # Transports always close their socket; this only guards a slot against a
        # connection dropped without a close (say, a failure while asyncio set it up).
        if self._gate is not None:
            self.close()
        super().__del__()  # type: ignore[misc]  # the socket's own finalizer


def _open_spare() -> int:
    return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)


class _GateCollector(Collector):
    def __init__(self, gate: ConnectionGate) -> None:
        self._gate = gate

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "hereabouts_http_connections",
            "HTTP connections open now, WebSockets included.",
            value=self._gate.open,
        )
        yield GaugeMetricFamily(
            "hereabouts_http_connections_limit",
            "Most HTTP connections open at once; more are refused.",
            value=self._gate.limit,
        )


def open_files_limit() -> int:
    """The process's soft limit on open files (``RLIMIT_NOFILE``); 1,024 if unknown."""
    try:
        import resource
    except ImportError:  # not a Unix
        return 1024
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def raise_open_files_limit(wanted: int) -> int:
    """Raise the soft open-files limit towards ``wanted`` (never past the hard limit, never
    down); return the soft limit in force afterwards.

    Distributions start processes at a soft limit of 1,024 for the sake of programs using
    ``select()``, which cannot watch higher descriptors; asyncio uses epoll, so a server may
    raise it to what it needs, as Go's runtime does for every program.
    """
    try:
        import resource
    except ImportError:
        return open_files_limit()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinite = resource.RLIM_INFINITY
    if soft == infinite or soft >= wanted:
        return open_files_limit()
    target = wanted if hard == infinite else min(wanted, hard)
    if target > soft:
        # On failure keep the limit we have; the cap is derived from it.
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return open_files_limit()
