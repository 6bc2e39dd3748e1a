"""``hereabouts up`` serves the browser hub, the widget and the demo page (flag presence_v0).

Each test runs with the hub in the node's process and with ``--workers 2`` (two hub worker
processes, whose health ``/healthz`` shows one by one)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from hereabouts.identity import Identity
from hereabouts.sites import room_key
from tests.peers.test_up import start_up
from tests.sites.support import browser_sealed, event_frame, watch_frame


async def wait_for_http(url: str, process: subprocess.Popen[str]) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            assert process.poll() is None, "hereabouts up exited"
            try:
                if (await client.get(f"{url}/healthz")).status_code in (200, 503):
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("hereabouts up never served HTTP")


@pytest.fixture(params=["1", "2"], ids=["1-process", "2-workers"])
def workers(request: pytest.FixtureRequest) -> str:
    """``hereabouts up --workers``."""
    return str(request.param)


def hub_reports(sites: dict[str, Any]) -> list[dict[str, Any]]:
    """The hub's part of ``/healthz``, or each worker's hub's."""
    if "workers" in sites:
        return [worker.get("hub", {}) for worker in sites["workers"]]
    return [sites]


def stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output


async def test_up_serves_the_hub_widget_and_demo(tmp_path: Path, workers: str) -> None:
    process, url = start_up(tmp_path, "--workers", workers)
    try:
        await wait_for_http(url, process)
        async with httpx.AsyncClient() as client:
            widget = await client.get(f"{url}/widget.js")
            demo = await client.get(f"{url}/demo/site")
        assert widget.status_code == 200
        assert widget.headers["content-type"].startswith("text/javascript")
        assert widget.headers["access-control-allow-origin"] == "*"
        code = [line for line in widget.text.splitlines() if not line.strip().startswith("//")]
        assert not any("://" in line for line in code)  # no external URL
        assert demo.status_code == 200
        csp = demo.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "connect-src 'self'" in csp
        assert 'src="/widget.js"' in demo.text

        # /healthz carries the hub's part: broker, self-probe, keys, processing.
        async def healthy() -> dict[str, Any]:
            async with httpx.AsyncClient() as client:
                for _ in range(300):
                    response = await client.get(f"{url}/healthz")
                    body: dict[str, Any] = response.json()
                    reports = hub_reports(body["sites"])
                    answered = all(report.get("probe", {}).get("answered") for report in reports)
                    if response.status_code == 200 and answered:
                        return body
                    await asyncio.sleep(0.1)
            raise AssertionError(f"never healthy: {body}")

        sites = (await healthy())["sites"]
        assert sites["ok"]
        reports = hub_reports(sites)
        assert len(reports) == int(workers)
        for report in reports:
            assert report["ok"] and report["broker"]["connected"]
            assert report["key_generation"]["ok"]
            assert report["processing"]["reader_running"] and not report["ghost_forced"]

        origin = "https://up-test.example"
        key = room_key(origin, "lobby")
        # Listening on loopback with no origins configured: any page origin may connect.
        async with connect(url.replace("http", "ws") + "/v1/site", origin=origin) as ws:
            hello = json.loads(await ws.recv())
            assert hello["type"] == "hello"
            await ws.send(watch_frame(origin, "lobby"))
            assert json.loads(await ws.recv())["rooms"][key]["count"] == 0
            visitor = Identity.generate()
            duration = int(hello["did_duration_ms"])
            sealed = browser_sealed("site_heartbeat", visitor, key, duration_ms=duration)
            await ws.send(event_frame(sealed))
            # Counted once it is verified; the republished copy that comes back from the
            # plaza is recognised, not counted twice.
            assert json.loads(await ws.recv())["rooms"][key]["count"] == 1
            await ws.send(event_frame(sealed))
            assert json.loads(await ws.recv()) == {"type": "error", "reason": "replayed"}
            leave = browser_sealed("site_leave", visitor, key, duration_ms=duration)
            await ws.send(event_frame(leave))
            assert json.loads(await ws.recv())["rooms"][key]["count"] == 0
    finally:
        output = stop(process)
    assert "site presence demo http://127.0.0.1:" in output
    assert ("site hub in 2 worker processes" in output) == (workers == "2")
    assert "Traceback" not in output


async def test_no_sites_turns_the_hub_off(tmp_path: Path, workers: str) -> None:
    process, url = start_up(tmp_path, "--no-sites", "--workers", workers)
    try:
        await wait_for_http(url, process)
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{url}/widget.js")).status_code == 404
            assert (await client.get(f"{url}/demo/site")).status_code == 404
    finally:
        output = stop(process)
    assert "site presence demo" not in output
    assert "worker processes" not in output


async def test_ghost_hard_off_flag_reaches_every_widget(tmp_path: Path, workers: str) -> None:
    process, url = start_up(tmp_path, "--ghost-hard-off", "--workers", workers)
    try:
        await wait_for_http(url, process)
        site = url.replace("http", "ws") + "/v1/site"
        async with connect(site, origin="https://up-test.example") as ws:
            assert json.loads(await ws.recv())["ghost_forced"] is True
    finally:
        stop(process)
