"""The dashboard's memory of status changes: the window, the bounds, forgetting, and the
app feeding it from ``node.changes()`` and serving it at ``/v1/history``."""

from __future__ import annotations

import httpx
import pytest

from hereabouts.core.effects import Status, StatusChanged
from hereabouts.web.app import create_app
from hereabouts.web.history import (
    HISTORY_WINDOW_MS,
    MAX_CHANGES_PER_PEER,
    MAX_CHANGES_TOTAL,
    RECENT_LIMIT,
    StatusHistory,
)
from hereabouts.web.server import HttpServer
from tests.web.conftest import ALPHA, BRAVO, CHARLIE, T_MS, TIMEOUT_S, FakeNode, eventually

MINUTE = 60_000


def flip(did: str, at_ms: int, new: Status = Status.ONLINE, *, old: Status | None = None,
         cause: str = "event") -> StatusChanged:
    return StatusChanged(did=did, name=did[-6:], old=old, new=new, at_ms=at_ms, cause=cause)


def flaps(
    did: str, count: int, *, start_ms: int = T_MS, every_ms: int = 1000
) -> list[StatusChanged]:
    """``count`` changes of ``did``, alternating ONLINE and MISSING."""
    statuses = (Status.ONLINE, Status.MISSING)
    return [
        flip(did, start_ms + n * every_ms, statuses[n % 2], old=statuses[(n + 1) % 2])
        for n in range(count)
    ]


def test_the_documented_bounds_are_the_defaults() -> None:
    history = StatusHistory()
    assert history.window_ms == HISTORY_WINDOW_MS == 3_600_000
    assert history.per_peer == MAX_CHANGES_PER_PEER
    assert history.total == MAX_CHANGES_TOTAL
    assert history.as_json(T_MS)["limits"] == {
        "per_peer": MAX_CHANGES_PER_PEER, "total": MAX_CHANGES_TOTAL, "recent": RECENT_LIMIT
    }
    with pytest.raises(ValueError):
        StatusHistory(window_ms=0)
    with pytest.raises(ValueError):
        StatusHistory(per_peer=0)


def test_changes_older_than_the_window_are_forgotten() -> None:
    history = StatusHistory(window_ms=60 * MINUTE)
    history.start(T_MS)
    history.record(flip(ALPHA, T_MS, old=None), T_MS)
    history.record(flip(ALPHA, T_MS + 30 * MINUTE, Status.MISSING, old=Status.ONLINE), T_MS)
    history.record(flip(BRAVO, T_MS + 40 * MINUTE, old=None), T_MS + 40 * MINUTE)
    assert len(history) == 3
    body = history.as_json(T_MS + 61 * MINUTE)
    # ALPHA's first change left the window; its second says what it was before (ONLINE).
    assert [c["at_ms"] for c in body["peers"][ALPHA]["changes"]] == [T_MS + 30 * MINUTE]
    assert body["peers"][ALPHA]["changes"][0]["old"] == "ONLINE"
    assert len(history) == 2
    body = history.as_json(T_MS + 101 * MINUTE)
    assert body["peers"] == {}  # nothing changed for an hour: the current status says it all
    assert len(history) == 0
    assert body["since_ms"] == T_MS and body["now_ms"] == T_MS + 101 * MINUTE


def test_a_flapping_peer_keeps_its_newest_changes_and_marks_the_gap() -> None:
    history = StatusHistory(per_peer=5)
    changes = flaps(ALPHA, 8)
    for change in changes:
        history.record(change, change.at_ms)
    history.record(flip(BRAVO, T_MS, old=None), T_MS)
    assert history.changes_of(ALPHA) == changes[3:]
    assert len(history) == 6
    body = history.as_json(T_MS + 10_000)
    assert body["peers"][ALPHA]["complete_from_ms"] == changes[3].at_ms
    assert body["peers"][BRAVO]["complete_from_ms"] is None
    assert history.known_from(ALPHA) == changes[3].at_ms
    assert history.known_from(BRAVO) == T_MS  # since watching began
    assert body["complete_from_ms"] is None


def test_the_total_bound_drops_the_oldest_changes_of_anyone() -> None:
    history = StatusHistory(total=10)
    for n, did in enumerate([ALPHA, BRAVO, CHARLIE] * 5):
        history.record(flip(did, T_MS + n, old=Status.MISSING), T_MS + n)
    assert len(history) == 10
    kept = sorted(c.at_ms for did in history.peers() for c in history.changes_of(did))
    assert kept == [T_MS + n for n in range(5, 15)]
    # Before the newest dropped change nothing is whole any more, for anyone.
    assert history.complete_from_ms == T_MS + 4
    assert history.known_from(CHARLIE) == T_MS + 4


def test_memory_stays_bounded_whatever_arrives() -> None:
    """A few peers flapping fast among many that come and go: the kept changes and the
    bookkeeping both stay bounded."""
    history = StatusHistory(per_peer=20, total=500)
    for n in range(20_000):
        did = f"did:key:flapper{n % 10}" if n % 2 else f"did:key:passer{n}"
        history.record(flip(did, T_MS + n, old=Status.ONLINE, new=Status.MISSING), T_MS + n)
        assert len(history) <= 500
        assert len(history._order) <= 2 * 500 + 1
    assert all(len(history.changes_of(did)) <= 20 for did in history.peers())


def test_a_forgotten_peer_leaves_the_strips_but_not_the_log() -> None:
    history = StatusHistory()
    history.record(flip(ALPHA, T_MS, old=None), T_MS)
    history.record(flip(BRAVO, T_MS + 1, old=None), T_MS + 1)
    gone = flip(BRAVO, T_MS + 2, Status.ONLINE, old=Status.ONLINE, cause="forgotten")
    history.record(gone, T_MS + 2)
    assert history.peers() == [ALPHA]
    assert len(history) == 1
    assert history.recent()[0] == gone
    # It may come back as a new peer later; its old entries do not resurface.
    history.record(flip(BRAVO, T_MS + 3, old=None), T_MS + 3)
    history.prune(T_MS + 4)
    assert [c.at_ms for c in history.changes_of(BRAVO)] == [T_MS + 3]


def test_the_log_is_newest_first_and_bounded() -> None:
    history = StatusHistory(recent=3)
    for change in flaps(ALPHA, 5):
        history.record(change, change.at_ms)
    body = history.as_json(T_MS + 10_000)
    assert [c["at_ms"] for c in body["recent"]] == [T_MS + 4000, T_MS + 3000, T_MS + 2000]
    assert body["recent"][0].keys() >= {"did", "name", "old", "new", "at", "at_ms", "cause"}


async def test_the_app_records_what_the_node_reports_and_serves_it(node: FakeNode) -> None:
    now_s = [T_MS / 1000]
    app = create_app(node, clock=lambda: now_s[0])
    async with (
        HttpServer(app, port=0) as server,
        httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT_S, trust_env=False) as client,
    ):
        assert len(node.subscribers) == 1, "the history follows the node from the start"
        empty = (await client.get("/v1/history")).json()
        assert empty["since_ms"] == T_MS and empty["peers"] == {} and empty["recent"] == []

        node.push(flip(BRAVO, T_MS + 5, Status.ONLINE, old=Status.MISSING))
        node.push(flip(CHARLIE, T_MS + 6, Status.OFFLINE, old=Status.ONLINE))
        await eventually(lambda: len(app.state.history) == 2, "both changes recorded")
        response = await client.get("/v1/history")
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert body["peers"][BRAVO]["changes"] == [
            {"at_ms": T_MS + 5, "old": "MISSING", "new": "ONLINE", "cause": "event"}
        ]
        assert [c["did"] for c in body["recent"]] == [CHARLIE, BRAVO]

        node.push(flip(CHARLIE, T_MS + 7, Status.OFFLINE, old=Status.OFFLINE, cause="forgotten"))
        await eventually(lambda: len(app.state.history) == 1, "the forgotten peer dropped")
        body = (await client.get("/v1/history")).json()
        assert list(body["peers"]) == [BRAVO]
        assert body["recent"][0]["cause"] == "forgotten"
    assert not node.subscribers, "the history let go when the app stopped"
