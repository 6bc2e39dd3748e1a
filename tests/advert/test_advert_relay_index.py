"""The relay's in-memory index: its orders, its counts, its rate limits (no I/O)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hereabouts.advert.relay_index import (
    UNKNOWN_ADDRESS,
    AddressBudgets,
    IndexEntry,
    KeyedHeap,
    RelayIndex,
    TokenBucket,
    address_key,
)
from tests.advert.conftest import T0


def entry(did: str, address: str, *, stored: float = 0, until: float = 600,
          issued: float = 0) -> IndexEntry:
    return IndexEntry(
        did=did,
        issued_at=T0 + timedelta(seconds=issued),
        stored_at=T0 + timedelta(seconds=stored),
        serve_until=T0 + timedelta(seconds=until),
        size=100,
        digest=b"d",
        address=address,
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 15), st.integers(0, 50)), max_size=80))
def test_keyed_heap_always_peeks_the_smallest(ops: list[tuple[bool, int, int]]) -> None:
    heap = KeyedHeap()
    model: dict[str, int] = {}
    for push, name, key in ops:
        did = f"did:{name}"
        if push:
            heap.push(did, T0 + timedelta(seconds=key))
            model[did] = key
        else:
            heap.remove(did)
            model.pop(did, None)
        assert len(heap) == len(model)
        top = heap.peek()
        if not model:
            assert top is None
        else:
            assert top is not None
            assert top == min((T0 + timedelta(seconds=k), d) for d, k in model.items())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["live", "bury", "forget"]), st.integers(0, 11),
                          st.sampled_from("abcd")), max_size=80))
def test_index_counts_match_a_brute_force_model(ops: list[tuple[str, int, str]]) -> None:
    index = RelayIndex()
    live: dict[str, str] = {}  # did -> address, in the order stored
    graves: set[str] = set()
    for step, (op, name, address) in enumerate(ops):
        did = f"did:{name}"
        if op == "live":
            index.put_live(entry(did, address, stored=step, until=600 + step))
            live.pop(did, None)
            live[did] = address
            graves.discard(did)
        elif op == "bury" and did in live:
            index.bury(did)
            del live[did]
            graves.add(did)
        elif op == "forget":
            index.forget(did)
            live.pop(did, None)
            graves.discard(did)
        held: dict[str, list[str]] = {}
        for d, a in live.items():
            held.setdefault(a, []).append(d)
        assert index.live == len(live) and index.tombstones == len(graves)
        assert index.addresses == len(held)
        assert index.live_bytes == 100 * len(live)
        for a in "abcd":
            assert index.held_by(a) == len(held.get(a, []))
        victim = index.fair_victim()
        if not held:
            assert victim is None
        else:
            most = max(len(dids) for dids in held.values())
            assert victim in {dids[0] for dids in held.values() if len(dids) == most}


def test_fair_victim_is_the_oldest_of_the_heaviest_address() -> None:
    index = RelayIndex()
    index.put_live(entry("did:real", "10.0.0.1", stored=0))
    for n in range(3):
        index.put_live(entry(f"did:flood{n}", "10.0.0.2", stored=1 + n))
    assert index.fair_victim() == "did:flood0"
    index.bury("did:flood0")
    assert index.fair_victim() == "did:flood1"
    assert index.get("did:flood0") is not None and index.get("did:flood0").tombstone  # type: ignore[union-attr]
    # a replacement moves the DID to the back of its address's order
    index.put_live(entry("did:flood1", "10.0.0.2", stored=9))
    assert index.fair_victim() == "did:flood2"
    assert index.oldest_of("10.0.0.1") is not None
    assert index.oldest_of("10.0.0.9") is None


def test_expiry_and_tombstone_orders() -> None:
    index = RelayIndex()
    index.put_live(entry("did:a", "x", until=300, issued=10))
    index.put_live(entry("did:b", "x", until=200, issued=20))
    assert index.first_expired(T0 + timedelta(seconds=199)) is None
    assert index.first_expired(T0 + timedelta(seconds=200)) == "did:b"
    index.bury("did:b")
    index.bury("did:a")
    # tombstones go by issued_at: did:a was issued first, so it is the oldest
    assert index.oldest_tombstone() == "did:a"
    week = timedelta(days=7)
    assert index.oldest_tombstone(before=T0 + week) is None
    assert index.oldest_tombstone(before=T0 + week + timedelta(seconds=10)) == "did:a"
    assert index.live == 0 and index.live_bytes == 0


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("fe80::1%eth0", "fe80::/64"),
        (None, UNKNOWN_ADDRESS),
        ("", UNKNOWN_ADDRESS),
        ("testclient", "testclient"),
    ],
)
def test_address_key(host: str | None, key: str) -> None:
    assert address_key(host) == key


def test_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket.full(2, 0.0)
    assert bucket.take(0.0, 0.5, 2) == 0.0
    assert bucket.take(0.0, 0.5, 2) == 0.0
    assert bucket.take(0.0, 0.5, 2) == pytest.approx(2.0)
    assert bucket.take(1.0, 0.5, 2) == pytest.approx(1.0)
    assert bucket.take(2.0, 0.5, 2) == 0.0
    assert bucket.take(100.0, 0.5, 2) == 0.0  # never more than the burst
    assert bucket.take(100.0, 0.5, 2) == 0.0
    assert bucket.take(100.0, 0.5, 2) > 0


def test_address_budgets_are_separate_and_bounded() -> None:
    budgets = AddressBudgets(1.0, 2, max_tracked=3)
    assert budgets.take("a", 0.0) == 0.0 and budgets.take("a", 0.0) == 0.0
    assert budgets.take("a", 0.0) == pytest.approx(1.0)
    assert budgets.take("b", 0.0) == 0.0
    for other in ("c", "d"):
        budgets.take(other, 0.0)
    assert len(budgets) == 3  # "a" was heard from least recently and is forgotten
    assert budgets.take("a", 0.0) == 0.0
