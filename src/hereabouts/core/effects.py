"""Effects: the decisions core objects hand back for a runtime to carry out or report."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Status(enum.StrEnum):
    """What a node believes about a peer."""

    ONLINE = "ONLINE"
    """Its most recent event says it is here, and that event is recent enough."""

    OFFLINE = "OFFLINE"
    """It said goodbye (chau), and nothing it did since says otherwise."""

    MISSING = "MISSING"
    """It went quiet without a goodbye: its connection died (``lost``) or it has been
    silent for longer than its threshold."""


@dataclass(frozen=True, slots=True)
class StatusChanged:
    """A peer's status moved; ``old`` is None the first time a peer is known."""

    did: str
    name: str
    old: Status | None
    new: Status
    at_ms: int
    """Our clock when the change was decided."""
    cause: str
    """``event`` (an event arrived), ``timeout`` (silence passed the threshold), or
    ``boot_window_closed`` (a held chau was judged again)."""
    event_id: str | None = None
    """The event that caused the change, when one did."""
