"""The browser hub over a real HTTP server, driven by a real WebSocket client.

Events are signed the way the widget signs them (``JSON.stringify`` field order, compact
separators, the body bytes spliced into the envelope as text), not with ``seal_as``: the
hub must accept exactly what a browser produces.

Every test runs twice (:mod:`tests.sites.hubs`): against a hub in the test's process on a
memory bus, and against two hub worker processes on a real Mosquitto, as
``hereabouts up --workers 2`` serves browsers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from hereabouts.config import HubConfig, SitesConfig
from hereabouts.identity import Identity
from hereabouts.sites import PresenceManager, room_key
from hereabouts.sites.hub import SiteHub
from hereabouts.transports.topics import site_topic
from tests.sites.hubs import Plaza, ServedHub, serve_hub
from tests.sites.support import (
    WireRecorder,
    browser_sealed,
    event_frame,
    eventually,
    now_ms,
    watch_frame,
)

CONFIG = SitesConfig(
    did_duration_s=60.0,
    heartbeat_interval_s=1.0,
    stale_timeout_s=3.0,
    rotation_spread_s=0.2,
    max_clock_skew_s=0.5,
)
ORIGIN = "https://hub-test.example"
LOBBY = room_key(ORIGIN, "lobby")
DOCS = room_key(ORIGIN, "docs")


@dataclass
class Browser:
    """One WebSocket client that records every frame the hub sends it."""

    ws: ClientConnection
    frames: list[dict[str, object]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, object]] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None

    async def read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in self.ws:
                assert isinstance(message, str)
                self.raw.append(message)
                frame = json.loads(message)
                self.frames.append(frame)
                if frame["type"] == "counts":
                    self.counts.update(frame["rooms"])

    def count(self, key: str) -> object:
        return self.counts.get(key, {}).get("count")

    def errors(self) -> list[object]:
        return [f["reason"] for f in self.frames if f["type"] == "error"]

    async def send(self, text: str) -> None:
        await self.ws.send(text)

    async def watch(self, *names: str) -> None:
        """Watch rooms of :data:`ORIGIN` by name, as the widget on its pages does."""
        await self.send(watch_frame(ORIGIN, *names))


@dataclass
class Rig:
    hub: ServedHub
    browsers: list[Browser] = field(default_factory=list)

    @property
    def plaza(self) -> Plaza:
        return self.hub.plaza

    @property
    def url(self) -> str:
        return self.hub.url

    @contextlib.asynccontextmanager
    async def browser(self) -> AsyncIterator[Browser]:
        async with connect(self.url, origin=ORIGIN) as ws:
            browser = Browser(ws)
            browser.task = asyncio.create_task(browser.read())
            self.browsers.append(browser)
            await eventually(lambda: bool(browser.frames))
            try:
                yield browser
            finally:
                await ws.close()
                await browser.task


MakeRig = Callable[..., AbstractAsyncContextManager[Rig]]


@pytest.fixture
def rig(hub_plaza: Plaza, hub_mode: str) -> MakeRig:
    """``rig(HubConfig(...), config=...)``: a hub served both ways (see the module's doc)."""

    @contextlib.asynccontextmanager
    async def make(
        hub: HubConfig | None = None, *, config: SitesConfig = CONFIG
    ) -> AsyncIterator[Rig]:
        async with serve_hub(hub_plaza, hub_mode, config=config, hub=hub) as served:
            yield Rig(hub=served)

    return make


async def test_hello_then_counts_on_watch(rig: MakeRig) -> None:
    async with rig() as r, r.browser() as b:
        hello = b.frames[0]
        assert hello["type"] == "hello"
        assert hello["heartbeat_interval_ms"] == 1000
        assert hello["did_duration_ms"] == 60000
        assert abs(int(hello["now_ms"]) - now_ms()) < 5000  # type: ignore[call-overload]
        await b.watch("lobby", "docs")
        await eventually(lambda: LOBBY in b.counts and DOCS in b.counts)
        assert b.counts[LOBBY] == {"count": 0, "fewer_than": None}


async def test_browser_heartbeats_are_counted_pushed_and_shared_with_python(
    rig: MakeRig, tmp_path: Path
) -> None:
    async with rig() as r, r.browser() as a, r.browser() as b:
        # A Python participant on the same plaza sees the browsers, and they see it.
        python = PresenceManager(transport=r.plaza.transport("py"), home=tmp_path, config=CONFIG)
        async with python:
            await python.watch(ORIGIN, "lobby")
            await a.watch("lobby")
            await b.watch("lobby")
            key_a, key_b = Identity.generate(), Identity.generate()
            await a.send(event_frame(browser_sealed("site_heartbeat", key_a, LOBBY)))
            await eventually(lambda: a.count(LOBBY) == 1 and b.count(LOBBY) == 1)
            started = time.monotonic()
            # The sealed envelope may also come as a JSON string.
            sealed = json.dumps(browser_sealed("site_heartbeat", key_b, LOBBY))
            await b.send(f'{{"type":"event","sealed":{sealed}}}')
            await eventually(lambda: a.count(LOBBY) == 2 and b.count(LOBBY) == 2)
            assert time.monotonic() - started < 1.0  # "within a second"
            await eventually(lambda: python.count(ORIGIN, "lobby") == 2)

            python.consent.grant(ORIGIN)
            await python.join(ORIGIN, "lobby")
            await eventually(lambda: a.count(LOBBY) == 3)

            await b.send(event_frame(browser_sealed("site_leave", key_b, LOBBY)))
            await eventually(lambda: a.count(LOBBY) == 2 and python.count(ORIGIN, "lobby") == 2)
        # The Python visitor left on closing; the browser that stays is still counted.
        await eventually(lambda: a.count(LOBBY) == 1)
        await r.hub.settle()
        assert r.hub.counters.get("site_hub_republished", "heartbeat") == 2
        assert r.hub.counters.get("site_hub_republished", "leave") == 1


async def test_silent_browsers_expire(rig: MakeRig) -> None:
    async with rig() as r, r.browser() as a:
        await a.watch("lobby")
        await a.send(event_frame(browser_sealed("site_heartbeat", Identity.generate(), LOBBY)))
        await eventually(lambda: a.count(LOBBY) == 1)
        await eventually(lambda: a.count(LOBBY) == 0, timeout_s=CONFIG.stale_timeout_s + 3)


async def test_k_floor_applies_to_pushed_counts(rig: MakeRig) -> None:
    config = SitesConfig(
        did_duration_s=60.0,
        heartbeat_interval_s=1.0,
        stale_timeout_s=3.0,
        rotation_spread_s=0.2,
        max_clock_skew_s=0.5,
        min_count=3,
    )
    async with rig(config=config) as r, r.browser() as a:
        await a.watch("lobby")
        await eventually(lambda: LOBBY in a.counts)
        assert a.counts[LOBBY] == {"count": None, "fewer_than": 3}
        for _ in range(3):
            sealed = browser_sealed("site_heartbeat", Identity.generate(), LOBBY)
            await a.send(event_frame(sealed))
        await eventually(lambda: a.count(LOBBY) == 3)
        # Movement below the floor was never pushed.
        pushed = [f for f in a.frames if f["type"] == "counts"]
        assert [f["rooms"][LOBBY]["count"] for f in pushed] == [None, 3]  # type: ignore[index]


async def test_bad_input_is_refused_by_reason_and_the_connection_stays_up(rig: MakeRig) -> None:
    async with rig() as r, r.browser() as b:
        await b.watch("lobby")
        key = Identity.generate()
        good = browser_sealed("site_heartbeat", key, LOBBY)
        body = json.loads(good)["body"]
        forged = good.replace(f'"at_ms":{body["at_ms"]}', f'"at_ms":{body["at_ms"] + 1}')
        await b.send("not json")
        await b.send('{"type":"dance"}')
        await b.send(json.dumps({"type": "watch", "rooms": ["Not-A-Room-Key"]}))
        await b.send(watch_frame(ORIGIN, *(str(n) for n in range(17))))
        await b.send(event_frame(forged))
        await b.send(event_frame(browser_sealed("site_heartbeat", key, DOCS)))  # not watched
        stale = browser_sealed("site_heartbeat", key, LOBBY, at_ms=now_ms() - 60_000)
        await b.send(event_frame(stale))
        await b.send(event_frame(good))
        await b.send(event_frame(good))  # the same bytes again
        await b.ws.send(b"\x00binary")
        await b.send("[" * 4000 + "]" * 4000)  # deep enough to stop a recursive parser
        expected = [
            "too_deep",
            "bad_frame",
            "bad_frame",
            "bad_frame",
            "too_many_rooms",
            "bad_signature",
            "room_not_watched",
            "too_old",
            "replayed",
            "binary_frame",
        ]
        await eventually(lambda: len(b.errors()) == len(expected))
        assert sorted(map(str, b.errors())) == sorted(expected)
        await r.hub.settle()
        rejects = r.hub.counters.by_label("site_hub_rejects")
        assert rejects == {reason: expected.count(reason) for reason in set(expected)}
        # Still up, still counting: the one good heartbeat counts.
        assert b.count(LOBBY) == 1
        await b.send(event_frame(browser_sealed("site_heartbeat", Identity.generate(), LOBBY)))
        await eventually(lambda: b.count(LOBBY) == 2)


async def test_a_deeply_nested_frame_is_refused_and_counted(rig: MakeRig) -> None:
    """Found by the fuzzer: ``sealed`` nested a few thousand levels deep once made the
    decoder raise RecursionError, which dropped the connection with a logged traceback and
    no count, instead of a refusal."""
    async with rig() as r, r.browser() as b:
        await b.watch("lobby")
        deep = "[" * 4000 + "]" * 4000
        await b.send(f'{{"type":"event","sealed":{deep}}}')
        await b.send(f'{{"type":"watch","rooms":{deep}}}')
        await eventually(lambda: b.errors() == ["too_deep", "too_deep"])
        await r.hub.settle()
        assert r.hub.counters.by_label("site_hub_rejects") == {"too_deep": 2}
        await b.send(event_frame(browser_sealed("site_heartbeat", Identity.generate(), LOBBY)))
        await eventually(lambda: b.count(LOBBY) == 1)


async def test_garbage_floods_and_oversized_frames_are_closed_with_clear_codes(
    rig: MakeRig,
) -> None:
    async with rig() as r:
        # The closing handshake takes milliseconds; a server that stopped reading the
        # client's close reply would wait out its 10 s close timeout instead.
        async with asyncio.timeout(5), connect(r.url, origin=ORIGIN) as ws:
            await ws.recv()  # hello
            with pytest.raises(ConnectionClosed) as closed:
                for _ in range(100):
                    await ws.send("garbage")
                    await asyncio.sleep(0)
                while True:
                    await asyncio.wait_for(ws.recv(), timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        async with connect(r.url, origin=ORIGIN) as ws:
            await ws.recv()
            await ws.send("x" * 9000)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        await eventually(lambda: r.hub.connections == 0)


async def test_connections_are_bounded(rig: MakeRig) -> None:
    async with rig(HubConfig(max_connections=1)) as r, r.browser():
        async with connect(r.url, origin=ORIGIN) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
            assert closed.value.rcvd.reason == "hub_full"
        await r.hub.settle()
        assert r.hub.counters.get("site_hub_connections", "refused") == 1
        assert r.hub.counters.get("site_hub_rejects", "hub_full") == 1


async def test_no_did_or_origin_in_frames_or_logs(
    rig: MakeRig, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    keys = [Identity.generate() for _ in range(3)]
    async with rig() as r, r.browser() as a:
        await a.watch("lobby", "docs")
        for key in keys:
            await a.send(event_frame(browser_sealed("site_heartbeat", key, LOBBY)))
        await a.send(event_frame(browser_sealed("site_heartbeat", keys[0], DOCS)))
        await a.send(event_frame(browser_sealed("site_heartbeat", keys[1], LOBBY, at_ms=1)))
        await a.send("junk")
        await eventually(lambda: a.count(LOBBY) == 3 and a.count(DOCS) == 1)
        await eventually(lambda: len(a.errors()) == 2)
        await a.send(event_frame(browser_sealed("site_leave", keys[2], LOBBY)))
        await eventually(lambda: a.count(LOBBY) == 2)
    # Our loggers and the server's (the test's own client logs the frames it sends), and
    # what hub workers wrote to their standard error, which is the test's.
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("websockets")]
    ours += capfd.readouterr().err.splitlines()
    assert any("refused" in line for line in ours)
    seen = "\n".join([*a.raw, *ours])
    assert "did:key" not in seen
    assert all(key.did not in seen for key in keys)
    assert "hub-test.example" not in seen


async def test_a_hub_forcing_ghost_mode_publishes_nobody(rig: MakeRig, tmp_path: Path) -> None:
    """Flag presence_ghost_mode_hard_off: counts still flow to browsers, events do not."""
    async with (
        rig(HubConfig(ghost_mode_hard_off=True)) as r,
        WireRecorder(r.plaza.transport("wire")) as wire,
        r.browser() as b,
    ):
        assert await wire.transport.wait_connected(10)
        assert b.frames[0]["ghost_forced"] is True
        await b.watch("lobby")
        await eventually(lambda: LOBBY in b.counts)
        await b.send(event_frame(browser_sealed("site_heartbeat", Identity.generate(), LOBBY)))
        await eventually(lambda: b.errors() == ["ghost_forced"])
        await r.hub.settle()
        assert wire.messages == []
        # A visitor elsewhere on the plaza is still counted, and shown to the browser.
        python = PresenceManager(transport=r.plaza.transport("py"), home=tmp_path, config=CONFIG)
        async with python:
            python.consent.grant(ORIGIN)
            await python.join(ORIGIN, "lobby")
            await eventually(lambda: b.count(LOBBY) == 1)
            await eventually(lambda: bool(wire.messages))
        await r.hub.settle()
        assert len(wire.dids()) == 1  # the Python visitor's, nobody else's
        assert r.hub.counters.by_label("site_hub_republished") == {}
        assert r.hub.counters.get("site_hub_rejects", "ghost_forced") == 1


async def test_a_reload_finds_the_room_counted(rig: MakeRig) -> None:
    """The room outlives its last watcher by a stale timeout: a new page of the same
    visitor (a reload) sees the count at once, not a zero that climbs back."""
    async with rig() as r:
        async with r.browser() as before:
            await before.watch("lobby")
            heartbeat = browser_sealed("site_heartbeat", Identity.generate(), LOBBY)
            await before.send(event_frame(heartbeat))
            await eventually(lambda: before.count(LOBBY) == 1)
        async with r.browser() as after:
            await after.watch("lobby")
            await eventually(lambda: LOBBY in after.counts)
            assert after.count(LOBBY) == 1
        await r.hub.settle()
        assert r.hub.counters.get("site_hub_rooms_released", "idle") == 0


async def test_rooms_nobody_watches_are_unsubscribed_after_the_stale_timeout(
    rig: MakeRig,
) -> None:
    async with rig() as r, r.browser() as b:
        await b.watch("lobby", "docs")
        await eventually(lambda: len(b.counts) == 2)
        await b.watch("docs")  # LOBBY has no watcher now
        await eventually(lambda: r.hub.total("idle_rooms") == 1)
        await eventually(
            lambda: r.hub.counters.get("site_hub_rooms_released", "idle") == 1,
            timeout_s=CONFIG.stale_timeout_s * 3,
        )
        assert r.hub.total("idle_rooms") == 0  # (workers: from the same report)
        # The hub no longer hears the room: a visitor there reaches nobody.
        in_process = r.hub.hub if isinstance(r.hub.hub, SiteHub) else None
        heard = in_process.transport.counters.messages_in if in_process else 0
        refused = r.hub.counters.total("site_rejects")
        async with r.plaza.transport("visitor") as visitor:
            assert await visitor.wait_connected(10)
            await visitor.publish(site_topic(LOBBY), b"{}", qos=1)
            await visitor.publish(site_topic(DOCS), b"{}", qos=1)
        # DOCS reached the hub (and was refused), LOBBY did not.
        await eventually(lambda: r.hub.counters.total("site_rejects") == refused + 1)
        await r.hub.settle()
        assert r.hub.counters.total("site_rejects") == refused + 1
        if in_process:  # (the bus delivers as it publishes)
            assert in_process.transport.counters.messages_in == heard + 1


async def test_idle_rooms_make_way_when_the_hub_is_full(rig: MakeRig) -> None:
    async with rig(HubConfig(max_rooms=2)) as r, r.browser() as a, r.browser() as b:
        await a.watch("lobby", "docs")
        await eventually(lambda: len(a.counts) == 2)
        await a.watch("third")  # LOBBY and DOCS go idle; one makes way
        await eventually(lambda: room_key(ORIGIN, "third") in a.counts)
        assert a.errors() == []
        await eventually(
            lambda: r.hub.counters.get("site_hub_rooms_released", "room_needed") == 1
        )
        # Two new rooms, one idle room to give: the hub is full.
        await b.watch("fourth", "fifth")
        await eventually(lambda: b.errors() == ["hub_full"])
