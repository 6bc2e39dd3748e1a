"""Acceptance: fifty visitors over two PresenceManagers and two hubs on a real Mosquitto.

A :class:`PresenceManager` is one visitor's presence, so the fifty are two Python visitors
(one manager each) and forty-eight browser visitors, twenty-four on each of two hubs. Each
browser visitor is a :class:`SimulatedWidget`: its own WebSocket to its hub, events signed
the way the widget signs them, keys rotated on the widget's schedule. The hubs republish to
the plaza, so everybody shares one count.

Observers are all of them: both managers (``count``), both hubs (``counts``) and every
widget (the count its hub last pushed to it). With a 2 s epoch, through three rotations,
every observer shows exactly fifty at every sample; with visitors leaving and arriving
around a boundary, no observer misses by more than the arrivals and departures of the last
heartbeat interval.

It runs twice: with each hub in the test's process, and with each hub two worker processes
behind its HTTP server (``hub_mode`` ``workers``, as ``hereabouts up --workers 2``), so four
hub processes share the count. A hub's own count is then the one its workers last reported
(every :data:`REPORT_INTERVAL_S`), and around a boundary its window of arrivals and
departures is that much longer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from pathlib import Path

import pytest

from hereabouts.config import HubConfig
from hereabouts.sites import PresenceManager, room_key
from hereabouts.sites.worker_channel import REPORT_INTERVAL_S
from hereabouts.sites.workers import HubWorkers
from hereabouts.transports.mqtt import MqttSettings, MqttTransport
from tests.fixtures.mosquitto import MosquittoServer
from tests.sites.hubs import Plaza, ServedHub, serve_hub

from .support import ACCEPTANCE, CATCH_UP_S, Sampler, SimulatedWidget, WireRecorder, eventually

ORIGIN = "https://two-hubs.example"
ROOM = room_key(ORIGIN, "lobby")
PER_HUB = 24
VISITORS = 2 + 2 * PER_HUB

CONFIG = ACCEPTANCE


def transport(server: MosquittoServer, name: str) -> MqttTransport:
    return MqttTransport(node_name=name, settings=MqttSettings(host=server.host, port=server.port))


def epoch_now() -> int:
    return int(time.time() // CONFIG.did_duration_s)


@pytest.mark.timeout(120)
async def test_fifty_visitors_over_two_managers_and_two_hubs(
    mosquitto: MosquittoServer, hub_mode: str, tmp_path: Path
) -> None:
    rng = random.Random(5)
    async with contextlib.AsyncExitStack() as stack:
        wire = await stack.enter_async_context(WireRecorder(transport(mosquitto, "wire")))
        assert await wire.transport.wait_connected(10)

        hubs: list[ServedHub] = []
        for name in ("hub-a", "hub-b"):
            hub = await stack.enter_async_context(
                serve_hub(
                    Plaza(broker=mosquitto),
                    hub_mode,
                    config=CONFIG,
                    hub=HubConfig(allowed_origins=(ORIGIN,)),
                    listen_host="0.0.0.0",  # not loopback: no origin but the listed one
                    name=name,
                )
            )
            hubs.append(hub)
        urls = [hub.url for hub in hubs]
        # A hub's count, as the test reads it, is this much older in workers mode.
        hub_lag_s = 0.0 if hub_mode == "process" else REPORT_INTERVAL_S

        managers: list[PresenceManager] = []
        for name in ("py-a", "py-b"):
            pm = await stack.enter_async_context(
                PresenceManager(
                    transport=transport(mosquitto, name), home=tmp_path / name, config=CONFIG
                )
            )
            assert await pm.transport.wait_connected(10)
            pm.consent.grant(ORIGIN)
            managers.append(pm)

        widgets: list[SimulatedWidget] = []
        addresses = itertools.count(1)

        async def arrive(url: str) -> SimulatedWidget:
            # Each visitor from an address of its own, as people on their own connections
            # (the hub budgets per address).
            address = f"127.0.1.{next(addresses)}"
            widget = SimulatedWidget(url, ORIGIN, "lobby", rng=rng, address=address)
            stack.push_async_callback(widget.close)
            await widget.start()
            widgets.append(widget)
            return widget

        await asyncio.gather(*(pm.join(ORIGIN) for pm in managers))
        for url in urls:
            await asyncio.gather(*(arrive(url) for _ in range(PER_HUB)))

        def hub_counts() -> list[object]:
            return [hub.counts()[ROOM].value if ROOM in hub.counts() else None for hub in hubs]

        def counts(present: list[SimulatedWidget]) -> list[object]:
            managed = [pm.count(ORIGIN) for pm in managers]
            return [*managed, *hub_counts(), *(w.count for w in present)]

        await eventually(lambda: set(counts(widgets)) == {VISITORS}, timeout_s=30)
        for hub in hubs:  # with workers, each hub's visitors are spread over both
            if isinstance(hub.hub, HubWorkers):
                workers = hub.hub.health()["workers"]
                handed = [w["connections_handed"] for w in workers]  # type: ignore[union-attr]
                assert len(handed) == 2 and all(handed), handed

        # --- steady state through three rotations: exact at every sample --------------------
        first_epoch = epoch_now()
        misses: list[tuple[float, list[object]]] = []
        sampler = Sampler(0.05, catch_up_s=CATCH_UP_S)
        judged = True
        while epoch_now() < first_epoch + 3 or time.time() % CONFIG.did_duration_s < 0.6:
            seen = counts(widgets)
            if judged and set(seen) != {VISITORS}:
                misses.append((time.time() % CONFIG.did_duration_s, seen))
            judged = await sampler.judged()
        assert misses == [], sampler.stalls
        sampler.check()
        assert sum(pm.counters.get("site_rotations") for pm in managers) >= 3 * len(managers)

        # --- churn around a boundary: misses bounded by one interval of arrivals/departures --
        await asyncio.sleep(CONFIG.did_duration_s - time.time() % CONFIG.did_duration_s - 0.3)
        changes: list[float] = []
        leaving = [*widgets[:2], *widgets[PER_HUB : PER_HUB + 2]]  # two from each hub
        staying = [w for w in widgets if w not in leaving]
        for widget in leaving:
            await widget.leave()
            changes.append(time.monotonic())
        newcomers: list[SimulatedWidget] = []
        for url in (*urls, *urls):
            newcomers.append(await arrive(url))
            changes.append(time.monotonic())
        window = CONFIG.heartbeat_interval_s + 0.25  # one interval, plus delivery slack
        end = time.monotonic() + 2 * CONFIG.did_duration_s
        sampler = Sampler(0.05, catch_up_s=CATCH_UP_S)
        judged = True
        while time.monotonic() < end:
            now = time.monotonic()
            churn = sum(1 for t in changes if now - window <= t <= now)
            hub_churn = sum(1 for t in changes if now - window - hub_lag_s <= t <= now)
            # A newcomer is shown the count once its hub has counted it; until then its
            # own view is still filling, as a page that has just loaded.
            ready = [w for w, t in zip(newcomers, changes[4:], strict=True) if now - t > window]
            views = [pm.count(ORIGIN) for pm in managers] + [w.count for w in [*staying, *ready]]
            bounds = [(seen, churn) for seen in views]
            bounds += [(seen, hub_churn) for seen in hub_counts()]
            for seen, allowed in bounds if judged else []:
                assert isinstance(seen, int) and abs(seen - VISITORS) <= allowed, (
                    seen,
                    allowed,
                    sampler.stalls,
                )
            judged = await sampler.judged()
        sampler.check()
        await eventually(lambda: set(counts([*staying, *newcomers])) == {VISITORS}, timeout_s=10)
        assert all(w.errors == [] for w in widgets)

    # --- the wire: hubs republished browser events byte for byte, DIDs never reused ------
    per_did: dict[str, set[tuple[object, object]]] = {}
    for body in wire.bodies():
        per_did.setdefault(str(body["did"]), set()).add((body["room_key"], body["epoch"]))
    assert all(len(places) == 1 for places in per_did.values())
    assert len(per_did) >= 3 * VISITORS  # three epochs or more of everybody
    assert all(ORIGIN.split("//")[1].encode() not in m.payload for m in wire.messages)
