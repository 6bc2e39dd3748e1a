"""``hereabouts up`` on brokers as deployments have them: failover lists, TLS and a password,
access rules that refuse a subscription, and a process stopped and continued."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from hereabouts.broker_url import BROKER_PASSWORD_ENV
from tests.adversarial.plaza import health_of, metric, peers_of
from tests.adversarial.processes import UpProcess
from tests.fixtures.mosquitto import MosquittoServer, free_port
from tests.transports.secure_broker import make_ca, rules_broker, secure_broker

WAIT_S = 60.0
"""Generous: each wait below normally ends within a few seconds."""

PASSWORD = "correct-horse-42"


async def until(check: Callable[[], Awaitable[bool]], what: str, node: UpProcess) -> None:
    deadline = time.monotonic() + WAIT_S
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; log:\n{node.read_log()}")
        await asyncio.sleep(0.2)


async def sees(watcher: UpProcess, name: str, status: str = "ONLINE") -> bool:
    try:
        peers = await peers_of(watcher.url)
    except httpx.HTTPError:
        return False
    return any(p["name"] == name and p["status"] == status for p in peers.values())


async def everything_shown(node: UpProcess) -> str:
    async with httpx.AsyncClient(timeout=10) as client:
        health = (await client.get(f"{node.url}/healthz")).text
        metrics = (await client.get(f"{node.url}/metrics")).text
    return health + metrics + node.read_log()


async def test_a_dead_first_broker_costs_nothing_and_the_second_one_carries_the_plaza(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    alive = f"127.0.0.1:{mosquitto.port}"
    listed = f"mqtt://127.0.0.1:{free_port()},{alive}?protocol=3.1.1"
    async with UpProcess(tmp_path / "bravo", "--name", "bravo", broker=f"mqtt://{alive}"):
        alpha = UpProcess(tmp_path / "alpha", "--name", "alpha", broker=listed)
        started = time.monotonic()
        alpha.start()
        try:
            await alpha.wait_http(timeout_s=WAIT_S)
            print(f"\nserved HTTP {time.monotonic() - started:.2f}s after start (P1 dead)")
            await until(lambda: sees(alpha, "bravo"), "alpha to see bravo", alpha)
            _, health = await health_of(alpha.url)
            assert health["broker"]["endpoint"] == f"mqtt://{alive}"
            assert health["broker"]["protocol"] == "3.1.1"
            assert len(health["broker"]["brokers"]) == 2
            in_use = await metric(alpha.url, "hereabouts_plaza_broker", endpoint=f"mqtt://{alive}")
            assert in_use == 1
        finally:
            log = alpha.stop()
        assert "Traceback" not in log


async def test_tls_and_a_password_from_the_url_or_the_environment(tmp_path: Path) -> None:
    tls = make_ca(tmp_path / "ca")
    with secure_broker(tmp_path / "broker", users={"alice": PASSWORD}, tls=tls) as broker:
        where = f"127.0.0.1:{broker.port}"
        ca = ("--broker-ca", str(tls.ca))
        in_url = UpProcess(
            tmp_path / "a", "--name", "in-url", *ca, broker=f"mqtts://alice:{PASSWORD}@{where}"
        )
        from_env = UpProcess(
            tmp_path / "b", "--name", "from-env", *ca,
            broker=f"mqtts://alice@{where}", env={BROKER_PASSWORD_ENV: PASSWORD},
        )
        async with in_url, from_env:
            await until(lambda: sees(in_url, "from-env"), "in-url to see from-env", in_url)
            await until(lambda: sees(from_env, "in-url"), "from-env to see in-url", from_env)
            _, health = await health_of(in_url.url)
            assert health["broker"]["endpoint"] == f"mqtts://{where}"
            for node in (in_url, from_env):
                shown = await everything_shown(node)
                assert PASSWORD not in shown
                assert "Traceback" not in shown


async def test_a_wrong_password_is_reported_retried_and_never_shown(tmp_path: Path) -> None:
    wrong = "wrong-battery-7"
    with secure_broker(tmp_path / "broker", users={"alice": PASSWORD}) as broker:
        url = f"mqtt://alice:{wrong}@127.0.0.1:{broker.port}"
        async with UpProcess(tmp_path / "n", "--name", "locked-out", broker=url) as node:
            async def reported() -> bool:
                code, health = await health_of(node.url)
                error = (health["broker"]["last_error"] or "").lower()
                return code == 503 and not health["plaza"]["ok"] and "not authorized" in error

            await until(reported, "/healthz to say the broker refused us", node)
            async def retried() -> bool:
                return "still cannot reach" in node.read_log()

            await until(retried, "a retry", node)
            assert node.process is not None and node.process.poll() is None
            shown = await everything_shown(node)
            assert wrong not in shown
            assert "Traceback" not in shown


@pytest.mark.parametrize("workers", ["1", "2"], ids=["1-process", "2-workers"])
async def test_refused_plaza_and_probe_subscriptions_are_reported_until_they_hold(
    tmp_path: Path, workers: str
) -> None:
    """``up`` stays up when the broker refuses its plaza filter and its site hub's probe
    filter (each hub worker's, with ``--workers 2``); /healthz names them; once the rules
    allow them, all hold and /healthz is ok, without a restart."""
    with rules_broker(tmp_path / "broker", user=("alice", PASSWORD)) as broker:
        broker.deny("hereabouts/v1/plaza/#")
        broker.deny("hereabouts/v1/probe/#")
        url = f"mqtt://alice:{PASSWORD}@127.0.0.1:{broker.port}"
        args = ("--name", "refused", "--workers", workers)
        async with UpProcess(tmp_path / "n", *args, broker=url) as node:
            async def both_named() -> bool:
                code, health = await health_of(node.url)
                plaza = health["broker"]["missing_subscriptions"]
                sites = health["sites"]
                hubs = [w.get("hub", {}) for w in sites.get("workers", [])] or [sites]
                probes = [hub.get("broker", {}).get("missing_subscriptions") for hub in hubs]
                return (
                    code == 503
                    and plaza == ["hereabouts/v1/plaza/+"]
                    and len(probes) == int(workers)
                    and all(
                        probe is not None
                        and len(probe) == 1
                        and probe[0].startswith("hereabouts/v1/probe/")
                        for probe in probes
                    )
                    and not health["plaza"]["ok"]
                    and not sites["ok"]
                )

            await until(both_named, "/healthz to name both missing filters", node)
            assert await metric(node.url, "hereabouts_plaza_missing_subscriptions") == 1
            broker.allow("hereabouts/v1/plaza/#")
            broker.allow("hereabouts/v1/probe/#")

            async def healthy() -> bool:
                code, health = await health_of(node.url)
                # 200 needs every part ok: the hub's probe, or every worker's, answers.
                return code == 200 and not health["broker"]["missing_subscriptions"]

            await until(healthy, "/healthz to be ok again", node)
            assert node.process is not None and node.process.poll() is None
        assert "Traceback" not in node.output


STOPPED_S = 17.0
"""Longer than Mosquitto's patience with a silent client (1.5 x the 10 s keepalive), so the
broker drops the stopped node's connection, as it did when the traceback was seen."""


async def test_a_stopped_and_continued_node_reconnects_without_a_traceback(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    broker = f"mqtt://127.0.0.1:{mosquitto.port}"
    async with (
        UpProcess(tmp_path / "w", "--name", "watcher", broker=broker) as watcher,
        UpProcess(tmp_path / "s", "--name", "sleeper", broker=broker) as sleeper,
    ):
        await until(lambda: sees(watcher, "sleeper"), "watcher to see sleeper", watcher)
        before = len(sleeper.read_log().splitlines())
        os.kill(sleeper.pid, signal.SIGSTOP)
        try:
            await until(lambda: sees(watcher, "sleeper", "MISSING"), "MISSING", watcher)
            await asyncio.sleep(STOPPED_S)
        finally:
            os.kill(sleeper.pid, signal.SIGCONT)
        await until(lambda: sees(watcher, "sleeper"), "sleeper ONLINE again", watcher)

        async def reconnected() -> bool:
            _, health = await health_of(sleeper.url)
            return bool(health["broker"]["connected"]) and health["broker"]["connections"] >= 2

        await until(reconnected, "sleeper to reconnect", sleeper)
        after = sleeper.read_log().splitlines()[before:]
    said = "\n".join(after)
    assert "Traceback" not in said, said
    assert not [line for line in after if " ERROR " in line], said
    warnings = [line for line in after if " WARNING " in line]
    assert len(warnings) <= 1, said
    print("\n" + json.dumps(after, indent=1))
