"""A node whose home is on a full disk: it says so within seconds, holds what it could not
store, and recovers by itself when space comes back.

Before: with the home on a full disk the receive and timer tasks died, the node took in
nothing, and ``/healthz`` still answered 200 ok. The home here is a small tmpfs the test
mounts (tests run as root) and fills with a plain file.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adversarial.plaza import eventually, health_of, metric, node_of, peers_of
from tests.adversarial.processes import UpProcess
from tests.fixtures.mosquitto import MosquittoServer

pytestmark = pytest.mark.timeout(180)

TMPFS_SIZE = "8m"
UNHEALTHY_WITHIN_S = 10.0
"""Documented: /healthz fails this soon after writes start failing (one write is enough; a
fast-preset peer writes every second or two)."""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(mount_point)],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (tests run as root): {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte; returns the filler to delete later."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (65_536, 4_096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * chunk)
    finally:
        os.close(fd)
    return filler


async def test_a_full_disk_makes_health_fail_and_nothing_is_lost(
    mosquitto: MosquittoServer, tmp_path: Path, small_disk: Path
) -> None:
    broker = f"mqtt://127.0.0.1:{mosquitto.port}"
    async with UpProcess(small_disk / "home", "--name", "cramped", "--no-sites",
                         broker=broker) as cramped, \
            UpProcess(tmp_path / "talker", "--name", "talker", "--no-sites",
                      "--peers", "2", broker=broker) as talker:
        talker_did = (await node_of(talker.url))["did"]

        async def sees_talker() -> bool:
            peers = await peers_of(cramped.url)
            return peers.get(talker_did, {}).get("status") == "ONLINE"

        await eventually(sees_talker)
        code, _ = await health_of(cramped.url)
        assert code == 200
        filler = fill(small_disk)
        filled_at = time.monotonic()

        async def unhealthy() -> dict[str, object] | None:
            code, health = await health_of(cramped.url)
            return health if code == 503 and not health["storage"]["ok"] else None

        health = await eventually(unhealthy, timeout_s=UNHEALTHY_WITHIN_S)
        unhealthy_after = time.monotonic() - filled_at
        assert "full" in str(health["storage"]["error"]).lower()
        assert health["tasks"]["ok"] is True  # nothing died: the node keeps going
        assert await metric(cramped.url, "hereabouts_storage_failures_total", op="ledger") >= 1
        await eventually(lambda: held_some(cramped))
        filler.unlink()
        os.sync()

        async def healthy_again() -> bool:
            code, health = await health_of(cramped.url)
            return code == 200 and health["storage"]["held"] == 0

        freed_at = time.monotonic()
        await eventually(healthy_again, timeout_s=30)
        print(f"\nfull disk: /healthz 503 after {unhealthy_after:.1f}s, held "
              f"{health['storage']['held']} messages, 200 again {time.monotonic() - freed_at:.1f}s "
              "after space came back")
        await eventually(sees_talker)
        assert "Traceback" not in cramped.read_log()


async def held_some(node: UpProcess) -> bool:
    _, health = await health_of(node.url)
    return bool(health["storage"]["held"])
