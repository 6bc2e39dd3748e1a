"""Typed errors of site presence, placed under the project-wide error tree.

Refusals the *visitor's side* causes (no consent, ghost mode, a bad origin) are
:class:`~hereabouts.errors.LocalError`; site events refused at the edge are
:class:`~hereabouts.errors.EventRejected` and are counted by ``reason``, never raised out of
the receiving loop.
"""

from __future__ import annotations

from hereabouts.core.sites import EpochMismatch, RoomFull
from hereabouts.errors import LocalError


class InvalidOrigin(LocalError):
    """The origin cannot be normalised (no scheme or host, opaque ``null``, bad port)."""

    reason = "invalid_origin"


class InvalidRoom(LocalError):
    """A room name is empty, too long or holds control characters."""

    reason = "invalid_room"


class ConsentRequired(LocalError):
    """The visitor has not granted site presence for this origin; nothing was published."""

    reason = "consent_required"


class GhostModeOn(LocalError):
    """Ghost mode is on: joining is refused and nothing is published."""

    reason = "ghost_mode"


class ManagerNotRunning(LocalError):
    """The presence manager was used outside ``async with``."""

    reason = "manager_not_running"


__all__ = [
    "ConsentRequired",
    "EpochMismatch",
    "GhostModeOn",
    "InvalidOrigin",
    "InvalidRoom",
    "ManagerNotRunning",
    "RoomFull",
]
