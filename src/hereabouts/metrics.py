"""Counters kept on the hot path as plain integers, exported to Prometheus on scrape.

Incrementing a prometheus-client labelled counter costs about a microsecond; a dictionary
increment costs a twentieth of that. Ingest runs at tens of thousands of events per second,
so hot paths count into :class:`Counters` and a collector turns them into metric families
only when ``/metrics`` is scraped.

Every metric is named ``hereabouts_<name>_total`` and labelled with one label whose values
are short stable slugs (event kinds, rejection reasons) — never DIDs, names or origins.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Final

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

HELP: Final = {
    "events_out": ("Events this node published on the plaza, by kind.", "kind"),
    "publish_failed": (
        "Events this node could not publish because the plaza was unreachable, by kind.",
        "kind",
    ),
    "handler_errors": (
        "Messages and timers whose handling failed on a bug (logged with its traceback); "
        "the node carries on. By event kind, or timers.",
        "kind",
    ),
    "changes_dropped": (
        "Status changes a slow changes() subscriber missed (its queue was full), by why.",
        "why",
    ),
    "bridged": ("Mesh-only nodes' events this hybrid node republished on the plaza, by kind.",
                "kind"),
    "bridge_dropped": (
        "Mesh-only nodes' events not republished on the plaza (queue full, plaza away), by why.",
        "why",
    ),
    "wills_probed": (
        "Hybrid peers' wills held while the peer was asked over the mesh, by outcome "
        "(answered, silent).",
        "outcome",
    ),
    "revocations": ("Revocations of invited-network members taken in, by outcome.", "outcome"),
    "revocations_rejected": (
        "Revocations refused (forged, of another network, malformed), by reason.",
        "reason",
    ),
}
"""Help text and label name of the node's counters that no component describes itself
(components call :meth:`Counters.describe` for their own). Every counter has a sentence:
``tests/test_metrics_help.py`` fails on a counter that has none."""


class Counters:
    """A set of labelled counters: ``counters.add("events_in", "hey_there")``."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], int] = Counter()
        self._help: dict[str, tuple[str, str]] = {}

    def describe(self, name: str, help_text: str, label: str) -> None:
        """Declare a counter's help text and label name (for the export)."""
        self._help[name] = (help_text, label)

    def add(self, name: str, label_value: str = "", amount: int = 1) -> None:
        self._counts[(name, label_value)] += amount

    def get(self, name: str, label_value: str = "") -> int:
        return self._counts.get((name, label_value), 0)

    def total(self, name: str) -> int:
        """The sum over every label value of ``name``."""
        return sum(self.by_label(name).values())

    def by_label(self, name: str) -> dict[str, int]:
        return {value: n for (metric, value), n in self._counts.items() if metric == name}

    def snapshot(self) -> list[tuple[str, str, int]]:
        """Every counter as (name, label value, value), to send elsewhere."""
        return [(name, value, n) for (name, value), n in self._counts.items()]

    def replace(self, values: Iterable[tuple[str, str, int]]) -> None:
        """Make the counters exactly ``values`` (a sum of snapshots, say); help texts stay."""
        counts: dict[tuple[str, str], int] = Counter()
        for name, value, n in values:
            counts[(name, value)] += n
        self._counts = counts

    def collector(self) -> Collector:
        return _CountersCollector(self)

    def register(self, registry: CollectorRegistry) -> None:
        registry.register(self.collector())


class _CountersCollector(Collector):
    def __init__(self, counters: Counters) -> None:
        self._counters = counters

    def collect(self) -> Iterator[Metric]:
        names = {name for name, _ in self._counters._counts} | set(self._counters._help)
        for name in sorted(names):
            help_text, label = self._counters._help.get(name) or HELP.get(
                name, (f"Count of {name.replace('_', ' ')}, by kind.", "kind")
            )
            family = CounterMetricFamily(f"hereabouts_{name}", help_text, labels=[label])
            for value, count in sorted(self._counters.by_label(name).items()):
                family.add_metric([value], count)
            yield family
