"""Every MQTT topic name hereabouts uses, and the MQTT rules for topics and filters.

The topic names are part of the project's contract (see ARCHITECTURE.md): other
implementations subscribe to them, so they are built here and nowhere else.

* ``hereabouts/v1/plaza/<kind>`` — peer events (``hey_there``, ``howdy``, ``chau``,
  ``newspaper``, ``lost``, ...).
* ``hereabouts/v1/site/<room-key>`` — site presence, one topic per room.
* ``hereabouts/v1/probe/<probe-id>`` — a browser hub's self-probe, read only by that hub
  (:mod:`hereabouts.sites.probe`).
* ``hereabouts/v1/network/revoked/<hash>`` — an invited network's revocations, retained,
  one topic per revoked member (:mod:`hereabouts.peers.membership`).

The version segment lets a future wire format run beside this one on the same broker.

Matching follows MQTT 3.1.1 section 4.7 (unchanged in MQTT 5): ``+`` matches exactly one
level, ``#`` matches the parent level and everything below it and must come last, and a
filter starting with a wildcard does not match topics starting with ``$`` (broker-internal
topics such as ``$SYS``). The in-memory bus uses :func:`topic_matches` so that what a test
sees on the bus is what a node sees on Mosquitto.
"""

from __future__ import annotations

from hereabouts.transports.errors import InvalidTopic

ROOT = "hereabouts/v1"
"""Prefix of every hereabouts topic; ``v1`` is the wire-format version."""

PLAZA_PREFIX = f"{ROOT}/plaza"
SITE_PREFIX = f"{ROOT}/site"
PROBE_PREFIX = f"{ROOT}/probe"
REVOKED_PREFIX = f"{ROOT}/network/revoked"
PULSE_PREFIX = f"{ROOT}/pulse"

PLAZA_ALL = f"{PLAZA_PREFIX}/+"
"""Filter for every peer event kind (one level below the plaza prefix)."""

SITE_ALL = f"{SITE_PREFIX}/+"
"""Filter for every site room."""

REVOKED_ALL = f"{REVOKED_PREFIX}/+"
"""Filter for every revocation of an invited network."""

PULSE_ALL = f"{PULSE_PREFIX}/+"
"""Filter for every node's pulses (:mod:`hereabouts.core.pulse`)."""

#: Peer event kinds the plaza carries today. Not enforced by :func:`plaza_topic` (a newer
#: node may publish a kind we do not know; the wire layer rejects what it cannot read).
PLAZA_KINDS = ("hey_there", "howdy", "chau", "newspaper", "lost")

#: MQTT encodes topic lengths in two bytes.
MAX_TOPIC_BYTES = 65_535


def _check_common(text: str, what: str) -> None:
    if not text:
        raise InvalidTopic(f"{what} must not be empty")
    if "\x00" in text:
        raise InvalidTopic(f"{what} must not contain NUL")
    if len(text.encode("utf-8")) > MAX_TOPIC_BYTES:
        raise InvalidTopic(f"{what} is longer than {MAX_TOPIC_BYTES} bytes")


def validate_topic(topic: str) -> str:
    """Return ``topic`` if it is a valid name to publish to (no wildcards), else raise."""
    _check_common(topic, "topic")
    if "+" in topic or "#" in topic:
        raise InvalidTopic(f"topic {topic!r} must not contain wildcards")
    return topic


def validate_filter(topic_filter: str) -> str:
    """Return ``topic_filter`` if it is a valid subscription filter, else raise."""
    _check_common(topic_filter, "topic filter")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise InvalidTopic(f"'#' must be a whole, final level in {topic_filter!r}")
        if "+" in level and level != "+":
            raise InvalidTopic(f"'+' must be a whole level in {topic_filter!r}")
    return topic_filter


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` is matched by ``topic_filter`` under the MQTT rules.

    Both arguments are assumed valid (see :func:`validate_filter`, :func:`validate_topic`).
    """
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, wanted in enumerate(filter_levels):
        if wanted == "#":
            # "a/#" also matches "a" itself: '#' includes the parent level.
            return True
        if index >= len(topic_levels):
            return False
        if wanted != "+" and wanted != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)


def _single_level(value: str, what: str) -> str:
    if not value or any(ch in value for ch in "/+#\x00"):
        raise InvalidTopic(f"{what} {value!r} must be one non-empty level without / + # or NUL")
    return value


def plaza_topic(kind: str) -> str:
    """The topic peer events of ``kind`` are published on: ``hereabouts/v1/plaza/<kind>``."""
    return f"{PLAZA_PREFIX}/{_single_level(kind, 'event kind')}"


def site_topic(room_key: str) -> str:
    """The topic of one site room: ``hereabouts/v1/site/<room-key>``."""
    return f"{SITE_PREFIX}/{_single_level(room_key, 'room key')}"


def probe_topic(probe_id: str) -> str:
    """The topic of one hub's self-probe: ``hereabouts/v1/probe/<probe-id>``."""
    return f"{PROBE_PREFIX}/{_single_level(probe_id, 'probe id')}"


def revoked_topic(key: str) -> str:
    """The retained topic of one revocation: ``hereabouts/v1/network/revoked/<key>``."""
    return f"{REVOKED_PREFIX}/{_single_level(key, 'revocation key')}"


def pulse_topic(did: str) -> str:
    """The topic of one node's pulses: ``hereabouts/v1/pulse/<did>``."""
    return f"{PULSE_PREFIX}/{_single_level(did, 'DID')}"


def pulse_sender(topic: str) -> str | None:
    """The DID a pulse topic names, or ``None`` if ``topic`` is not a pulse topic."""
    head, _, did = topic.rpartition("/")
    if head != PULSE_PREFIX or not did:
        return None
    return did


def plaza_kind(topic: str) -> str | None:
    """The event kind of a plaza topic, or ``None`` if ``topic`` is not a plaza topic."""
    head, _, kind = topic.rpartition("/")
    if head != PLAZA_PREFIX or not kind:
        return None
    return kind


def site_room(topic: str) -> str | None:
    """The room key of a site topic, or ``None`` if ``topic`` is not a site topic."""
    head, _, room = topic.rpartition("/")
    if head != SITE_PREFIX or not room:
        return None
    return room
