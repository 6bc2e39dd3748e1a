"""Topic names and MQTT wildcard matching (the rules the memory bus shares with brokers)."""

from __future__ import annotations

import pytest

from hereabouts.transports import topics
from hereabouts.transports.errors import InvalidTopic


def test_contract_topic_names() -> None:
    assert topics.plaza_topic("hey_there") == "hereabouts/v1/plaza/hey_there"
    assert topics.site_topic("r0Om") == "hereabouts/v1/site/r0Om"
    assert topics.PLAZA_ALL == "hereabouts/v1/plaza/+"
    assert topics.SITE_ALL == "hereabouts/v1/site/+"


def test_parsing_back() -> None:
    assert topics.plaza_kind("hereabouts/v1/plaza/chau") == "chau"
    assert topics.plaza_kind("hereabouts/v1/site/chau") is None
    assert topics.plaza_kind("hereabouts/v1/plaza/a/b") is None
    assert topics.site_room("hereabouts/v1/site/abc") == "abc"
    assert topics.site_room("elsewhere/abc") is None


@pytest.mark.parametrize("bad", ["", "a/b", "+", "#", "x+", "nul\x00"])
def test_kinds_and_room_keys_are_one_level(bad: str) -> None:
    with pytest.raises(InvalidTopic):
        topics.plaza_topic(bad)
    with pytest.raises(InvalidTopic):
        topics.site_topic(bad)


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/c", False),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/+", "a", False),
        ("a/+/c", "a/x/c", True),
        ("+/+", "a/b", True),
        ("+", "a", True),
        ("+", "/a", False),
        ("+/a", "/a", True),
        ("a/#", "a", True),  # '#' includes the parent level
        ("a/#", "a/b/c", True),
        ("a/#", "b/c", False),
        ("#", "a/b/c", True),
        ("#", "$SYS/broker", False),  # wildcards never match $-topics at the first level
        ("+/broker", "$SYS/broker", False),
        ("$SYS/#", "$SYS/broker", True),
        ("a/b", "a/b/", False),
        ("a/b/", "a/b/", True),
        ("a/+", "a/", True),  # an empty level is still a level
        ("hereabouts/v1/plaza/+", "hereabouts/v1/plaza/newspaper", True),
        ("hereabouts/v1/plaza/+", "hereabouts/v1/site/x", False),
    ],
)
def test_matching(topic_filter: str, topic: str, expected: bool) -> None:
    assert topics.topic_matches(topic_filter, topic) is expected


@pytest.mark.parametrize("bad", ["", "a/#/b", "a#", "a/b+", "#/a", "x\x00"])
def test_invalid_filters(bad: str) -> None:
    with pytest.raises(InvalidTopic):
        topics.validate_filter(bad)


@pytest.mark.parametrize("good", ["#", "+", "a/+/b", "a/#", "+/+/#", "/", "$SYS/#"])
def test_valid_filters(good: str) -> None:
    assert topics.validate_filter(good) == good


@pytest.mark.parametrize("bad", ["", "a/+", "a/#", "x\x00", "a" * 70_000])
def test_invalid_topics(bad: str) -> None:
    with pytest.raises(InvalidTopic):
        topics.validate_topic(bad)
