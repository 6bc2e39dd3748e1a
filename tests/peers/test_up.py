"""`hereabouts up` and friends, as an operator uses them: embedded broker, CLI, metrics."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hereabouts import config as config_module
from hereabouts.core.effects import Status
from hereabouts.web.app import create_app
from hereabouts.web.server import HttpServer
from tests.fixtures.mosquitto import MosquittoServer, free_port
from tests.peers.support import light_node, sees, test_config, wait_until

pytestmark = pytest.mark.timeout(180)


def embedded_config(home: Path, port: int) -> config_module.Config:
    base = config_module.testing(home)
    return base.replace(node=dataclasses.replace(base.node, embedded_broker_port=port))


async def test_join_and_leave_on_the_embedded_broker(tmp_path: Path) -> None:
    config = embedded_config(tmp_path, free_port())
    first = light_node(config, "first")
    second = light_node(config, "second")
    await first.start()  # starts the in-process broker
    try:
        assert first._broker is not None and first._broker.owned
        await second.start()  # joins it
        assert second._broker is not None and not second._broker.owned
        assert second.transport.state.protocol == "3.1.1"
        await wait_until(lambda: sees(first, second.did, Status.ONLINE))
        await wait_until(lambda: sees(second, first.did, Status.ONLINE))
        await second.stop()
        await wait_until(lambda: sees(first, second.did, Status.OFFLINE))
    finally:
        await second.stop()
        await first.stop()


async def test_metrics_health_and_peers_of_a_real_node(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    config = test_config(tmp_path, broker_port=mosquitto.port)
    node, other = light_node(config, "observed"), light_node(config, "other")
    await node.start()
    await other.start()
    try:
        await wait_until(lambda: sees(node, other.did, Status.ONLINE))
        async with HttpServer(create_app(node)) as server, httpx.AsyncClient() as client:
            metrics = (await client.get(f"{server.url}/metrics")).text
            families = {f.name: f for f in text_string_to_metric_families(metrics)}
            online = [
                s.value for s in families["hereabouts_peers"].samples
                if s.labels == {"status": "ONLINE"}
            ]
            assert online == [2.0]
            assert "hereabouts_events_in" in families
            assert "hereabouts_howdys" in families
            assert "hereabouts_plaza_reconnects" in families
            health = await client.get(f"{server.url}/healthz")
            assert health.status_code == 200 and health.json()["ok"] is True
            peers = (await client.get(f"{server.url}/v1/peers")).json()["peers"]
            names = {p["claimed_name"]: p for p in peers}
            assert names["other"]["status"] == "ONLINE"
            assert {"did", "last_event_at", "last_event", "boot_id"} <= set(names["other"])
    finally:
        await other.stop()
        await node.stop()


async def test_broker_down_at_start_is_retried_and_reported(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    mosquitto.stop()
    config = test_config(tmp_path, broker_port=mosquitto.port)
    node = light_node(config, "patient")
    await node.start()  # does not raise: keeps retrying in the background
    try:
        health = node.health()
        assert health["ok"] is False
        assert health["broker"]["last_error"]  # type: ignore[index]
        mosquitto.start()
        await wait_until(lambda: node.transport.state.connected, what="the node to connect")
        await node.wait_announced()
        await wait_until(lambda: sees(node, node.did, Status.ONLINE))
        assert node.health()["ok"] is True
    finally:
        await node.stop()


def start_up(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    http_port = free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "hereabouts.cli", "up", "--fast", "--home", str(tmp_path),
            "--broker-port", str(free_port()), "--http", f"127.0.0.1:{http_port}", *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return process, f"http://127.0.0.1:{http_port}"


def status(url: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hereabouts.cli", "status", "--url", url, *flags],
        capture_output=True, text=True, timeout=60,
    )


async def test_up_with_demo_peers_then_status_then_sigterm(tmp_path: Path) -> None:
    process, url = start_up(tmp_path, "--peers", "2", "--name", "main")
    try:
        async def three_online() -> bool:
            result = status(url, "--json")
            if result.returncode != 0:
                return False
            peers = json.loads(result.stdout)["peers"]
            return sum(p["status"] == "ONLINE" for p in peers) == 3

        for _ in range(600):
            if await three_online():
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("hereabouts up never showed three ONLINE peers")
        table = status(url)
        assert table.returncode == 0
        assert "main" in table.stdout and "demo-1" in table.stdout and "ONLINE" in table.stdout
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 0, output
        assert "dashboard http://127.0.0.1:" in output
        goodbyes = [line for line in output.splitlines() if line.endswith(" said chau")]
        assert goodbyes == [
            "hereabouts: demo-1 said chau",
            "hereabouts: demo-2 said chau",
            "hereabouts: main said chau",
        ], output
        assert " WARNING " not in output, "a clean stop warns about nothing"
        assert "Traceback" not in output
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_status_against_nothing_fails_cleanly() -> None:
    result = status(f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout


def test_up_on_a_taken_http_port_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable, "-m", "hereabouts.cli", "up", "--fast", "--home", str(tmp_path),
                "--broker-port", str(free_port()), "--http", f"127.0.0.1:{port}",
            ],
            capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 2
    assert "cannot serve HTTP" in result.stderr
    assert result.stderr.count("\n") == 1, "refused before anything starts or logs"
    assert "Traceback" not in result.stderr
