"""What ``hereabouts up --workers N`` promises, against a real ``hereabouts up --workers 2``.

Browsers come from loopback source addresses (127.0.0.2, 127.0.0.3, …; Linux routes all
of 127.0.0.0/8 to ``lo``), so the node sees distinct clients. Which worker serves an
address is read from ``/healthz`` (``sites.workers[i].connections_handed``, counted by the
node as it hands a connection over), never computed here:

* one address, one worker (every connection from it), and addresses spread over both;
  two browsers served by different workers see one count in one room;
* an address's connection budget holds exactly, whichever worker serves it, and behind a
  trusted proxy the forwarded address picks the worker;
* a worker killed with SIGKILL: ``/healthz`` says so (503, that worker not ``ok``), its
  addresses are served by the other worker meanwhile, it is started again with a new pid
  and ``/healthz`` is 200 again; ``/metrics`` counters never go down on the way;
* SIGINT or SIGTERM to ``hereabouts up`` leaves no worker behind, and a node killed with
  SIGKILL leaves none for long (the workers see their channel close and exit);
* ``--workers`` out of range or not a number: one line, exit 2;
* a hub whose workers' share of connections is no larger than one address's budget says
  so at start (one address could take every connection of its worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from hereabouts.config import HubConfig, SitesConfig, WireLimits
from hereabouts.identity import Identity
from hereabouts.sites import room_key
from hereabouts.sites.workers import HubWorkers
from hereabouts.transports.mqtt import MqttSettings
from tests.adversarial.processes import UpProcess
from tests.sites.support import browser_sealed, event_frame, watch_frame

ORIGIN = "https://workers.example"
ADDRESSES = [f"127.0.0.{n}" for n in range(2, 10)]
"""Candidate client addresses; which worker each one has is found out by connecting."""
WAIT_S = 30.0
"""Generous bound on every wait below; each normally ends within a few seconds."""


# --- what the node says -----------------------------------------------------------------------


async def healthz(up: UpProcess) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{up.url}/healthz")
    body: dict[str, Any] = response.json()
    return response.status_code, body


async def workers_of(up: UpProcess) -> list[dict[str, Any]]:
    _, body = await healthz(up)
    workers: list[dict[str, Any]] = body["sites"]["workers"]
    return workers


async def handed(up: UpProcess) -> list[int]:
    return [worker["connections_handed"] for worker in await workers_of(up)]


async def counters(up: UpProcess) -> dict[tuple[str, str], float]:
    """Every ``hereabouts_site*_total`` sample of ``/metrics``, by (name, labels)."""
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{up.url}/metrics")).text
    samples: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if line.startswith("hereabouts_site") and "_total" in line:
            series, value = line.rsplit(" ", 1)
            name, _, labels = series.partition("{")
            samples[(name, labels.rstrip("}"))] = float(value)
    return samples


async def until(check: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
    """Poll the coroutine function ``check`` until it returns something true."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def all_healthy(up: UpProcess) -> bool:
    status, body = await healthz(up)
    return status == 200 and all(w["ok"] for w in body["sites"]["workers"])


def running(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def kill_left(pids: list[int]) -> None:
    """SIGKILL whichever of ``pids`` still runs: a failed test leaves no worker behind."""
    for pid in pids:
        if running(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# --- browsers -----------------------------------------------------------------------------------


def socket_url(up: UpProcess) -> str:
    return up.url.replace("http://", "ws://") + "/v1/site"


@dataclass
class Page:
    """A browser's connection that got its hello."""

    ws: ClientConnection
    duration_ms: int

    async def watch(self, room: str) -> None:
        await self.ws.send(watch_frame(ORIGIN, room))

    async def heartbeat(self, room: str) -> None:
        key = Identity.generate()
        sealed = browser_sealed(
            "site_heartbeat", key, room_key(ORIGIN, room), duration_ms=self.duration_ms
        )
        await self.ws.send(event_frame(sealed))

    async def count(self, room: str, wanted: int) -> None:
        """Read frames until ``room``'s count is ``wanted``."""
        key = room_key(ORIGIN, room)
        async with asyncio.timeout(WAIT_S):
            while True:
                frame = json.loads(await self.ws.recv())
                rooms = frame.get("rooms", {}) if frame["type"] == "counts" else {}
                if rooms.get(key, {}).get("count") == wanted:
                    return


@contextlib.asynccontextmanager
async def browser(
    up: UpProcess, address: str, headers: dict[str, str] | None = None
) -> AsyncIterator[Page]:
    """A connection from ``address`` that got its hello."""
    async with connect(
        socket_url(up), origin=ORIGIN, local_addr=(address, 0), additional_headers=headers
    ) as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert hello["type"] == "hello", hello
        yield Page(ws, int(hello["did_duration_ms"]))


async def refusal(up: UpProcess, address: str, headers: dict[str, str] | None = None) -> object:
    """Connect from ``address``; the close code and reason the hub answered with."""
    async with connect(
        socket_url(up), origin=ORIGIN, local_addr=(address, 0), additional_headers=headers
    ) as ws:
        try:
            frame = await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed as closed:
            assert closed.rcvd is not None
            return (closed.rcvd.code, closed.rcvd.reason)
    return f"admitted: {frame!r}"


async def worker_of(up: UpProcess, address: str) -> int:
    """The worker a connection from ``address`` is handed to now."""
    before = await handed(up)
    async with browser(up, address):
        after = await handed(up)
    grew = [i for i, (b, a) in enumerate(zip(before, after, strict=True)) if a > b]
    assert len(grew) == 1, (before, after)
    return grew[0]


async def spread(up: UpProcess) -> dict[int, list[str]]:
    """The candidate addresses by the worker that serves them."""
    by_worker: dict[int, list[str]] = {}
    for address in ADDRESSES:
        by_worker.setdefault(await worker_of(up, address), []).append(address)
    return by_worker


# --- tests --------------------------------------------------------------------------------------


async def test_an_address_is_one_workers_and_browsers_on_both_share_a_count(
    tmp_path: Path,
) -> None:
    async with UpProcess(tmp_path / "up", "--workers", "2") as up:
        await until(lambda: all_healthy(up), "both workers healthy")
        by_worker = await spread(up)
        assert sorted(by_worker) == [0, 1], by_worker  # eight addresses, both workers
        # Every connection from one address goes to the same worker.
        for worker, addresses in by_worker.items():
            for _ in range(3):
                assert await worker_of(up, addresses[0]) == worker
        # One room, a browser on each worker: both see both.
        async with (
            browser(up, by_worker[0][0]) as a,
            browser(up, by_worker[1][0]) as b,
        ):
            for page in (a, b):
                await page.watch("lobby")
                await page.count("lobby", 0)
            await a.heartbeat("lobby")
            await a.count("lobby", 1)
            await b.count("lobby", 1)
            await b.heartbeat("lobby")
            await a.count("lobby", 2)
            await b.count("lobby", 2)


async def test_an_address_budget_holds_exactly_across_workers(tmp_path: Path) -> None:
    env = {
        "PRESENCE_HUB_MAX_CONNECTIONS_PER_ADDRESS": "2",
        "HEREABOUTS_HTTP_TRUSTED_PROXIES": "127.0.0.1",
    }
    async with UpProcess(tmp_path / "up", "--workers", "2", env=env) as up:
        await until(lambda: all_healthy(up), "both workers healthy")
        by_worker = await spread(up)
        assert sorted(by_worker) == [0, 1], by_worker
        one, other = by_worker[0][0], by_worker[1][0]
        async with contextlib.AsyncExitStack() as held:
            for address in (one, one, other, other):
                await held.enter_async_context(browser(up, address))
            # The third from either address is refused, by the worker that holds its two.
            assert await refusal(up, one) == (1013, "address_busy")
            assert await refusal(up, other) == (1013, "address_busy")
            # Behind the trusted proxy (127.0.0.1) the forwarded address is the client's:
            # all of its connections go to one worker, which holds its budget too.
            forwarded = {"X-Forwarded-For": "203.0.113.7"}
            before = await handed(up)
            for _ in range(2):
                await held.enter_async_context(browser(up, "127.0.0.1", forwarded))
            assert await refusal(up, "127.0.0.1", forwarded) == (1013, "address_busy")
            after = await handed(up)
            grew = sorted(a - b for a, b in zip(after, before, strict=True))
            assert grew == [0, 3], (before, after)

        async def refused() -> bool:
            samples = await counters(up)
            return samples.get(("hereabouts_site_hub_rejects_total", 'reason="address_busy"')) == 3

        await until(refused, "three address_busy refusals in /metrics")


async def test_a_killed_worker_is_started_again_and_its_addresses_served_meanwhile(
    tmp_path: Path,
) -> None:
    async with UpProcess(tmp_path / "up", "--workers", "2") as up:
        await until(lambda: all_healthy(up), "both workers healthy")
        by_worker = await spread(up)
        victim, survivor = 0, 1
        address = by_worker[victim][0]
        # Something counted on each worker, so both have counters to lose.
        for worker in (victim, survivor):
            async with browser(up, by_worker[worker][0]) as page:
                room = f"room-{worker}"
                await page.watch(room)
                await page.heartbeat(room)
                await page.count(room, 1)
        heartbeats = ("hereabouts_site_events_in_total", 'kind="heartbeat"')

        async def both_reported() -> dict[tuple[str, str], float] | None:
            samples = await counters(up)
            return samples if samples.get(heartbeats) == 2 else None

        seen = [await until(both_reported, "both workers' heartbeats in /metrics")]

        async def sample() -> list[dict[str, Any]]:
            seen.append(await counters(up))
            return await workers_of(up)

        old_pid = (await workers_of(up))[victim]["pid"]
        assert running(old_pid)
        subprocess.run(["kill", "-9", str(old_pid)], check=True)

        # The node sees it go, and its addresses are served by the other worker until it
        # is started again (after at least a second: RESTART_DELAYS_S).
        async def gone() -> bool:
            return not (await sample())[victim]["alive"]

        await until(gone, "the node to see its worker gone", timeout_s=10)
        assert await worker_of(up, address) == survivor
        # /healthz says so, naming the worker.
        status, body = await healthz(up)
        assert status == 503 and body["sites"]["ok"] is False, body
        assert [w["ok"] for w in body["sites"]["workers"]] == [False, True], body
        assert body["sites"]["workers"][victim]["last_exit_code"] == -signal.SIGKILL

        # Started again: a new pid, healthy, and its addresses are its own again.
        async def back() -> bool:
            workers = await sample()
            return await all_healthy(up) and workers[victim]["pid"] != old_pid

        await until(back, "the worker started again and /healthz 200")
        new_pid = (await workers_of(up))[victim]["pid"]
        assert running(new_pid) and not running(old_pid)
        assert await worker_of(up, address) == victim
        for _ in range(3):  # and for a few reports more
            await asyncio.sleep(0.5)
            await sample()
    # No counter went down on the way: the dead worker's counts stayed in the sums.
    for earlier, later in itertools.pairwise(seen):
        for series, value in earlier.items():
            assert later.get(series, 0) >= value, (series, value, later.get(series))
    assert seen[-1][heartbeats] == 2, seen[-1]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_stopping_up_leaves_no_worker_behind(tmp_path: Path, signum: int) -> None:
    up = UpProcess(tmp_path / "up", "--workers", "2")
    async with up:
        await until(lambda: all_healthy(up), "both workers healthy")
        pids = [w["pid"] for w in await workers_of(up)]
        try:
            assert len(pids) == 2 and all(running(pid) for pid in pids)
            assert up.process is not None
            up.process.send_signal(signum)
            assert up.process.wait(60) == 0
            assert not any(running(pid) for pid in pids)
        finally:
            kill_left(pids)
    assert "Traceback" not in up.output


async def test_workers_of_a_killed_node_exit_by_themselves(tmp_path: Path) -> None:
    async with UpProcess(tmp_path / "up", "--workers", "2") as up:
        await until(lambda: all_healthy(up), "both workers healthy")
        pids = [w["pid"] for w in await workers_of(up)]
        try:
            assert up.process is not None
            up.process.kill()
            up.process.wait(10)

            async def gone() -> bool:
                return not any(running(pid) for pid in pids)

            await until(gone, "the workers to exit", timeout_s=10)
        finally:
            kill_left(pids)


@pytest.mark.parametrize("value", ["0", "65", "x"])
def test_a_bad_number_of_workers_is_one_line_and_exit_2(tmp_path: Path, value: str) -> None:
    for args, env in (
        (["--workers", value], {}),
        ([], {"PRESENCE_HUB_WORKERS": value}),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "hereabouts.cli", "up", "--home", str(tmp_path), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **env},
        )
        assert result.returncode == 2, (args, env, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and value in lines[0] and "workers" in lines[0].lower(), lines
        assert "Traceback" not in result.stderr


def test_a_worker_share_no_larger_than_an_address_budget_is_told(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """64 connections over two workers is 32 each, the default budget of one address: one
    script could hold all of its worker's, and everybody else that worker serves would be
    refused. The hub says so when it starts (nothing is started by constructing it)."""

    def workers(hub: HubConfig) -> HubWorkers:
        return HubWorkers(
            2,
            node_name="told",
            mqtt=MqttSettings(),
            sites=SitesConfig(),
            hub=hub,
            wire=WireLimits(),
            listen_host="127.0.0.1",
        )

    caplog.set_level(logging.WARNING, logger="hereabouts.sites.workers")
    workers(HubConfig(max_connections=66))
    assert caplog.messages == []
    workers(HubConfig(max_connections=64))
    assert len(caplog.messages) == 1
    assert "PRESENCE_HUB_MAX_CONNECTIONS" in caplog.messages[0]
