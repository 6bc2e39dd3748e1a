"""One producer, many async readers: each reader gets every item through its own bounded queue.

Used for a node's status changes and a presence manager's notices. A reader that falls more
than ``capacity`` items behind loses its *oldest* items (counted through ``on_drop``), never
the producer's time: presence news is superseded by newer news, and a slow dashboard must not
slow the node. :meth:`Fanout.close` ends every reader's iteration, even a reader whose queue
is full.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

_END = object()


class Fanout(Generic[T]):
    """Copies each published item to every current subscriber."""

    def __init__(self, *, capacity: int, on_drop: Callable[[], None] | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._on_drop = on_drop
        self._queues: set[asyncio.Queue[object]] = set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._queues)

    async def subscribe(self) -> AsyncIterator[T]:
        """Items published from now on, until :meth:`close`."""
        queue: asyncio.Queue[object] = asyncio.Queue(self._capacity)
        if self._closed:
            return
        self._queues.add(queue)
        try:
            while (item := await queue.get()) is not _END:
                yield item  # type: ignore[misc]
        finally:
            self._queues.discard(queue)

    def publish(self, item: T) -> None:
        for queue in self._queues:
            self._offer(queue, item)

    def close(self) -> None:
        self._closed = True
        for queue in self._queues:
            self._offer(queue, _END)

    def _offer(self, queue: asyncio.Queue[object], item: object) -> None:
        if queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
            if self._on_drop is not None:
                self._on_drop()
        queue.put_nowait(item)
