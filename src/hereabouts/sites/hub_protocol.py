"""The browser hub's WebSocket protocol: frames, their limits, typed refusals, close codes.

JSON text frames, one object each, told apart by ``type``:

client → hub

* ``{"type":"watch","rooms":["<room-key>",…]}`` — the rooms this connection sees counts
  of (replaces the previous set; at most :data:`MAX_ROOMS_PER_CONNECTION`). The browser
  computes room keys itself, so the origin never reaches the hub.
* ``{"type":"event","sealed":<sealed envelope>}`` — a ``site_heartbeat`` or ``site_leave``
  signed in the browser, as a JSON object or as a string holding one. The hub keeps the
  envelope's exact bytes (``msgspec.Raw``): the signature covers the body bytes as sent.

hub → client

* ``{"type":"hello","heartbeat_interval_ms":…,"did_duration_ms":…,"rotation_spread_ms":…,
  "max_rooms":…,"ghost_forced":false,"now_ms":…}`` — first, once: the cadence to follow,
  the hub's clock, and whether the hub forces ghost mode on everyone (then the widget sends
  no event; the hub would refuse each with ``ghost_forced``);
* ``{"type":"counts","rooms":{"<room-key>":{"count":7,"fewer_than":null},…}}`` — after a
  ``watch`` (every watched room) and whenever a reported count changes (changed rooms);
* ``{"type":"error","reason":"<slug>"}`` — a frame was refused; the connection stays up.

Nothing the hub sends names a DID or an origin.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec
from msgspec import Meta, Struct

from hereabouts.errors import EventRejected, RemoteError
from hereabouts.sites.events import RoomKey

MAX_FRAME_BYTES: Final = 4096
"""Largest client frame. A sealed site event is about 400 bytes and a full ``watch`` about
600; ten times that leaves room for JSON whitespace and nothing for floods."""

MAX_ROOMS_PER_CONNECTION: Final = 16
"""Rooms one connection may watch. A page shows a handful of rooms; a script that asks for
thousands is asking the hub to subscribe on its behalf."""

MAX_STRIKES: Final = 20
"""Refused frames a connection may send before it is closed with :data:`CLOSE_POLICY`. An
honest widget is refused rarely (a late heartbeat after a clock step); twenty is a flood."""

CLOSE_POLICY: Final = 1008
"""WebSocket close code for a client that keeps sending garbage (policy violation)."""

CLOSE_TOO_BIG: Final = 1009
"""Close code for a frame over :data:`MAX_FRAME_BYTES` (message too big)."""

CLOSE_TRY_LATER: Final = 1013
"""Close code when the hub holds its most connections (try again later)."""

CLOSE_GOING_AWAY: Final = 1001
"""Close code when the hub shuts down."""


class Watch(Struct, frozen=True, tag="watch", tag_field="type", forbid_unknown_fields=True):
    rooms: Annotated[list[RoomKey], Meta(max_length=256)]
    """Room keys; more than :data:`MAX_ROOMS_PER_CONNECTION` is refused by the hub with its
    own reason (the 256 here only bounds decoding)."""


class Submit(Struct, frozen=True, tag="event", tag_field="type", forbid_unknown_fields=True):
    sealed: msgspec.Raw


ClientFrame = Watch | Submit
_decoder: Final = msgspec.json.Decoder(ClientFrame)


class BadFrame(RemoteError):
    """A client frame that is not one of the protocol's JSON objects."""

    reason = "bad_frame"


class FrameTooLarge(RemoteError):
    """A client frame over :data:`MAX_FRAME_BYTES`."""

    reason = "frame_too_large"


class TooManyRooms(RemoteError):
    """A ``watch`` naming more rooms than one connection may watch."""

    reason = "too_many_rooms"


class HubFull(RemoteError):
    """The hub holds its most connections, or its most rooms."""

    reason = "hub_full"


class GhostForced(EventRejected):
    """An event sent to a hub that forces ghost mode (flag ``presence_ghost_mode_hard_off``):
    the hub publishes no visitor, whatever the visitor chose."""

    reason = "ghost_forced"


class RoomNotWatched(EventRejected):
    """An event for a room this connection does not watch: watch first, then be counted."""

    reason = "room_not_watched"


def decode_frame(data: bytes) -> Watch | Submit:
    """The frame in ``data``, or :class:`FrameTooLarge` / :class:`BadFrame`."""
    if len(data) > MAX_FRAME_BYTES:
        raise FrameTooLarge(f"frame of {len(data)} bytes; the limit is {MAX_FRAME_BYTES}")
    try:
        frame: Watch | Submit = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        # The decoder's message may quote the frame (and so a DID): keep it out of errors.
        raise BadFrame("not a watch or event frame") from None
    return frame


def sealed_bytes(frame: Submit) -> bytes:
    """The sealed envelope's bytes, whether it was sent as an object or as a string."""
    raw = bytes(frame.sealed)
    if raw[:1] == b'"':
        try:
            return msgspec.json.decode(raw, type=str).encode("utf-8")
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise BadFrame("sealed is neither an object nor a string") from None
    if raw[:1] != b"{":
        raise BadFrame("sealed is neither an object nor a string")
    return raw


def encode(message: dict[str, object]) -> str:
    """A hub → client frame as text."""
    return msgspec.json.encode(message).decode("utf-8")


__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_POLICY",
    "CLOSE_TOO_BIG",
    "CLOSE_TRY_LATER",
    "MAX_FRAME_BYTES",
    "MAX_ROOMS_PER_CONNECTION",
    "MAX_STRIKES",
    "BadFrame",
    "ClientFrame",
    "FrameTooLarge",
    "GhostForced",
    "HubFull",
    "RoomNotWatched",
    "Submit",
    "TooManyRooms",
    "Watch",
    "decode_frame",
    "encode",
    "sealed_bytes",
]
