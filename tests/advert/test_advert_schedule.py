"""The re-publish policy (sans-I/O) and the driver that follows it."""

from __future__ import annotations

import ast
import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

import hereabouts.core.advert_schedule as schedule_module
from hereabouts.advert import check_presence
from hereabouts.advert.index import load_index
from hereabouts.advert.republish import Republisher
from hereabouts.advert.store import PresenceStore
from hereabouts.core.advert_schedule import PublishNow, RepublishPolicy, WaitUntil
from hereabouts.identity import Identity
from tests.advert.conftest import T0, Clock

FORBIDDEN = {"asyncio", "socket", "time", "random"}


def test_core_module_imports_no_io() -> None:
    tree = ast.parse(Path(schedule_module.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN


def test_policy_decisions() -> None:
    policy = RepublishPolicy()
    expires = T0 + timedelta(seconds=600)
    assert policy.decide(T0, None, None) == PublishNow()
    assert policy.decide(T0, T0, expires) == WaitUntil(T0 + timedelta(seconds=480))
    assert policy.decide(T0 + timedelta(seconds=480), T0, expires) == PublishNow()
    assert policy.decide(T0 + timedelta(seconds=700), T0, expires) == PublishNow()
    tiny = T0 + timedelta(seconds=1)
    assert policy.due_at(T0, tiny) == T0 + timedelta(seconds=1)  # min gap
    assert policy.after_failure(T0, expires) == T0 + timedelta(seconds=30)
    late = T0 + timedelta(seconds=590)
    assert policy.after_failure(late, expires) == T0 + timedelta(seconds=599)
    with pytest.raises(ValueError):
        RepublishPolicy(fraction=1.0)


def test_republisher_steps_with_proofs(tmp_path: Path, clock: Clock) -> None:
    identity = Identity.from_seed(b"\x05" * 32)
    index = tmp_path / "index.txt"
    index.write_text("a\nb\n")
    store = PresenceStore(tmp_path / "home")
    rep = Republisher(identity=identity, store=store, endpoints={"mcp": "https://n.example"},
                      index_source=lambda: load_index(index), clock=clock)
    published, wake = rep.step(clock())
    assert published is not None and wake == T0 + timedelta(seconds=480)
    assert rep.step(clock() + timedelta(seconds=100)) == (None, wake)
    index.write_text("a\nb\nc\n")
    clock.now = wake
    second, wake2 = rep.step(clock())
    assert second is not None and second.proof is not None
    assert (second.proof.old_size, second.proof.new_size) == (2, 3)
    info = check_presence(second.doc, now=clock())
    assert info.proof is not None
    assert wake2 == wake + timedelta(seconds=480)
    # before the old one expired the new one was out
    assert second.doc["issued_at"] < published.doc["expires_at"]


def test_republisher_failure_retries(tmp_path: Path, clock: Clock) -> None:
    store = PresenceStore(tmp_path)
    rep = Republisher(identity=Identity.from_seed(b"\x06" * 32), store=store,
                      endpoints={"x": "ftp://not-allowed"}, merkle_root="sha256:" + "0" * 64,
                      clock=clock)
    published, wake = rep.step(clock())
    assert published is None and wake == T0 + timedelta(seconds=30)


async def test_run_loop_publishes_and_sleeps(tmp_path: Path, clock: Clock) -> None:
    store = PresenceStore(tmp_path)
    seen: list[str] = []
    sleeps: list[float] = []

    async def on_publish(doc: dict[str, object]) -> None:
        seen.append(str(doc["issued_at"]))

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)
        if len(sleeps) == 3:
            raise asyncio.CancelledError

    rep = Republisher(identity=Identity.from_seed(b"\x07" * 32), store=store,
                      endpoints={}, merkle_root="sha256:" + "1" * 64, clock=clock,
                      on_publish=on_publish)
    with pytest.raises(asyncio.CancelledError):
        await rep.run(sleep=fake_sleep)
    assert sleeps == [480.0, 480.0, 480.0]
    assert seen == ["2025-01-01T11:50:00Z", "2025-01-01T11:58:00Z", "2025-01-01T12:06:00Z"]
    assert len(store.paths("default")) == 3
