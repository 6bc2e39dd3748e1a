"""The last hour of the neighbourhood's status changes, bounded, for the dashboard.

The dashboard draws one timeline strip per peer and a log of recent changes. A node keeps
statuses, not their past, so the web layer remembers the changes it has seen since it
started: :class:`StatusHistory` is the memory (plain data, the time passed in), and
:class:`HistoryRecorder` feeds it from ``node.changes()`` while the app runs.

What it keeps, and its bounds:

* per peer, the changes of the last :data:`HISTORY_WINDOW_MS` (one hour), at most
  :data:`MAX_CHANGES_PER_PEER` of them; a peer that changes more often loses its oldest
  changes, and the part of its hour before the oldest one kept is reported as unknown (the
  peer's ``complete_from_ms``) rather than drawn wrong;
* at most :data:`MAX_CHANGES_TOTAL` changes over all peers, the oldest dropped first, so a
  whole neighbourhood flapping costs a few megabytes at most; everything before the newest
  change dropped that way is then unknown for every peer (the top-level
  ``complete_from_ms``);
* the :data:`RECENT_LIMIT` newest changes of any peer, forgotten ones included, for the log.

A peer the node forgets (a change with cause ``forgotten``) is dropped from the strips at
once; its forgetting stays in the log. Times are the node's own (``StatusChanged.at_ms``,
Unix milliseconds). Before :attr:`StatusHistory.since_ms` nothing was watched: a status
drawn there would be a guess, so the dashboard leaves it blank.

A peer with no change in the window kept one status all along: the current one, which
``/v1/peers`` gives. A peer's status before its first change in the window is that
change's ``old``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from hereabouts.core.effects import StatusChanged
from hereabouts.web.payload import JsonObject, change_json

if TYPE_CHECKING:
    from hereabouts.web.app import NodeView

log = logging.getLogger(__name__)

HISTORY_WINDOW_MS: Final = 3_600_000
"""How far back the strips reach: one hour, long enough to see a peer flap or a broker
outage and its recovery, short enough that the memory stays small and the strip readable
(one pixel is about ten seconds on a 360-pixel strip)."""

MAX_CHANGES_PER_PEER: Final = 240
"""Changes kept per peer: one every 15 s for the whole hour. A peer changing faster is
broken, and what matters then is that it flaps, which the newest 240 changes show; its
older part of the hour is shown as unknown."""

MAX_CHANGES_TOTAL: Final = 20_000
"""Changes kept over all peers. A broker restart flips every peer twice (MISSING, then
ONLINE): this holds that for 10,000 peers, more than a node's neighbourhood holds at once
(4,096 unproven keys at most, see docs/security.md). Each costs about 200 bytes here and 60
in ``/v1/history``: a few megabytes at worst. Past it, the oldest changes go first."""

RECENT_LIMIT: Final = 100
"""Changes in the live log (newest first): a screenful or two; the strips show the rest."""

FORGOTTEN: Final = "forgotten"


class StatusHistory:
    """Per peer, the status changes of the last window, bounded (see the module docs)."""

    def __init__(
        self,
        *,
        window_ms: int = HISTORY_WINDOW_MS,
        per_peer: int = MAX_CHANGES_PER_PEER,
        total: int = MAX_CHANGES_TOTAL,
        recent: int = RECENT_LIMIT,
    ) -> None:
        if window_ms <= 0:
            raise ValueError("window_ms must be positive")
        if per_peer < 1 or total < 1 or recent < 1:
            raise ValueError("per_peer, total and recent must be at least 1")
        self.window_ms = window_ms
        self.per_peer = per_peer
        self.total = total
        self.since_ms: int | None = None
        """When watching began (None: not yet); nothing before it is known."""
        self._peers: dict[str, deque[StatusChanged]] = {}
        self._complete_from: dict[str, int] = {}
        """Peers that lost changes to the per-peer bound: whole from this time on (a key
        of ``_peers`` as long as it matters: it is the time of that peer's oldest change)."""
        self.complete_from_ms: int | None = None
        """Changes were dropped to the total bound: every peer is whole from then on."""
        self._order: deque[StatusChanged] = deque()
        """Every change kept, in arrival order, plus some already dropped by the per-peer
        bound (skipped when they reach the front; compacted when they pile up)."""
        self._count = 0
        self._recent: deque[StatusChanged] = deque(maxlen=recent)

    def start(self, now_ms: int) -> None:
        """Watching begins now."""
        if self.since_ms is None:
            self.since_ms = now_ms

    def __len__(self) -> int:
        """Changes kept over all peers."""
        return self._count

    def peers(self) -> list[str]:
        """DIDs with at least one change kept."""
        return list(self._peers)

    def changes_of(self, did: str) -> list[StatusChanged]:
        """The changes kept for ``did``, oldest first."""
        return list(self._peers.get(did, ()))

    def known_from(self, did: str) -> int | None:
        """From when ``did``'s strip is whole: the latest of when watching began, the
        total bound's mark and the peer's own (None: nothing is known yet)."""
        marks = [self.since_ms, self.complete_from_ms, self._complete_from.get(did)]
        present = [m for m in marks if m is not None]
        return max(present) if present else None

    def recent(self) -> list[StatusChanged]:
        """The log, newest first."""
        return list(reversed(self._recent))

    def record(self, change: StatusChanged, now_ms: int) -> None:
        """Take one change; drop what the window and the bounds no longer allow."""
        self.start(now_ms)
        self._recent.append(change)
        if change.cause == FORGOTTEN:
            self._drop_peer(change.did)
        else:
            kept = self._peers.setdefault(change.did, deque())
            kept.append(change)
            self._order.append(change)
            self._count += 1
            if len(kept) > self.per_peer:
                kept.popleft()  # its entry in _order is now stale
                self._count -= 1
                self._complete_from[change.did] = kept[0].at_ms
        while self._count > self.total:
            self._evict_oldest()
        self.prune(now_ms)

    def prune(self, now_ms: int) -> None:
        """Forget changes older than the window: they no longer show on any strip.
        Amortised O(1) per change recorded."""
        cutoff = now_ms - self.window_ms
        while self._order:
            oldest = self._order[0]
            if self._is_kept(oldest) and oldest.at_ms >= cutoff:
                break
            self._order.popleft()
            if self._is_kept(oldest):
                self._remove_head(oldest.did)
        if self.complete_from_ms is not None and self.complete_from_ms < cutoff:
            self.complete_from_ms = None
        if len(self._order) > 2 * self.total:
            self._compact()

    def _prune_marks(self, now_ms: int) -> None:
        """Drop per-peer gaps that have left the window (O(peers): on read only)."""
        cutoff = now_ms - self.window_ms
        for did in [d for d, since in self._complete_from.items() if since < cutoff]:
            del self._complete_from[did]

    def as_json(self, now_ms: int) -> JsonObject:
        """The body of ``GET /v1/history``."""
        self.prune(now_ms)
        self._prune_marks(now_ms)
        return {
            "window_ms": self.window_ms,
            "since_ms": self.since_ms,
            "now_ms": now_ms,
            "complete_from_ms": self.complete_from_ms,
            "limits": {
                "per_peer": self.per_peer,
                "total": self.total,
                "recent": self._recent.maxlen,
            },
            "peers": {
                did: {
                    "changes": [
                        {
                            "at_ms": c.at_ms,
                            "old": None if c.old is None else str(c.old),
                            "new": str(c.new),
                            "cause": c.cause,
                        }
                        for c in kept
                    ],
                    "complete_from_ms": self._complete_from.get(did),
                }
                for did, kept in self._peers.items()
            },
            "recent": [change_json(c) for c in reversed(self._recent)],
        }

    # --- bookkeeping ----------------------------------------------------------------------

    def _is_kept(self, change: StatusChanged) -> bool:
        kept = self._peers.get(change.did)
        return kept is not None and len(kept) > 0 and kept[0] is change

    def _remove_head(self, did: str) -> None:
        kept = self._peers[did]
        kept.popleft()
        self._count -= 1
        if not kept:
            del self._peers[did]
            self._complete_from.pop(did, None)

    def _evict_oldest(self) -> None:
        """Drop the oldest change kept. What its peer did after it is still known (the
        next change's ``old``, or the current status), what came before is not."""
        while self._order:
            oldest = self._order.popleft()
            if self._is_kept(oldest):
                self._remove_head(oldest.did)
                self._complete_from.pop(oldest.did, None)  # superseded by the total mark
                if self.complete_from_ms is None or oldest.at_ms > self.complete_from_ms:
                    self.complete_from_ms = oldest.at_ms
                return

    def _drop_peer(self, did: str) -> None:
        kept = self._peers.pop(did, None)
        self._complete_from.pop(did, None)
        if kept:
            self._count -= len(kept)
            # Their entries in _order are now stale; prune and _compact skip them.

    def _compact(self) -> None:
        live = {id(c) for kept in self._peers.values() for c in kept}
        self._order = deque(c for c in self._order if id(c) in live)


class HistoryRecorder:
    """Feeds a :class:`StatusHistory` from ``node.changes()`` while the app runs."""

    def __init__(
        self, node: NodeView, history: StatusHistory, clock: Callable[[], float]
    ) -> None:
        self.node = node
        self.history = history
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def start(self) -> None:
        """Subscribe now: one turn of the loop lets the task enter ``node.changes()``."""
        self._task = asyncio.create_task(self._run(), name="hereabouts-web-history")
        await asyncio.sleep(0)
        self.history.start(self.now_ms())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=2.0)

    async def _run(self) -> None:
        changes = self.node.changes()
        try:
            async for change in changes:
                self.history.record(change, self.now_ms())
        except Exception:
            log.exception("the node's change feed failed; the dashboard's history stops here")
        finally:
            aclose = getattr(changes, "aclose", None)
            if aclose is not None:
                await aclose()
