"""PresenceManager over the in-memory bus: consent, ghost, counting, notices, rotation."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from pathlib import Path

import pytest

from hereabouts.config import SitesConfig
from hereabouts.sites import (
    ConsentRequired,
    GhostModeOn,
    PresenceCountChanged,
    PresenceJoined,
    PresenceLeft,
    PresenceManager,
    RoomCount,
    room_key,
)
from hereabouts.sites.notices import PresenceNotice
from hereabouts.transports.memory import MemoryBus

from .support import FAST, WireRecorder, eventually

SITE = "https://example.com"
OTHER = "https://other.example"


def manager(bus: MemoryBus, home: Path, config: SitesConfig = FAST) -> PresenceManager:
    return PresenceManager(transport=bus.transport(name=home.name), home=home, config=config)


async def test_join_without_consent_raises_and_publishes_nothing(tmp_path: Path) -> None:
    bus = MemoryBus()
    async with WireRecorder(bus.transport(name="wire")) as wire, manager(bus, tmp_path / "a") as pm:
        with pytest.raises(ConsentRequired):
            await pm.join(SITE)
        await asyncio.sleep(0.5)
        assert pm.rooms == []
    assert wire.messages == []


async def test_two_visitors_count_each_other_and_leave(tmp_path: Path) -> None:
    bus = MemoryBus()
    async with manager(bus, tmp_path / "a") as a, manager(bus, tmp_path / "b") as b:
        seen: list[PresenceNotice] = []
        for name in ("presence_joined", "presence_left", "presence_count_changed"):
            a.on(name, seen.append)
        a.consent.grant(SITE)
        b.consent.grant(SITE)
        key = await a.join(SITE, room="lobby")
        assert key == room_key(SITE, "lobby")
        await b.join(SITE)
        await eventually(lambda: a.count() == 2 and b.count(SITE, "lobby") == 2)
        assert a.report() == RoomCount(2)
        await b.leave()
        await eventually(lambda: a.count() == 1)
        kinds = [type(n) for n in seen]
        assert kinds[0] is PresenceJoined
        counts = [n.count.value for n in seen if isinstance(n, PresenceCountChanged)]
        assert counts == [1, 2, 1]
        await a.leave(SITE)
        left = [n for n in seen if isinstance(n, PresenceLeft)]
        assert [n.reason for n in left] == ["leave"]


async def test_notices_iterator(tmp_path: Path) -> None:
    bus = MemoryBus()
    async with manager(bus, tmp_path / "a") as a:
        got: list[PresenceNotice] = []

        async def read() -> None:
            async for notice in a.notices():
                got.append(notice)

        reader = asyncio.create_task(read())
        await asyncio.sleep(0)
        a.consent.grant(SITE)
        await a.join(SITE)
        await eventually(lambda: any(isinstance(n, PresenceCountChanged) for n in got))
        assert isinstance(got[0], PresenceJoined)
    await asyncio.wait_for(reader, 2)


async def test_ghost_mode_is_a_hard_off_switch_and_survives_restart(tmp_path: Path) -> None:
    bus = MemoryBus()
    home = tmp_path / "ghost"
    async with WireRecorder(bus.transport(name="wire")) as wire:
        async with manager(bus, home) as pm:
            pm.consent.grant(SITE)
            await pm.join(SITE)
            await eventually(lambda: pm.count() == 1)
            pm.set_ghost(True)
            assert pm.ghost and pm.rooms == []
            await pm.flush()
            before = len(wire.messages)
            assert wire.bodies()[-1]["kind"] == "site_leave"
            with pytest.raises(GhostModeOn):
                await pm.join(SITE)
            await asyncio.sleep(0.6)
            assert len(wire.messages) == before
        async with manager(bus, home) as again:
            assert again.ghost
            with pytest.raises(GhostModeOn):
                await again.join(SITE)
            await asyncio.sleep(0.4)
        assert len(wire.messages) == before
    assert pm.counters.get("site_ghost_toggles", "on") == 1


async def test_ghost_default_from_config(tmp_path: Path) -> None:
    bus = MemoryBus()
    cfg = dataclasses.replace(FAST, ghost_mode_default=True)
    async with manager(bus, tmp_path / "g", cfg) as pm:
        assert pm.ghost
        pm.consent.grant(SITE)
        with pytest.raises(GhostModeOn):
            await pm.join(SITE)


async def test_revoking_consent_leaves_at_once(tmp_path: Path) -> None:
    bus = MemoryBus()
    async with (
        WireRecorder(bus.transport(name="wire")) as wire,
        manager(bus, tmp_path / "a") as a,
        manager(bus, tmp_path / "b") as b,
    ):
        a.consent.grant(SITE)
        a.consent.grant(OTHER)
        b.consent.grant(SITE)
        await a.join(SITE)
        await a.join(OTHER)
        await b.join(SITE)
        await eventually(lambda: b.count(SITE) == 2)
        a.consent.revoke(SITE)
        assert [r.key for r in a.rooms] == [room_key(OTHER)]
        await a.flush()
        await eventually(lambda: b.count(SITE) == 1, timeout_s=0.2)
        n = len([m for m in wire.messages if m.topic.endswith(room_key(SITE))])
        await asyncio.sleep(0.5)
        mine = [m for m in wire.messages if m.topic.endswith(room_key(SITE))]
        # Only b still heartbeats in that room.
        assert len({m.payload for m in mine[n:]}) == len(mine[n:])
        assert b.count(SITE) == 1
        assert a.count(OTHER) == 1


async def test_origins_are_scoped_and_never_on_the_wire(tmp_path: Path) -> None:
    bus = MemoryBus()
    async with (
        WireRecorder(bus.transport(name="wire")) as wire,
        manager(bus, tmp_path / "a") as a,
        manager(bus, tmp_path / "b") as b,
    ):
        a.consent.grant(SITE)
        b.consent.grant(OTHER)
        await a.join(SITE)
        await b.join(OTHER)
        await b.watch(SITE)
        await eventually(lambda: b.count(SITE) == 1)
        await asyncio.sleep(0.4)
        assert a.count() == 1 and b.count() == 1 and a.count(OTHER) == 0
    for message in wire.messages:
        for text in (b"example.com", b"other.example", b"example"):
            assert text not in message.payload and text.decode() not in message.topic


async def test_dids_rotate_every_epoch_are_never_reused_and_the_count_holds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bus = MemoryBus()
    async with contextlib.AsyncExitStack() as stack:
        wire = await stack.enter_async_context(WireRecorder(bus.transport(name="wire")))
        managers = [
            await stack.enter_async_context(manager(bus, tmp_path / f"v{i}")) for i in range(6)
        ]
        for pm in managers:
            pm.consent.grant(SITE)
            pm.consent.grant(OTHER)
            await pm.join(SITE)
        await managers[0].join(OTHER)
        loop = asyncio.get_running_loop()
        await eventually(lambda: all(pm.count(SITE) == 6 for pm in managers))
        end = loop.time() + 4.5  # two boundaries at least
        wrong = 0
        while loop.time() < end:
            wrong += sum(pm.count(SITE) != 6 for pm in managers)
            await asyncio.sleep(0.05)
        assert wrong == 0
        rotations = sum(pm.counters.get("site_rotations") for pm in managers)
        assert rotations >= 12
    per_did: dict[str, set[tuple[object, object]]] = {}
    for body in wire.bodies():
        per_did.setdefault(str(body["did"]), set()).add((body["room_key"], body["epoch"]))
    assert all(len(places) == 1 for places in per_did.values())
    assert len(per_did) >= 6 * 3
    logged = caplog.text
    assert logged  # DEBUG logging did happen
    for did in per_did:
        assert did not in logged
        assert did[8:30] not in logged
    assert "example" not in logged


async def test_min_count_floor_applies_to_everything_that_leaves_the_process(
    tmp_path: Path,
) -> None:
    bus = MemoryBus()
    cfg = dataclasses.replace(FAST, min_count=3)
    async with manager(bus, tmp_path / "a", cfg) as a, manager(bus, tmp_path / "b", cfg) as b:
        shown: list[RoomCount] = []

        def record(notice: PresenceNotice) -> None:
            assert isinstance(notice, PresenceCountChanged)
            shown.append(notice.count)

        a.on("presence_count_changed", record)
        for pm in (a, b):
            pm.consent.grant(SITE)
            await pm.join(SITE)
        await eventually(lambda: a.count() == 2)
        await asyncio.sleep(0.3)
        assert a.report() == RoomCount(None, fewer_than=3)
        assert str(a.report()) == "fewer than 3 here"
        assert a.report().as_dict() == {"count": None, "fewer_than": 3}
        # One notice: 0 -> 1 -> 2 all read "fewer than 3", so nothing finer is revealed.
        assert shown == [RoomCount(None, fewer_than=3)]
        assert a.room_counts() == {room_key(SITE): RoomCount(None, fewer_than=3)}
        samples = next(iter(a.collector().collect())).samples
        assert samples == []


async def test_junk_and_forgeries_are_counted_by_reason_and_never_stop_the_reader(
    tmp_path: Path,
) -> None:
    from hereabouts.identity import Identity
    from hereabouts.sites.events import SITE_EVENTS, SiteHeartbeat
    from hereabouts.transports.topics import site_topic
    from hereabouts.wire import seal_as

    bus = MemoryBus()
    key = room_key(SITE)
    async with manager(bus, tmp_path / "a") as a, bus.transport(name="evil") as evil:
        await a.watch(SITE)
        now = int(time.time() * 1000)
        forger, victim = Identity.generate(), Identity.generate()
        good = SiteHeartbeat(did=victim.did, room_key=key, epoch=now // 2000, at_ms=now)
        sealed = seal_as(SITE_EVENTS, good, victim)
        other_room = SiteHeartbeat(did=forger.did, room_key="b" * 26, epoch=now // 2000, at_ms=now)
        wrong_epoch = SiteHeartbeat(did=forger.did, room_key=key, epoch=now // 2000 + 5, at_ms=now)
        for payload in (
            b"not json",
            b"{}",
            sealed.replace(b'"sig":"', b'"sig":"AAAA'),
            sealed.replace(victim.did.encode(), forger.did.encode(), 1),
            seal_as(SITE_EVENTS, other_room, forger),
            seal_as(SITE_EVENTS, wrong_epoch, forger),
        ):
            await evil.publish(site_topic(key), payload)
        await evil.publish(site_topic(key), sealed)
        await eventually(lambda: a.count(SITE) == 1)
        rejects = a.counters.by_label("site_rejects")
        assert rejects == {
            "not_json": 1,
            "malformed": 1,
            "bad_signature": 1,
            "emitter_mismatch": 1,
            "topic_mismatch": 1,
            "epoch_mismatch": 1,
        }


async def test_unwatch_leaves_unsubscribes_and_forgets_the_room(tmp_path: Path) -> None:
    bus = MemoryBus()
    async with manager(bus, tmp_path / "a") as a, manager(bus, tmp_path / "b") as b:
        a.consent.grant(SITE)
        b.consent.grant(SITE)
        await a.join(SITE)
        await b.join(SITE)
        await b.watch(SITE, "docs")
        await eventually(lambda: a.count(SITE) == 2 and b.count(SITE) == 2)

        await b.unwatch(SITE)  # joined: b leaves first, so a sees it go at once
        await eventually(lambda: a.count(SITE) == 1)
        assert b.rooms == []
        assert b.count(SITE) == 0
        assert set(b.room_counts()) == {room_key(SITE, "docs")}
        heard = b.transport.counters.messages_in
        await a.leave()
        await a.join(SITE)  # a's leave and heartbeat in the room b no longer follows
        await eventually(lambda: a.count(SITE) == 1)
        assert b.transport.counters.messages_in == heard
        assert b.count(SITE) == 0

        await b.unwatch(OTHER, "never-watched")  # a no-op
