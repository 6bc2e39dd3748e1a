"""Helpers shared by the site-presence tests: a fast config and a raw wire recorder."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from hereabouts.config import SitesConfig
from hereabouts.transports.base import Message, Transport
from hereabouts.transports.topics import SITE_ALL

FAST = SitesConfig(
    did_duration_s=2.0,
    heartbeat_interval_s=0.2,
    stale_timeout_s=0.8,
    rotation_spread_s=0.1,
    max_clock_skew_s=0.1,
)
"""A 2 s epoch with heartbeats every 0.2 s: several rotations in a few seconds."""


@dataclass
class WireRecorder:
    """A plain subscriber to every site topic that keeps every message it sees."""

    transport: Transport
    messages: list[Message] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> WireRecorder:
        await self.transport.connect()
        await self.transport.subscribe(SITE_ALL)
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.transport.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _read(self) -> None:
        async for message in self.transport.messages():
            self.messages.append(message)

    def bodies(self) -> list[dict[str, object]]:
        return [json.loads(m.payload)["body"] for m in self.messages]

    def dids(self) -> set[str]:
        return {str(b["did"]) for b in self.bodies()}


async def eventually(
    check: Callable[[], bool], *, timeout_s: float = 10.0, step_s: float = 0.02
) -> None:
    """Wait until ``check()`` holds; fail after ``timeout_s``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step_s)
