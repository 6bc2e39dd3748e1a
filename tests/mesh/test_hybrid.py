"""Plaza-only, mesh-only and hybrid nodes on one real Mosquitto: everyone sees everyone.

Eight plaza-only nodes, eight mesh-only nodes (no broker; seeded with the two hybrids) and
two hybrid nodes. Every node must list all eighteen ONLINE, each with the transport it
announced (``plaza``, ``mesh``, ``hybrid``). A plain subscriber on the broker counts how
often each mesh-only node's event appears on the plaza: rendezvous hashing names at most
two bridges per origin, so never more than twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.adversarial.processes import UpProcess
from tests.fixtures.mosquitto import MosquittoServer
from tests.mesh.support import eventually, names, start_all, transports, views
from tests.peers.support import WireTap

pytestmark = pytest.mark.timeout(300)


async def test_plaza_mesh_and_hybrid_nodes_see_each_other_and_bridges_stay_two(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    broker = f"mqtt://127.0.0.1:{mosquitto.port}"
    hybrids = [
        UpProcess(tmp_path / n, "--name", n, "--no-sites", "--mesh", broker=broker)
        for n in names(2, "h")
    ]
    seeds = [arg for h in hybrids for arg in ("--mesh-seed", h.url)]
    plaza = [
        UpProcess(tmp_path / n, "--name", n, "--no-sites", broker=broker) for n in names(8, "p")
    ]
    mesh = [
        UpProcess(tmp_path / n, "--name", n, "--no-sites", *seeds, plaza=False)
        for n in names(8, "m")
    ]
    everyone = hybrids + plaza + mesh
    expected = {
        **dict.fromkeys(names(2, "h"), "hybrid"),
        **dict.fromkeys(names(8, "p"), "plaza"),
        **dict.fromkeys(names(8, "m"), "mesh"),
    }
    async with (
        contextlib.AsyncExitStack() as stack,
        WireTap(mosquitto.port) as tap,
        httpx.AsyncClient(timeout=10) as client,
    ):
        await start_all(stack, everyone)

        async def all_see_all() -> str | None:
            incomplete = []
            for node, view in zip(everyone, await views(client, everyone), strict=True):
                online = {name for name, status in view.items() if status == "ONLINE"}
                if online != set(expected):
                    incomplete.append(f"{node.home.name} lacks {sorted(set(expected) - online)}")
            return "; ".join(incomplete) or None

        took = await eventually(all_see_all, timeout_s=120)
        print(f"all 18 nodes see all 18 ONLINE after {took:.1f} s")
        for node in everyone:
            assert await transports(client, node) == expected, node.home.name

        await asyncio.sleep(5)  # a few heartbeats of every mesh-only node
        mesh_dids = set()
        for node in mesh:
            mesh_dids.add((await client.get(f"{node.url}/healthz")).json()["did"])
        copies: Counter[bytes] = Counter()
        for message in tap.messages:
            if json.loads(message.payload)["body"]["did"] in mesh_dids:
                copies[message.payload] += 1
        assert copies, "no mesh-only event reached the plaza"
        most = max(copies.values())
        print(f"{len(copies)} mesh-only events on the plaza, each at most {most} times")
        assert most <= 2, f"an event of a mesh-only node was on the plaza {most} times"
