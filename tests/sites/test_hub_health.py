"""The hub's ``/healthz`` part on a real Mosquitto: a self-probe walks the whole path.

Key generation, signing, publishing to the plaza, the hub's own reader and verification:
the report is ``ok`` only while probes come back, and says so within three probe
intervals when the broker goes away, and again once it is back. The same holds for a hub
in two worker processes (``hub_mode`` ``workers``): each worker's hub probes, and the
parent's report is ``ok`` only while every worker's is.
"""

from __future__ import annotations

from typing import Any

from hereabouts.config import HubConfig
from tests.fixtures.mosquitto import MosquittoServer
from tests.sites.hubs import WORKERS, Plaza, ServedHub, serve_hub
from tests.sites.support import FAST, eventually

PROBE = HubConfig(probe_interval_s=0.2)


def sections(served: ServedHub, name: str) -> list[Any]:
    """Section ``name`` of every hub's report (each worker's, in workers mode)."""
    reports = served.hub_health()
    assert len(reports) == (1 if served.in_process else WORKERS)
    return [report[name] for report in reports]


async def test_health_follows_the_broker_through_an_outage(
    mosquitto: MosquittoServer, hub_mode: str
) -> None:
    async with serve_hub(Plaza(broker=mosquitto), hub_mode, config=FAST, hub=PROBE) as served:
        hub = served.hub

        def answered(more_than: list[int]) -> bool:
            probes = sections(served, "probe")
            return all(p["answered"] > n for p, n in zip(probes, more_than, strict=True))

        await eventually(lambda: answered([1] * len(served.hub_health())), timeout_s=15)
        assert hub.health()["ok"] is True
        for report in served.hub_health():
            assert report["ok"] is True
            assert report["broker"]["connected"] is True
            assert report["key_generation"] == {"ok": True}
            assert report["processing"]["reader_running"] is True
            assert report["probe"]["last_round_trip_ms"] >= 0
        # Probes live outside the site topics: nothing was refused as a site event.
        await served.settle()
        assert served.counters.total("site_rejects") == 0

        mosquitto.stop()
        await eventually(lambda: hub.health()["ok"] is False, timeout_s=10)
        await eventually(
            lambda: not any(b["connected"] for b in sections(served, "broker")), timeout_s=10
        )
        before = [p["answered"] for p in sections(served, "probe")]

        mosquitto.start()
        await eventually(lambda: hub.health()["ok"] is True and answered(before), timeout_s=40)
