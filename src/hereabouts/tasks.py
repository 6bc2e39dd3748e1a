"""Background tasks that one object owns and ends together, reliably.

The node, the site presence manager and the browser hub each run a few long-lived tasks
(readers, tickers, heartbeats) and short ones (a leave or a republication in flight). This is
where they are started and, at shutdown, ended:

* a task that fails is logged with its name; it never takes its siblings or the owner down
  (a presence service keeps serving). A task spawned as ``essential`` (a reader, a timer
  loop: the owner is deaf or stuck without it) that ends for any reason but cancellation is
  remembered in :attr:`BackgroundTasks.failed`, which health reports read, so a node whose
  reader died says so instead of answering "ok";
* :meth:`BackgroundTasks.cancel_all` cancels again until every task has really ended. On
  Python 3.11 ``asyncio.wait_for`` (used inside aiomqtt's publish) can swallow a
  cancellation that lands just as its inner call completes, and the task then carries on to
  its next ``await``; a single ``cancel()`` followed by waiting could hang forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)

RECANCEL_EVERY_S = 1.0
"""How long to wait for cancelled tasks before cancelling the stragglers again."""


class BackgroundTasks:
    """A set of named tasks that end together."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._essential: set[asyncio.Task[Any]] = set()
        self.failed: dict[str, str] = {}
        """Essential tasks that ended, by name: what ended them."""

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(
        self, coroutine: Coroutine[Any, Any, object], *, name: str, essential: bool = False
    ) -> asyncio.Task[Any]:
        """Run ``coroutine`` as a task named ``name``, owned by this set. An ``essential``
        task is meant to run until cancelled; its ending otherwise is a failure."""
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        if essential:
            self._essential.add(task)
        task.add_done_callback(self._finished)
        return task

    def report(self) -> dict[str, object]:
        """``{"ok": no essential task has ended, "failed": {name: why}}``."""
        return {"ok": not self.failed, "failed": dict(self.failed)}

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        essential = task in self._essential
        self._essential.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("background task %s failed", task.get_name(), exc_info=error)
        if essential:
            why = "ended" if error is None else f"{type(error).__name__}: {error}"
            self.failed[task.get_name()] = why[:300]
            if error is None:
                log.error("background task %s ended; it should run until stopped", task.get_name())

    async def wait(self, timeout_s: float | None = None) -> None:
        """Until the tasks running now have finished, or ``timeout_s`` has passed."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    async def cancel_all(self) -> None:
        """Cancel every task and return once all of them have ended (ending essential tasks
        this way is no failure)."""
        self._essential.clear()
        while self._tasks:
            pending = set(self._tasks)
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=RECANCEL_EVERY_S)
