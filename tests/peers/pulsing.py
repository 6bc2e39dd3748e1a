"""Watching ``hereabouts up`` processes' views, for the hang, cut and pulse-lie tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from tests.adversarial.plaza import health_of, peers_of
from tests.adversarial.processes import UpProcess

WAIT_S = 60.0
"""For start-up, which is not what is measured."""

POLL_S = 0.1


async def statuses(node: UpProcess) -> dict[str, str]:
    """Claimed name to status, as ``node`` shows its peers (empty if it does not answer)."""
    try:
        peers = await peers_of(node.url)
    except Exception:
        return {}
    return {str(p["claimed_name"]): str(p["status"]) for p in peers.values()}


async def decided_by(node: UpProcess, name: str) -> str:
    peers = await peers_of(node.url)
    return next(str(p["last_event"]) for p in peers.values() if p["claimed_name"] == name)


async def until(check: Callable[[], Awaitable[bool]], what: str, limit_s: float) -> float:
    """Seconds until ``check`` holds; fails after ``limit_s``."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > limit_s:
            raise AssertionError(f"not within {limit_s:g}s: {what}")
        await asyncio.sleep(POLL_S)
    return time.monotonic() - started


def all_see(
    watchers: Sequence[UpProcess], names: Sequence[str], status: str
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        views = await asyncio.gather(*(statuses(w) for w in watchers))
        return all(view.get(name) == status for view in views for name in names)

    return check


async def start_all(nodes: Sequence[UpProcess]) -> None:
    for node in nodes:
        node.start()
    await asyncio.gather(*(node.wait_http() for node in nodes))
    names = [node.home.name for node in nodes]
    await until(all_see(nodes, names, "ONLINE"), "every node sees every node ONLINE", WAIT_S)

    async def watching_everyone() -> bool:
        # A peer is watched from its first pulse after its key is known: within a second.
        healths = await asyncio.gather(*(health_of(node.url) for node in nodes))
        return all(h["pulse"]["watched"] == len(nodes) - 1 for _, h in healths)

    await until(watching_everyone, "every node watches every other's pulses", WAIT_S)


def node(tmp_path: Path, name: str, broker: str, *args: str, **options: object) -> UpProcess:
    """``hereabouts up --fast --no-sites`` named ``name``, its home ``tmp_path/name``."""
    return UpProcess(
        tmp_path / name,
        "--name",
        name,
        "--no-sites",
        *args,
        broker=broker,
        **options,  # type: ignore[arg-type]
    )
