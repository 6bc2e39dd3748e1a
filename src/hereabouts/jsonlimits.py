"""How deep JSON from elsewhere may nest, checked before any parser sees it; and a hook
that refuses duplicate keys in the standard library's parser.

Parsers recurse once per level of nesting. Fed ``[[[[…]]]]`` a few thousand levels deep,
msgspec and the standard library raise ``RecursionError`` (or worse, exhaust the C stack), an
error that is not ours, not counted and easy to let escape. Nothing hereabouts reads needs
more than a handful of levels: a howdy, the deepest message, nests a sealed event (envelope,
body, endpoints) inside its own envelope and body, six levels in all. So every decoder of
input from elsewhere calls :func:`check_depth` first.

The check costs two ``bytes.count`` calls when the input holds no more than ``max_depth``
brackets, which is every ordinary event; only inputs with more brackets than that are
scanned: strings removed, everything but brackets removed, then innermost pairs peeled off
``max_depth`` times, each step a C-speed pass over what is left.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from hereabouts.errors import JsonTooDeep

MAX_JSON_DEPTH: Final = 16
"""Nesting allowed by default: well above the six levels a howdy needs and far below where
Python's parsers run out of stack (about 1,000)."""

_STRING: Final = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_INNERMOST_PAIR: Final = re.compile(rb"\{\}|\[\]")
"""One pass removes the pairs that are innermost *now*; its output is not scanned again, so
each pass peels exactly one level."""
_BRACKETS: Final = b"[]{}"
_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in _BRACKETS)


def check_depth(
    data: bytes, max_depth: int = MAX_JSON_DEPTH, *, error: type[JsonTooDeep] = JsonTooDeep
) -> None:
    """Raise ``error`` if ``data`` nests arrays and objects deeper than ``max_depth``.

    Brackets inside strings do not count. Input whose brackets do not pair up is refused too
    (no parser would accept it); input that is not JSON at all is left to the parser.
    """
    if data.count(b"{") + data.count(b"[") <= max_depth:
        return
    skeleton = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    for _ in range(max_depth):
        if not skeleton:
            return
        peeled = _INNERMOST_PAIR.sub(b"", skeleton)
        if peeled == skeleton:
            break  # brackets that do not pair up
        skeleton = peeled
    if skeleton:
        raise error(f"JSON nested deeper than {max_depth} levels (or unbalanced brackets)")


def refusing_duplicates(
    error: Callable[[str], Exception],
) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """An ``object_pairs_hook`` for :func:`json.loads` that raises ``error(message)`` on a
    key that appears twice in one object: parsers differ on which copy they keep, so two
    programs could read one signed text two ways."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise error(f"the key {key[:40]!r} appears twice in one object")
            seen[key] = value
        return seen

    return hook


__all__ = ["MAX_JSON_DEPTH", "check_depth", "refusing_duplicates"]
