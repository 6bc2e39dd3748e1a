"""Watching real mesh nodes from outside: their peer lists and health over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx

from tests.adversarial.processes import UpProcess


async def get(client: httpx.AsyncClient, node: UpProcess, path: str) -> httpx.Response:
    """``GET path`` from ``node``; if it does not answer, a failure that says whether its
    process is still running and how its log ends."""
    try:
        return await client.get(f"{node.url}{path}")
    except httpx.HTTPError as exc:
        process = node.process
        state = (
            "never started"
            if process is None
            else ("running" if process.poll() is None else f"exited with {process.returncode}")
        )
        raise AssertionError(
            f"{node.home.name} did not answer {path} ({exc!r}); its process is {state}; "
            f"its log ends:\n{node.read_log()[-4000:]}"
        ) from exc


async def views(client: httpx.AsyncClient, nodes: Sequence[UpProcess]) -> list[dict[str, str]]:
    """Each node's view: ``{name: status}`` of every peer it lists."""
    answers = await asyncio.gather(*(get(client, n, "/v1/peers") for n in nodes))
    return [{p["claimed_name"]: p["status"] for p in a.json()["peers"]} for a in answers]


async def transports(client: httpx.AsyncClient, node: UpProcess) -> dict[str, str]:
    """``{claimed name: transport}`` as ``node`` lists its peers."""
    return await peer_field(client, node, "transport")


async def peer_field(client: httpx.AsyncClient, node: UpProcess, field: str) -> dict[str, Any]:
    """``{claimed name: field}`` as ``node`` lists its peers (see ``GET /v1/peers``)."""
    answer = await get(client, node, "/v1/peers")
    return {p["claimed_name"]: p[field] for p in answer.json()["peers"]}


async def health(client: httpx.AsyncClient, node: UpProcess) -> dict[str, object]:
    answer = await get(client, node, "/healthz")
    return answer.json()  # type: ignore[no-any-return]


async def mesh_rounds(client: httpx.AsyncClient, node: UpProcess) -> int:
    mesh = (await health(client, node))["mesh"]
    assert isinstance(mesh, dict)
    return int(mesh["rounds"])


async def eventually(
    check: Callable[[], Awaitable[str | None]], *, timeout_s: float, every_s: float = 0.25
) -> float:
    """Seconds until ``check()`` returns None (all good); its last complaint on time-out."""
    started = time.monotonic()
    complaint: str | None = "never checked"
    while time.monotonic() - started < timeout_s:
        complaint = await check()
        if complaint is None:
            return time.monotonic() - started
        await asyncio.sleep(every_s)
    raise AssertionError(f"after {timeout_s:.0f} s: {complaint}")


async def start_all(stack: contextlib.AsyncExitStack, nodes: Sequence[UpProcess]) -> None:
    """Start every node at once (seeds may come up in any order); each stops on exit."""
    for node in nodes:
        node.start()
        stack.callback(node.stop)
    await asyncio.gather(*(node.wait_http() for node in nodes))


def names(count: int, prefix: str) -> list[str]:
    return [f"{prefix}-{n:02d}" for n in range(count)]
