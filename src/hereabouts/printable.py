"""Which characters a display name may hold: printable text that shows what it says.

Names reach people through logs, terminals and the dashboard. Characters that are invisible
or rearrange text can make one name look like another, hide part of a name, or garble a
log line, so a name may not contain any of:

* control characters (Unicode category Cc) and line or paragraph separators (Zl, Zp);
* format characters (Cf): bidirectional overrides and isolates (U+202A-202E, U+2066-2069)
  that reorder what follows, zero-width spaces and joiners (U+200B-200D, U+2060), the byte
  order mark, soft hyphens, Arabic and Syriac marks, language tags;
* surrogates and private-use characters (Cs, Co), which have no agreed appearance;
* letters and symbols that render as blank space (Hangul fillers U+115F, U+1160, U+3164,
  U+FFA0; the braille blank U+2800) and invisible combining marks (U+034F, U+17B4, U+17B5).

It may not start or end with white space either. The list is fixed here, taken from
Unicode 14's categories, rather than read from whichever Unicode database a runtime ships,
so that every implementation refuses the same names. Lookalike letters from other scripts
(Cyrillic "а" for Latin "a") remain allowed: names are labels, and keys are what
hereabouts checks (see docs/security.md).
"""

from __future__ import annotations

from typing import Final

FORBIDDEN_RANGES: Final[tuple[tuple[int, int], ...]] = (
    (0x0000, 0x001F), (0x007F, 0x009F), (0x00AD, 0x00AD), (0x034F, 0x034F),
    (0x0600, 0x0605), (0x061C, 0x061C), (0x06DD, 0x06DD), (0x070F, 0x070F),
    (0x0890, 0x0891), (0x08E2, 0x08E2), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180E, 0x180E), (0x200B, 0x200F), (0x2028, 0x202E), (0x2060, 0x2064),
    (0x2066, 0x206F), (0x2800, 0x2800), (0x3164, 0x3164), (0xD800, 0xF8FF),
    (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD),
    (0x110CD, 0x110CD), (0x13430, 0x13438), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001), (0xE0020, 0xE007F), (0xF0000, 0xFFFFD), (0x100000, 0x10FFFD),
)  # fmt: skip
"""Inclusive code point ranges a name may not contain (see the module docstring)."""


def _class(ranges: tuple[tuple[int, int], ...]) -> str:
    parts = []
    for first, last in ranges:
        parts.append(f"\\U{first:08x}" if first == last else f"\\U{first:08x}-\\U{last:08x}")
    return "".join(parts)


NAME_PATTERN: Final = rf"^(?!\s)[^{_class(FORBIDDEN_RANGES)}]+(?<!\s)$"
"""A regular expression (Python syntax) that a whole name must match."""


def is_forbidden(char: str) -> bool:
    """Whether one character may not appear in a name."""
    point = ord(char)
    return any(first <= point <= last for first, last in FORBIDDEN_RANGES)


__all__ = ["FORBIDDEN_RANGES", "NAME_PATTERN", "is_forbidden"]
