"""10,000 fresh keys announce themselves in ten seconds: what three real nodes make of it.

Bounds asserted (docs/security.md, "Many fresh keys"):

* every real node keeps every real peer ONLINE throughout (the fast preset marks a peer
  MISSING after 6 s of silence, so a node that falls behind by that much fails this);
* each node admits at most ``admit_burst + admit_per_s x t`` of the fresh keys and forgets
  them once they fall silent;
* the real nodes send fewer than 100 howdys in all (the per-node budget:
  ``burst + t / refill`` each);
* CPU falls back to idle soon after the flood ends, and resident memory stays bounded.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from hereabouts.config import TrustConfig
from hereabouts.transports.topics import plaza_topic
from hereabouts.wire import unseal
from tests.adversarial.plaza import (
    Attacker,
    eventually,
    fresh_hey_there,
    health_of,
    metric,
    peers_of,
)
from tests.adversarial.processes import UpProcess
from tests.fixtures.mosquitto import MosquittoServer
from tests.peers.support import WireTap

pytestmark = pytest.mark.timeout(300)

FLOOD_KEYS = 10_000
FLOOD_SECONDS = 10.0
NODES = 3
IDLE_WITHIN_S = 30.0
"""Documented: a node is back under a tenth of a core this soon after a flood ends."""
RSS_BOUND_MB = 200
"""Documented: resident memory of a node (with its HTTP server and site hub) after it."""


async def test_ten_thousand_fresh_keys_change_nothing_that_matters(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    broker = f"mqtt://127.0.0.1:{mosquitto.port}"
    nodes = [
        UpProcess(tmp_path / f"n{i}", "--name", f"real-{i}", "--no-sites", broker=broker)
        for i in range(NODES)
    ]
    flood = [fresh_hey_there(f"sybil-{n}") for n in range(FLOOD_KEYS)]
    async with WireTap(mosquitto.port, plaza_topic("howdy")) as tap:
        for node in nodes:
            node.start()
        try:
            for node in nodes:
                await node.wait_http()
            dids = {}
            for node in nodes:
                _, health = await health_of(node.url)
                dids[node.url] = health["did"]
            real = set(dids.values())

            async def all_see_all() -> bool:
                for node in nodes:
                    peers = await peers_of(node.url)
                    if any(peers.get(did, {}).get("status") != "ONLINE" for did in real):
                        return False
                return True

            await eventually(all_see_all)
            rss_before = max(node.rss_bytes() for node in nodes)
            tap.messages.clear()

            missing_seen: list[str] = []

            async def watch() -> None:
                while True:
                    for node in nodes:
                        peers = await peers_of(node.url)
                        for did in real:
                            status = peers.get(did, {}).get("status")
                            if status != "ONLINE":
                                missing_seen.append(f"{node.url} saw {did[-6:]} {status}")
                    await asyncio.sleep(0.5)

            watcher = asyncio.create_task(watch())
            started = time.monotonic()
            async with Attacker(mosquitto.port) as attacker:
                sent = await attacker.flood(
                    "hey_there", flood, per_s=FLOOD_KEYS / FLOOD_SECONDS
                )
            flood_s = time.monotonic() - started
            await asyncio.sleep(5)  # replies would be due within the howdy spread
            idle_after = [await node.wait_idle(below=0.1, timeout_s=120) for node in nodes]
            watcher.cancel()
            rss_after = max(node.rss_bytes() for node in nodes)
            elapsed = time.monotonic() - started

            howdys = [unseal(m.payload, check_clock=False) for m in tap.messages]
            from_real = [h for h in howdys if h.did in real]
            admitted, refused = [], []
            for node in nodes:
                admitted.append(await metric(node.url, "hereabouts_events_in_total",
                                             kind="hey_there"))
                refused.append(await metric(node.url, "hereabouts_events_rejected_total",
                                            reason="admission"))
            await eventually(lambda: forgotten_all(nodes, real), timeout_s=60)
            trust = TrustConfig()
            print(
                f"\nflood: {sent} hey_theres in {flood_s:.1f}s; idle {max(idle_after):.1f}s "
                f"after; RSS {rss_before / 2**20:.0f} -> {rss_after / 2**20:.0f} MiB; "
                f"hey_theres admitted {admitted}, refused before their signature {refused}; "
                f"howdys from real nodes {len(from_real)}; non-ONLINE sightings "
                f"{len(missing_seen)}"
            )
            assert sent == FLOOD_KEYS
            assert missing_seen == []
            assert len(from_real) < 100
            for taken, turned_away in zip(admitted, refused, strict=True):
                assert taken <= NODES + trust.admit_burst + trust.admit_per_s * elapsed
                assert taken + turned_away >= FLOOD_KEYS
            assert max(idle_after) < IDLE_WITHIN_S
            assert rss_after < RSS_BOUND_MB * 2**20
        finally:
            for node in nodes:
                node.stop()


async def forgotten_all(nodes: list[UpProcess], real: set[str]) -> bool:
    """Every node knows the real peers and nobody else again."""
    for node in nodes:
        if set(await peers_of(node.url)) != real:
            return False
    return True
