"""The JSON shapes of the HTTP API: peers, snapshots and status changes.

One module builds every document that ``/v1/peers`` and ``/v1/stream`` send, so the list, the
stream's snapshot and the dashboard all agree on field names. Times go out twice: as
``*_at_ms`` (Unix milliseconds, exact, what programs should compare) and as ``*_at`` (RFC 3339
UTC with milliseconds and a ``Z``, what people and log tools read). The millisecond form is
always present because presence is judged at millisecond resolution and a whole-second
string would hide the order of two events in the same second.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hereabouts.core.effects import StatusChanged
from hereabouts.core.projection import PeerView

if TYPE_CHECKING:
    from hereabouts.web.app import NodeView

JsonObject = dict[str, Any]


def format_ms(at_ms: int) -> str:
    """``at_ms`` (Unix milliseconds) as ``YYYY-MM-DDTHH:MM:SS.mmmZ``.

    Integer arithmetic on purpose: going through a float second count can round
    ``.999`` up into the next second.
    """
    seconds, millis = divmod(at_ms, 1000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{millis:03d}Z"


def node_json(node: NodeView) -> JsonObject:
    """Who is answering: the node's own name, DID and boot id, and ``warnings``: one line
    for each part of ``/healthz`` that is not ok (another process using this node's key, a
    full disk, a dead task), so the dashboard can say so."""
    try:
        health = node.health()
    except Exception:  # the warnings are a courtesy; the peers list must still go out
        health = {}
    warnings = [
        str(part.get("error") or f"{name} is not ok")
        for name, part in health.items()
        if isinstance(part, dict) and part.get("ok") is False
    ]
    return {"name": node.name, "did": node.did, "boot_id": node.boot_id, "warnings": warnings}


def peer_json(peer: PeerView, *, own_did: str) -> JsonObject:
    """One row of the neighbourhood. ``self`` marks the node's own entry.

    ``name`` is safe to show: a name that another key holds, or that this key has not yet
    proved itself under, carries ``~`` and the key's fingerprint; ``claimed_name`` is what
    the peer calls itself. ``trust`` is ``member``, ``proven`` or ``new``; ``shared_key``
    says two processes seem to use this peer's key; ``reports`` counts its assigned
    observers that report it unreachable (from three on, it goes MISSING sooner)."""
    return {
        "name": peer.name,
        "claimed_name": peer.claimed_name or peer.name,
        "name_status": peer.name_status,
        "fingerprint": peer.fingerprint,
        "trust": peer.trust,
        "shared_key": peer.clash,
        "did": peer.did,
        "status": str(peer.status),
        "last_event": peer.last_event,
        "last_event_at": format_ms(peer.last_event_at_ms),
        "last_event_at_ms": peer.last_event_at_ms,
        "last_event_id": peer.last_event_id,
        "boot_id": peer.boot_id,
        "restarts": peer.restarts,
        "transport": peer.transport,
        "endpoints": dict(peer.endpoints),
        "reports": peer.reports,
        "self": peer.did == own_did,
    }


def peers_json(node: NodeView) -> JsonObject:
    """The body of ``GET /v1/peers`` and of the stream's ``snapshot`` event."""
    own = node.did
    return {
        "node": node_json(node),
        "peers": [peer_json(peer, own_did=own) for peer in node.peers()],
    }


def change_json(change: StatusChanged) -> JsonObject:
    """The body of the stream's ``change`` event; ``old`` is null for a newly known peer."""
    return {
        "did": change.did,
        "name": change.name,
        "old": None if change.old is None else str(change.old),
        "new": str(change.new),
        "at": format_ms(change.at_ms),
        "at_ms": change.at_ms,
        "cause": change.cause,
        "event_id": change.event_id,
    }
