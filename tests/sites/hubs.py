"""A site hub served over real HTTP two ways, so the same tests run against both.

``process``: one :class:`SiteHub` in the test's own process, its sockets served by the
HTTP server's process as ``hereabouts up`` does by default. ``workers``: the same HTTP
server handing every browser's socket to :data:`WORKERS` hub worker processes
(:class:`HubWorkers`, as ``hereabouts up --workers 2``), which reach each other and
everybody else through a real Mosquitto (a :class:`MemoryBus` does not cross processes).

What a test reads of the hub goes through :class:`ServedHub`: ``counters`` and ``counts()``
are the hub's own in process and the parent's view in workers mode, which the workers
refresh every second (:data:`REPORT_INTERVAL_S`). A test waits for a value with
:func:`~tests.sites.support.eventually`, and before it asserts that something did *not*
happen it calls :meth:`ServedHub.settle`, which in workers mode waits until every worker
has reported twice since (so what it had done by then is in the parent's sums).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from hereabouts.config import HttpLimits, HubConfig, SitesConfig, WireLimits
from hereabouts.metrics import Counters
from hereabouts.sites.counts import RoomCount
from hereabouts.sites.hub import SiteHub
from hereabouts.sites.worker_channel import REPORT_INTERVAL_S
from hereabouts.sites.workers import HubWorkers
from hereabouts.transports.base import Transport
from hereabouts.transports.memory import MemoryBus
from hereabouts.transports.mqtt import MqttSettings, MqttTransport
from hereabouts.web.server import HttpServer
from hereabouts.web.site import SOCKET_PATH, build_site_routes, site_upgrades
from tests.fixtures.mosquitto import MosquittoServer
from tests.sites.support import eventually

HUB_MODES = ("process", "workers")
"""The two ways :func:`serve_hub` serves a hub (the ids of the ``hub_mode`` parameter)."""

WORKERS = 2
"""Hub worker processes in ``workers`` mode: the fewest that can disagree."""

START_TIMEOUT_S = 20.0
"""How long the workers may take to connect to the broker (they do in well under a
second; a loaded host is slow to start processes)."""


class Plaza:
    """Where the hub's events travel: a :class:`MemoryBus`, or a real broker (a test's
    Mosquitto, or any ``mqtt`` settings)."""

    def __init__(
        self,
        *,
        bus: MemoryBus | None = None,
        broker: MosquittoServer | None = None,
        mqtt: MqttSettings | None = None,
    ) -> None:
        if broker is not None:
            mqtt = MqttSettings(host=broker.host, port=broker.port)
        assert (bus is None) != (mqtt is None), "a bus or a broker"
        self.bus = bus
        self.mqtt = mqtt

    @property
    def settings(self) -> MqttSettings:
        assert self.mqtt is not None, "hub workers need a broker"
        return self.mqtt

    def transport(self, name: str) -> Transport:
        """A new connection to this plaza (for a hub, a manager, a wire recorder)."""
        if self.bus is not None:
            return self.bus.transport(name=name)
        return MqttTransport(node_name=name, settings=self.settings)


@pytest.fixture(params=HUB_MODES)
def hub_mode(request: pytest.FixtureRequest) -> str:
    """``process`` or ``workers``: how :func:`serve_hub` serves the test's hub."""
    return str(request.param)


@pytest.fixture
def hub_plaza(hub_mode: str, request: pytest.FixtureRequest) -> Plaza:
    """A memory bus for a hub in process; a Mosquitto (the fixture's) for hub workers."""
    if hub_mode == "process":
        return Plaza(bus=MemoryBus())
    return Plaza(broker=request.getfixturevalue("mosquitto"))


@dataclass
class ServedHub:
    """A hub behind a real HTTP server, in process or in worker processes."""

    hub: SiteHub | HubWorkers
    server: HttpServer
    plaza: Plaza

    @property
    def in_process(self) -> bool:
        return isinstance(self.hub, SiteHub)

    @property
    def url(self) -> str:
        """The hub's WebSocket."""
        return f"ws://127.0.0.1:{self.server.port}{SOCKET_PATH}"

    @property
    def counters(self) -> Counters:
        return self.hub.counters

    def counts(self) -> dict[str, RoomCount]:
        return self.hub.counts()

    def hub_health(self) -> list[dict[str, Any]]:
        """The health report of every hub: the one in process, or each worker's latest."""
        if isinstance(self.hub, SiteHub):
            return [self.hub.health()]
        workers = self.hub.health()["workers"]
        assert isinstance(workers, list)
        return [worker["hub"] for worker in workers if "hub" in worker]

    def total(self, key: str) -> int:
        """A number of every hub's health report, added up (``connections``,
        ``addresses``, ``rooms``, ``idle_rooms``): a client's address is one worker's."""
        return sum(int(report[key]) for report in self.hub_health())

    @property
    def connections(self) -> int:
        return self.total("connections")

    async def settle(self) -> None:
        """In workers mode: wait until every worker has reported twice since now, so the
        parent's counters, counts and health include all it had done by now."""
        if isinstance(self.hub, HubWorkers):
            await _reports(self.hub, 2)


async def _reports(workers: HubWorkers, wanted: int) -> None:
    """Until every worker has sent ``wanted`` new reports (a report's age drops)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10 * REPORT_INTERVAL_S * wanted
    ages: list[float] | None = None
    fresh: list[int] = []
    while True:
        now = [_age(worker) for worker in workers.health()["workers"]]  # type: ignore[union-attr]
        if ages is None:
            fresh = [0] * len(now)
        else:
            fresh = [n + (age < before) for n, age, before in zip(fresh, now, ages, strict=True)]
        ages = now
        if all(n >= wanted for n in fresh):
            return
        assert loop.time() < deadline, "the hub workers stopped reporting"
        await asyncio.sleep(0.02)


def _age(worker: dict[str, Any]) -> float:
    age = worker["report_age_s"]
    return float("inf") if age is None else float(age)


async def wait_connected(served: ServedHub) -> None:
    """Until the hub (every worker's) is connected to its plaza."""
    if isinstance(served.hub, SiteHub):
        assert await served.hub.transport.wait_connected(START_TIMEOUT_S)
        return
    workers = served.hub

    def connected() -> bool:
        reports = workers.health()["workers"]
        assert isinstance(reports, list)
        return all(w.get("hub", {}).get("broker", {}).get("connected") for w in reports)

    await eventually(connected, timeout_s=START_TIMEOUT_S)


@contextlib.asynccontextmanager
async def serve_hub(
    plaza: Plaza,
    mode: str,
    *,
    config: SitesConfig,
    hub: HubConfig | None = None,
    listen_host: str = "127.0.0.1",
    name: str = "hub",
    routes: Sequence[BaseRoute] | None = None,
    limits: HttpLimits | None = None,
) -> AsyncIterator[ServedHub]:
    """A hub on ``plaza``, served by a real HTTP server on 127.0.0.1 with the site's routes
    (or ``routes``): in this process (``mode`` ``process``), or through :data:`WORKERS`
    worker processes (``workers``, on a broker)."""
    assert mode in HUB_MODES, mode
    settings = hub if hub is not None else HubConfig()
    site_hub: SiteHub | HubWorkers
    if mode == "process":
        site_hub = SiteHub(
            transport=plaza.transport(name),
            config=config,
            hub=settings,
            listen_host=listen_host,
        )
    else:
        site_hub = HubWorkers(
            WORKERS,
            node_name=name,
            mqtt=plaza.settings,
            sites=config,
            hub=settings,
            wire=WireLimits(),
            listen_host=listen_host,
        )
    app = Starlette(routes=list(routes) if routes is not None else build_site_routes())
    async with (
        site_hub,
        HttpServer(app, limits=limits, upgrades=site_upgrades(site_hub)) as server,
    ):
        served = ServedHub(hub=site_hub, server=server, plaza=plaza)
        await wait_connected(served)
        yield served
