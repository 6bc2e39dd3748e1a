"""The dashboard in a real headless Chromium, against a real neighbourhood on a real broker.

What ``hereabouts up --peers 3`` runs, assembled here the same way: a node with its home on
disk, three demo peers, and the site hub on its own connection to the same Mosquitto, all
served by one app. The operator's view is checked at desktop (1280 px) and phone (390 px)
widths: a timeline strip drawn for every peer, a change the test causes (a peer leaving)
arriving in the live log and on the strip, the node's health with refusals by reason (a
forged message the test publishes shows up), and the site rooms with a visitor's count.
At 390 px neither the dashboard nor ``/demo/site`` scrolls sideways, peer names do not wrap
mid-word, and the widget's buttons line up.

Both tests run with the hub in the node's process and with the hub in two worker processes
(``hub_mode`` ``workers``, as ``hereabouts up --workers 2`` runs it): then the dashboard shows
the workers' health and the rooms they report.

Screenshots go to ``test-output/dashboard/`` in the checkout, beside the widget test's
``test-output/browser/`` (paths printed, and recorded as test properties); each run replaces
them, and they outlive pytest's rotation of its tmp directories.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hereabouts import config as config_module
from hereabouts.config import Config
from hereabouts.core.effects import Status
from hereabouts.identity import Identity
from hereabouts.ledger import MemoryLedger
from hereabouts.peers.keyring import Keyring
from hereabouts.peers.node import Node
from hereabouts.sites import room_key
from hereabouts.sites.hub import SiteHub
from hereabouts.sites.workers import HubWorkers
from hereabouts.transports.mqtt import MqttSettings, MqttTransport
from hereabouts.web.app import create_app
from hereabouts.web.server import HttpServer
from hereabouts.web.site import build_site_routes, site_upgrades
from tests.browser.support import (
    TIMEOUT_MS,
    PageProblems,
    chromium,
    needs_chromium,
    playwright_api,
)
from tests.fixtures.mosquitto import MosquittoServer

pytestmark = needs_chromium

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
DEMO_PEERS = 3
WAIT_S = 30.0
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "dashboard"

NO_SIDEWAYS_SCROLL = (
    "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
)

# For each peer row: how many lines the first text of its name takes (1 = not wrapped).
NAME_LINES = """() => [...document.querySelectorAll('#peer-rows tr')].map((row) => {
  const walker = document.createTreeWalker(row.querySelector('td'), NodeFilter.SHOW_TEXT);
  const text = walker.nextNode();
  const range = document.createRange();
  range.selectNodeContents(text);
  const tops = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
  return [text.textContent, tops.size];
})"""


@dataclass
class Neighbourhood:
    node: Node
    peers: list[Node]
    hub: SiteHub | HubWorkers
    server: HttpServer


def node_config(home: Path, broker_port: int) -> Config:
    base = config_module.testing(home)
    return base.replace(
        node=dataclasses.replace(
            base.node, broker_url=f"mqtt://127.0.0.1:{broker_port}", keepalive_s=2
        )
    )


@contextlib.asynccontextmanager
async def neighbourhood(
    home: Path, broker_port: int, hub_mode: str
) -> AsyncIterator[Neighbourhood]:
    """A node, its demo peers and its site hub (in process, or two hub worker processes),
    served as ``hereabouts up`` serves them."""
    config = node_config(home, broker_port)
    async with contextlib.AsyncExitStack() as stack:
        node = await stack.enter_async_context(Node(config, name="watcher"))
        plaza = node.transport
        assert isinstance(plaza, MqttTransport)
        hub: SiteHub | HubWorkers
        if hub_mode == "workers":
            hub = await stack.enter_async_context(
                HubWorkers(
                    2,
                    node_name="watcher",
                    mqtt=plaza.settings,
                    sites=config.sites,
                    hub=config.hub,
                    wire=config.wire,
                    listen_host="127.0.0.1",
                )
            )
            node.registry.register(hub.collector())
        else:
            hub = await stack.enter_async_context(
                SiteHub(
                    transport=MqttTransport(node_name="watcher-sites", settings=plaza.settings),
                    config=config.sites,
                    hub=config.hub,
                    listen_host="127.0.0.1",
                )
            )
        hub.counters.register(node.registry)
        app = create_app(
            node,
            extra_routes=build_site_routes(),
            health_parts={"sites": hub.health},
            rooms=hub.counts,
        )
        server = await stack.enter_async_context(
            HttpServer(app, port=0, upgrades=site_upgrades(hub))
        )
        peers = []
        for number in range(1, DEMO_PEERS + 1):
            peer = Node(
                config,
                name=f"demo-{number}",
                identity=Identity.generate(),
                ledger=MemoryLedger(),
                keyring=Keyring(),
                log_changes=False,
            )
            peers.append(await stack.enter_async_context(peer))
        await wait_for(
            lambda: all(node.status_of(p.did) is Status.ONLINE for p in peers),
            "the demo peers ONLINE",
        )
        yield Neighbourhood(node=node, peers=peers, hub=hub, server=server)


async def wait_for(check: object, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not check():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def publish_forgery(broker_port: int) -> None:
    """Something that is not a signed event, on the plaza: the node refuses it (malformed)."""
    transport = MqttTransport(node_name="forger", settings=MqttSettings(port=broker_port))
    await transport.connect()
    try:
        assert await transport.wait_connected(WAIT_S)
        await transport.publish("hereabouts/v1/plaza/newspaper", b'{"not": "an event"}', qos=1)
    finally:
        await transport.close()


class Screenshots:
    def __init__(self, directory: Path, record: pytest.RecordProperty) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._record = record
        print(f"screenshots: {self.directory}")

    async def take(self, page: object, name: str) -> Path:
        path = self.directory / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
        self._record(f"screenshot_{name}", str(path))
        print(f"screenshot: {path}")
        return path


async def assert_no_sideways_scroll(page: object, what: str) -> None:
    scroll, client = await page.evaluate(NO_SIDEWAYS_SCROLL)  # type: ignore[attr-defined]
    assert scroll <= client, f"{what} is {scroll} px wide in a {client} px viewport"


async def assert_strips_drawn(page: object, peers: int) -> None:
    """One strip per peer row, each with a coloured segment reaching now (the right edge)."""
    expect = playwright_api.expect
    rows = page.locator("#peer-rows tr")  # type: ignore[attr-defined]
    await expect(rows).to_have_count(peers)
    strips = page.locator("#peer-rows svg.timeline")  # type: ignore[attr-defined]
    await expect(strips).to_have_count(peers)
    drawn = await strips.evaluate_all(
        """(strips) => strips.map((svg) => {
          const box = svg.getBoundingClientRect();
          const segments = [...svg.querySelectorAll('rect.seg')]
            .filter((r) => ['ONLINE', 'MISSING', 'OFFLINE'].includes(r.dataset.status));
          const right = Math.max(...segments.map(
            (r) => Number(r.getAttribute('x')) + Number(r.getAttribute('width'))));
          return [box.width, box.height, segments.length, right];
        })"""
    )
    for width, height, segments, right in drawn:
        assert width > 100 and height >= 10, drawn
        assert segments >= 1, drawn
        assert right >= 999, drawn  # the strip runs up to now


async def test_an_operator_watches_the_neighbourhood_at_desktop_and_phone_widths(
    mosquitto: MosquittoServer,
    hub_mode: str,
    tmp_path: Path,
    record_property: pytest.RecordProperty,
) -> None:
    expect = playwright_api.expect
    shots = Screenshots(OUTPUT, record_property)
    watch = PageProblems()
    async with (
        neighbourhood(tmp_path / "home", mosquitto.port, hub_mode) as hood,
        chromium() as browser,
    ):
        url = hood.server.url
        # A visitor on the demo page opts in: the rooms panel will count them.
        visitor_context = await browser.new_context(viewport=DESKTOP)  # type: ignore[attr-defined]
        visitor = await visitor_context.new_page()
        visitor.set_default_timeout(TIMEOUT_MS)
        watch.watch(visitor, "visitor")
        await visitor.goto(f"{url}/demo/site")
        await visitor.get_by_role("button", name="Count me in").click()
        await expect(visitor.locator(".hb-count")).to_have_text("1 here", timeout=TIMEOUT_MS)

        context = await browser.new_context(viewport=DESKTOP)  # type: ignore[attr-defined]
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        watch.watch(page, "dashboard")
        await page.goto(f"{url}/")

        # Every peer (the node itself included) has its strip, drawn up to now.
        await expect(page.locator("#count-ONLINE")).to_have_text(str(DEMO_PEERS + 1))
        await assert_strips_drawn(page, DEMO_PEERS + 1)

        # The node's health: every part, each ok, and the refusal counters.
        await expect(page.locator("#health-overall")).to_have_text("healthy")
        health = page.locator("#health")
        for part in ("Broker", "Tasks", "Storage", "Identity", "Network", "Site hub"):
            await expect(health.locator("div.ok dt", has_text=part)).to_have_count(1)
        await expect(health).to_contain_text(f"mqtt://127.0.0.1:{mosquitto.port}")
        rejections = page.locator("#rejections")
        await expect(rejections).to_contain_text("Peer events refused")
        await expect(rejections).to_contain_text("Browser frames refused")

        # The site rooms: the demo page's lobby, named, with the visitor counted.
        lobby = page.locator("#rooms li", has_text="lobby")
        await expect(lobby.locator(".room-count")).to_have_text("1 here")
        await expect(lobby.locator(".room-key")).to_have_text(room_key(url, "lobby")[:8])

        # A forged message on the plaza: refused, and the reason shows up by itself.
        await publish_forgery(mosquitto.port)
        await expect(rejections.locator(".reasons li", has_text="malformed")).to_have_count(1)

        # A peer leaves: the log shows it first, its strip turns OFFLINE at the right end.
        leaver = hood.peers[1]
        await leaver.stop()
        first = page.locator("#log li").first
        await expect(first).to_contain_text("demo-2")
        await expect(first.locator(".log-move")).to_have_text("ONLINE→OFFLINE")
        await expect(first.locator(".log-cause")).to_have_text("event")
        row = page.locator(f'#peer-rows tr[data-did="{leaver.did}"]')
        await expect(row.locator("rect.seg[data-status=OFFLINE]")).to_have_count(1)
        await expect(row.locator("rect.seg[data-status=ONLINE]")).to_have_count(1)
        await expect(page.locator("#count-OFFLINE")).to_have_text("1")
        # The strips are redrawn as time passes: the OFFLINE end grows by itself.
        await page.wait_for_function(
            """(did) => {
              const rect = document.querySelector(
                `#peer-rows tr[data-did="${did}"] rect.seg[data-status=OFFLINE]`);
              return rect !== null && Number(rect.getAttribute('width')) > 20;
            }""",
            arg=leaver.did,
        )
        await shots.take(page, "dashboard-1280")

        # The same page on a phone: no sideways scroll, everything still there.
        await page.set_viewport_size(PHONE)
        await page.wait_for_timeout(500)  # the strips are redrawn after a resize
        await assert_no_sideways_scroll(page, "the dashboard")
        await assert_strips_drawn(page, DEMO_PEERS + 1)
        for name, lines in await page.evaluate(NAME_LINES):
            assert lines == 1, f"{name!r} wraps over {lines} lines"
        await expect(page.locator("#log li").first).to_contain_text("demo-2")
        await expect(lobby.locator(".room-count")).to_have_text("1 here")
        await expect(page.locator("#health-overall")).to_have_text("healthy")
        await shots.take(page, "dashboard-390")

        # The demo page on a phone, with the widget's panel open too.
        await visitor.set_viewport_size(PHONE)
        await visitor.reload()
        await expect(visitor.locator(".hb-count")).to_have_text("1 here", timeout=TIMEOUT_MS)
        await assert_no_sideways_scroll(visitor, "/demo/site")
        await shots.take(visitor, "demo-site-390")
        await visitor.locator(".hb-indicator").click()
        panel = visitor.get_by_role("dialog", name="Site presence")
        await expect(panel).to_be_visible()
        await assert_no_sideways_scroll(visitor, "/demo/site with the panel open")
        box = await panel.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        await shots.take(visitor, "demo-site-390-panel")

        await context.close()
        await visitor_context.close()
    assert watch.problems == []


async def test_the_widgets_buttons_line_up_and_every_page_has_an_icon(
    mosquitto: MosquittoServer,
    hub_mode: str,
    tmp_path: Path,
    record_property: pytest.RecordProperty,
) -> None:
    """The panel's buttons sit on one line with the same top (Close was set lower), and no
    page asks for something that is not there (``/favicon.ico`` was a 404)."""
    expect = playwright_api.expect
    shots = Screenshots(OUTPUT, record_property)
    watch = PageProblems()
    async with (
        neighbourhood(tmp_path / "home", mosquitto.port, hub_mode) as hood,
        chromium() as browser,
    ):
        context = await browser.new_context(viewport=DESKTOP)  # type: ignore[attr-defined]
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        watch.watch(page, "demo")
        await page.goto(f"{hood.server.url}/demo/site")
        await page.get_by_role("button", name="Count me in").click()
        await expect(page.locator(".hb-count")).to_have_text("1 here", timeout=TIMEOUT_MS)
        await page.locator(".hb-indicator").click()
        panel = page.get_by_role("dialog", name="Site presence")
        buttons = [
            panel.get_by_role("button", name="Ghost mode: off"),
            panel.get_by_role("button", name="Stop sharing on this site"),
            panel.get_by_role("button", name="Close"),
        ]
        boxes = [await button.bounding_box() for button in buttons]
        await shots.take(page, "widget-panel-1280")
        assert all(box is not None for box in boxes)
        _, stop, close = boxes
        assert stop is not None and close is not None
        # Close shares its line with the button before it: same top, same height.
        assert abs(close["y"] - stop["y"]) < 1 and abs(close["height"] - stop["height"]) < 1, boxes
        icon = await page.request.get(f"{hood.server.url}/favicon.ico")
        assert icon.status == 200 and icon.headers["content-type"] == "image/x-icon"
        await page.goto(f"{hood.server.url}/")
        await expect(page.locator("#peer-rows tr")).to_have_count(DEMO_PEERS + 1)
        await context.close()
    assert watch.problems == []
