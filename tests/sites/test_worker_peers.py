"""Hub workers share the ids of the signatures they checked (hereabouts.sites.worker_peers)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket

from hereabouts.metrics import Counters
from hereabouts.sites.manager import verified_ids
from hereabouts.sites.worker_peers import SiblingHints
from tests.sites.support import eventually


def fresh_id() -> str:
    return hashlib.sha256(os.urandom(16)).hexdigest()


async def test_ids_verified_by_one_worker_become_known_to_its_sibling() -> None:
    a_counters, b_counters = Counters(), Counters()
    a, b = SiblingHints(a_counters), SiblingHints(b_counters)
    one, two = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    a.link(1, one)
    b.link(0, two)
    ids = [fresh_id() for _ in range(3000)]  # more than one datagram holds
    try:
        for event_id in ids:
            a.verified(event_id)
        assert not any(event_id in verified_ids for event_id in ids)  # not before the turn ends
        await eventually(lambda: all(event_id in verified_ids for event_id in ids))
        assert a_counters.get("site_hub_sibling_ids", "sent") == 3000
        assert b_counters.get("site_hub_sibling_ids", "received") == 3000
    finally:
        a.close()
        b.close()


async def test_a_sibling_that_is_gone_is_unlinked_and_costs_nothing() -> None:
    a = SiblingHints(Counters())
    one, two = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    a.link(1, one)
    two.close()
    await eventually(lambda: not a._peers)  # the closed end reads as gone
    a.verified(fresh_id())  # no sibling: nothing queued
    assert a._pending == []
    await asyncio.sleep(0)


async def test_hints_for_a_sibling_that_does_not_read_are_dropped_not_queued() -> None:
    counters = Counters()
    a = SiblingHints(counters)
    one, two = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    a.link(1, one)
    try:
        for _ in range(200):
            for _ in range(2048):
                a.verified(fresh_id())
            await asyncio.sleep(0)
            if counters.get("site_hub_sibling_ids", "dropped"):
                break
        assert counters.get("site_hub_sibling_ids", "dropped") > 0
        assert a._pending == []
    finally:
        a.close()
        two.close()
