"""``hereabouts status`` output: a ``/v1/peers`` document as an aligned plain-text table.

Pure functions from the JSON document (and the time) to lines, so the layout is testable
without a server. Everything printed comes from the network and may come from a hostile
peer, so text is made safe for a terminal first: control and formatting characters (escape
sequences, bidirectional overrides) are shown as ``\\uXXXX`` instead of being obeyed.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, Final

STATUS_ORDER: Final = {"ONLINE": 0, "MISSING": 1, "OFFLINE": 2}
"""Rows sort by this, then by name: who is here first, then who might be in trouble."""

MAX_NAME: Final = 32
"""Longer names are cut (with an ellipsis) so one peer cannot push the table off screen."""

COLUMNS: Final = ("NAME", "STATUS", "LAST EVENT", "AGE", "RESTARTS", "DID")


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


def _row(peer: Mapping[str, Any], now_ms: int) -> tuple[str, ...]:
    name = terminal_safe(peer.get("name") or "(unnamed)", MAX_NAME)
    if peer.get("self") is True:
        name += " *"
    if peer.get("trust") == "new":
        name += " (new)"  # a key that has not proved itself yet (docs/security.md)
    if peer.get("shared_key") is True:
        name += " (key used twice)"
    return (
        name,
        terminal_safe(peer.get("status", "?")),
        terminal_safe(peer.get("last_event", "")),
        age_text(now_ms, peer.get("last_event_at_ms")),
        terminal_safe(peer.get("restarts", "")),
        terminal_safe(short_did(str(peer.get("did", "")))),
    )


def render_status(document: Mapping[str, Any], now_ms: int) -> list[str]:
    """The whole ``status`` report: a header about the node, the counts, then the table."""
    node = document.get("node") or {}
    peers = [p for p in document.get("peers") or [] if isinstance(p, Mapping)]
    counts = {status: 0 for status in STATUS_ORDER}
    for peer in peers:
        status = str(peer.get("status"))
        if status in counts:
            counts[status] += 1
    lines = [
        f"node {terminal_safe(node.get('name', '?'), MAX_NAME)}  "
        f"{terminal_safe(node.get('did', '?'))}",
        *(f"WARNING: {terminal_safe(w)}" for w in node.get("warnings") or []),
        "  ".join(f"{n} {status.lower()}" for status, n in counts.items()),
        "",
    ]
    if not peers:
        lines.append("no peers known yet")
        return lines
    rows = [COLUMNS, *(_row(p, now_ms) for p in sort_peers(peers))]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    right = {COLUMNS.index("AGE"), COLUMNS.index("RESTARTS")}
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    if any(p.get("self") is True for p in peers):
        lines += ["", "* this node"]
    return lines
