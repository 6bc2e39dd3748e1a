"""Site-presence metrics: counters by stable slugs, and one gauge per room *key*.

Counters (``hereabouts_site_<name>_total``): ``joins``, ``leaves`` (by reason),
``rotations``, ``ghost_toggles`` (``on`` / ``off``), ``rejects`` (by rejection reason),
``events_in`` (by kind), ``publish_failures``. The gauge ``hereabouts_site_room_count`` is
labelled by room key, never by origin, and honours the k floor: a room below it has no
sample at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hereabouts.metrics import Counters
from hereabouts.sites.counts import RoomCount

HELP = {
    "site_joins": ("Rooms this visitor joined", "kind"),
    "site_leaves": ("Rooms this visitor left, by reason", "reason"),
    "site_rotations": ("Ephemeral DIDs replaced at an epoch boundary", "kind"),
    "site_ghost_toggles": ("Ghost mode switched, by new state", "state"),
    "site_rejects": ("Site events refused at the edge, by reason", "reason"),
    "site_events_in": ("Site events accepted, by kind", "kind"),
    "site_publish_failures": ("Site events that could not be published", "reason"),
}


def site_counters(counters: Counters | None = None) -> Counters:
    """``counters`` (or a new set) with the site counters described."""
    counters = counters if counters is not None else Counters()
    for name, (help_text, label) in HELP.items():
        counters.describe(name, help_text, label)
    return counters


class RoomCountCollector(Collector):
    """Exports the reported count of every room, read on scrape."""

    def __init__(self, counts: Callable[[], dict[str, RoomCount]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "hereabouts_site_room_count",
            "Visitors in a site room (rooms below the k floor are omitted)",
            labels=["room_key"],
        )
        for key, count in sorted(self._counts().items()):
            if count.value is not None:
                family.add_metric([key], count.value)
        yield family
