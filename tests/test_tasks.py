"""Background tasks: failures are contained, and cancellation always ends every task."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from hereabouts.tasks import BackgroundTasks


async def test_a_failing_task_is_logged_and_does_not_stop_its_siblings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = BackgroundTasks()
    alive = asyncio.Event()

    async def fail() -> None:
        raise RuntimeError("boom")

    async def live() -> None:
        alive.set()
        await asyncio.sleep(3600)

    with caplog.at_level(logging.ERROR, logger="hereabouts.tasks"):
        tasks.spawn(fail(), name="failing")
        sibling = tasks.spawn(live(), name="living")
        await alive.wait()
        await asyncio.sleep(0)
    assert "background task failing failed" in caplog.text
    assert not sibling.done() and len(tasks) == 1
    await tasks.cancel_all()
    assert sibling.cancelled() and len(tasks) == 0


async def test_cancel_all_ends_a_task_that_swallows_its_first_cancellation() -> None:
    tasks = BackgroundTasks()
    started = asyncio.Event()

    async def stubborn() -> None:
        started.set()
        # Swallow the first cancellation, as a racing asyncio.wait_for can on Python 3.11.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)
        await asyncio.sleep(3600)

    task = tasks.spawn(stubborn(), name="stubborn")
    await started.wait()
    await asyncio.wait_for(tasks.cancel_all(), 30)
    assert task.cancelled()


async def test_an_essential_task_that_ends_is_reported_until_the_owner_stops() -> None:
    tasks = BackgroundTasks()

    async def crash() -> None:
        raise OSError("no space left on device")

    async def returns() -> None:
        return None

    async def runs() -> None:
        await asyncio.sleep(3600)

    tasks.spawn(crash(), name="receive", essential=True)
    tasks.spawn(returns(), name="timers", essential=True)
    tasks.spawn(runs(), name="upkeep", essential=True)
    tasks.spawn(returns(), name="one-off")
    await asyncio.sleep(0.05)
    report = tasks.report()
    assert report["ok"] is False
    assert report["failed"] == {"receive": "OSError: no space left on device", "timers": "ended"}
    await tasks.cancel_all()  # cancelling essential tasks is no failure
    assert set(tasks.report()["failed"]) == {"receive", "timers"}  # type: ignore[arg-type]
