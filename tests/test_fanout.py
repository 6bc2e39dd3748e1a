"""Fanout: every reader gets every item; a slow reader loses its oldest; close ends all."""

from __future__ import annotations

import asyncio

from hereabouts.fanout import Fanout


async def collect(fanout: Fanout[int], into: list[int], started: asyncio.Event) -> None:
    iterator = fanout.subscribe()
    first = asyncio.ensure_future(iterator.__anext__())
    await asyncio.sleep(0)  # let the subscription register before anything is published
    started.set()
    into.append(await first)
    async for item in iterator:
        into.append(item)


async def test_every_subscriber_gets_every_item_and_close_ends_them() -> None:
    fanout: Fanout[int] = Fanout(capacity=10)
    a: list[int] = []
    b: list[int] = []
    ready_a, ready_b = asyncio.Event(), asyncio.Event()
    tasks = [asyncio.create_task(collect(fanout, a, ready_a)),
             asyncio.create_task(collect(fanout, b, ready_b))]
    await ready_a.wait()
    await ready_b.wait()
    for n in range(3):
        fanout.publish(n)
    fanout.close()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert a == b == [0, 1, 2]
    assert len(fanout) == 0


async def test_a_full_reader_loses_its_oldest_and_still_ends_on_close() -> None:
    drops: list[None] = []
    fanout: Fanout[int] = Fanout(capacity=2, on_drop=lambda: drops.append(None))
    got: list[int] = []
    ready = asyncio.Event()
    task = asyncio.create_task(collect(fanout, got, ready))
    await ready.wait()
    for n in range(5):  # the reader does not run in between: its queue overflows
        fanout.publish(n)
    fanout.close()  # the queue is full, yet the reader must still learn that it ended
    await asyncio.wait_for(task, 10)
    # capacity 2: items 0-3 were pushed out one by one, the end marker pushed out nothing
    # that was not already superseded, and the newest item survived.
    assert got == [4]
    assert len(drops) == 4
