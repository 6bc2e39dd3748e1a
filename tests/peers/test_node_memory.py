"""Node behaviour on the in-memory bus: quick checks that need no broker."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from hereabouts.core.effects import Status
from hereabouts.transports.memory import MemoryBus
from hereabouts.transports.topics import plaza_topic
from hereabouts.wire import unseal
from tests.peers.support import light_node, sees, test_config, wait_until


async def test_every_node_finishes_its_first_sync_and_sees_goodbyes_at_once(
    tmp_path: Path,
) -> None:
    """Even a stealth node, which never announces, stops reporting itself as booting."""
    config = test_config(tmp_path)
    bus = MemoryBus()
    lurker = light_node(config, "lurker", stealth=True, transport=bus.transport(name="l"))
    talker = light_node(config, "talker", transport=bus.transport(name="t"))
    leaver = light_node(config, "leaver", transport=bus.transport(name="x"))
    for node in (lurker, talker, leaver):
        await node.start()
    try:
        await wait_until(
            lambda: not lurker.health()["booting"] and not talker.health()["booting"]
        )
        await wait_until(lambda: sees(lurker, leaver.did, Status.ONLINE))
        await leaver.stop()
        await wait_until(lambda: sees(lurker, leaver.did, Status.OFFLINE))
        await wait_until(lambda: sees(talker, leaver.did, Status.OFFLINE))
    finally:
        for node in (lurker, talker, leaver):
            await node.stop()


async def test_a_killed_transport_makes_its_will_mark_the_node_missing(tmp_path: Path) -> None:
    bus = MemoryBus()
    config = test_config(tmp_path)
    watcher = light_node(config, "watcher", transport=bus.transport(name="w"))
    doomed_transport = bus.transport(name="d")
    doomed = light_node(config, "doomed", transport=doomed_transport)
    await watcher.start()
    await doomed.start()
    try:
        await wait_until(lambda: sees(watcher, doomed.did, Status.ONLINE))
        doomed_transport.kill()
        await wait_until(lambda: sees(watcher, doomed.did, Status.MISSING))
        view = next(v for v in watcher.peers() if v.did == doomed.did)
        assert view.last_event == "lost"
    finally:
        await doomed.stop()
        await watcher.stop()


async def test_a_long_running_node_announces_itself_again_within_retention(
    tmp_path: Path,
) -> None:
    """Its hey_there must never be older than the retention window, or newcomers (who meet
    it through howdys) refuse it as too old and never learn its endpoints."""
    config = test_config(tmp_path)
    bus = MemoryBus()
    tap = bus.transport(name="tap")
    await tap.subscribe(plaza_topic("hey_there"))
    await tap.connect()
    offset_s = [0.0]
    node = light_node(
        config, "old-timer", transport=bus.transport(name="o"),
        clock=lambda: time.time() + offset_s[0],
    )
    await node.start()
    try:
        await node.wait_announced()
        offset_s[0] = config.ledger.retention_s / 2 + 1  # half a retention window later
        hey_theres = []

        async def read() -> None:
            async for message in tap.messages():
                hey_theres.append(unseal(message.payload, check_clock=False))
                if len(hey_theres) == 2:
                    return

        await asyncio.wait_for(read(), 30)
        first, second = hey_theres
        assert second.event.boot_id == first.event.boot_id  # the same life, no restart
        assert second.at_ms > first.at_ms
    finally:
        await node.stop()
        await tap.close()


async def test_peers_lists_the_node_itself_from_the_start(tmp_path: Path) -> None:
    """Even while the discovery jitter delays its hey_there on the plaza."""
    import dataclasses

    base = test_config(tmp_path)
    config = base.replace(node=dataclasses.replace(base.node, discovery_jitter_max_s=30.0))
    node = light_node(config, "early", transport=MemoryBus().transport(name="e"))
    await node.start()
    try:
        assert [(v.did, v.status) for v in node.peers()] == [(node.did, Status.ONLINE)]
    finally:
        await node.stop()


async def test_a_hey_there_first_heard_inside_a_howdy_is_still_welcomed(tmp_path: Path) -> None:
    """Found by the fake-welcome attack test: a newcomer still in its discovery jitter
    answered a later newcomer's hey_there, listing itself; everyone took its hey_there in
    from that howdy, and when the hey_there itself arrived it was a duplicate, so nobody
    welcomed it. Now a node replies only once it has announced itself (a replayed
    hey_there is still no arrival: test_node_mqtt's replay attack)."""
    import dataclasses
    import random

    from hereabouts.events import Howdy

    config = test_config(tmp_path)
    bus = MemoryBus()
    tap = bus.transport(name="tap")
    await tap.subscribe(plaza_topic("howdy"))
    await tap.connect()
    welcomes: list[Howdy] = []

    async def read() -> None:
        async for message in tap.messages():
            event = unseal(message.payload, check_clock=False).event
            assert isinstance(event, Howdy)
            welcomes.append(event)

    reader = asyncio.create_task(read())
    old = light_node(config, "old", transport=bus.transport(name="o"))
    slow = config.replace(node=dataclasses.replace(config.node, discovery_jitter_max_s=3.0))
    # random.Random(2).random() is 0.956: "slow" announces 2.9 s after it starts.
    late = light_node(slow, "slow", transport=bus.transport(name="s"), rng=random.Random(2))
    eager = light_node(config, "eager", transport=bus.transport(name="e"))
    try:
        await old.start()
        await old.wait_announced()
        await late.start()
        await eager.start()  # announces at once, while "slow" is still waiting
        await late.wait_announced()
        await wait_until(
            lambda: any(w.did == old.did and w.to_did == late.did for w in welcomes),
            what="the old node to welcome the slow one",
        )
        assert not any(w.did == late.did and w.at_ms < late.started_at_ms + 2_800
                       for w in welcomes), "the slow node answered before announcing itself"
    finally:
        for node in (eager, late, old):
            await node.stop()
        reader.cancel()
        await tap.close()
