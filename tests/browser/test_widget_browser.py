"""The widget in a real headless Chromium, against a real hub on 127.0.0.1.

Playwright for Python drives Debian's ``chromium`` (``executable_path``; nothing is
downloaded). Two browser contexts are two visitors with separate storage. The acceptance
scenario: both opt in on the demo page and each shows "2 here"; one turns ghost mode on
and the other shows "1 here"; ghost mode survives a reload. Screenshots go to
``test-output/browser/``.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.applications import Starlette

from hereabouts.config import HubConfig, SitesConfig
from hereabouts.sites import room_key
from hereabouts.sites.hub import SiteHub
from hereabouts.transports.memory import MemoryBus
from hereabouts.web.dashboard import dashboard_routes
from hereabouts.web.server import HttpServer
from hereabouts.web.site import build_site_routes

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
]
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "browser"
TIMEOUT_MS = 20_000  # generous: a loaded CI host can be slow to start a browser

CONFIG = SitesConfig(
    did_duration_s=60.0,
    heartbeat_interval_s=1.0,
    stale_timeout_s=3.0,
    rotation_spread_s=0.2,
    max_clock_skew_s=0.5,
)

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (scripts/system-deps.sh)"
)


@contextlib.asynccontextmanager
async def hub_server(
    settings: HubConfig | None = None,
) -> AsyncIterator[tuple[SiteHub, HttpServer]]:
    bus = MemoryBus()
    settings = settings if settings is not None else HubConfig()
    async with SiteHub(transport=bus.transport(name="hub"), config=CONFIG, hub=settings) as hub:
        app = Starlette(routes=[*dashboard_routes(), *build_site_routes(hub)])
        async with HttpServer(app) as server:
            yield hub, server


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[object]:
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=60_000
        )
        try:
            yield browser
        finally:
            await browser.close()


async def test_two_visitors_count_each_other_and_ghost_mode_holds(
    record_property: pytest.RecordProperty,
) -> None:
    expect = playwright_api.expect
    OUTPUT.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []

    def console_error(name: str, message: object) -> None:
        # A CSP violation or a script error shows up here; failed loads are checked by URL.
        text = str(message.text)  # type: ignore[attr-defined]
        if message.type == "error" and not text.startswith("Failed to load resource"):  # type: ignore[attr-defined]
            problems.append(f"{name}: {text}")

    def failed_response(name: str, response: object) -> None:
        url = str(response.url)  # type: ignore[attr-defined]
        if response.status >= 400 and not url.endswith("/favicon.ico"):  # type: ignore[attr-defined]
            problems.append(f"{name}: {response.status} {url}")  # type: ignore[attr-defined]

    async def shot(page: object, name: str) -> None:
        path = OUTPUT / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
        record_property(f"screenshot_{name}", str(path))
        print(f"screenshot: {path}")

    async with hub_server() as (hub, server), chromium() as browser:
        url = f"{server.url}/demo/site"
        pages = []
        for name in ("a", "b"):
            context = await browser.new_context()  # type: ignore[attr-defined]
            page = await context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.on("console", lambda m, n=name: console_error(n, m))
            page.on("response", lambda r, n=name: failed_response(n, r))
            page.on("pageerror", lambda e, n=name: problems.append(f"{n}: {e}"))
            await page.goto(url)
            pages.append(page)
        a, b = pages

        # Not opted in: a prompt, no indicator, no connection.
        await expect(a.get_by_role("button", name="Count me in")).to_be_visible()
        await expect(a.locator(".hb-indicator")).to_be_hidden()
        await shot(a, "1-prompt")
        assert hub.connections == 0

        # The room keys the browser computes are the ones Python computes.
        computed = await a.evaluate(
            "async () => { const w = await import('/widget.js');"
            " return [await w.roomKey('HTTPS://Example.COM:443/x?y', 'lobby'),"
            "         await w.roomKey('https://bücher.example', 'Café ☕')]; }"
        )
        assert computed == [
            room_key("https://example.com", "lobby"),
            room_key("https://bücher.example", "Café ☕"),
        ]

        for page in pages:
            await page.get_by_role("button", name="Count me in").click()
        for page in pages:
            await expect(page.locator(".hb-count")).to_have_text("2 here", timeout=TIMEOUT_MS)
        await shot(a, "2-two-here-a")
        await shot(b, "2-two-here-b")

        # The room picker lists every room with its count.
        await a.locator(".hb-indicator").click()
        panel = a.get_by_role("dialog", name="Site presence")
        await expect(panel).to_be_visible()
        rooms = panel.locator(".hb-room")
        await expect(rooms).to_have_text(["lobby — 2 here (you)", "docs — 0 here"])
        await expect(panel).to_contain_text("Counts only")
        await expect(panel).to_contain_text("changes every 60 seconds")
        await shot(a, "3-panel")

        # Ghost mode on in A: B drops to 1, A says plainly that it is not counted.
        ghost = panel.get_by_role("button", name="Ghost mode: off")
        await ghost.click()
        await expect(panel.get_by_role("button", name="Ghost mode: on")).to_have_attribute(
            "aria-pressed", "true"
        )
        await expect(b.locator(".hb-count")).to_have_text("1 here", timeout=TIMEOUT_MS)
        await expect(a.locator(".hb-count")).to_have_text("Ghost mode on")
        await shot(a, "4-ghost-a")
        await shot(b, "4-one-here-b")

        # Ghost mode survives a reload: A stays silent and does not even connect.
        await a.reload()
        await expect(a.locator(".hb-count")).to_have_text("Ghost mode on")
        await a.wait_for_timeout(3 * CONFIG.heartbeat_interval_s * 1000)
        await expect(b.locator(".hb-count")).to_have_text("1 here")
        assert hub.connections == 1
        await shot(a, "5-ghost-after-reload-a")

        # B reloads: its old DID leaves as the page goes (a leave signed in advance), so
        # the new page does not count B twice while the old DID goes stale.
        leaves = hub.counters.get("site_events_in", "leave")
        await b.reload()
        await expect(b.locator(".hb-count")).to_have_text("1 here", timeout=TIMEOUT_MS)
        assert hub.counters.get("site_events_in", "leave") == leaves + 1
        await b.wait_for_timeout(1000)
        await expect(b.locator(".hb-count")).to_have_text("1 here")
        assert hub.counts()[room_key(server.url, "lobby")].value == 1

        # And B switching rooms moves its count.
        await b.locator(".hb-indicator").click()
        await b.locator(".hb-room", has_text="docs").click()
        await expect(b.locator(".hb-room")).to_have_text(["lobby — 0 here", "docs — 1 here (you)"])
        await shot(b, "6-room-switch-b")

        for page in pages:
            await page.context.close()

    assert hub.counters.by_label("site_hub_rejects") == {}
    assert problems == []


async def test_a_hub_that_forces_ghost_mode_counts_nobody() -> None:
    """Flag presence_ghost_mode_hard_off: an opted-in visitor sees counts, sends nothing,
    and is told plainly that the site turned ghost mode on."""
    expect = playwright_api.expect
    OUTPUT.mkdir(parents=True, exist_ok=True)
    async with (
        hub_server(HubConfig(ghost_mode_hard_off=True)) as (hub, server),
        chromium() as browser,
    ):
        context = await browser.new_context()  # type: ignore[attr-defined]
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        await page.goto(f"{server.url}/demo/site")
        await page.get_by_role("button", name="Count me in").click()
        await expect(page.locator(".hb-count")).to_have_text("Ghost mode on")
        await page.locator(".hb-indicator").click()
        panel = page.get_by_role("dialog", name="Site presence")
        forced = panel.get_by_role("button", name="Ghost mode: on (set by this site)")
        await expect(forced).to_be_disabled()
        await expect(panel).to_contain_text("turned ghost mode on for every visitor")
        await page.wait_for_timeout(3 * CONFIG.heartbeat_interval_s * 1000)
        await page.screenshot(path=str(OUTPUT / "7-ghost-forced.png"), full_page=True)
        assert hub.connections == 1  # connected, watching counts
        assert hub.counters.by_label("site_hub_frames") == {"watch": 1}
        assert hub.counts()[room_key(server.url, "lobby")].value == 0
        await context.close()
