"""Site presence: "N here" for a website's rooms, never who.

Visitors opt in per origin, appear under ephemeral DIDs that rotate at global epoch
boundaries, and can switch everything off with ghost mode. Layout:

* :mod:`~hereabouts.sites.rooms` — origin normalisation and room keys,
* :mod:`~hereabouts.sites.events` — the signed ``site_heartbeat`` / ``site_leave`` events,
* :mod:`~hereabouts.sites.store` and :mod:`~hereabouts.sites.consent` — consents and ghost
  mode on the visitor's disk,
* :mod:`~hereabouts.sites.counts` — counts as they leave the process (k floor),
* :mod:`~hereabouts.sites.manager` — :class:`PresenceManager`, the asyncio runtime around
  the sans-I/O :mod:`hereabouts.core.sites` counter and :mod:`hereabouts.core.rotation`.
* :mod:`~hereabouts.sites.hub` and :mod:`~hereabouts.sites.hub_protocol` — the browser
  hub: counts to browsers over a WebSocket, browser-signed events verified and republished
  (served by :mod:`hereabouts.web.site`).

See ``docs/site-presence.md``.
"""

from hereabouts.sites.counts import RoomCount
from hereabouts.sites.errors import (
    ConsentRequired,
    GhostModeOn,
    InvalidOrigin,
    InvalidRoom,
    ManagerNotRunning,
)
from hereabouts.sites.manager import PresenceManager
from hereabouts.sites.notices import PresenceCountChanged, PresenceJoined, PresenceLeft
from hereabouts.sites.rooms import Room, normalize_origin, room_key

__all__ = [
    "ConsentRequired",
    "GhostModeOn",
    "InvalidOrigin",
    "InvalidRoom",
    "ManagerNotRunning",
    "PresenceCountChanged",
    "PresenceJoined",
    "PresenceLeft",
    "PresenceManager",
    "Room",
    "RoomCount",
    "normalize_origin",
    "room_key",
]
