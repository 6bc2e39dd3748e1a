"""Mesh reconciliation rules: digests and the replies planned from them."""

from __future__ import annotations

import pytest

from hereabouts.core.reconcile import (
    ENTRY_BYTES,
    Item,
    MalformedDigest,
    decode_digest,
    encode_digest,
    origin_key,
    plan_reply,
)


def holder(events: dict[str, list[Item]]) -> tuple[dict[str, int], object]:
    versions = {did: max(i.at_ms for i in items) for did, items in events.items()}
    return versions, lambda did: events.get(did, [])


def test_digest_round_trip_is_sorted_and_sixteen_bytes_an_origin() -> None:
    versions = {f"did:key:z{n}": n * 1000 for n in range(50)}
    data = encode_digest(versions)
    assert len(data) == 50 * ENTRY_BYTES
    assert decode_digest(data, max_entries=50) == {origin_key(d): v for d, v in versions.items()}


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x00" * 15, "multiple"),
        (encode_digest({"a": 1, "b": 2})[16:] + encode_digest({"a": 1, "b": 2})[:16], "sorted"),
        (encode_digest({"a": 1}) * 2, "sorted"),
        (origin_key("a") + (-1).to_bytes(8, "big", signed=True), "negative"),
        (encode_digest({str(n): n for n in range(5)}), "at most"),
    ],
)
def test_malformed_digests_are_refused_with_a_reason(data: bytes, why: str) -> None:
    with pytest.raises(MalformedDigest, match=why) as caught:
        decode_digest(data, max_entries=4)
    assert caught.value.reason == "digest_malformed"


def test_two_holders_that_agree_plan_nothing() -> None:
    events = {"a": [Item(10, "a1", "hey_there", 500)], "b": [Item(20, "b1", "newspaper", 400)]}
    versions, evidence = holder(events)
    theirs = decode_digest(encode_digest(versions), max_entries=10)
    reply = plan_reply(versions, evidence, theirs, budget_bytes=10_000)  # type: ignore[arg-type]
    assert reply.event_ids == [] and reply.left_out == 0


def test_only_what_is_newer_than_their_version_goes_most_important_first() -> None:
    events = {
        "a": [Item(10, "a-hey", "hey_there", 500), Item(30, "a-news", "newspaper", 400)],
        "b": [Item(5, "b-hey", "hey_there", 500), Item(40, "b-chau", "chau", 300)],
        "c": [Item(7, "c-lost", "lost", 300), Item(6, "c-hey", "hey_there", 500)],
    }
    versions, evidence = holder(events)
    theirs = {origin_key("a"): 10, origin_key("b"): 5}  # they lack c entirely
    reply = plan_reply(versions, evidence, theirs, budget_bytes=10_000)  # type: ignore[arg-type]
    assert reply.event_ids == ["b-chau", "c-lost", "c-hey", "a-news"]


def test_the_budget_cuts_the_reply_and_the_rest_follows_next_time() -> None:
    events = {f"o{n}": [Item(100 + n, f"o{n}-hey", "hey_there", 600)] for n in range(10)}
    versions, evidence = holder(events)
    theirs: dict[bytes, int] = {}
    sent: list[str] = []
    for _ in range(4):
        reply = plan_reply(versions, evidence, theirs, budget_bytes=2_000)  # type: ignore[arg-type]
        assert reply.size <= 2_000
        sent += reply.event_ids
        for event_id in reply.event_ids:  # they took these in: their versions move up
            origin = event_id.split("-")[0]
            theirs[origin_key(origin)] = versions[origin]
        if not reply.left_out:
            break
    assert sorted(sent) == sorted(f"o{n}-hey" for n in range(10))
    assert len(sent) == len(set(sent))


def test_an_event_larger_than_the_budget_still_goes_alone() -> None:
    events = {"a": [Item(1, "big", "howdy", 50_000)], "b": [Item(2, "small", "newspaper", 10)]}
    versions, evidence = holder(events)
    reply = plan_reply(versions, evidence, {}, budget_bytes=1_000)  # type: ignore[arg-type]
    assert reply.event_ids == ["small"] and reply.left_out == 1
    reply = plan_reply(versions, evidence, {origin_key("b"): 2}, budget_bytes=1_000)  # type: ignore[arg-type]
    assert reply.event_ids == ["big"]
