"""Origins and room keys: which room a visitor is in, without putting the origin on the wire.

Rules:

* **Origins are normalised** the way browsers compare them: scheme and host lower-cased,
  internationalised host names in IDNA (punycode) form, the scheme's default port dropped,
  user info, path, query and fragment discarded. ``HTTPS://Example.COM:443/a?b`` and
  ``https://example.com`` are one origin; ``http://example.com`` and
  ``https://example.com:8443`` are two others. The opaque origin ``null`` has no room.
* **Room names** are 1-64 characters without control characters, compared after Unicode
  NFC normalisation and otherwise exactly (``Lobby`` is not ``lobby``).
* **A room key** is ``base32(SHA-256(tag ‖ len ‖ origin ‖ len ‖ room))[:26]`` in lower case
  (130 bits). The tag separates this hash from every other hash we take; the length prefixes
  make (origin, room) pairs unambiguous. Only the key travels (in the topic
  ``hereabouts/v1/site/<room-key>`` and in each event), so a broker or a watcher sees an
  opaque name. It is *pseudonymous, not secret*: every visitor of a site must be able to
  compute it, so anyone who guesses an origin can compute its keys too.
"""

from __future__ import annotations

import base64
import hashlib
import unicodedata
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from hereabouts.sites.errors import InvalidOrigin, InvalidRoom

ROOM_KEY_TAG: Final = b"hereabouts/v1/site-room\n"
ROOM_KEY_LENGTH: Final = 26
"""Base32 characters kept: 130 bits, far past any birthday collision between rooms."""

DEFAULT_ROOM: Final = "lobby"
MAX_ROOM_LENGTH: Final = 64
MAX_ORIGIN_LENGTH: Final = 2048

DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}
"""Schemes we accept, with the port that is dropped when given explicitly."""


def normalize_origin(origin: str) -> str:
    """The canonical form of a web origin: ``scheme://host[:port]``."""
    if not isinstance(origin, str) or not origin.strip():
        raise InvalidOrigin("an origin is a non-empty string")
    if len(origin) > MAX_ORIGIN_LENGTH:
        raise InvalidOrigin(f"an origin is at most {MAX_ORIGIN_LENGTH} characters")
    text = origin.strip()
    if text.lower() == "null":
        raise InvalidOrigin("the opaque origin 'null' cannot be counted")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise InvalidOrigin("an origin must not contain control characters")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise InvalidOrigin(f"not a URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise InvalidOrigin(f"scheme must be one of {sorted(DEFAULT_PORTS)}")
    host = parts.hostname  # lower-cased by urlsplit; None when there is no authority
    if not host:
        raise InvalidOrigin("an origin needs a host")
    if ":" in host:  # IPv6 literal
        shown = f"[{host}]"
    else:
        try:
            shown = host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise InvalidOrigin("host name is not a valid internationalised name") from None
    if port is not None and port != DEFAULT_PORTS[scheme]:
        return f"{scheme}://{shown}:{port}"
    return f"{scheme}://{shown}"


def normalize_room(room: str) -> str:
    """The canonical form of a room name (NFC), or :class:`InvalidRoom`."""
    if not isinstance(room, str):
        raise InvalidRoom("a room name is a string")
    name = unicodedata.normalize("NFC", room)
    if not 1 <= len(name) <= MAX_ROOM_LENGTH:
        raise InvalidRoom(f"a room name is 1-{MAX_ROOM_LENGTH} characters")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise InvalidRoom("a room name must not contain control characters")
    return name


def _framed(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def room_key(origin: str, room: str = DEFAULT_ROOM) -> str:
    """The room key of ``room`` at ``origin`` (both normalised first)."""
    digest = hashlib.sha256(
        ROOM_KEY_TAG
        + _framed(normalize_origin(origin).encode("utf-8"))
        + _framed(normalize_room(room).encode("utf-8"))
    ).digest()
    return base64.b32encode(digest).decode("ascii")[:ROOM_KEY_LENGTH].lower()


@dataclass(frozen=True, slots=True)
class Room:
    """A room a visitor can be in. The origin is kept out of ``repr`` so logs cannot leak it."""

    origin: str = field(repr=False)
    name: str = field(repr=False)
    key: str

    @classmethod
    def of(cls, origin: str, name: str = DEFAULT_ROOM) -> Room:
        normal = normalize_origin(origin)
        room = normalize_room(name)
        return cls(origin=normal, name=room, key=room_key(normal, room))
