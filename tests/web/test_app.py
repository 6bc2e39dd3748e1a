"""The HTTP API over a real uvicorn server: peers, stream, health, metrics, extra routes."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from hereabouts.core.effects import Status, StatusChanged
from hereabouts.web.app import create_app
from hereabouts.web.payload import format_ms
from hereabouts.web.server import HttpServer
from tests.web.conftest import (
    ALPHA,
    BRAVO,
    T_MS,
    TIMEOUT_S,
    FakeNode,
    eventually,
    neighbourhood,
    next_message,
    sse_messages,
)

PEER_FIELDS = {
    "name", "did", "status", "last_event_at", "last_event_at_ms", "last_event", "boot_id",
    "restarts", "transport", "endpoints", "reports", "self",
}


def test_times_are_rfc3339_utc_with_milliseconds() -> None:
    assert format_ms(T_MS) == "2026-11-29T13:00:00.123Z"
    assert format_ms(0) == "1970-01-01T00:00:00.000Z"
    assert format_ms(1_999) == "1970-01-01T00:00:01.999Z"


async def test_peers_lists_the_neighbourhood(client: httpx.AsyncClient, node: FakeNode) -> None:
    response = await client.get("/v1/peers")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["node"] == {"name": "alpha", "did": ALPHA, "boot_id": "0123abcd", "warnings": []}
    assert [p["name"] for p in body["peers"]] == ["alpha", "bravo", "charlie"]
    alpha, bravo, charlie = body["peers"]
    for peer in body["peers"]:
        assert peer.keys() >= PEER_FIELDS
    assert alpha["self"] is True and bravo["self"] is False
    assert alpha["status"] == "ONLINE" and bravo["status"] == "MISSING"
    assert charlie["status"] == "OFFLINE" and charlie["last_event"] == "chau"
    assert alpha["last_event_at"] == "2026-11-29T13:00:00.123Z"
    assert alpha["last_event_at_ms"] == T_MS
    assert alpha["restarts"] == 1 and alpha["boot_id"] == "boot-alpha"
    assert alpha["transport"] == "plaza"
    assert alpha["endpoints"] == {"http": "http://127.0.0.1:1"}


async def test_peers_is_computed_at_each_request(
    client: httpx.AsyncClient, node: FakeNode
) -> None:
    node.views = node.views[:1]
    assert len((await client.get("/v1/peers")).json()["peers"]) == 1


async def test_stream_sends_a_snapshot_then_each_change(
    client: httpx.AsyncClient, node: FakeNode
) -> None:
    async with client.stream("GET", "/v1/stream") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        messages = sse_messages(response)
        snapshot = await next_message(messages, lambda m: m.event is not None)
        assert snapshot.event == "snapshot"
        assert snapshot.json() == (await client.get("/v1/peers")).json()

        # The app's history follows the node too: this stream is the second subscriber.
        assert len(node.subscribers) == 2, "subscribed before the snapshot was sent"
        node.push(
            StatusChanged(
                did=BRAVO,
                name="bravo",
                old=Status.MISSING,
                new=Status.ONLINE,
                at_ms=T_MS + 5,
                cause="event",
                event_id="cd" * 32,
            )
        )
        change = await next_message(messages, lambda m: m.event is not None)
        assert change.event == "change"
        assert change.json() == {
            "did": BRAVO,
            "name": "bravo",
            "old": "MISSING",
            "new": "ONLINE",
            "at": "2026-11-29T13:00:00.128Z",
            "at_ms": T_MS + 5,
            "cause": "event",
            "event_id": "cd" * 32,
        }


async def test_stream_keeps_idle_connections_alive(client: httpx.AsyncClient) -> None:
    # The fixture's app sends a keepalive after 0.5 s of silence.
    async with client.stream("GET", "/v1/stream") as response:
        comment = await next_message(sse_messages(response), lambda m: m.comment is not None)
        assert comment.comment == "keepalive"


async def test_stream_ends_when_the_node_stops(client: httpx.AsyncClient, node: FakeNode) -> None:
    async with client.stream("GET", "/v1/stream") as response:
        messages = sse_messages(response)
        await next_message(messages, lambda m: m.event == "snapshot")
        node.stop()
        async with asyncio.timeout(TIMEOUT_S):
            rest = [m async for m in messages if m.event is not None]
    assert rest == []
    await eventually(lambda: not node.subscribers, "the subscription is released")


def _pumps() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "hereabouts-web-sse-pump"]


async def test_a_client_that_leaves_leaves_no_task_behind(
    client: httpx.AsyncClient, node: FakeNode
) -> None:
    for _ in range(3):
        async with client.stream("GET", "/v1/stream") as response:
            await next_message(sse_messages(response), lambda m: m.event == "snapshot")
            assert len(node.subscribers) == 2  # the history's and this stream's
    await eventually(lambda: len(node.subscribers) == 1, "every stream's subscription is released")
    await eventually(lambda: not _pumps(), "every pump task has finished")


async def test_stopping_the_server_ends_open_streams(node: FakeNode) -> None:
    # A long grace period: if the streams were not ended on purpose, stop() would wait it out.
    server = HttpServer(create_app(node), shutdown_timeout_s=60)
    await server.start()
    try:
        async with (
            httpx.AsyncClient(timeout=TIMEOUT_S, trust_env=False) as client,
            client.stream("GET", f"{server.url}/v1/stream") as response,
        ):
            messages = sse_messages(response)
            await next_message(messages, lambda m: m.event == "snapshot")
            async with asyncio.timeout(TIMEOUT_S):
                await server.stop()
                assert [m async for m in messages if m.event is not None] == []
    finally:
        await server.stop()
    assert not node.subscribers
    assert not _pumps()


async def test_healthz_follows_ok(client: httpx.AsyncClient, node: FakeNode) -> None:
    healthy = await client.get("/healthz")
    assert healthy.status_code == 200
    assert healthy.json() == {"ok": True, "broker": {"connected": True}}
    node.healthy = False
    sick = await client.get("/healthz")
    assert sick.status_code == 503
    assert sick.json() == {"ok": False, "broker": {"connected": False}}


async def test_healthz_reports_a_crashing_check_as_unhealthy(
    client: httpx.AsyncClient, node: FakeNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> dict[str, object]:
        raise RuntimeError("boom")

    monkeypatch.setattr(node, "health", broken)
    response = await client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["ok"] is False


async def test_metrics_export_the_node_registry(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    samples = {
        (s.name, s.labels.get("kind")): s.value for s in families["hereabouts_events_in"].samples
    }
    assert samples[("hereabouts_events_in_total", "hey_there")] == 3


async def test_extra_routes_are_served_beside_ours(node: FakeNode) -> None:
    async def hello(request: object) -> PlainTextResponse:
        return PlainTextResponse("hello")

    app = create_app(node, extra_routes=[Route("/extra", hello)])
    async with (
        HttpServer(app) as server,
        httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT_S, trust_env=False) as client,
    ):
        assert (await client.get("/extra")).text == "hello"
        assert (await client.get("/v1/peers")).status_code == 200


async def test_server_reports_the_port_it_bound(node: FakeNode) -> None:
    async with HttpServer(create_app(node), host="127.0.0.1", port=0) as server:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
    with pytest.raises(RuntimeError):
        _ = server.port


async def test_a_busy_port_fails_at_start(node: FakeNode) -> None:
    async with HttpServer(create_app(node)) as first:
        with pytest.raises(OSError):
            await HttpServer(create_app(node), port=first.port).start()


def test_the_neighbourhood_fixture_has_one_of_each_status() -> None:
    assert {v.status for v in neighbourhood()} == set(Status)


async def test_parts_of_health_that_fail_reach_the_dashboard_as_warnings(
    client: httpx.AsyncClient, node: FakeNode
) -> None:
    node.health = lambda: {  # type: ignore[method-assign]
        "ok": False,
        "identity": {"ok": False, "error": "another process is using this node's key"},
        "storage": {"ok": True},
    }
    body = (await client.get("/v1/peers")).json()
    assert body["node"]["warnings"] == ["another process is using this node's key"]
