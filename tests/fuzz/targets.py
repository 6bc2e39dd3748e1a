"""What the fuzzers feed: every decoder of signed input from elsewhere, in one table.

Each :class:`Target` names a decoder, the genuinely signed inputs it starts from (its seed
corpus) and how to run one input through it. :func:`check` runs one input and holds it to
two properties:

1. **Typed refusals only.** The input is read, or refused with the target's typed error (a
   :class:`~hereabouts.errors.RemoteError`, since all of it arrives from elsewhere; for
   presence@2 documents a :class:`~hereabouts.advert.errors.PresenceRejected`). Anything
   else (``RecursionError``, ``ValueError``, ``KeyError``, a msgspec error...) escapes the
   handlers that count refusals and is a finding.
2. **No forgery.** Nobody but the seeds' signers can sign, and the fuzzer holds none of
   their keys, so whatever an input is read as must be something a seed was read as: same
   event id and same event for peer and site events (and, peer events being canonical, the
   very same bytes), the same signed payload for documents, credentials and revocations.

The hypothesis tests (``tests/fuzz/test_fuzz.py``) and the atheris bench (``bench/fuzz.py``)
both use this table. To fuzz a new decoder, add a :class:`Target` to :data:`TARGETS`: a
function that reads one input (returning what it means once verified, ``None`` when the
input carries nothing signed) and a function that signs a few valid inputs.

Not here yet: the HTTP gossip mesh's sync bodies. The mesh does not exist (issue 12), so
there is no decoder of sync bodies to fuzz; its decoder gets a row here when it lands.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import traceback
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec

from hereabouts.advert.document import (
    MAX_DOCUMENT_BYTES,
    build_presence,
    check_presence,
    decode_presence,
    encode_presence,
    signing_payload,
)
from hereabouts.advert.errors import PresenceRejected
from hereabouts.advert.merkle import ConsistencyProof, MerkleTree, format_root
from hereabouts.config import WireLimits
from hereabouts.core.effects import Vouch
from hereabouts.errors import RemoteError
from hereabouts.events import Credential, NewspaperStatus
from hereabouts.identity import Identity
from hereabouts.peers.keyring import make_rotation
from hereabouts.peers.membership import (
    check_credential,
    check_revocation,
    decode_credential,
    decode_revocation,
    encode_credential,
    encode_revocation,
    issue_credential,
    sign_revocation,
)
from hereabouts.sites.errors import InvalidRoom
from hereabouts.sites.events import SITE_EVENTS, SiteHeartbeat, SiteLeave
from hereabouts.sites.hub_protocol import (
    MAX_FRAME_BYTES,
    BadRoom,
    Submit,
    decode_frame,
    sealed_bytes,
)
from hereabouts.sites.rooms import room_key
from hereabouts.wire import seal_as, unseal, unseal_as
from tests.fuzz.mutations import Vocabulary
from tests.signers import MINUTE, T0, Peer
from tests.sites.support import browser_sealed, event_frame, watch_frame

MAX_EVENT_BYTES = WireLimits().max_event_bytes

NOW_MS = T0 + MINUTE
"""The receivers' clock for events and credentials: a minute after the seeds were made."""

DAY_MS = 24 * 60 * MINUTE
DOCUMENT_T0 = datetime(2025, 1, 1, 11, 50, 0, tzinfo=UTC)
DOCUMENT_NOW = DOCUMENT_T0 + timedelta(seconds=60)

ALICE = Peer("alice", seed=1)
BOB = Peer("bob", seed=2, transport="mesh")
CAROL = Peer("Zoë 東京", seed=3)
DAVE = Peer("dave", seed=4)
ERIN = Peer("erin", seed=5)
NETWORK = Identity.from_seed(b"\x07" * 32)
ORIGIN = "https://example.com"
ROOMS = ("lobby", "kitchen", "東京")


class Finding(AssertionError):
    """An input that broke a property: ``kind`` is ``untyped`` or ``forgery``; ``key``
    groups findings with one cause (the error type and where it was raised)."""

    def __init__(self, target: str, kind: str, key: str, detail: str) -> None:
        super().__init__(f"{target}: {kind}: {detail}")
        self.target = target
        self.kind = kind
        self.key = key


@dataclass(frozen=True)
class Target:
    """One decoder to fuzz."""

    name: str
    open: Callable[[bytes], Hashable | None]
    """Read one input as the receiving code does; return what it means once verified
    (``None`` for input that carries nothing signed), or raise the reason it is refused."""
    signed: Callable[[], Sequence[bytes]]
    """Genuinely signed, valid inputs: the seed corpus and the only meanings allowed."""
    refusals: type[BaseException]
    """The typed error every refusal must be an instance of."""
    max_size: int
    """The decoder's size limit: generated inputs go a little past it."""


@dataclass(frozen=True)
class Corpus:
    seeds: tuple[bytes, ...]
    meanings: frozenset[Hashable]
    vocabulary: Vocabulary


@functools.cache
def corpus(target: Target) -> Corpus:
    """The seed inputs, what they mean (read by the target itself) and their words."""
    seeds = tuple(target.signed())
    meanings = frozenset(target.open(seed) for seed in seeds) - {None}
    return Corpus(seeds, meanings, Vocabulary.of(seeds))


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/hereabouts/" in f.filename] or frames
    if not ours:
        return "?"
    frame = ours[-1]
    return f"{frame.filename.rsplit('/hereabouts/', 1)[-1]}:{frame.lineno}"


def check(target: Target, data: bytes) -> None:
    """Run ``data`` through ``target``; raise :class:`Finding` if a property breaks."""
    try:
        meaning = target.open(data)
    except target.refusals:
        return
    except Exception as exc:
        where = _where(exc)
        raise Finding(
            target.name,
            "untyped",
            f"{type(exc).__name__}@{where}",
            f"{type(exc).__name__} at {where}: {str(exc)[:200]}",
        ) from exc
    if meaning is not None and meaning not in corpus(target).meanings:
        raise Finding(
            target.name, "forgery", "forgery", f"read as something never signed: {meaning!r:.300}"
        )


# --- peer events -----------------------------------------------------------------------------

_event_json = msgspec.json.Encoder(order="sorted")


def open_peer_event(data: bytes) -> Hashable:
    signed = unseal(data, now_ms=NOW_MS)
    return ("peer", signed.id, _event_json.encode(signed.event), signed.raw)


def _credentials() -> tuple[Credential, Credential, Credential]:
    """A network credential that may invite, an invitation it issued, a plain one."""
    dave = issue_credential(
        NETWORK, network=NETWORK.did, member=DAVE.did, name=DAVE.name,
        issued_at_ms=T0 - DAY_MS, expires_at_ms=T0 + 30 * DAY_MS, invites=2,
    )
    erin = issue_credential(
        DAVE.identity, network=NETWORK.did, member=ERIN.did, name=ERIN.name,
        issued_at_ms=T0 - DAY_MS, expires_at_ms=T0 + 10 * DAY_MS, slot=1, parent=dave,
    )
    carol = issue_credential(
        NETWORK, network=NETWORK.did, member=CAROL.did, name=CAROL.name,
        issued_at_ms=T0, expires_at_ms=T0 + DAY_MS,
    )
    return dave, erin, carol


def signed_peer_events() -> list[bytes]:
    """One of every kind, a howdy vouching for three neighbours, members' events."""
    dave_cred, erin_cred, _ = _credentials()
    alice_hello = ALICE.sealed(ALICE.hey_there_event(
        T0, endpoints={"mesh": "http://127.0.0.1:9000", "api": "http://[::1]:9001/v1"}
    ))
    bob_hello = BOB.sealed(BOB.hey_there_event(
        T0, rotation=make_rotation(ERIN.identity, name=BOB.name, new_did=BOB.did, at_ms=T0)
    ))
    carol_hello = CAROL.sealed(CAROL.hey_there_event(T0 - MINUTE))
    bob_news = BOB.newspaper(
        T0 + 10, status=NewspaperStatus(online_peers=3, uptime_s=86_400, next_in_s=10)
    ).raw
    carol_lost = CAROL.lost(T0).raw
    dave_hello = DAVE.sealed(DAVE.hey_there_event(T0, credential=dave_cred))
    erin_hello = ERIN.sealed(ERIN.hey_there_event(T0, credential=erin_cred))
    howdy = ALICE.howdy(
        DAVE,
        unseal(dave_hello, now_ms=NOW_MS).id,
        T0 + 20,
        [Vouch(hey_there=bob_hello, latest=bob_news), Vouch(carol_hello, carol_lost),
         erin_hello],
    ).raw
    return [
        alice_hello, bob_hello, carol_hello, bob_news, carol_lost, dave_hello, erin_hello,
        howdy,
        ALICE.chau(T0 + 30).raw,
        ALICE.seen(BOB, T0 + 40).raw,
        DAVE.newspaper(T0 + 50, credential=dave_cred).raw,
    ]


# --- site events and the hub's frames ----------------------------------------------------------

_site_json = msgspec.json.Encoder(order="sorted")


def open_site_event(data: bytes) -> Hashable:
    opened = unseal_as(SITE_EVENTS, data, now_ms=NOW_MS)
    return ("site", opened.id, _site_json.encode(opened.event))


def signed_site_events() -> list[bytes]:
    """Sealed as the widget seals them (``JSON.stringify`` order) and as Python does."""
    lobby, kitchen, tokyo = (room_key(ORIGIN, room) for room in ROOMS)
    visitor, other = Identity.from_seed(b"\x21" * 32), Identity.from_seed(b"\x22" * 32)
    epoch = T0 // 300_000
    return [
        browser_sealed("site_heartbeat", visitor, lobby, at_ms=T0, duration_ms=300_000).encode(),
        browser_sealed("site_leave", visitor, lobby, at_ms=T0 + 5, duration_ms=300_000).encode(),
        browser_sealed("site_heartbeat", other, tokyo, at_ms=T0, duration_ms=300_000).encode(),
        seal_as(SITE_EVENTS, SiteHeartbeat(did=other.did, room_key=kitchen, epoch=epoch,
                                           at_ms=T0), other),
        seal_as(SITE_EVENTS, SiteLeave(did=other.did, room_key=kitchen, epoch=epoch,
                                       at_ms=T0 + 1), other),
    ]


def open_hub_frame(data: bytes) -> Hashable | None:
    """A client frame as :meth:`~hereabouts.sites.hub.SiteHub.receive` reads it, up to the
    point where the hub's state would change: rooms keyed at the connection's origin,
    events verified."""
    frame = decode_frame(data)
    if isinstance(frame, Submit):
        return open_site_event(sealed_bytes(frame))
    for room in frame.rooms:
        try:
            room_key(ORIGIN, room.name)
        except InvalidRoom:
            raise BadRoom("not a room name") from None
    return None


def signed_hub_frames() -> list[bytes]:
    frames = [watch_frame(ORIGIN, *ROOMS).encode(), watch_frame(ORIGIN, "lobby").encode()]
    for i, sealed in enumerate(signed_site_events()):
        text = sealed.decode()
        frames.append(event_frame(text, pow="12345" if i % 2 else None).encode())
        frames.append(b'{"type":"event","sealed":%s}' % json.dumps(text).encode())
    return frames


# --- presence@2 documents ------------------------------------------------------------------


def open_presence(data: bytes) -> Hashable:
    doc = decode_presence(data)
    check_presence(doc, now=DOCUMENT_NOW)
    return ("presence", doc["id"], signing_payload(doc))


def signed_documents() -> list[bytes]:
    """Plain, with relays and a TTL, with a consistency proof; canonical and pretty."""
    identity = Identity.from_seed(bytes(range(32)))
    tree = MerkleTree.from_leaves([b"%d" % i for i in range(10)])
    plain = build_presence(
        identity, endpoints={"mcp": "https://node.example.org:7733"},
        merkle_root=format_root(MerkleTree.from_leaves([b"one"]).root()),
        issued_at=DOCUMENT_T0,
    )
    full = build_presence(
        identity,
        endpoints={"mcp": "https://node.example.org:7733",
                   "presence": "https://node.example.org/.well-known/hn/presence"},
        merkle_root=format_root(tree.root()),
        issued_at=DOCUMENT_T0,
        lifetime_s=3600,
        relays=[{"host": "did:hn:relay", "url": "https://relay.example",
                 "expires_at": "2025-01-01T12:10:00Z"},
                {"host": "did:web:relay.example", "url": "http://127.0.0.1:8080/r"}],
        proof=ConsistencyProof.between(tree, 6),
        ttl_seconds=600,
    )
    return [
        encode_presence(plain),
        encode_presence(full),
        json.dumps(full, indent=2, ensure_ascii=True).encode(),
    ]


# --- invited networks: credentials and revocations ----------------------------------------------


def _unsigned(value: msgspec.Struct) -> bytes:
    return _event_json.encode(msgspec.structs.replace(value, sig=""))


def open_credential(data: bytes) -> Hashable:
    credential = decode_credential(data)
    info = check_credential(credential, network=NETWORK.did, now_ms=NOW_MS)
    return ("credential", _unsigned(credential), info)


def signed_credentials() -> list[bytes]:
    return [encode_credential(credential) for credential in _credentials()]


def open_revocation(data: bytes) -> Hashable:
    revocation = decode_revocation(data)
    check_revocation(revocation, network=NETWORK.did)
    return ("revocation", _unsigned(revocation))


def signed_revocations() -> list[bytes]:
    return [
        encode_revocation(sign_revocation(NETWORK, member=DAVE.did, at_ms=T0)),
        encode_revocation(sign_revocation(NETWORK, member=ERIN.did, at_ms=T0 + 1,
                                          reason="left the team — ¡adiós!")),
    ]


TARGETS: tuple[Target, ...] = (
    Target("peer_event", open_peer_event, signed_peer_events, RemoteError, MAX_EVENT_BYTES),
    Target("site_event", open_site_event, signed_site_events, RemoteError, MAX_EVENT_BYTES),
    Target("hub_frame", open_hub_frame, signed_hub_frames, RemoteError, MAX_FRAME_BYTES),
    Target("presence", open_presence, signed_documents, PresenceRejected, MAX_DOCUMENT_BYTES),
    Target("credential", open_credential, signed_credentials, RemoteError, MAX_EVENT_BYTES),
    Target("revocation", open_revocation, signed_revocations, RemoteError, MAX_EVENT_BYTES),
)
"""Every decoder fuzzed. Sync bodies of the gossip mesh join when the mesh exists."""

BY_NAME = {target.name: target for target in TARGETS}


def seed_signature(data: bytes) -> str:
    """A short printable name for an input (file names of findings)."""
    return base64.b32encode(hashlib.sha256(data).digest()).decode()[:16].lower()


__all__ = ["BY_NAME", "TARGETS", "Corpus", "Finding", "Target", "check", "corpus"]
