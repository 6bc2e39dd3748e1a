"""A real partition: mesh-only nodes in two network namespaces, the link between them cut
and restored (fixture ``partition``, tests/fixtures/netns.py; needs root).

Three mesh-only nodes (no broker anywhere) listen on each side's address; ``a0`` starts
alone, ``a1`` and ``a2`` join through it, ``b0`` joins across the link through ``a0`` and
``b1``, ``b2`` through ``b0``. As soon as every node lists all six ONLINE (keys still
new, not yet proven: a new key is forgotten only after the longest MISSING threshold the
node applies, so on the mesh it reads MISSING first; forgotten at the plaza's 6 s, the far
side vanished from the views instead, and came back "new" from neighbours' copies):

* **The cut** (side A's end of the link down; B's end loses its carrier, so B's calls go
  into a dead wire): every node sees each node of the far side MISSING within the mesh
  threshold (``projection.mesh_missing_after_s``, 30 s in the fast preset) plus the time
  news takes to cross its own side (:func:`~hereabouts.core.meshmath.propagation_s` for
  three nodes: 6 rounds of 1 s), since the far side's last news may have reached a node
  hop by hop. Its own side stays ONLINE throughout.
* **The link back**, nothing restarted: every node lists all six ONLINE again within
  ``heal_every`` rounds (one round in four targets seeds, failing and MISSING peers even
  while they back off, so the first heal round after the link is back crosses it), plus one
  request time-out (a heal round already waiting on the dead wire when the link came back),
  plus the propagation time across all six (7 rounds).

The test prints the measured times; it asserts the bounds with a few seconds of slack for
the poll and a loaded machine, as tests/mesh/test_mesh_chain.py does.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import httpx
import pytest

from hereabouts import config as config_module
from hereabouts.core.meshmath import propagation_s
from tests.adversarial.processes import UpProcess
from tests.fixtures.netns import Partition, Side, listening
from tests.mesh.support import eventually

pytestmark = pytest.mark.timeout(240)

PER_SIDE = 3
PORTS = [8101 + n for n in range(PER_SIDE)]
"""Ports on each side's address: fixed, since each namespace is new and empty."""

SLACK_S = 5.0
"""Seconds over a bound allowed for the poll interval and a loaded machine."""


async def views(client: httpx.AsyncClient, nodes: list[UpProcess]) -> list[dict[str, str]]:
    """Each node's view: ``{name: "STATUS trust"}`` of every peer it lists."""
    answers = [await client.get(f"{n.url}/v1/peers") for n in nodes]
    return [
        {p["claimed_name"]: f"{p['status']} {p['trust']}" for p in a.json()["peers"]}
        for a in answers
    ]


def side_nodes(tmp_path: Path, side: Side, letter: str, seed: str | None) -> list[UpProcess]:
    nodes: list[UpProcess] = []
    for number, port in enumerate(PORTS):
        name = f"{letter}{number}"
        join = seed if number == 0 else nodes[0].url
        nodes.append(
            UpProcess(
                tmp_path / name,
                "--name", name,
                "--no-sites",
                *(["--mesh-seed", join] if join else []),
                plaza=False,
                prefix=side.command(),
                http_host=side.address,
                http_port=port,
            )
        )
    return nodes


async def test_a_cut_link_shows_the_far_side_missing_and_heals_by_itself(
    partition: Partition, tmp_path: Path
) -> None:
    config = config_module.testing()
    round_s = config.mesh.round_s
    side_a = side_nodes(tmp_path, partition.a, "a", None)
    side_b = side_nodes(tmp_path, partition.b, "b", side_a[0].url)
    nodes = side_a + side_b
    names_a = {f"a{n}" for n in range(PER_SIDE)}
    names_b = {f"b{n}" for n in range(PER_SIDE)}
    everyone = names_a | names_b
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(httpx.AsyncClient(timeout=5, trust_env=False))
        for node in nodes:  # a0 first: the others' seed must be listening
            node.start()
            stack.callback(node.stop)
            if node is side_a[0]:
                await node.wait_http()
        for node in nodes:
            await node.wait_http()
        pids = [node.pid for node in nodes]

        async def statuses_are(expected: dict[str, dict[str, str]]) -> str | None:
            """None when every node's view has the expected status for each name."""
            seen = await views(client, nodes)
            wrong = [
                f"{nodes[i].url}: {name} {view.get(name)}"
                for i, view in enumerate(seen)
                for name, status in expected[sides[i]].items()
                if not (view.get(name) or "").startswith(status)
            ]
            return None if not wrong else f"{len(wrong)} wrong: {wrong[:6]}"

        sides = ["a"] * PER_SIDE + ["b"] * PER_SIDE
        all_online = dict.fromkeys(everyone, "ONLINE")
        met_s = await eventually(
            lambda: statuses_are({"a": all_online, "b": all_online}), timeout_s=90
        )
        print(f"all {len(nodes)} ONLINE everywhere {met_s:.1f} s after the last node served")
        assert partition.connects(partition.a, partition.b.address, PORTS[0])

        # --- the cut ------------------------------------------------------------------------
        partition.cut()
        cut_at = time.monotonic()
        assert not partition.connects(partition.a, partition.b.address, PORTS[0])
        assert not partition.connects(partition.b, partition.a.address, PORTS[0])
        assert listening(partition.a.address, PORTS[0]) and listening(
            partition.b.address, PORTS[0]
        ), "the control links must survive the cut"

        missing_bound_s = config.projection.mesh_missing_after_s + propagation_s(PER_SIDE, round_s)
        split = {
            "a": {**dict.fromkeys(names_a, "ONLINE"), **dict.fromkeys(names_b, "MISSING")},
            "b": {**dict.fromkeys(names_b, "ONLINE"), **dict.fromkeys(names_a, "MISSING")},
        }
        own_side_lapses: list[str] = []

        async def split_seen() -> str | None:
            seen = await views(client, nodes)
            for i, view in enumerate(seen):
                own = names_a if sides[i] == "a" else names_b
                own_side_lapses.extend(
                    f"{nodes[i].url}: {name} {view.get(name)} at "
                    f"{time.monotonic() - cut_at:.1f} s"
                    for name in own
                    if not (view.get(name) or "").startswith("ONLINE")
                )
            return await statuses_are(split)

        await eventually(split_seen, timeout_s=missing_bound_s + 30)
        missing_after_s = time.monotonic() - cut_at
        print(
            f"far side MISSING everywhere {missing_after_s:.1f} s after the cut "
            f"(bound {missing_bound_s:.0f} s)"
        )
        assert not own_side_lapses, f"own side not ONLINE during the cut: {own_side_lapses}"
        assert missing_after_s <= missing_bound_s + SLACK_S

        # --- the link back ------------------------------------------------------------------
        partition.restore()
        restored_at = time.monotonic()
        heal_bound_s = (
            config.mesh.heal_every * round_s * (1 + config.mesh.round_jitter_fraction)
            + config.mesh.request_timeout_s
            + propagation_s(len(nodes), round_s)
        )
        await eventually(
            lambda: statuses_are({"a": all_online, "b": all_online}),
            timeout_s=heal_bound_s + 60,
        )
        healed_after_s = time.monotonic() - restored_at
        print(
            f"all ONLINE everywhere {healed_after_s:.1f} s after the link came back "
            f"(bound {heal_bound_s:.0f} s)"
        )
        assert healed_after_s <= heal_bound_s + SLACK_S
        assert [node.pid for node in nodes] == pids
        assert all(node.process is not None and node.process.poll() is None for node in nodes)
