"""The relay's fill level for Prometheus, read from its index when ``/metrics`` is scraped.

Counters (pushes by outcome, evictions by why) go to the :class:`~hereabouts.metrics.Counters`
the store was given; this collector adds the gauges. Labels are states, never DIDs or
addresses.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hereabouts.advert.relay import RelayStore


class RelayCollector(Collector):
    """Exports how full a :class:`RelayStore` is."""

    def __init__(self, relay: RelayStore) -> None:
        self._relay = relay

    def collect(self) -> Iterator[Metric]:
        relay = self._relay
        index = relay.index
        entries = GaugeMetricFamily(
            "hereabouts_relay_entries",
            "Entries the relay holds, live (served until their window closes) or tombstone.",
            labels=["state"],
        )
        entries.add_metric(["live"], index.live)
        entries.add_metric(["tombstone"], index.tombstones)
        yield entries
        for name, help_text, value in (
            ("relay_entries_limit", "Most live entries the relay holds.",
             relay.config.max_entries),
            ("relay_bytes", "Bytes of the live documents the relay holds.", index.live_bytes),
            ("relay_addresses", "Client addresses holding live entries.", index.addresses),
            ("relay_tracked_addresses", "Client addresses whose push rate is tracked.",
             len(relay.addresses)),
        ):
            gauge = GaugeMetricFamily(f"hereabouts_{name}", help_text)
            gauge.add_metric([], value)
            yield gauge
