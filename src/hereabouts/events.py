"""The peer-presence vocabulary: the events nodes sign and the projection reads.

Every event is a frozen msgspec Struct tagged by ``kind`` and carries the same header:

* ``name`` — the emitter's human name (pinned to its key by the TOFU keyring),
* ``did`` — the emitter's ``did:key``; the event must be signed by that key,
* ``boot_id`` — random per process start; a new boot id in a ``hey_there`` is a restart,
* ``session`` — the connection number within this boot, bumped on every reconnect, so a
  ``lost`` will from an earlier connection cannot outrank the node's later news,
* ``at_ms`` — when the emitter made the event, in Unix milliseconds.

Kinds and what they say:

============  ================================================================================
hey_there     "I am here": identity card with start time, endpoints and transport mode
howdy         welcome to a newcomer: which hey_there it answers and up to ten neighbours, each
              as that neighbour's *own* sealed hey_there, so a responder cannot vouch for an
              identity it cannot prove
chau          graceful goodbye
newspaper     heartbeat with a small status
seen          the emitter (observer) saw ``subject_did`` at ``at_ms``
lost          "my connection ended without a chau": pre-signed and left with the broker as
              the MQTT will, published by the broker when the connection dies
============  ================================================================================

Field limits are declared with the types so that decoding validates them; ``wire.seal``
validates outgoing events the same way, so an invalid event is never sent.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from msgspec import Meta, Raw, Struct

Name = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
"""A node's display name: 1-64 characters, no control characters (they would garble logs)."""

Did = Annotated[str, Meta(min_length=9, max_length=128)]
"""A DID. Its form is checked where it matters, against the key that signed (an emitter's
``did`` must equal the envelope's signer, a valid ``did:key``); a regular expression here
would double the decode cost of every event for no added safety."""
BootId = Annotated[str, Meta(min_length=1, max_length=64)]
Millis = Annotated[int, Meta(ge=0, le=2**53 - 1)]
"""Unix time in milliseconds; bounded by 2^53 so every JSON implementation reads it exactly."""

EventId = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
"""SHA-256 (hex) of an event's signed body bytes: see :mod:`hereabouts.wire`."""

Url = Annotated[str, Meta(min_length=1, max_length=512)]
EndpointName = Annotated[str, Meta(min_length=1, max_length=32)]

MAX_ENDPOINTS: Final = 8
MAX_HOWDY_NEIGHBOURS: Final = 10
"""A howdy lists at most ten neighbours: enough for a newcomer to reach the network, small
enough that ten howdys stay well under the 16 KiB message limit."""

Transport = Literal["plaza", "mesh"]
"""How a peer is reachable: on the MQTT plaza, or only through the HTTP gossip mesh (whose
news arrives in bursts, so its MISSING threshold is longer)."""


class Event(Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="kind"):
    """Header shared by every event. Not used on its own."""

    name: Name
    did: Did
    boot_id: BootId
    session: Annotated[int, Meta(ge=0, le=2**31)] = 0
    at_ms: Millis


class Rotation(Struct, frozen=True, kw_only=True):
    """A key change for a pinned name, signed by the *old* key
    (see :mod:`hereabouts.peers.keyring`)."""

    old_did: Did
    at_ms: Millis
    sig: Annotated[str, Meta(max_length=128)]


class HeyThere(Event, frozen=True, tag="hey_there"):
    started_at_ms: Millis
    endpoints: Annotated[dict[EndpointName, Url], Meta(max_length=MAX_ENDPOINTS)] = {}
    transport: Transport = "plaza"
    rotation: Rotation | None = None


class Howdy(Event, frozen=True, tag="howdy"):
    to_did: Did
    answers: EventId
    neighbours: Annotated[list[Raw], Meta(max_length=MAX_HOWDY_NEIGHBOURS)] = []


class Chau(Event, frozen=True, tag="chau"):
    pass


class NewspaperStatus(Struct, frozen=True, kw_only=True):
    """What a heartbeat tells besides "alive": small on purpose, it is sent often."""

    online_peers: Annotated[int, Meta(ge=0)] = 0
    uptime_s: Annotated[int, Meta(ge=0)] = 0
    next_in_s: Annotated[int, Meta(ge=0)] = 0


class Newspaper(Event, frozen=True, tag="newspaper"):
    status: NewspaperStatus = NewspaperStatus()


class Seen(Event, frozen=True, tag="seen"):
    subject_did: Did
    subject_name: Name
    via: Transport = "mesh"


class Lost(Event, frozen=True, tag="lost"):
    pass


AnyEvent = HeyThere | Howdy | Chau | Newspaper | Seen | Lost
EVENT_TYPES: Final = (HeyThere, Howdy, Chau, Newspaper, Seen, Lost)
KIND_OF: Final[dict[type, str]] = {cls: str(cls.__struct_config__.tag) for cls in EVENT_TYPES}
KINDS: Final = frozenset(KIND_OF.values())


class SignedEvent(Struct, frozen=True, gc=False):
    """An event whose signature has been verified, with the exact bytes it arrived in.

    ``id`` is derived from the signed bytes (see :mod:`hereabouts.wire`), so nobody can give
    an event another id without breaking its signature.
    """

    id: str
    event: AnyEvent
    raw: bytes

    @property
    def kind(self) -> str:
        return KIND_OF[type(self.event)]

    @property
    def did(self) -> str:
        return self.event.did

    @property
    def at_ms(self) -> int:
        return self.event.at_ms

    @property
    def order_key(self) -> tuple[int, str]:
        """Total order used by "most recent event wins": timestamp, then event id."""
        return (self.event.at_ms, self.id)


def kind_of(event: AnyEvent) -> str:
    return KIND_OF[type(event)]


__all__ = [
    "KINDS",
    "KIND_OF",
    "AnyEvent",
    "Chau",
    "Event",
    "HeyThere",
    "Howdy",
    "Lost",
    "Newspaper",
    "NewspaperStatus",
    "Rotation",
    "Seen",
    "SignedEvent",
    "kind_of",
]
