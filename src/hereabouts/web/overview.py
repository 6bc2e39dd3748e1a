"""The node's own state for the dashboard: health, refusals by reason, and site rooms.

``GET /v1/node`` answers with one document the dashboard polls every few seconds:

* ``health`` — the body of ``/healthz`` (:func:`health_report`): the node's parts
  (``broker``, ``tasks``, ``storage``, ``identity``, ``network``, and ``mesh`` once there is
  one) and every extra part such as the site hub's ``sites``;
* ``rejections`` — for each counter of refusals in the node's registry
  (:data:`REJECTION_COUNTERS`), its counts by reason, read from the same collectors
  ``/metrics`` reads, so the two always agree;
* ``rooms`` — the site rooms browsers watch on this node's hub, with their counts as the
  hub reports them (the k floor applied: a room under it is "fewer than k", never a
  number), or null when the node runs no hub. Rooms are known by key only; a room of this
  node's own demo page (:data:`~hereabouts.web.dashboard.DEMO_ROOMS`, at the origin the
  dashboard is viewed from) is also given its name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final, Protocol

from prometheus_client.registry import CollectorRegistry

from hereabouts.web.dashboard import DEMO_ROOMS
from hereabouts.web.payload import JsonObject

if TYPE_CHECKING:
    from hereabouts.web.app import NodeView

log = logging.getLogger(__name__)

HealthCheck = Callable[[], Mapping[str, object]]
"""A part of ``/healthz``: returns ``{"ok": bool, ...details}``."""


class ShownCount(Protocol):
    """A count as it may leave the process (:class:`~hereabouts.sites.counts.RoomCount`)."""

    @property
    def value(self) -> int | None: ...

    @property
    def fewer_than(self) -> int | None: ...


RoomCounts = Callable[[], Mapping[str, ShownCount]]
"""The reported count of every watched room, by room key (``SiteHub.counts``)."""

REJECTION_COUNTERS: Final = (
    # (counter in the registry, without hereabouts_ and _total; what it counts)
    ("events_rejected", "Peer events refused"),
    ("site_hub_rejects", "Browser frames refused"),
    ("site_rejects", "Site events refused"),
    ("http_refused", "HTTP connections refused"),
    ("http_timed_out", "HTTP connections timed out"),
)
"""The refusals the dashboard shows, in this order; those not in the registry (no site hub,
no HTTP counters) are left out."""

ROOM_KEY_SHOWN: Final = 8
"""Characters of a room key the dashboard shows, as the hub's logs do: enough to tell rooms
apart at a glance."""


def checked(check: HealthCheck) -> dict[str, object]:
    """A health part's report; a check that crashes is itself the answer (not ok)."""
    try:
        return dict(check())
    except Exception as exc:
        log.exception("health check failed")
        return {"ok": False, "error": f"health check failed: {type(exc).__name__}"}


def health_report(node: NodeView, parts: Mapping[str, HealthCheck]) -> dict[str, object]:
    """``node.health()`` with each of ``parts`` under its own key; ``ok`` only when every
    part is ok too."""
    report = checked(node.health)
    for name, check in parts.items():
        part = checked(check)
        report[name] = part
        report["ok"] = bool(report.get("ok")) and bool(part.get("ok"))
    return report


def rejections(registry: CollectorRegistry) -> list[JsonObject]:
    """Counts by reason of each of :data:`REJECTION_COUNTERS` the registry holds."""
    wanted = {f"hereabouts_{name}": (name, title) for name, title in REJECTION_COUNTERS}
    found: dict[str, JsonObject] = {}
    for family in registry.collect():
        if family.name not in wanted:
            continue
        name, title = wanted[family.name]
        counts: dict[str, int] = {}
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels:
                reason = next(iter(sample.labels.values()))
                counts[reason] = counts.get(reason, 0) + int(sample.value)
        found[name] = {
            "metric": f"hereabouts_{name}_total",
            "title": title,
            "total": sum(counts.values()),
            "by_reason": dict(sorted(counts.items(), key=lambda item: (-item[1], item[0]))),
        }
    return [found[name] for name, _ in REJECTION_COUNTERS if name in found]


def demo_room_names(origin: str) -> dict[str, str]:
    """Room key -> name for the demo page's rooms at ``origin`` (none if it is not one)."""
    from hereabouts.sites.errors import InvalidOrigin, InvalidRoom
    from hereabouts.sites.rooms import room_key

    try:
        return {room_key(origin, name): name for name in DEMO_ROOMS}
    except (InvalidOrigin, InvalidRoom):
        return {}


def rooms_json(counts: Mapping[str, ShownCount], names: Mapping[str, str]) -> list[JsonObject]:
    """Rooms with their reported counts: named ones first, then the fullest."""
    ordered = sorted(
        counts.items(),
        key=lambda item: (
            item[0] not in names,
            names.get(item[0], ""),
            -(item[1].value or 0),
            item[0],
        ),
    )
    return [
        {
            "key": key[:ROOM_KEY_SHOWN],
            "name": names.get(key),
            "count": shown.value,
            "fewer_than": shown.fewer_than,
        }
        for key, shown in ordered
    ]


def overview_json(
    node: NodeView,
    parts: Mapping[str, HealthCheck],
    rooms: RoomCounts | None,
    *,
    origin: str,
) -> JsonObject:
    """The body of ``GET /v1/node``; ``origin`` is where the dashboard is viewed from."""
    room_list: list[JsonObject] | None = None
    if rooms is not None:
        try:
            room_list = rooms_json(rooms(), demo_room_names(origin))
        except Exception:  # the rooms are a courtesy; health must still go out
            log.exception("reading the site rooms failed")
    return {
        "health": health_report(node, parts),
        "rejections": rejections(node.registry),
        "rooms": room_list,
    }
