"""The widget in a real headless Chromium, against a real hub on 127.0.0.1.

Playwright for Python drives Debian's ``chromium`` (``executable_path``; nothing is
downloaded). Two browser contexts are two visitors with separate storage. The acceptance
scenario: both opt in on the demo page and each shows "2 here"; one turns ghost mode on
and the other shows "1 here"; ghost mode survives a reload. A page of another origin (the
same host on another port) cannot count its visitors in the hub's site, whatever its
``data-origin`` says; a hub asking for proof of work counts visitors whose widget found it,
and the time the widget took is measured. Screenshots go to ``test-output/browser/``.

Every test runs against a hub in the test's process and against two hub worker processes
on a real Mosquitto (:mod:`tests.sites.hubs`, as ``hereabouts up --workers 2``). There the
server trusts 127.0.0.1 as a proxy and the two visitors of a test say they come from
:data:`VISITOR_ADDRESSES` (``X-Forwarded-For`` on every request of their browser context),
so they are served by different workers and count each other through the plaza.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import statistics
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from hereabouts.config import HttpLimits, HubConfig, SitesConfig
from hereabouts.core.admission import POW_TAG, leading_zero_bits
from hereabouts.core.rotation import HeartbeatPlan
from hereabouts.sites import room_key
from hereabouts.sites.workers import HubWorkers
from hereabouts.web.dashboard import dashboard_routes
from hereabouts.web.server import HttpServer
from hereabouts.web.site import build_site_routes
from tests.browser.support import TIMEOUT_MS, chromium, needs_chromium, playwright_api
from tests.sites.hubs import Plaza, ServedHub, serve_hub
from tests.sites.support import eventually

OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "browser"

CONFIG = SitesConfig(
    did_duration_s=60.0,
    heartbeat_interval_s=1.0,
    stale_timeout_s=3.0,
    rotation_spread_s=0.2,
    max_clock_skew_s=0.5,
)

pytestmark = needs_chromium


VISITOR_ADDRESSES = ("127.0.0.2", "127.0.0.4")
"""Where the two visitors of a test come from in workers mode: addresses that two workers
divide between them (the first test checks that both workers served a visitor)."""

HubServer = Callable[..., AbstractAsyncContextManager[tuple[ServedHub, HttpServer]]]


@pytest.fixture
def hub_server(hub_plaza: Plaza, hub_mode: str) -> HubServer:
    """``hub_server(HubConfig(...))``: the hub, the dashboard and the site's routes on a
    real HTTP server; the hub in process or in two workers (see the module's doc)."""

    @contextlib.asynccontextmanager
    async def serve(
        settings: HubConfig | None = None,
    ) -> AsyncIterator[tuple[ServedHub, HttpServer]]:
        proxied = HttpLimits(trusted_proxies=("127.0.0.1",)) if hub_mode == "workers" else None
        async with serve_hub(
            hub_plaza,
            hub_mode,
            config=CONFIG,
            hub=settings,
            routes=[*dashboard_routes(), *build_site_routes()],
            limits=proxied,
        ) as served:
            yield served, served.server

    return serve


def visitor(hub: ServedHub, number: int) -> dict[str, Any]:
    """Browser context options for visitor ``number`` (see the module's doc)."""
    if hub.in_process:
        return {}
    address = VISITOR_ADDRESSES[number % len(VISITOR_ADDRESSES)]
    return {"extra_http_headers": {"X-Forwarded-For": address}}


async def test_two_visitors_count_each_other_and_ghost_mode_holds(
    hub_server: HubServer, record_property: pytest.RecordProperty
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
        if response.status >= 400:  # type: ignore[attr-defined]
            problems.append(f"{name}: {response.status} {url}")  # type: ignore[attr-defined]

    async def shot(page: object, name: str) -> None:
        path = OUTPUT / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
        record_property(f"screenshot_{name}", str(path))
        print(f"screenshot: {path}")

    async with hub_server() as (hub, server), chromium() as browser:
        url = f"{server.url}/demo/site"
        pages = []
        for number, name in enumerate(("a", "b")):
            context = await browser.new_context(**visitor(hub, number))  # type: ignore[attr-defined]
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
        if isinstance(hub.hub, HubWorkers):  # each visitor on a worker of its own
            workers = hub.hub.health()["workers"]
            assert [w["connections_handed"] for w in workers] == [1, 1]  # type: ignore[index]
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
        await hub.settle()
        assert hub.connections == 1
        await shot(a, "5-ghost-after-reload-a")

        # B reloads: its old DID leaves as the page goes (a leave signed in advance), so
        # the new page does not count B twice while the old DID goes stale.
        leaves = hub.counters.get("site_events_in", "leave")
        await b.reload()
        await expect(b.locator(".hb-count")).to_have_text("1 here", timeout=TIMEOUT_MS)
        await eventually(lambda: hub.counters.get("site_events_in", "leave") == leaves + 1)
        await b.wait_for_timeout(1000)
        await expect(b.locator(".hb-count")).to_have_text("1 here")
        await hub.settle()
        assert hub.counters.get("site_events_in", "leave") == leaves + 1
        assert hub.counts()[room_key(server.url, "lobby")].value == 1

        # And B switching rooms moves its count.
        await b.locator(".hb-indicator").click()
        await b.locator(".hb-room", has_text="docs").click()
        await expect(b.locator(".hb-room")).to_have_text(["lobby — 0 here", "docs — 1 here (you)"])
        await shot(b, "6-room-switch-b")

        for page in pages:
            await page.context.close()
        await hub.settle()

    assert hub.counters.by_label("site_hub_rejects") == {}
    assert problems == []


async def test_a_hub_that_forces_ghost_mode_counts_nobody(hub_server: HubServer) -> None:
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
        await hub.settle()
        assert hub.connections == 1  # connected, watching counts
        assert hub.counters.by_label("site_hub_frames") == {"watch": 1}
        assert hub.counts()[room_key(server.url, "lobby")].value == 0
        await context.close()


@contextlib.asynccontextmanager
async def foreign_page(hub_url: str, data_origin: str | None) -> AsyncIterator[HttpServer]:
    """A page of another origin (same host, another port) embedding the hub's widget, with
    ``data-origin`` set to ``data_origin`` (None: the page's own)."""
    claim = "" if data_origin is None else f' data-origin="{data_origin}"'
    html = (
        "<!doctype html><html><head><meta charset=utf-8><title>elsewhere</title></head>"
        f'<body><div id="presence"></div><script type="module" src="{hub_url}/widget.js"'
        f'{claim} data-rooms="lobby" data-target="#presence"></script></body></html>'
    )

    async def page(request: object) -> HTMLResponse:
        return HTMLResponse(html)

    async with HttpServer(Starlette(routes=[Route("/", page)])) as server:
        yield server


async def test_a_page_of_another_origin_cannot_count_in_the_hubs_site(
    hub_server: HubServer,
) -> None:
    """Cross-origin counting is refused: the browser puts the page's origin on the
    handshake, so a ``data-origin`` naming the hub's site is caught at ``watch``, and a hub
    that lists its origins does not even let the page connect."""
    expect = playwright_api.expect
    OUTPUT.mkdir(parents=True, exist_ok=True)
    async with hub_server() as (hub, server), chromium() as browser:
        lobby = room_key(server.url, "lobby")
        async with foreign_page(server.url, data_origin=server.url) as elsewhere:
            context = await browser.new_context()  # type: ignore[attr-defined]
            page = await context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            await page.goto(f"{elsewhere.url}/")
            await page.get_by_role("button", name="Count me in").click()
            await expect(page.locator(".hb-count")).to_have_text("not counted on this site")
            await page.screenshot(path=str(OUTPUT / "8-foreign-origin.png"), full_page=True)
            await hub.settle()
            assert hub.counters.get("site_hub_rejects", "wrong_origin") == 1
            assert hub.counters.by_label("site_events_in") == {}
            assert lobby not in hub.counts() or hub.counts()[lobby].value == 0
            # Its own origin works: the same page without the claim counts in its own rooms.
            await context.close()
        async with foreign_page(server.url, data_origin=None) as own:
            context = await browser.new_context()  # type: ignore[attr-defined]
            page = await context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            await page.goto(f"{own.url}/")
            await page.get_by_role("button", name="Count me in").click()
            await expect(page.locator(".hb-count")).to_have_text("1 here")
            own_lobby = room_key(own.url, "lobby")
            await eventually(lambda: own_lobby in hub.counts())
            await eventually(lambda: hub.counts()[own_lobby].value == 1)
            await context.close()

    listed = HubConfig(allowed_origins=("https://only.example",))
    async with (
        hub_server(listed) as (hub, server),
        chromium() as browser,
        foreign_page(server.url, data_origin=None) as elsewhere,
    ):
        context = await browser.new_context()  # type: ignore[attr-defined]
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        await page.goto(f"{elsewhere.url}/")
        await page.get_by_role("button", name="Count me in").click()
        await expect(page.locator(".hb-count")).to_have_text("not counted on this site")
        await hub.settle()
        assert hub.counters.get("site_hub_rejects", "origin_not_allowed") == 1
        assert hub.connections == 0
        await context.close()


async def test_the_widget_keeps_the_schedule_of_core_rotation_draw_for_draw(
    hub_server: HubServer,
) -> None:
    """The widget's nextHeartbeat and HeartbeatPlan.next_after, fed the same draws, give
    the same times and take the same number of draws: around boundaries, inside and past
    the spread, for the default spread of one interval and for shorter ones."""
    rng = random.Random(11)
    cases = []
    for interval, duration, spread in (
        (10_000, 300_000, 10_000),
        (10_000, 300_000, 1_000),
        (1_000, 60_000, 200),
        (5_000, 20_000, 4_000),
    ):
        base = 5_666_667 * duration
        offsets = [0, 1, spread - 1, spread, spread + 1, interval - 1, interval]
        offsets += [duration - interval - 1, duration - interval, duration - 1]
        offsets += [rng.randrange(duration) for _ in range(40)]
        for offset in offsets:
            draws = [rng.random() for _ in range(2)]
            cases.append((base + offset, interval, duration, spread, draws))
    async with hub_server() as (_, server), chromium() as browser:
        page = await browser.new_page()  # type: ignore[attr-defined]
        page.set_default_timeout(TIMEOUT_MS)
        await page.goto(f"{server.url}/demo/site")
        got = await page.evaluate(
            "async (cases) => { const w = await import('/widget.js');"
            " return cases.map(([sentAt, interval, duration, spread, draws]) => {"
            "   let taken = 0; const random = () => draws[taken++];"
            "   const cadence = { heartbeat_interval_ms: interval, did_duration_ms: duration,"
            "                     rotation_spread_ms: spread };"
            "   return [w.nextHeartbeat(sentAt, cadence, random), taken]; }); }",
            cases,
        )
    want = []
    for sent_at, interval, duration, spread, draws in cases:
        uniform = _Draws(draws)
        plan = HeartbeatPlan(
            interval_ms=interval, duration_ms=duration, spread_ms=spread, uniform=uniform
        )
        want.append([plan.next_after(sent_at), uniform.taken])
    assert got == want
    # Met: plain intervals, boundaries, and first heartbeats of an epoch whose phase fell
    # inside the spread (the cadence goes on) and past it.
    kinds = set()
    for (due, taken), (sent_at, interval, duration, spread, _) in zip(want, cases, strict=True):
        first = sent_at % duration < spread
        if due >= sent_at - sent_at % duration + duration:
            kinds.add("boundary")
        else:
            kinds.add(
                ("first, " if first else "") + ("cadence" if due == sent_at + interval else "phase")
            )
            assert taken == first
    assert kinds == {"boundary", "cadence", "first, cadence", "first, phase"}, kinds


class _Draws:
    def __init__(self, draws: list[float]) -> None:
        self.draws = draws
        self.taken = 0

    def random(self) -> float:
        self.taken += 1
        return self.draws[self.taken - 1]


POW_BITS = 14
"""The difficulty the docs suggest for hubs that turn proof of work on."""


async def test_proof_of_work_costs_a_browser_little(
    hub_server: HubServer, record_property: pytest.RecordProperty
) -> None:
    """With ``pow_bits`` on, the widget finds a nonce for each new key and is counted; the
    search is timed in the page (twenty fresh keys and challenges): its median must stay
    under the 100 ms a visitor may pay (a generous bound: it measures about a tenth of
    that here; the figures are printed and recorded). The widget's digest is Python's."""
    expect = playwright_api.expect
    async with (
        hub_server(HubConfig(pow_bits=POW_BITS)) as (hub, server),
        chromium() as browser,
    ):
        pages = []
        for number in range(2):
            context = await browser.new_context(**visitor(hub, number))  # type: ignore[attr-defined]
            page = await context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            await page.goto(f"{server.url}/demo/site")
            await page.get_by_role("button", name="Count me in").click()
            pages.append(page)
        for page in pages:
            await expect(page.locator(".hb-count")).to_have_text("2 here", timeout=TIMEOUT_MS)
        await hub.settle()
        assert hub.counters.get("site_hub_rejects", "pow_required") == 0
        assert hub.counters.get("site_hub_rejects", "pow_invalid") == 0
        shown = await pages[0].locator(".hereabouts-widget").get_attribute("data-pow-ms")
        assert shown is not None

        challenge = bytes(range(16))
        did = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
        digest, nonce = await pages[0].evaluate(
            "async ([challenge, did, bits]) => { const w = await import('/widget.js');"
            " const c = Uint8Array.from(challenge);"
            " const nonce = await w.solvePow(c, did, bits);"
            " return [w.powDigest(c, did, '12345'), nonce]; }",
            [list(challenge), did, POW_BITS],
        )
        assert digest == hashlib.sha256(POW_TAG + challenge + did.encode() + b"12345").hexdigest()
        solved = hashlib.sha256(POW_TAG + challenge + did.encode() + nonce.encode()).digest()
        assert leading_zero_bits(solved) >= POW_BITS

        times_ms = await pages[0].evaluate(
            "async (bits) => { const w = await import('/widget.js'); const out = [];"
            " for (let i = 0; i < 20; i++) {"
            "   const c = crypto.getRandomValues(new Uint8Array(16));"
            "   const k = await w.ephemeralKey(); const t = performance.now();"
            "   await w.solvePow(c, k.did, bits); out.push(performance.now() - t); }"
            " return out; }",
            POW_BITS,
        )
        mean = statistics.fmean(times_ms)
        record_property("pow_ms_mean", round(mean, 1))
        record_property("pow_ms_max", round(max(times_ms), 1))
        median = statistics.median(times_ms)
        print(
            f"proof of work, {POW_BITS} bits, 20 keys in headless Chromium: mean "
            f"{mean:.1f} ms, median {median:.1f} ms, max {max(times_ms):.1f} ms "
            f"({sorted(round(t) for t in times_ms)}); the widget's own: {shown} ms"
        )
        assert median < 100.0
        for page in pages:
            await page.context.close()
