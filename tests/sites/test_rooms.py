"""Origin normalisation and room keys."""

from __future__ import annotations

import pytest

from hereabouts.sites.errors import InvalidOrigin, InvalidRoom
from hereabouts.sites.rooms import Room, normalize_origin, normalize_room, room_key
from hereabouts.transports.topics import site_topic


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("https://example.com", "https://example.com"),
        ("HTTPS://Example.COM", "https://example.com"),
        ("https://example.com:443", "https://example.com"),
        ("https://example.com:443/path?q=1#frag", "https://example.com"),
        ("https://user:pw@example.com/", "https://example.com"),
        ("http://example.com:80", "http://example.com"),
        ("http://example.com:8080", "http://example.com:8080"),
        ("https://example.com:80", "https://example.com:80"),
        ("https://bücher.de", "https://xn--bcher-kva.de"),
        ("https://[::1]:8443", "https://[::1]:8443"),
        ("  https://example.com  ", "https://example.com"),
    ],
)
def test_origins_normalise_like_browsers_compare_them(given: str, normal: str) -> None:
    assert normalize_origin(given) == normal


@pytest.mark.parametrize(
    "bad", ["", "null", "example.com", "ftp://example.com", "https://", "https://a:99999", "h\x00"]
)
def test_bad_origins_are_refused(bad: str) -> None:
    with pytest.raises(InvalidOrigin):
        normalize_origin(bad)


def test_room_names() -> None:
    assert normalize_room("Caf\u0065\u0301") == "Café"
    for bad in ("", "x" * 65, "a\nb"):
        with pytest.raises(InvalidRoom):
            normalize_room(bad)


def test_room_keys_are_stable_opaque_and_scoped() -> None:
    key = room_key("https://example.com", "lobby")
    assert key == room_key("HTTPS://EXAMPLE.com:443/x", "lobby")
    assert len(key) == 26 and key.isalnum() and key == key.lower()
    assert key != room_key("http://example.com", "lobby")
    assert key != room_key("https://example.com", "Lobby")
    assert key != room_key("https://example.org", "lobby")
    assert "example" not in site_topic(key)
    # Length framing: moving characters between origin and room changes the key.
    assert room_key("https://ab.com", "c") != room_key("https://a.bc", "om")


def test_room_repr_hides_the_origin() -> None:
    room = Room.of("https://secret.example", "private-room")
    assert "secret" not in repr(room) and "private" not in repr(room)
    assert room.key in repr(room)
