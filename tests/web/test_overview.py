"""``GET /v1/node``: the node's health, refusals by reason and site rooms, for the dashboard."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import httpx
import pytest

from hereabouts.sites.counts import RoomCount
from hereabouts.sites.rooms import room_key
from hereabouts.web.app import create_app
from hereabouts.web.overview import REJECTION_COUNTERS, ROOM_KEY_SHOWN, rejections
from hereabouts.web.server import HttpServer
from tests.web.conftest import TIMEOUT_S, FakeNode

ELSEWHERE = room_key("https://elsewhere.example", "lobby")


@pytest.fixture
async def served(node: FakeNode) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, RoomCount]]]:
    """The app with a site hub's worth of rooms (a dict the test fills) and a health part."""
    rooms: dict[str, RoomCount] = {}

    def counts() -> Mapping[str, RoomCount]:
        return rooms

    node.counters.describe("events_rejected", "Events refused at the edge, by reason.", "reason")
    app = create_app(node, rooms=counts, health_parts={"sites": lambda: {"ok": True, "rooms": 2}})
    async with (
        HttpServer(app, port=0) as server,
        httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT_S, trust_env=False) as client,
    ):
        yield client, rooms


async def test_health_is_the_same_report_as_healthz(
    served: tuple[httpx.AsyncClient, dict[str, RoomCount]], node: FakeNode
) -> None:
    client, _ = served
    body = (await client.get("/v1/node")).json()
    assert body["health"] == (await client.get("/healthz")).json()
    assert body["health"]["sites"] == {"ok": True, "rooms": 2}
    node.healthy = False
    assert (await client.get("/v1/node")).json()["health"]["ok"] is False


async def test_refusals_by_reason_come_from_the_registry(
    served: tuple[httpx.AsyncClient, dict[str, RoomCount]], node: FakeNode
) -> None:
    client, _ = served
    first = (await client.get("/v1/node")).json()["rejections"]
    assert first == [
        {
            "metric": "hereabouts_events_rejected_total",
            "title": "Peer events refused",
            "total": 0,
            "by_reason": {},
        }
    ]
    node.counters.add("events_rejected", "bad_signature", 2)
    node.counters.add("events_rejected", "malformed", 5)
    node.counters.add("events_in", "hey_there")  # not a refusal
    body = (await client.get("/v1/node")).json()
    assert body["rejections"][0]["total"] == 7
    # Largest first, as the dashboard lists them.
    assert list(body["rejections"][0]["by_reason"].items()) == [
        ("malformed", 5), ("bad_signature", 2)
    ]


def test_every_refusal_counter_is_read_in_its_order() -> None:
    from prometheus_client.registry import CollectorRegistry

    from hereabouts.metrics import Counters

    registry = CollectorRegistry()
    counters = Counters()
    for name, _ in REJECTION_COUNTERS:
        counters.add(name, "some_reason", 3)
    counters.register(registry)
    found = rejections(registry)
    assert [group["metric"] for group in found] == [
        f"hereabouts_{name}_total" for name, _ in REJECTION_COUNTERS
    ]
    assert all(group["by_reason"] == {"some_reason": 3} for group in found)


async def test_rooms_carry_the_hubs_counts_with_the_floor_and_demo_names(
    served: tuple[httpx.AsyncClient, dict[str, RoomCount]],
) -> None:
    client, rooms = served
    assert (await client.get("/v1/node")).json()["rooms"] == []
    origin = str(client.base_url).rstrip("/")
    lobby = room_key(origin, "lobby")
    rooms[lobby] = RoomCount.of(7, floor=3)
    rooms[room_key(origin, "docs")] = RoomCount.of(1, floor=3)
    rooms[ELSEWHERE] = RoomCount.of(4, floor=3)
    body = (await client.get("/v1/node")).json()
    assert body["rooms"] == [
        {"key": room_key(origin, "docs")[:ROOM_KEY_SHOWN], "name": "docs", "count": None,
         "fewer_than": 3},
        {"key": lobby[:ROOM_KEY_SHOWN], "name": "lobby", "count": 7, "fewer_than": None},
        # Another site's room: known by key only.
        {"key": ELSEWHERE[:ROOM_KEY_SHOWN], "name": None, "count": 4, "fewer_than": None},
    ]
    assert "elsewhere" not in (await client.get("/v1/node")).text


async def test_a_node_without_a_hub_says_so(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v1/node")).json()
    assert body["rooms"] is None
    assert (await client.get("/v1/node")).headers["cache-control"] == "no-store"


async def test_a_failing_room_read_does_not_take_health_down(node: FakeNode) -> None:
    def broken() -> Mapping[str, RoomCount]:
        raise RuntimeError("the hub is gone")

    async with (
        HttpServer(create_app(node, rooms=broken), port=0) as server,
        httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT_S, trust_env=False) as client,
    ):
        response = await client.get("/v1/node")
    assert response.status_code == 200
    assert response.json()["rooms"] is None and response.json()["health"]["ok"] is True
