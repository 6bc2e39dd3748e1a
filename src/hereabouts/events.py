"""The peer-presence vocabulary: the events nodes sign and the projection reads.

Every event is a frozen msgspec Struct tagged by ``kind`` and carries the same header:

* ``name`` — the emitter's human name (pinned to its key by the TOFU keyring),
* ``did`` — the emitter's ``did:key``; the event must be signed by that key,
* ``boot_id`` — random per process start; a new boot id in a ``hey_there`` is a restart,
* ``session`` — the connection number within this boot, bumped on every reconnect, so a
  ``lost`` will from an earlier connection cannot outrank the node's later news,
* ``at_ms`` — when the emitter made the event, in Unix milliseconds,
* ``credential`` — its membership credential, in an invited network.

Kinds and what they say:

============  ================================================================================
hey_there     "I am here": identity card with start time, endpoints and transport mode
howdy         welcome to a newcomer: which hey_there it answers and up to ten neighbours, each
              as that neighbour's *own* sealed hey_there and latest event, so a responder
              can vouch only with what the neighbour itself signed
chau          graceful goodbye
newspaper     heartbeat with a small status
seen          the emitter (observer) saw ``subject_did`` at ``at_ms``; evidence about the
              emitter only: nobody is believed about anybody but themselves
lost          "my connection ended without a chau": pre-signed and left with the broker as
              the MQTT will, published by the broker when the connection dies
unreachable   a failure report: the emitter, one of ``subject_did``'s assigned observers,
              probed it and got no answer; its latest news of the subject was dated
              ``last_seen_ms``. Alone it changes nothing; a quorum of them shortens the
              subject's silence before MISSING (:mod:`hereabouts.core.suspicion`)
============  ================================================================================

Field limits are declared with the types so that decoding validates them; ``wire.seal``
validates outgoing events the same way, so an invalid event is never sent. Events are
strict: unknown fields are refused, every integer is bounded, and (checked in
:mod:`hereabouts.wire`) a body must be the canonical JSON of its event, every field present,
so that one signed body cannot be read two ways.
"""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta, Raw, Struct

from hereabouts.errors import ConfigError
from hereabouts.printable import NAME_PATTERN

Name = Annotated[str, Meta(min_length=1, max_length=64)]
"""A node's display name: 1-64 characters of printable text, without controls, bidi or
zero-width characters, or white space at either end (see :mod:`hereabouts.printable`).

The character rule is checked by :func:`check_names` (through a cache) rather than by a
pattern here: a regular expression run by the decoder costs 0.7 µs on every event, while a
node hears the same few names over and over."""

_NAME_RE = re.compile(NAME_PATTERN)
_GOOD_NAMES: dict[str, None] = {}
GOOD_NAMES_REMEMBERED: Final = 65_536
"""Names remembered as printable (a few MiB at most); the memory is emptied when full."""


def printable_name(name: str) -> bool:
    """Whether ``name`` holds only characters a name may (the length is the type's job)."""
    if name in _GOOD_NAMES:
        return True
    if _NAME_RE.search(name) is None:
        return False
    if len(_GOOD_NAMES) >= GOOD_NAMES_REMEMBERED:
        _GOOD_NAMES.clear()
    _GOOD_NAMES[name] = None
    return True


def name_problem(event: Event) -> str | None:
    """What is wrong with the names in a decoded peer event (the emitter's, a ``seen``
    subject's, a credential's and its inviter's), or None. Runs on every event: the usual
    case, a name heard before and no credential, is one dictionary look-up."""
    if event.name in _GOOD_NAMES and event.credential is None and type(event) is not Seen:
        return None
    names = [event.name]
    if isinstance(event, Seen):
        names.append(event.subject_name)
    credential = event.credential
    while credential is not None:
        names.append(credential.name)
        credential = credential.parent
    for name in names:
        if not printable_name(name):
            return f"name {name[:80]!r} is not printable text"
    return None


Did = Annotated[str, Meta(min_length=9, max_length=128)]
"""A DID. Its form is checked where it matters, against the key that signed (an emitter's
``did`` must equal the envelope's signer, a valid ``did:key``); a regular expression here
would double the decode cost of every event for no added safety."""


def check_name(name: str) -> str:
    """``name`` if peers would accept it as a node's name, else :class:`ConfigError` (for
    names given locally: a flag, a config, a credential being issued)."""
    try:
        msgspec.convert(name, type=Name)
        if not printable_name(name):
            raise msgspec.ValidationError("not printable")
        return name
    except msgspec.ValidationError:
        raise ConfigError(
            f"name {name[:80]!r} is not allowed: 1-64 printable characters, without control, "
            "bidi or zero-width characters or white space at either end"
        ) from None


BootId = Annotated[str, Meta(min_length=1, max_length=64)]
"""Random per process start; opaque (compared, never interpreted or shown unescaped)."""
Millis = Annotated[int, Meta(ge=0, le=2**53 - 1)]
"""Unix time in milliseconds; bounded by 2^53 so every JSON implementation reads it exactly."""

EventId = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
"""SHA-256 (hex) of an event's signed body bytes: see :mod:`hereabouts.wire`."""

Url = Annotated[str, Meta(min_length=1, max_length=512, pattern=r"^[^\x00-\x20\x7f]+$")]
"""An endpoint's address; URLs hold no white space or control characters."""
EndpointName = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_.-]{0,31}$")]
"""What an endpoint is for (``mesh``, ``api``): lowercase ASCII, so it sorts the same way
in every implementation's canonical JSON."""
Count = Annotated[int, Meta(ge=0, le=2**31 - 1)]
Signature = Annotated[str, Meta(min_length=88, max_length=88)]
"""An Ed25519 signature in padded base64."""

MAX_ENDPOINTS: Final = 8
MAX_HOWDY_NEIGHBOURS: Final = 10
"""A howdy lists at most ten neighbours: enough for a newcomer to reach the network, small
enough that ten howdys stay well under the 16 KiB message limit."""

Transport = Literal["plaza", "mesh", "hybrid"]
"""How a peer is reachable: on the MQTT plaza, only through the HTTP gossip mesh (whose news
arrives hop by hop, so its MISSING threshold is longer), or on both (hybrid)."""


class Credential(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Membership of an invited network (see :mod:`hereabouts.peers.membership`).

    Signed by ``issuer``: the network key, or a member allowed to invite, whose own
    credential then travels as ``parent`` and who spends one of its ``invites`` (``slot``).
    """

    network: Did
    member: Did
    name: Name
    issuer: Did
    issued_at_ms: Millis
    expires_at_ms: Millis
    invites: Annotated[int, Meta(ge=0, le=10_000)] = 0
    slot: Annotated[int, Meta(ge=0, le=10_000)] | None = None
    parent: Credential | None = None
    sig: Signature


class Event(Struct, frozen=True, kw_only=True, tag_field="kind", forbid_unknown_fields=True):
    """Header shared by every event. Not used on its own."""

    name: Name
    did: Did
    boot_id: BootId
    session: Count = 0
    at_ms: Millis
    credential: Credential | None = None
    """In an invited network, every event carries its emitter's membership credential, so
    any event (a heartbeat, a howdy) can introduce a member to a node that has not heard its
    hey_there yet; ``null`` in an open network."""


class Rotation(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A key change for a pinned name, signed by the *old* key
    (see :mod:`hereabouts.peers.keyring`)."""

    old_did: Did
    at_ms: Millis
    sig: Signature


class HeyThere(Event, frozen=True, tag="hey_there"):
    started_at_ms: Millis
    endpoints: Annotated[dict[EndpointName, Url], Meta(max_length=MAX_ENDPOINTS)] = {}
    transport: Transport = "plaza"
    rotation: Rotation | None = None


class Neighbour(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One neighbour a howdy vouches for, in the neighbour's own signed words: its latest
    hey_there (who and where it is) and, when newer, its latest event (how it is: a fresh
    heartbeat, a chau, a ``lost`` will), so a newcomer judges it as everyone else does."""

    hey_there: Raw
    latest: Raw = Raw(b"null")
    """``null`` when the hey_there is the neighbour's latest event (msgspec's ``Raw`` takes
    any JSON value, so no ``| None``; :attr:`latest_event` reads it)."""

    @property
    def latest_event(self) -> bytes | None:
        raw = bytes(self.latest)
        return None if raw == b"null" else raw


class Howdy(Event, frozen=True, tag="howdy"):
    to_did: Did
    answers: EventId
    neighbours: Annotated[list[Neighbour], Meta(max_length=MAX_HOWDY_NEIGHBOURS)] = []


class Chau(Event, frozen=True, tag="chau"):
    pass


class NewspaperStatus(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a heartbeat tells besides "alive": small on purpose, it is sent often."""

    online_peers: Count = 0
    uptime_s: Annotated[int, Meta(ge=0, le=2**53 - 1)] = 0
    next_in_s: Count = 0


class Newspaper(Event, frozen=True, tag="newspaper"):
    status: NewspaperStatus = NewspaperStatus()


class Seen(Event, frozen=True, tag="seen"):
    subject_did: Did
    subject_name: Name
    via: Transport = "mesh"


class Lost(Event, frozen=True, tag="lost"):
    pass


class Unreachable(Event, frozen=True, tag="unreachable"):
    subject_did: Did
    last_seen_ms: Millis
    """``at_ms`` of the subject's latest event the reporter held when its probe failed: the
    report counts only while nobody has heard anything newer from the subject."""


AnyEvent = HeyThere | Howdy | Chau | Newspaper | Seen | Lost | Unreachable
EVENT_TYPES: Final = (HeyThere, Howdy, Chau, Newspaper, Seen, Lost, Unreachable)
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
    "Credential",
    "Event",
    "HeyThere",
    "Howdy",
    "Lost",
    "Neighbour",
    "Newspaper",
    "NewspaperStatus",
    "Rotation",
    "Seen",
    "SignedEvent",
    "Unreachable",
    "check_name",
    "kind_of",
]
