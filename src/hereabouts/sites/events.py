"""The site-presence vocabulary: what a visitor's ephemeral key signs, and nothing more.

Two kinds, sealed with the common envelope of :mod:`hereabouts.wire` (same tag, same
signature scheme, same checks) through the :data:`SITE_EVENTS` vocabulary:

=============== ==========================================================================
site_heartbeat  "this DID is in this room during this epoch"; sent every heartbeat interval
site_leave      "this DID has left the room"; signed, so only the DID's owner can say it
=============== ==========================================================================

The header is deliberately thinner than a peer event's. Each field is something a counter
needs; anything else would link a visitor across rooms, epochs or restarts:

* ``did`` — the ephemeral ``did:key`` for this room and epoch (signer of the envelope),
* ``room_key`` — which room (must match the topic the event arrived on),
* ``epoch`` — ``floor(at_ms / epoch length)``; lets counters keep epochs apart,
* ``at_ms`` — the emitter's clock, for freshness and replay checks.

No ``name``, no ``boot_id``, no ``session``, no origin: those would be stable across epochs
and undo the rotation.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec
from msgspec import Meta, Struct

from hereabouts.events import Did, Millis
from hereabouts.wire import Vocabulary

RoomKey = Annotated[str, Meta(pattern=r"^[a-z2-7]{26}$")]
"""A room key: 26 lowercase base32 characters (see :mod:`hereabouts.sites.rooms`)."""

Epoch = Annotated[int, Meta(ge=0, le=2**53 - 1)]


class SiteEvent(Struct, frozen=True, kw_only=True, tag_field="kind", forbid_unknown_fields=True):
    """Header shared by site events. Not used on its own."""

    did: Did
    room_key: RoomKey
    epoch: Epoch
    at_ms: Millis


class SiteHeartbeat(SiteEvent, frozen=True, tag="site_heartbeat"):
    pass


class SiteLeave(SiteEvent, frozen=True, tag="site_leave"):
    pass


AnySiteEvent = SiteHeartbeat | SiteLeave
SITE_KINDS: Final = frozenset({"site_heartbeat", "site_leave"})

SITE_EVENTS: Final[Vocabulary[AnySiteEvent]] = Vocabulary(
    msgspec.json.Decoder(AnySiteEvent), SITE_KINDS
)
"""Seal with ``wire.seal_as(SITE_EVENTS, ...)``; verify with ``wire.unseal_as(SITE_EVENTS, ...)``.
"""

__all__ = ["SITE_EVENTS", "SITE_KINDS", "AnySiteEvent", "SiteEvent", "SiteHeartbeat", "SiteLeave"]
