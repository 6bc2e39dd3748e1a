"""Mesh peers are remembered across restarts: a node started again without its seed finds
the mesh through the peers it kept in ``<home>/mesh-peers.json``."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.adversarial.processes import UpProcess
from tests.mesh.support import eventually, views

pytestmark = pytest.mark.timeout(180)


async def test_a_restarted_mesh_node_needs_no_seed(tmp_path: Path) -> None:
    alpha = UpProcess(tmp_path / "alpha", "--name", "alpha", "--no-sites", plaza=False)
    first = UpProcess(tmp_path / "beta", "--name", "beta", "--no-sites",
                      "--mesh-seed", alpha.url, plaza=False)
    async with alpha, httpx.AsyncClient(timeout=10) as client:
        async def both_see_both(beta: UpProcess) -> str | None:
            seen = await views(client, [alpha, beta])
            ok = all(v.get("alpha") == v.get("beta") == "ONLINE" for v in seen)
            return None if ok else f"views: {seen}"

        async with first:
            await eventually(lambda: both_see_both(first), timeout_s=60)
        kept = json.loads((tmp_path / "beta" / "mesh-peers.json").read_text())
        assert {entry["url"] for entry in kept} == {alpha.url}

        # Same home, no --mesh-seed, and a new HTTP port: alpha cannot find beta by itself;
        # only beta calling alpha (whom it remembers) brings them together again.
        again = UpProcess(tmp_path / "beta", "--name", "beta", "--no-sites", plaza=False)
        assert again.url != first.url
        async with again:
            await eventually(lambda: both_see_both(again), timeout_s=60)
