"""What a :class:`~hereabouts.sites.manager.PresenceManager` tells its application.

Three notices, delivered to callbacks (``manager.on("presence_joined", cb)``) and to async
iterators (``async for notice in manager.notices():``). They carry the room (whose ``repr``
hides the origin) and never a DID: the application has no use for the ephemeral
identities, and what it never holds it cannot leak.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final

from hereabouts.sites.counts import RoomCount
from hereabouts.sites.rooms import Room


@dataclass(frozen=True, slots=True)
class PresenceJoined:
    """We are now counted in ``room``."""

    name: ClassVar[str] = "presence_joined"
    room: Room


@dataclass(frozen=True, slots=True)
class PresenceLeft:
    """We stopped being counted in ``room``; ``reason`` is ``leave``, ``consent_revoked``,
    ``ghost`` or ``closed``."""

    name: ClassVar[str] = "presence_left"
    room: Room
    reason: str


@dataclass(frozen=True, slots=True)
class PresenceCountChanged:
    """The reported count of a room we joined or watch changed (after the k floor)."""

    name: ClassVar[str] = "presence_count_changed"
    room: Room
    count: RoomCount


PresenceNotice = PresenceJoined | PresenceLeft | PresenceCountChanged
NOTICE_NAMES: Final = frozenset({PresenceJoined.name, PresenceLeft.name, PresenceCountChanged.name})
