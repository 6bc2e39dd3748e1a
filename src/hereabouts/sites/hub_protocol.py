"""The browser hub's WebSocket protocol: frames, their limits, typed refusals, close codes.

JSON text frames, one object each, told apart by ``type``:

client → hub

* ``{"type":"watch","rooms":[{"name":"lobby","key":"<room-key>"},…]}`` — the rooms this
  connection sees counts of and may be counted in (replaces the previous set; at most
  :data:`MAX_ROOMS_PER_CONNECTION`). The hub recomputes each key from the room name and the
  origin the connection belongs to (its handshake ``Origin``, see
  :mod:`hereabouts.sites.origins`) and refuses the frame (``wrong_origin``) unless every
  key matches: a page counts in its own origin's rooms only.
* ``{"type":"event","sealed":<sealed envelope>,"pow":"<nonce>"}`` — a ``site_heartbeat``
  or ``site_leave`` signed in the browser, as a JSON object or as a string holding one.
  The hub keeps the envelope's exact bytes (``msgspec.Raw``): the signature covers the
  body bytes as sent. ``pow`` (decimal digits) is needed only when the hub asks for proof
  of work and only on a heartbeat of a DID it does not hold yet; it sits beside the
  envelope, so the signed event is the same with or without it.

hub → client

* ``{"type":"hello","heartbeat_interval_ms":…,"did_duration_ms":…,"rotation_spread_ms":…,
  "max_rooms":…,"ghost_forced":false,"pow_bits":0,"now_ms":…}`` — first, once: the cadence
  to follow, the hub's clock, whether the hub forces ghost mode on everyone (then the
  widget sends no event; the hub would refuse each with ``ghost_forced``), and the proof
  of work asked for a new DID (``pow_bits`` > 0 comes with ``"pow_challenge"``, 16 bytes
  in unpadded base64url: find a nonce such that ``SHA-256(POW_TAG ‖ challenge ‖ did ‖
  nonce)`` starts with that many zero bits, see :mod:`hereabouts.core.admission`);
* ``{"type":"counts","rooms":{"<room-key>":{"count":7,"fewer_than":null},…}}`` — after a
  ``watch`` (every watched room) and whenever a reported count changes (changed rooms);
* ``{"type":"error","reason":"<slug>"}`` — a frame was refused; the connection stays up.

A connection the hub refuses outright (its origin, its address's connection budget, a
full hub) is accepted and closed at once, before ``hello``, with :data:`CLOSE_POLICY` or
:data:`CLOSE_TRY_LATER` and the reason slug as the close reason.

Nothing the hub sends names a DID or an origin.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec
from msgspec import Meta, Struct

from hereabouts.errors import EventRejected, JsonTooDeep, RemoteError
from hereabouts.jsonlimits import check_depth
from hereabouts.sites.events import RoomKey

MAX_FRAME_BYTES: Final = 8192
"""Largest client frame. A sealed site event is about 400 bytes and a full ``watch`` of
sixteen short room names about 1,000; sixteen names of 64 four-byte characters take
4,600. Twice that leaves room for JSON escapes and nothing for floods."""

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


class WatchedRoom(Struct, frozen=True, forbid_unknown_fields=True):
    """One room of a ``watch``: its name and the key the client computed for it."""

    name: Annotated[str, Meta(min_length=1, max_length=256)]
    """Checked in full by :func:`~hereabouts.sites.rooms.normalize_room` (1-64 characters
    after NFC); the bound here only limits decoding."""
    key: RoomKey


class Watch(Struct, frozen=True, tag="watch", tag_field="type", forbid_unknown_fields=True):
    rooms: Annotated[list[WatchedRoom], Meta(max_length=64)]
    """More than :data:`MAX_ROOMS_PER_CONNECTION` rooms is refused by the hub with its own
    reason (the 64 here only bounds decoding)."""


Nonce = Annotated[str, Meta(pattern=r"^[0-9]{1,16}$")]
"""A proof-of-work nonce: 1-16 decimal digits (see :mod:`hereabouts.core.admission`)."""


class Submit(Struct, frozen=True, tag="event", tag_field="type", forbid_unknown_fields=True):
    sealed: msgspec.Raw
    pow: Nonce | None = None


ClientFrame = Watch | Submit
_decoder: Final = msgspec.json.Decoder(ClientFrame)


class BadFrame(RemoteError):
    """A client frame that is not one of the protocol's JSON objects."""

    reason = "bad_frame"


class FrameTooLarge(RemoteError):
    """A client frame over :data:`MAX_FRAME_BYTES`."""

    reason = "frame_too_large"


class BadRoom(RemoteError):
    """A ``watch`` naming a room that cannot exist (empty, too long, control characters)."""

    reason = "bad_room"


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


class FrameTooDeep(BadFrame, JsonTooDeep):
    """A client frame nesting deeper than any real frame does (a few levels)."""

    reason = "too_deep"


def decode_frame(data: bytes) -> Watch | Submit:
    """The frame in ``data``, or :class:`FrameTooLarge` / :class:`FrameTooDeep` /
    :class:`BadFrame`."""
    if len(data) > MAX_FRAME_BYTES:
        raise FrameTooLarge(f"frame of {len(data)} bytes; the limit is {MAX_FRAME_BYTES}")
    # ``sealed`` is kept raw, so the decoder walks it whatever its depth: a few thousand
    # brackets there would otherwise raise RecursionError.
    check_depth(data, error=FrameTooDeep)
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
    "BadRoom",
    "ClientFrame",
    "FrameTooLarge",
    "GhostForced",
    "HubFull",
    "RoomNotWatched",
    "Submit",
    "TooManyRooms",
    "Watch",
    "WatchedRoom",
    "decode_frame",
    "encode",
    "sealed_bytes",
]
