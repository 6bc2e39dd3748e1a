"""Ten hybrid nodes lose their broker for longer than the plaza threshold.

While Mosquitto is down (12 s; the fast preset's plaza threshold is 6 s) the nodes keep
each other ONLINE through the mesh: the test polls every node's view throughout and no
node may ever show another as anything but ONLINE. When the broker returns they reconnect
without a howdy storm: at most ten howdys per node over the whole run.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.adversarial.processes import UpProcess
from tests.fixtures.mosquitto import MosquittoServer
from tests.mesh.support import eventually, names, start_all, views

pytestmark = pytest.mark.timeout(300)

N = 10
OUTAGE_S = 12.0
HOWDY = re.compile(r'^hereabouts_events_out_total\{kind="howdy"\} (\S+)$', re.M)


async def test_hybrid_nodes_stay_online_through_a_broker_outage_without_a_howdy_storm(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    broker = f"mqtt://127.0.0.1:{mosquitto.port}"
    nodes = [
        UpProcess(tmp_path / n, "--name", n, "--no-sites", "--mesh", broker=broker)
        for n in names(N, "h")
    ]
    everyone = set(names(N, "h"))
    async with contextlib.AsyncExitStack() as stack, httpx.AsyncClient(timeout=10) as client:
        await start_all(stack, nodes)

        async def all_online() -> str | None:
            wrong = [
                f"{node.home.name}: {view}"
                for node, view in zip(nodes, await views(client, nodes), strict=True)
                if {k for k, v in view.items() if v == "ONLINE"} != everyone
            ]
            return "; ".join(wrong) or None

        await eventually(all_online, timeout_s=60)
        await asyncio.sleep(3)  # every node has heard every hybrid's mesh URL by now

        mosquitto.stop()
        stopped = time.monotonic()
        polls = 0
        try:
            while time.monotonic() - stopped < OUTAGE_S:
                complaint = await all_online()
                assert complaint is None, (
                    f"{time.monotonic() - stopped:.1f} s into the outage: {complaint}"
                )
                polls += 1
                await asyncio.sleep(0.2)
        finally:
            mosquitto.start()
        print(f"{polls} polls over a {OUTAGE_S:.0f} s outage: everyone ONLINE throughout")
        returned = time.monotonic()
        while time.monotonic() - returned < 10:  # reconnects, and any howdys they cause
            assert await all_online() is None
            await asyncio.sleep(0.5)
        for node in nodes:
            metrics = (await client.get(f"{node.url}/metrics")).text
            found = HOWDY.search(metrics)
            howdys = 0 if found is None else float(found.group(1))
            assert howdys <= 10, f"{node.home.name} sent {howdys:.0f} howdys"
