"""Let time pass for a site counter: wake when a count may change by the clock alone.

Shared by every runtime that counts rooms (a visitor's :class:`PresenceManager`, a
browser hub): the counter says when its next change is due
(:meth:`~hereabouts.core.sites.SiteCounter.next_change_ms`), this loop sleeps until then
(at most one heartbeat interval, so a clock step is caught up within one) and hands the
changes of :meth:`~hereabouts.core.sites.SiteCounter.tick` to the runtime.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hereabouts.core.sites import CountChanged, SiteCounter


async def tick_forever(
    counter: SiteCounter,
    *,
    now_ms: Callable[[], int],
    apply: Callable[[list[CountChanged]], None],
    cap_ms: int,
) -> None:
    """Tick ``counter`` whenever a change is due, or every ``cap_ms`` at the latest."""
    while True:
        now = now_ms()
        due = counter.next_change_ms(now)
        wait_ms = cap_ms if due is None else min(cap_ms, max(1, due - now))
        await asyncio.sleep(wait_ms / 1000)
        apply(counter.tick(now_ms()))
