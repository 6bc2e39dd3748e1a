"""The hub's ``/healthz`` part on a real Mosquitto: a self-probe walks the whole path.

Key generation, signing, publishing to the plaza, the hub's own reader and verification:
the report is ``ok`` only while probes come back, and says so within three probe
intervals when the broker goes away, and again once it is back.
"""

from __future__ import annotations

from typing import Any

from hereabouts.config import HubConfig
from hereabouts.sites.hub import SiteHub
from hereabouts.transports.mqtt import MqttSettings, MqttTransport
from tests.fixtures.mosquitto import MosquittoServer
from tests.sites.support import FAST, eventually

PROBE = HubConfig(probe_interval_s=0.2)


def section(hub: SiteHub, name: str) -> Any:
    return hub.health()[name]


async def test_health_follows_the_broker_through_an_outage(mosquitto: MosquittoServer) -> None:
    transport = MqttTransport(
        node_name="hub", settings=MqttSettings(host=mosquitto.host, port=mosquitto.port)
    )
    async with SiteHub(transport=transport, config=FAST, hub=PROBE) as hub:
        await eventually(lambda: section(hub, "probe")["answered"] >= 2, timeout_s=15)
        report = hub.health()
        assert report["ok"] is True
        assert report["broker"]["connected"] is True  # type: ignore[index]
        assert report["key_generation"] == {"ok": True}
        assert section(hub, "processing")["reader_running"] is True
        assert section(hub, "probe")["last_round_trip_ms"] >= 0
        # Probes live outside the site topics: nothing was refused as a site event.
        assert hub.counters.total("site_rejects") == 0

        mosquitto.stop()
        await eventually(lambda: hub.health()["ok"] is False, timeout_s=10)
        assert section(hub, "broker")["connected"] is False
        answered = section(hub, "probe")["answered"]

        mosquitto.start()
        await eventually(
            lambda: hub.health()["ok"] is True and section(hub, "probe")["answered"] > answered,
            timeout_s=40,
        )
