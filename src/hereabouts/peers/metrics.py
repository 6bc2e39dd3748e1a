"""A node's Prometheus view: peers by status, plaza and mesh traffic, howdys, on scrape.

The hot paths count into plain integers (:class:`~hereabouts.metrics.Counters` and the
transport's counters); this collector reads them only when ``/metrics`` is scraped. Labels
are statuses, kinds and reasons, never DIDs or names.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from hereabouts.core.effects import Status

if TYPE_CHECKING:
    from hereabouts.peers.node import Node


class NodeCollector(Collector):
    """Exports what a node knows at scrape time."""

    def __init__(self, node: Node) -> None:
        self._node = node

    def register(self, registry: CollectorRegistry) -> None:
        registry.register(self)

    def collect(self) -> Iterator[Metric]:
        node = self._node
        peers = GaugeMetricFamily(
            "hereabouts_peers", "Known peers by status (this node included).", labels=["status"]
        )
        for status in Status:
            peers.add_metric([status.value], node.projection.count(status))
        yield peers
        keys = node.ingestor.keys
        known = GaugeMetricFamily(
            "hereabouts_keys", "Keys this node remembers, by standing.", labels=["standing"]
        )
        known.add_metric(["proven"], keys.proven_count())
        known.add_metric(["unproven"], keys.unproven_count())
        yield known

        yield from self._mesh(node)
        if not node.has_plaza:
            yield from self._howdys(node)
            return
        transport = node.transport
        connected = GaugeMetricFamily(
            "hereabouts_plaza_connected", "1 while connected to the plaza broker."
        )
        connected.add_metric([], 1 if transport.state.connected else 0)
        yield connected
        brokers = GaugeMetricFamily(
            "hereabouts_plaza_broker",
            "1 for the broker in use (or being tried), 0 for the other failover brokers.",
            labels=["endpoint"],
        )
        for endpoint in transport.state.brokers or (transport.state.endpoint,):
            brokers.add_metric([endpoint], 1 if endpoint == transport.state.endpoint else 0)
        yield brokers
        missing = GaugeMetricFamily(
            "hereabouts_plaza_missing_subscriptions",
            "Topic filters the broker does not hold for us (refused, or no SUBACK).",
        )
        missing.add_metric([], len(transport.state.missing_subscriptions))
        yield missing
        traffic = transport.counters
        for name, help_text, value in (
            ("plaza_messages_in", "Messages received from the plaza.", traffic.messages_in),
            ("plaza_messages_out", "Messages published to the plaza.", traffic.messages_out),
            ("plaza_reconnects", "Connections to the plaza after the first.", traffic.reconnects),
        ):
            family = CounterMetricFamily(f"hereabouts_{name}", help_text)
            family.add_metric([], value)
            yield family
        drops = CounterMetricFamily(
            "hereabouts_plaza_dropped", "Incoming plaza messages dropped, by reason.",
            labels=["reason"],
        )
        for reason, value in sorted(traffic.drops.items()):
            drops.add_metric([reason], value)
        yield drops

        yield from self._howdys(node)

    @staticmethod
    def _howdys(node: Node) -> Iterator[Metric]:
        howdys = CounterMetricFamily(
            "hereabouts_howdys", "Howdy replies by outcome (sent, suppressed, ...).",
            labels=["outcome"],
        )
        for outcome, value in sorted(node.howdy.stats().items()):
            howdys.add_metric([outcome], value)
        yield howdys

    @staticmethod
    def _mesh(node: Node) -> Iterator[Metric]:
        """Per mesh peer, labelled by its mesh URL: an endpoint the peer announces, and at
        most ``mesh.max_peers`` of them (the one exception to "no identities in labels")."""
        mesh = node.mesh
        if mesh is None:
            return
        now = node.now_ms()
        peers = mesh.peers.all()
        family = CounterMetricFamily(
            "hereabouts_mesh_peer",
            "Sync traffic with each mesh peer (exchanges, bytes_in, bytes_out, "
            "events_learnt, failures).",
            labels=["peer", "what"],
        )
        for peer in peers:
            for what, value in sorted(peer.stats.items()):
                family.add_metric([peer.url, what], value)
        yield family
        graylisted = GaugeMetricFamily(
            "hereabouts_mesh_peer_graylisted",
            "1 while a mesh peer is graylisted for sending invalid data.",
            labels=["peer"],
        )
        for peer in peers:
            graylisted.add_metric([peer.url], 1 if peer.graylisted_until_ms > now else 0)
        yield graylisted
        known = GaugeMetricFamily("hereabouts_mesh_peers", "Mesh peers this node knows.")
        known.add_metric([], len(peers))
        yield known
