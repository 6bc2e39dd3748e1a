"""The one timestamp form presence@2 uses: RFC 3339, UTC, whole seconds, a ``Z`` suffix.

Why so strict: the timestamp is part of the signed payload *and* of the document's ``id``, so
two implementations must write the same instant as the same characters. Allowing offsets
(``+00:00``), fractions or lower-case ``z`` would give one instant several spellings and make
``id`` comparisons unreliable. Parsing accepts exactly what formatting produces.

The file-system form (``20250101T115000Z``) is ISO 8601 basic format: no colons (which some
file systems refuse) and it still sorts in time order as plain text.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

# re.ASCII: without it \d also matches other scripts' digits ("２０２５"), which int() reads,
# giving one instant more spellings.
_RFC3339_Z = re.compile(r"\A(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z\Z", re.ASCII)
_FILE_STAMP = re.compile(r"\A(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z\Z", re.ASCII)


def _build(match: re.Match[str]) -> datetime:
    year, month, day, hour, minute, second = (int(g) for g in match.groups())
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def format_time(moment: datetime) -> str:
    """``moment`` in UTC, truncated to whole seconds, as ``YYYY-MM-DDTHH:MM:SSZ``.

    A naive datetime is refused: guessing its zone is how off-by-hours expiries happen.
    """
    if moment.tzinfo is None:
        raise ValueError("a presence timestamp needs a timezone-aware datetime")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """Parse the strict form written by :func:`format_time`; raises :class:`ValueError`."""
    if not isinstance(text, str):
        raise ValueError("a timestamp is a string")
    match = _RFC3339_Z.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not an RFC 3339 UTC timestamp like 2025-01-01T11:50:00Z")
    return _build(match)


def truncate(moment: datetime) -> datetime:
    """``moment`` in UTC without its sub-second part (what a document can express)."""
    return parse_time(format_time(moment))


def file_stamp(timestamp: str) -> str:
    """The file-system-safe form of an RFC 3339 timestamp (``20250101T115000Z``)."""
    return parse_time(timestamp).strftime("%Y%m%dT%H%M%SZ")


def parse_file_stamp(stamp: str) -> datetime:
    """Inverse of :func:`file_stamp`; raises :class:`ValueError` on anything else."""
    match = _FILE_STAMP.match(stamp)
    if match is None:
        raise ValueError(f"{stamp!r} is not a presence file stamp")
    return _build(match)


def utc_now() -> datetime:
    """The production clock; every object that needs time takes a clock like this one."""
    return datetime.now(UTC)
