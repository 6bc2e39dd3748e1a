"""A newcomer to a network older than the MISSING threshold, with departed peers in it.

Before: the howdys vouched for neighbours with their hey_theres alone, which are as old as
the network, so a newcomer first showed 21-27 of 29 live peers MISSING and took 29-121 s to
show them all ONLINE; peers that had left showed ONLINE for up to 208 s (a chau was never
passed on). Now each neighbour comes with its latest event: bound asserted here, all live
peers ONLINE within one second of the first howdy, and no departed peer ever ONLINE.

The network is 30 nodes in three ``hereabouts up --peers 9`` processes, plus a process whose
three nodes said chau and one whose two nodes were killed; the newcomer is a node in the
test process, so the times of its first howdy and of its status changes share one clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from hereabouts.core.effects import Status, StatusChanged
from hereabouts.events import Howdy
from hereabouts.transports.topics import plaza_topic
from hereabouts.wire import unseal
from tests.adversarial.plaza import eventually, peers_of
from tests.adversarial.processes import UpProcess
from tests.fixtures.mosquitto import MosquittoServer
from tests.peers.support import WireTap, light_node, test_config

pytestmark = pytest.mark.timeout(240)

LIVE_PROCESSES = 3
PEERS_EACH = 9
WELCOME_WITHIN_MS = 1_000


def network_up(tmp_path: Path, mosquitto: MosquittoServer, name: str, peers: int) -> UpProcess:
    return UpProcess(
        tmp_path / name, "--name", name, "--peers", str(peers), "--no-sites",
        broker=f"mqtt://127.0.0.1:{mosquitto.port}",
    )


async def dids_seen_by(process: UpProcess) -> set[str]:
    return set(await peers_of(process.url))


async def test_a_newcomer_sees_an_old_network_as_it_is_at_once(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    leaving = network_up(tmp_path, mosquitto, "leaving", 2)
    crashing = network_up(tmp_path, mosquitto, "crashing", 1)
    live = [network_up(tmp_path, mosquitto, f"live{i}", PEERS_EACH)
            for i in range(LIVE_PROCESSES)]
    processes = [leaving, crashing, *live]
    try:
        leaving.start()
        await leaving.wait_http()
        said_chau = await eventually(lambda: count_of(leaving, 3))
        crashing.start()
        await crashing.wait_http()
        crashed = await eventually(lambda: count_of(crashing, 5)) - said_chau
        for process in live:
            process.start()
        for process in live:
            await process.wait_http()
        everyone = LIVE_PROCESSES * (PEERS_EACH + 1) + 5
        await eventually(lambda: count_online(live[0], everyone), timeout_s=60)
        alive = await dids_seen_by(live[0]) - said_chau - crashed
        leaving.stop()  # three chaus
        assert crashing.process is not None
        crashing.process.kill()  # two lost wills
        crashing.process.wait(30)
        await eventually(lambda: departed_seen(live[0], said_chau, crashed), timeout_s=30)
        config = test_config(tmp_path / "newcomer", broker_port=mosquitto.port)
        threshold_s = config.projection.plaza_missing_after_s
        await asyncio.sleep(threshold_s + 2)  # every hey_there out there is now too old

        newcomer = light_node(config, "newcomer")
        changes: list[StatusChanged] = []
        first_howdy_ms: list[int] = []
        async with TimedTap(mosquitto.port, plaza_topic("howdy")) as tap:
            await newcomer.start()
            collector = asyncio.create_task(collect(newcomer, changes))
            try:
                await eventually(
                    lambda: all_online(newcomer, alive), timeout_s=60, every_s=0.05
                )
                await asyncio.sleep(2)  # later howdys must not revive anybody either
                for message, arrived in zip(tap.messages, tap.arrived_ms, strict=True):
                    howdy = unseal(message.payload, check_clock=False)
                    if isinstance(howdy.event, Howdy) and howdy.event.to_did == newcomer.did:
                        first_howdy_ms.append(arrived)
            finally:
                collector.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await collector
                await newcomer.stop()
        online_at = {c.did: c.at_ms for c in changes if c.new is Status.ONLINE}
        welcome_ms = max(online_at[did] for did in alive) - min(first_howdy_ms)
        revived = [c for c in changes if c.did in said_chau | crashed and c.new is Status.ONLINE]
        final = {c.did: c.new for c in changes}
        print(f"\nnewcomer: {len(alive)} live peers ONLINE {welcome_ms} ms after its first "
              f"howdy ({len(first_howdy_ms)} howdys); departed shown ONLINE: {len(revived)}")
        assert len(alive) == LIVE_PROCESSES * (PEERS_EACH + 1)
        assert welcome_ms <= WELCOME_WITHIN_MS
        assert revived == []
        assert all(final.get(did) is Status.OFFLINE for did in said_chau if did in final)
        assert all(final.get(did) is Status.MISSING for did in crashed if did in final)
        assert any(did in final for did in said_chau | crashed), "departed peers vouched for"
    finally:
        for process in processes:
            process.stop()


async def collect(node: object, into: list[StatusChanged]) -> None:
    async for change in node.changes():  # type: ignore[attr-defined]
        into.append(change)


async def count_of(process: UpProcess, at_least: int) -> set[str] | None:
    dids = await dids_seen_by(process)
    return dids if len(dids) >= at_least else None


async def count_online(process: UpProcess, count: int) -> bool:
    peers = await peers_of(process.url)
    return sum(p["status"] == "ONLINE" for p in peers.values()) >= count


async def departed_seen(process: UpProcess, chau: set[str], crashed: set[str]) -> bool:
    peers = await peers_of(process.url)
    return all(peers.get(d, {}).get("status") == "OFFLINE" for d in chau) and all(
        peers.get(d, {}).get("status") == "MISSING" for d in crashed
    )


async def all_online(node: object, dids: set[str]) -> bool:
    return all(node.status_of(did) is Status.ONLINE for did in dids)  # type: ignore[attr-defined]


class TimedTap(WireTap):
    """A wire tap that also notes when (this process's clock, ms) each message arrived."""

    def __init__(self, port: int, topic_filter: str) -> None:
        super().__init__(port, topic_filter)
        self.arrived_ms: list[int] = []

    async def _collect(self) -> None:
        async for message in self.transport.messages():
            self.arrived_ms.append(int(time.time() * 1000))
            self.messages.append(message)
