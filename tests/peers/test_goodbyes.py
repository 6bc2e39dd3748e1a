"""Whoever spoke says goodbye: a node that was heard says chau when it stops."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from pathlib import Path

from hereabouts.config import HeartbeatConfig
from hereabouts.core.effects import Status
from hereabouts.transports.memory import MemoryBus, MemoryTransport
from hereabouts.transports.topics import plaza_topic
from hereabouts.wire import unseal
from tests.peers.support import light_node, sees, test_config, wait_until


class Late(random.Random):
    """Always the end of every jitter window: this node announces itself last."""

    def random(self) -> float:
        return 0.999


async def test_a_node_in_its_discovery_jitter_welcomes_after_announcing_and_says_chau(
    tmp_path: Path,
) -> None:
    """A node still in its discovery jitter holds its welcome (a howdy) for a newcomer until
    its own hey_there is out, so nobody learns of it first through a howdy; once heard, it
    says chau when it stops, or it would stay ONLINE in every view until MISSING."""
    base = test_config(tmp_path)
    slow_config = base.replace(node=dataclasses.replace(base.node, discovery_jitter_max_s=3))
    bus = MemoryBus()
    slow = light_node(slow_config, "slow", rng=Late(), transport=bus.transport(name="s"))
    newcomer = light_node(base, "newcomer", transport=bus.transport(name="n"))
    await slow.start()
    await newcomer.start()
    try:
        await newcomer.wait_announced()
        await asyncio.sleep(0.5)
        assert slow.counters.get("events_out", "hey_there") == 0, "still in its jitter"
        assert slow.counters.get("events_out", "howdy") == 0, "no welcome before announcing"
        assert not sees(newcomer, slow.did, Status.ONLINE)
        await wait_until(lambda: sees(newcomer, slow.did, Status.ONLINE), what="slow's hey_there")
        assert slow.counters.get("events_out", "hey_there") == 1
        await wait_until(
            lambda: slow.counters.get("events_out", "howdy") >= 1, what="slow's held welcome"
        )
        await slow.stop()
        await wait_until(lambda: sees(newcomer, slow.did, Status.OFFLINE), what="slow's chau")
        assert slow.counters.get("events_out", "chau") == 1
    finally:
        await slow.stop()
        await newcomer.stop()


async def test_a_node_that_never_spoke_says_nothing(tmp_path: Path) -> None:
    base = test_config(tmp_path)
    quiet_config = base.replace(node=dataclasses.replace(base.node, discovery_jitter_max_s=600))
    bus = MemoryBus()
    quiet = light_node(quiet_config, "quiet", rng=Late(), transport=bus.transport(name="q"))
    await quiet.start()
    await quiet.stop()
    assert quiet.counters.total("events_out") == 0


class SlowChau(MemoryTransport):
    """A plaza whose acknowledgement of a chau takes a while, as a broker's PUBACK may."""

    async def _publish(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> None:
        await super()._publish(topic, payload, qos=qos, retain=retain)
        if topic == plaza_topic("chau"):
            await asyncio.sleep(0.5)


async def test_nothing_follows_the_chau(tmp_path: Path) -> None:
    """Found by three runs of ``hereabouts up``: a demo peer's howdy timer fired while its
    chau awaited the broker, so a howdy went out after the chau and showed the peer ONLINE
    again in every view (and in the next run's replay) until MISSING. Here newspapers are
    due every 10 ms while the chau waits half a second."""
    base = test_config(tmp_path)
    chatty = base.replace(
        heartbeat=HeartbeatConfig(min_interval_s=0.01, max_interval_s=0.01, jitter_fraction=0)
    )
    bus = MemoryBus()
    tap = bus.transport(name="tap")
    await tap.subscribe("hereabouts/v1/plaza/#")
    await tap.connect()
    heard: list[str] = []

    async def read() -> None:
        async for message in tap.messages():
            heard.append(unseal(message.payload, check_clock=False).kind)

    reader = asyncio.create_task(read())
    node = light_node(chatty, "chatty", transport=SlowChau(bus, name="c"))
    try:
        await node.start()
        await node.wait_announced()
        await wait_until(lambda: heard.count("newspaper") >= 3, what="a few newspapers")
        await node.stop()
        await asyncio.sleep(0.1)
        assert heard[-1] == "chau", heard[-5:]
    finally:
        await node.stop()
        reader.cancel()
        await tap.close()
