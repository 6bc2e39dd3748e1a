"""Web-layer fixtures: a node stand-in the test controls, served by a real uvicorn server.

:class:`FakeNode` implements :class:`~hereabouts.web.app.NodeView` with plain attributes and
one asyncio.Queue per ``changes()`` subscriber, so a test decides exactly which peers exist
and when a change happens. That makes these unit tests of the web layer; the node's own
tests cover what feeds it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx
import pytest
from prometheus_client.registry import CollectorRegistry

from hereabouts.core.effects import Status, StatusChanged
from hereabouts.core.projection import PeerView
from hereabouts.identity import Identity
from hereabouts.metrics import Counters
from hereabouts.web.app import create_app
from hereabouts.web.server import HttpServer

TIMEOUT_S = 20.0
"""Generous bound on any wait in these tests; they normally take milliseconds."""

ALPHA = Identity.from_seed(b"\x01" * 32).did
BRAVO = Identity.from_seed(b"\x02" * 32).did
CHARLIE = Identity.from_seed(b"\x03" * 32).did
T_MS = 1_795_957_200_123  # 2026-11-29T13:00:00.123Z


def view(did: str, name: str, status: Status, *, at_ms: int = T_MS, **more: object) -> PeerView:
    fields: dict[str, object] = {
        "did": did,
        "name": name,
        "status": status,
        "last_event_at_ms": at_ms,
        "last_event": "newspaper",
        "last_event_id": "ab" * 32,
        "boot_id": f"boot-{name}",
        "restarts": 0,
        "transport": "plaza",
        "endpoints": {},
    }
    fields.update(more)
    return PeerView(**fields)  # type: ignore[arg-type]


@dataclass
class FakeNode:
    """A NodeView whose peers, health and changes the test sets by hand."""

    did: str = ALPHA
    name: str = "alpha"
    boot_id: str = "0123abcd"
    views: list[PeerView] = field(default_factory=list)
    healthy: bool = True
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    subscribers: set[asyncio.Queue[StatusChanged | None]] = field(default_factory=set)
    counters: Counters = field(default_factory=Counters)

    def __post_init__(self) -> None:
        self.counters.describe("events_in", "Events accepted, by kind.", "kind")
        self.counters.add("events_in", "hey_there", 3)
        self.counters.register(self.registry)

    def peers(self) -> list[PeerView]:
        return list(self.views)

    async def changes(self) -> AsyncIterator[StatusChanged]:
        queue: asyncio.Queue[StatusChanged | None] = asyncio.Queue()
        self.subscribers.add(queue)
        try:
            while (change := await queue.get()) is not None:
                yield change
        finally:
            self.subscribers.discard(queue)

    def health(self) -> dict[str, object]:
        return {"ok": self.healthy, "broker": {"connected": self.healthy}}

    def push(self, change: StatusChanged) -> None:
        for queue in self.subscribers:
            queue.put_nowait(change)

    def stop(self) -> None:
        """What a stopping node does: every changes() iterator ends."""
        for queue in self.subscribers:
            queue.put_nowait(None)


def neighbourhood() -> list[PeerView]:
    return [
        view(ALPHA, "alpha", Status.ONLINE, restarts=1, endpoints={"http": "http://127.0.0.1:1"}),
        view(BRAVO, "bravo", Status.MISSING, last_event="lost"),
        view(CHARLIE, "charlie", Status.OFFLINE, last_event="chau"),
    ]


@pytest.fixture
def node() -> FakeNode:
    return FakeNode(views=neighbourhood())


@pytest.fixture
async def server(node: FakeNode) -> AsyncIterator[HttpServer]:
    """The app for ``node`` on a real uvicorn server, 127.0.0.1, a free port."""
    async with HttpServer(create_app(node, keepalive_s=0.5), port=0) as running:
        yield running


@pytest.fixture
async def client(server: HttpServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT_S, trust_env=False) as c:
        yield c


@dataclass
class SseMessage:
    event: str | None
    data: str | None
    comment: str | None = None

    def json(self) -> dict[str, object]:
        assert self.data is not None
        value = json.loads(self.data)
        assert isinstance(value, dict)
        return value


async def sse_messages(response: httpx.Response) -> AsyncIterator[SseMessage]:
    """Parse a text/event-stream body into messages and comments (enough for our server)."""
    event: str | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if event is not None or data:
                yield SseMessage(event, "\n".join(data) if data else None)
            event, data = None, []
        elif line.startswith(":"):
            yield SseMessage(None, None, comment=line[1:].strip())
        else:
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if key == "event":
                event = value
            elif key == "data":
                data.append(value)


async def next_message(
    messages: AsyncIterator[SseMessage], accept: Callable[[SseMessage], bool] = lambda m: True
) -> SseMessage:
    """The next message ``accept`` likes, within the generous time-out."""
    async with asyncio.timeout(TIMEOUT_S):
        async for message in messages:
            if accept(message):
                return message
    raise AssertionError("the stream ended first")


async def eventually(check: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT_S
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.02)
