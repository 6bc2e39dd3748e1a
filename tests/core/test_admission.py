"""Per-address budgets of the browser hub, and its proof of work (sans-I/O, no sockets)."""

from __future__ import annotations

import hashlib

import pytest

from hereabouts.core.admission import (
    POW_TAG,
    AddressBudgets,
    AddressBusy,
    AddressRateLimited,
    JoinBudgetSpent,
    address_key,
    leading_zero_bits,
    pow_ok,
)
from hereabouts.errors import EventRejected, RemoteError


def budgets(**overrides: int | float) -> AddressBudgets:
    settings: dict[str, int | float] = {
        "max_connections": 2,
        "events_per_s": 1.0,
        "event_burst": 3,
        "joins": 2,
    }
    settings.update(overrides)
    return AddressBudgets(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),  # same /64, same budget
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),  # next /64, another
        ("::ffff:198.51.100.4", "198.51.100.4"),  # IPv4-mapped counts as the IPv4 address
        ("fe80::1%eth0", "fe80::/64"),
        (None, "unknown"),
        ("", "unknown"),
        ("not an address", "unknown"),
    ],
)
def test_address_keys(host: str | None, key: str) -> None:
    assert address_key(host) == key


def test_connections_per_address_are_bounded_and_given_back() -> None:
    b = budgets()
    b.connect("a")
    b.connect("a")
    with pytest.raises(AddressBusy) as refused:
        b.connect("a")
    assert refused.value.reason == "address_busy" and isinstance(refused.value, RemoteError)
    b.connect("b")  # another address is not affected
    b.disconnect("a")
    b.connect("a")
    assert b.connections("a") == 2
    for _ in range(2):
        b.disconnect("a")
    b.disconnect("b")
    assert b.addresses == 0  # nothing kept for addresses without a connection


def test_the_event_bucket_is_per_address_and_refills() -> None:
    b = budgets()
    for _ in range(3):
        b.spend_event("a", 0)
    with pytest.raises(AddressRateLimited) as refused:
        b.spend_event("a", 0)
    assert refused.value.reason == "address_rate_limited"
    assert isinstance(refused.value, EventRejected)
    b.spend_event("b", 0)
    b.spend_event("a", 1000)  # one token back after a second
    with pytest.raises(AddressRateLimited):
        b.spend_event("a", 1000)


def test_joins_per_room_and_epoch_with_leaves_giving_back() -> None:
    b = budgets()
    b.check_join("a", "room", 7)
    b.joined("a", "room", 7)
    b.joined("a", "room", 7)
    with pytest.raises(JoinBudgetSpent) as refused:
        b.check_join("a", "room", 7)
    assert refused.value.reason == "join_budget"
    # Other rooms, epochs and addresses have budgets of their own.
    b.check_join("a", "other-room", 7)
    b.check_join("a", "room", 8)
    b.check_join("b", "room", 7)
    # A counted visitor leaving gives its join back; never below zero.
    b.left("a", "room", 7)
    b.check_join("a", "room", 7)
    for _ in range(5):
        b.left("a", "room", 7)
    assert b.joins_used("a", "room", 7) == 0
    b.left("c", "room", 7)  # nothing joined: nothing kept
    assert b.join_entries == 1


def test_the_join_table_is_bounded_and_forgets_the_least_recent_first() -> None:
    b = budgets(joins=1, max_join_entries=3)  # type: ignore[arg-type]
    b.joined("a", "room", 1)
    for room in ("r1", "r2", "r3"):
        b.joined("x", room, 1)
    assert b.join_entries == 3
    b.check_join("a", "room", 1)  # forgotten: a fresh budget, the documented price
    with pytest.raises(JoinBudgetSpent):
        b.check_join("x", "r3", 1)


def test_pow_counts_leading_zero_bits_of_the_tagged_hash() -> None:
    assert leading_zero_bits(b"\x00\x00\xff") == 16
    assert leading_zero_bits(b"\x00\x1f") == 11
    assert leading_zero_bits(b"\x80") == 0
    assert leading_zero_bits(b"\x00\x00") == 16
    challenge, did, bits = bytes(16), "did:key:z6Mkexample", 10
    nonce = next(
        str(n)
        for n in range(1 << 16)
        if leading_zero_bits(
            hashlib.sha256(POW_TAG + challenge + did.encode() + str(n).encode()).digest()
        )
        >= bits
    )
    assert pow_ok(challenge, did, nonce, bits)
    # The work is bound to its challenge and its DID (fixed inputs: deterministic).
    assert not pow_ok(bytes([1]) + challenge[1:], did, nonce, bits)
    assert not pow_ok(challenge, did + "x", nonce, bits)
    assert pow_ok(challenge, did, "anything", 0)  # off
    for bad in ("", "12a", "1" * 17, "-1", "١٢"):  # digits only, ASCII, at most 16
        assert not pow_ok(challenge, did, bad, 1)
