"""The cache of other nodes' documents: newest wins, never older over newer, bounded."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from hereabouts.advert.cache import PresenceCache
from hereabouts.advert.errors import PresenceBadSignature, PresenceExpired, PresenceStale
from hereabouts.advert.merkle import ConsistencyProof, MerkleTree, format_root
from hereabouts.identity import Identity
from tests.advert.conftest import T0, Clock

NOW = T0 + timedelta(seconds=10)


def test_newer_replaces_older_never_the_reverse(make_doc: Any, clock: Clock) -> None:
    cache = PresenceCache(clock=clock)
    old = make_doc()
    new = make_doc(issued_at=T0 + timedelta(seconds=5))
    clock.advance(10)
    assert cache.put(old)
    assert cache.put(new)
    with pytest.raises(PresenceStale):
        cache.put(old)
    assert not cache.put(new)  # the same document again is a no-op
    held = cache.get(new["did"])
    assert held is not None and held.doc == new
    clock.advance(600)  # new expired at T0+605
    assert cache.get(new["did"]) is None
    with pytest.raises(PresenceExpired):
        cache.put(old)


def test_older_refused_even_after_the_newer_expired(make_doc: Any, clock: Clock) -> None:
    cache = PresenceCache(clock=clock)
    short = make_doc(issued_at=T0 + timedelta(seconds=5), lifetime_s=20)
    long_old = make_doc(lifetime_s=3600)
    cache.put(short, now=NOW)
    assert cache.get(short["did"], now=T0 + timedelta(seconds=30)) is None
    with pytest.raises(PresenceStale):
        cache.put(long_old, now=T0 + timedelta(seconds=30))


def test_same_second_different_document_is_stale(make_doc: Any) -> None:
    cache = PresenceCache()
    cache.put(make_doc(), now=NOW)
    with pytest.raises(PresenceStale):
        cache.put(make_doc(endpoints={"mcp": "https://other.example"}), now=NOW)


def test_invalid_never_enters(make_doc: Any) -> None:
    cache = PresenceCache()
    doc = make_doc()
    with pytest.raises(PresenceBadSignature):
        cache.put({**doc, "endpoints": {"mcp": "https://evil.example"}}, now=NOW)
    assert len(cache) == 0


def test_bounded_evicts_soonest_expiring(make_doc: Any) -> None:
    cache = PresenceCache(max_entries=2)
    docs = [
        make_doc(identity=Identity.from_seed(bytes([i]) * 32), lifetime_s=100 * (i + 1))
        for i in range(3)
    ]
    for doc in docs:
        cache.put(doc, now=NOW)
    assert len(cache) == 2
    assert cache.get(docs[0]["did"], now=NOW) is None


def test_proof_linking_is_reported(make_doc: Any) -> None:
    tree = MerkleTree.from_leaves([b"a", b"b", b"c", b"d"])
    cache = PresenceCache()
    first = make_doc(merkle_root=format_root(tree.root(3)))
    cache.put(first, now=NOW)
    second = make_doc(issued_at=T0 + timedelta(seconds=5), merkle_root=format_root(tree.root()),
                      proof=ConsistencyProof.between(tree, 3))
    cache.put(second, now=NOW)
    held = cache.get(second["did"], now=NOW)
    assert held is not None and held.linked is True
    third = make_doc(issued_at=T0 + timedelta(seconds=6), merkle_root=format_root(tree.root(2)))
    cache.put(third, now=NOW)
    held = cache.get(third["did"], now=NOW)
    assert held is not None and held.linked is False
