"""``hereabouts up`` run again and again on one home, as ``make run`` is: real processes.

The first run of ``make run`` worked; the second showed the previous run's demo peers ONLINE
(their chau was never recorded) while the new ones, fresh keys under the same names, were
refused. These tests hold ``up`` to: the same demo peers every run, ONLINE within seconds,
nothing from an earlier run shown ONLINE, a quiet and polite shutdown; and to a broker that
cannot be reached being named, with its likely cause, one line per try.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hereabouts.identity import load_identity
from tests.adversarial.plaza import metric
from tests.adversarial.processes import UpProcess
from tests.fixtures.mosquitto import free_port

pytestmark = pytest.mark.timeout(240)

RUNS = 3
DEMO_PEERS = 3
ONLINE_WITHIN_S = 60.0
"""Generous: the production preset waits up to 5 s before announcing; tests never time."""


async def peers(client: httpx.AsyncClient, url: str) -> list[dict[str, object]]:
    answer = (await client.get(f"{url}/v1/peers")).json()
    result: list[dict[str, object]] = answer["peers"]
    return result


async def test_three_runs_on_one_home_show_the_same_demo_peers_online_and_nothing_stale(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    demo_dids: set[str] | None = None
    for run in range(1, RUNS + 1):
        started_ms = time.time() * 1000
        # The production preset (not --fast): a stale peer would stay ONLINE for minutes.
        up = UpProcess(home, "--peers", str(DEMO_PEERS), "--name", "main", fast=False)
        async with up, httpx.AsyncClient(trust_env=False) as client:
            deadline = time.monotonic() + ONLINE_WITHIN_S
            while True:
                seen = await peers(client, up.url)
                stale = [
                    (p["name"], p["last_event_at"])
                    for p in seen
                    if p["status"] == "ONLINE" and int(p["last_event_at_ms"]) < started_ms  # type: ignore[call-overload]
                ]
                assert not stale, f"run {run}: ONLINE on evidence from an earlier run: {stale}"
                online = {str(p["did"]) for p in seen if p["status"] == "ONLINE"}
                demos = {str(p["did"]) for p in seen if str(p["claimed_name"]).startswith("demo-")}
                # main lists itself ONLINE from the start; it has spoken (and so owes a
                # chau) once its hey_there is out, up to 5 s later in this preset.
                announced = await metric(up.url, "hereabouts_events_out_total", kind="hey_there")
                if len(online) == DEMO_PEERS + 1 and demos <= online and announced:
                    break
                assert time.monotonic() < deadline, f"run {run}: not all ONLINE: {seen}"
                await asyncio.sleep(0.2)
            assert {p["claimed_name"] for p in seen} == {"main", "demo-1", "demo-2", "demo-3"}
            assert len(seen) == DEMO_PEERS + 1, "no second key under a demo name"
            if demo_dids is None:
                demo_dids = demos
            assert demos == demo_dids, "the same demo peers come back every run"
        output = up.output
        assert up.process is None
        for number in range(1, DEMO_PEERS + 1):
            assert f"hereabouts: demo-{number} said chau" in output, output
        assert "hereabouts: main said chau" in output
        assert " WARNING " not in output, f"run {run} warned on a clean stop:\n{output}"
        assert "Traceback" not in output
    keys = {load_identity(home / "demo" / f"demo-{n}.key").did for n in (1, 2, 3)}
    assert keys == demo_dids
    for n in (1, 2, 3):
        assert (home / "demo" / f"demo-{n}.key").stat().st_mode & 0o777 == 0o600


async def test_an_unreachable_broker_is_named_with_its_likely_cause_once_per_try(
    tmp_path: Path,
) -> None:
    broker = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens there
    up = UpProcess(tmp_path / "home", "--name", "main", broker=broker)
    async with up:
        deadline = time.monotonic() + 60
        while "(try 4:" not in up.read_log():
            assert time.monotonic() < deadline, up.read_log()
            await asyncio.sleep(0.2)
    output = up.output
    lines = [line for line in output.splitlines() if "hereabouts.transports.mqtt" in line]
    first, later = lines[0], lines[1:]
    assert " WARNING " in first
    assert f"cannot reach the broker at {broker} (connection refused)" in first
    assert "nothing listens there: is the broker running? is the port right?" in first
    tries = [int(match.group(1)) for line in later if (match := re.search(r"\(try (\d+):", line))]
    assert len(tries) == len(later), later
    assert tries == list(range(2, 2 + len(tries))), "one line per try, never two"
    delays = [
        float(m.group(1)) for line in later if (m := re.search(r"next try in ([\d.]+)s", line))
    ]
    assert delays and max(delays) <= 30.0, "the pace is bounded by the backoff cap"
    assert "hereabouts: main left before it had said anything" in output
    assert "Traceback" not in output


def test_a_terminal_sees_a_spinner_while_the_broker_cannot_be_reached(tmp_path: Path) -> None:
    broker = f"mqtt://127.0.0.1:{free_port()}"
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "hereabouts.cli", "up", "--fast", "--home", str(tmp_path),
         "--broker", broker, "--http", f"127.0.0.1:{free_port()}"],
        stdin=subprocess.DEVNULL, stdout=follower, stderr=follower,
        env={**os.environ, "TERM": "xterm"},
    )
    os.close(follower)
    screen = b""
    try:
        deadline = time.monotonic() + 60
        while f"waiting for the broker at {broker}".encode() not in screen:
            assert time.monotonic() < deadline, screen.decode(errors="replace")
            if select.select([leader], [], [], 0.2)[0]:
                screen += os.read(leader, 65536)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
        with contextlib.suppress(OSError):  # EIO once the other side is closed
            while select.select([leader], [], [], 0.2)[0] and (chunk := os.read(leader, 65536)):
                screen += chunk
        os.close(leader)
    text = screen.decode(errors="replace")
    assert "(Ctrl-C to stop)" in text
    assert "Traceback" not in text
