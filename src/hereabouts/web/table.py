"""``hereabouts status`` output: a ``/v1/peers`` document as an aligned table.

Pure functions from the JSON document (and the time) to lines, so the layout is testable
without a server. Everything printed comes from the network and may come from a hostile
peer, so text is made safe for a terminal first: control and formatting characters (escape
sequences, bidirectional overrides) are shown as ``\\uXXXX`` instead of being obeyed.

Columns are aligned by what a terminal shows, not by code points: East Asian wide
characters and most emoji take two cells, combining marks none. With ``colour=True`` (a
terminal; see :func:`hereabouts.web.cli.use_colour`) the header is bold and underlined by a
rule, statuses are coloured (ONLINE green, MISSING yellow, OFFLINE dim) and warnings red;
without it the lines are plain text, stable for ``grep`` and ``awk`` (``--json`` is the
format for programs).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, Final

STATUS_ORDER: Final = {"ONLINE": 0, "MISSING": 1, "OFFLINE": 2}
"""Rows sort by this, then by name: who is here first, then who might be in trouble."""

MAX_NAME: Final = 32
"""Longer names are cut (with an ellipsis) so one peer cannot push the table off screen."""

COLUMNS: Final = ("NAME", "STATUS", "VIA", "LAST EVENT", "AGE", "RESTARTS", "DID")
"""VIA is how the peer is reached: ``plaza``, ``mesh`` (only over the gossip mesh) or
``both`` (a hybrid node)."""

VIA: Final = {"plaza": "plaza", "mesh": "mesh", "hybrid": "both"}


def terminal_safe(value: object, limit: int | None = None) -> str:
    """``value`` as text a terminal will display rather than interpret."""
    text = "".join(
        f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c
        for c in str(value)
    )
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def short_did(did: str) -> str:
    """``did:key:z6MkABCD…uvwxyz``: enough to tell peers apart, short enough for a table."""
    return did if len(did) <= 24 else f"{did[:16]}…{did[-6:]}"


def age_text(now_ms: int, at_ms: object) -> str:
    """``42s``, ``3m05s``, ``2h07m``, ``4d03h``; empty when the time is unknown."""
    if not isinstance(at_ms, int) or isinstance(at_ms, bool):
        return ""
    seconds = max(0, (now_ms - at_ms) // 1000)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def sort_peers(peers: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(
        peers,
        key=lambda p: (
            STATUS_ORDER.get(str(p.get("status")), len(STATUS_ORDER)),
            str(p.get("name", "")).casefold(),
            str(p.get("did", "")),
        ),
    )


RESET: Final = "\x1b[0m"
STYLES: Final = {
    "header": "\x1b[1m",
    "rule": "\x1b[2m",
    "ONLINE": "\x1b[32m",
    "MISSING": "\x1b[33m",
    "OFFLINE": "\x1b[2m",
    "warning": "\x1b[1;31m",
    "note": "\x1b[2m",
    "self": "\x1b[1m",
}
"""ANSI SGR codes: bold, dim, green, yellow, bold red. Only the eight basic colours, which
every terminal theme maps to something readable."""


def paint(text: str, style: str, colour: bool) -> str:
    """``text`` in ``style`` when ``colour`` is on (an unknown style leaves it plain)."""
    code = STYLES.get(style)
    return f"{code}{text}{RESET}" if colour and code and text else text


def display_width(text: str) -> int:
    """Terminal cells ``text`` takes: wide characters two, combining marks none."""
    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _pad(text: str, width: int, *, right: bool = False) -> str:
    gap = " " * max(0, width - display_width(text))
    return gap + text if right else text + gap


def _row(peer: Mapping[str, Any], now_ms: int) -> tuple[str, ...]:
    name = terminal_safe(peer.get("name") or "(unnamed)", MAX_NAME)
    if peer.get("self") is True:
        name += " *"
    if peer.get("trust") == "new":
        name += " (new)"  # a key that has not proved itself yet (docs/security.md)
    if peer.get("shared_key") is True:
        name += " (key used twice)"
    reports = peer.get("reports")
    if isinstance(reports, int) and reports > 0:  # its assigned observers find it unreachable
        name += f" ({reports} report{'s' if reports > 1 else ''})"
    return (
        name,
        terminal_safe(peer.get("status", "?")),
        VIA.get(str(peer.get("transport")), terminal_safe(peer.get("transport", ""))),
        terminal_safe(peer.get("last_event", "")),
        age_text(now_ms, peer.get("last_event_at_ms")),
        terminal_safe(peer.get("restarts", "")),
        terminal_safe(short_did(str(peer.get("did", "")))),
    )


def render_status(
    document: Mapping[str, Any], now_ms: int, *, colour: bool = False
) -> list[str]:
    """The whole ``status`` report: a header about the node, the counts, then the table."""
    node = document.get("node") or {}
    peers = [p for p in document.get("peers") or [] if isinstance(p, Mapping)]
    counts = {status: 0 for status in STATUS_ORDER}
    for peer in peers:
        status = str(peer.get("status"))
        if status in counts:
            counts[status] += 1
    lines = [
        f"node {paint(terminal_safe(node.get('name', '?'), MAX_NAME), 'header', colour)}  "
        f"{terminal_safe(node.get('did', '?'))}",
        *(paint(f"WARNING: {terminal_safe(w)}", "warning", colour)
          for w in node.get("warnings") or []),
        "  ".join(
            paint(f"{n} {status.lower()}", status if n else "", colour)
            for status, n in counts.items()
        ),
        "",
    ]
    if not peers:
        lines.append("no peers known yet")
        return lines
    rows = [_row(p, now_ms) for p in sort_peers(peers)]
    selves = [p.get("self") is True for p in sort_peers(peers)]
    widths = [
        max(display_width(row[i]) for row in (COLUMNS, *rows)) for i in range(len(COLUMNS))
    ]
    right = {COLUMNS.index("AGE"), COLUMNS.index("RESTARTS")}
    status_at = COLUMNS.index("STATUS")

    def line(row: tuple[str, ...], styles: list[str]) -> str:
        last = len(row) - 1
        cells = [
            paint(cell if i == last else _pad(cell, widths[i], right=i in right), styles[i], colour)
            for i, cell in enumerate(row)
        ]
        return "  ".join(cells).rstrip()

    lines.append(line(COLUMNS, ["header"] * len(COLUMNS)))
    if colour:
        lines.append(paint("  ".join("─" * w for w in widths), "rule", colour))
    for row, own in zip(rows, selves, strict=True):
        styles = [""] * len(COLUMNS)
        styles[0] = "self" if own else ""
        styles[status_at] = row[status_at]
        styles[-1] = "note"
        lines.append(line(row, styles))
    if any(selves):
        lines += ["", "* this node"]
    return lines
