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
    ``forgotten`` (the node forgot the peer; ``new`` repeats its last status)."""
    event_id: str | None = None
    """The event that caused the change, when one did."""


# --- howdy coordination (see hereabouts.core.howdy) ----------------------------------------


@dataclass(frozen=True, slots=True)
class ReplyDue:
    """Call :meth:`HowdyCoordinator.on_timer` for this hey_there at ``at_ms`` (our clock).

    The coordinator decides *then* whether to reply, because by then others may already
    have welcomed the newcomer; the timer costs nothing on the network.
    """

    hey_there_id: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class Vouch:
    """A neighbour in its own signed words: its latest hey_there and, when newer, its latest
    event, both sealed exactly as their emitter signed them."""

    hey_there: bytes
    latest: bytes | None = None


@dataclass(frozen=True, slots=True)
class SendHowdy:
    """Publish a howdy answering ``hey_there_id``, addressed to ``to_did``.

    ``neighbours`` are carried verbatim (``msgspec.Raw``), so the newcomer verifies each
    event itself.
    """

    hey_there_id: str
    to_did: str
    neighbours: tuple[Vouch, ...]
