"""The discrete-event queue every simulator here runs on.

Events are ``(time_ms, seq, handler, argument)``: a heap ordered by time, then by the order
they were scheduled, so two events at the same millisecond always run in the same order and
a run is reproducible. The queue is nothing but that; what happens at an event is the
simulator's business (its handler).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

Handler = Callable[[int, Any], None]


class EventQueue:
    """A simulated clock and the events still to come."""

    __slots__ = ("_heap", "_seq", "events_run", "now_ms")

    def __init__(self, start_ms: int = 0) -> None:
        self.now_ms = start_ms
        self._heap: list[tuple[int, int, Handler, Any]] = []
        self._seq = 0
        self.events_run = 0
        """Events handled so far (the benchmark's unit of work)."""

    def at(self, time_ms: int, handler: Handler, argument: Any = None) -> None:
        """Run ``handler(time_ms, argument)`` at ``time_ms`` (never earlier than now)."""
        self._seq += 1
        heapq.heappush(self._heap, (max(time_ms, self.now_ms), self._seq, handler, argument))

    def run_until(self, end_ms: int, on_progress: Callable[[int], None] | None = None) -> None:
        """Handle every event up to ``end_ms``; ``on_progress(now_ms)`` every 4,096 events."""
        heap, pop = self._heap, heapq.heappop
        while heap and heap[0][0] <= end_ms:
            time_ms, _, handler, argument = pop(heap)
            self.now_ms = time_ms
            handler(time_ms, argument)
            self.events_run += 1
            if on_progress is not None and not self.events_run & 4095:
                on_progress(time_ms)
        self.now_ms = max(self.now_ms, end_ms)

    def __len__(self) -> int:
        return len(self._heap)


__all__ = ["EventQueue", "Handler"]
