"""RecentIds: a bounded set of event ids that forgets the oldest first.

Why an ``OrderedDict``: a plain dict keeps insertion order too, but forgetting its oldest
key with ``next(iter(d))`` walks over every slot deleted before it until the dict is next
compacted, so at thousands of ids a second the look-up for "oldest" grew into a visible
share of a hub's time. ``popitem(last=False)`` is constant time.
"""

from __future__ import annotations

from collections import OrderedDict


class RecentIds:
    """The last ``capacity`` ids added (adding one already held does not refresh it)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, event_id: str) -> None:
        if event_id in self._ids:
            return
        if len(self._ids) >= self.capacity:
            self._ids.popitem(last=False)
        self._ids[event_id] = None
