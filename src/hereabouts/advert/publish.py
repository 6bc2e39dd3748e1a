"""Publishing one document: build it, link it to the previous one, sign it, store it.

Shared by the ``hereabouts advert publish`` command and the re-publisher, so both produce the
same documents. The link to the previous document is the consistency proof of the ``proof``
field: when this issue's root comes from an index (a :class:`MerkleTree`) and the previous
document's ``merkle_root`` is the root of a prefix of that index, the proof from that prefix
to the whole index is included. When no prefix matches (files were removed or inserted in
the middle, or the old root was computed elsewhere), the document goes out without a proof,
and :attr:`Published.note` says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hereabouts.advert.document import DEFAULT_LIFETIME_S, build_presence
from hereabouts.advert.errors import AdvertUsageError, PresenceBadProof
from hereabouts.advert.merkle import ConsistencyProof, MerkleTree, format_root, parse_root
from hereabouts.advert.store import PresenceStore
from hereabouts.advert.timestamps import format_time, parse_time, truncate
from hereabouts.identity import Identity

#: How far ahead of the clock a default issue time may move to follow the previous issue.
#: Two publishes within one second would otherwise collide (one document per alias per
#: second); a few seconds stays well inside the 30 s skew verifiers allow for ``issued_at``,
#: while a previous issue further ahead (published with an explicit future time) is
#: reported instead of chased.
MAX_ISSUE_NUDGE_S = 5


def next_issue_time(previous: Mapping[str, Any] | None, now: datetime) -> datetime:
    """The ``issued_at`` for a publish that did not ask for one: ``now`` (whole seconds), or
    one second after ``previous``'s when that is later and at most
    :data:`MAX_ISSUE_NUDGE_S` ahead of ``now``."""
    issued = truncate(now)
    if previous is None:
        return issued
    try:
        following = parse_time(previous["issued_at"]) + timedelta(seconds=1)
    except (KeyError, ValueError):
        return issued
    if issued < following <= issued + timedelta(seconds=MAX_ISSUE_NUDGE_S):
        return following
    return issued


@dataclass(frozen=True, slots=True)
class Published:
    """What a publish produced."""

    doc: dict[str, Any]
    path: Path
    proof: ConsistencyProof | None
    note: str


def link_to_previous(
    tree: MerkleTree, previous: Mapping[str, Any] | None
) -> tuple[ConsistencyProof | None, str]:
    """The consistency proof from ``previous``'s root to ``tree``, and a one-line note."""
    if previous is None:
        return None, "first document of this alias: no consistency proof"
    try:
        old_root = parse_root(previous.get("merkle_root", ""))
    except ValueError:
        return None, "previous document has no usable merkle_root: no consistency proof"
    hint: int | None = None
    if isinstance(previous.get("proof"), str):
        try:
            hint = ConsistencyProof.decode(previous["proof"]).new_size
        except PresenceBadProof:
            hint = None
    size = tree.prefix_with_root(old_root, hint)
    if size is None:
        return None, ("previous root is not a prefix of this index (it did not only grow): "
                      "no consistency proof")
    proof = ConsistencyProof.between(tree, size)
    return proof, f"consistency proof from {size} to {tree.size} leaves"


def publish_presence(
    *,
    identity: Identity,
    store: PresenceStore,
    alias: str,
    endpoints: Mapping[str, str],
    issued_at: datetime,
    relays: Iterable[Mapping[str, str]] = (),
    lifetime_s: int = DEFAULT_LIFETIME_S,
    ttl_seconds: int | None = None,
    index: MerkleTree | None = None,
    merkle_root: str | None = None,
) -> Published:
    """Sign and store a new document for ``alias``; give exactly one of index/merkle_root."""
    if (index is None) == (merkle_root is None):
        raise AdvertUsageError("give exactly one of an index or a Merkle root")
    previous = store.latest(alias)
    if previous is not None and previous.get("did") != identity.did:
        previous = None  # the node's key changed: the old chain is not ours to extend
    issued = truncate(issued_at)
    if previous is not None:
        try:
            last = parse_time(previous["issued_at"])
        except (KeyError, ValueError):
            last = None
        if last is not None and issued <= last:
            raise AdvertUsageError(
                f"issued_at {format_time(issued)} is not after the previous document's "
                f"{format_time(last)}; followers would ignore it"
            )
    proof: ConsistencyProof | None = None
    if index is not None:
        root = format_root(index.root())
        proof, note = link_to_previous(index, previous)
    else:
        assert merkle_root is not None
        root = merkle_root
        note = "externally computed Merkle root: no consistency proof"
    doc = build_presence(
        identity,
        endpoints=endpoints,
        merkle_root=root,
        issued_at=issued,
        lifetime_s=lifetime_s,
        relays=relays,
        proof=proof,
        ttl_seconds=ttl_seconds,
    )
    path = store.save(alias, doc)
    return Published(doc, path, proof, note)
