"""RelayStore: quotas, eviction, tombstones and the index on disk, with an injected clock."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from hereabouts.advert.errors import (
    PresenceStale,
    RelayAddressFull,
    RelayAddressRateLimited,
    RelayDidRateLimited,
)
from hereabouts.advert.http import create_app
from hereabouts.advert.relay import HOUSEKEEPING_STEPS, RelayStore, relay_file_name
from hereabouts.config import RelayConfig
from hereabouts.errors import ConfigError
from hereabouts.identity import Identity
from hereabouts.metrics import Counters
from tests.advert.conftest import T0, Clock, serve

RELAY = Identity.from_seed(b"\x42" * 32)
REAL = "192.0.2.1"
FLOOD = "192.0.2.66"
OTHER = "198.51.100.5"

MakeDoc = Callable[..., dict[str, Any]]


def key(n: int) -> Identity:
    return Identity.from_seed(n.to_bytes(4, "big") * 8)


def relayed(make_doc: MakeDoc, who: Identity, *, at: float = 0, lifetime_s: int = 600,
            **kw: Any) -> dict[str, Any]:
    relays = [{"host": RELAY.did, "url": "https://relay.example"}]
    return make_doc(identity=who, relays=relays, issued_at=T0 + timedelta(seconds=at),
                    lifetime_s=lifetime_s, **kw)


def store(tmp_path: Path, now: datetime = T0, **config: Any) -> RelayStore:
    return RelayStore(tmp_path / "relay", RELAY.did, config=RelayConfig(**config), now=now)


def files(relay: RelayStore) -> list[str]:
    return sorted(path.name for path in relay.directory.iterdir())


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_tombstones_never_lock_out_live_documents(tmp_path: Path, make_doc: MakeDoc) -> None:
    relay = store(tmp_path, max_entries=3, max_tombstones=2)
    short = [relayed(make_doc, key(n), lifetime_s=60) for n in range(3)]
    for doc in short:
        assert relay.accept(doc, at(1), client=FLOOD)
    # all three stop being served; a new wave of three is still taken in full
    fresh = [relayed(make_doc, key(10 + n), at=100) for n in range(3)]
    for doc in fresh:
        assert relay.accept(doc, at(100), client=REAL)
    assert relay.index.live == 3 and relay.index.tombstones == 2
    assert len(files(relay)) == 5
    assert relay.counters.get("relay_evictions", "expired") == 3
    assert relay.counters.get("relay_evictions", "tombstone_overflow") == 1
    # the oldest tombstone (key 0's; all were issued together, then by DID) was forgotten
    forgotten = [n for n in range(3) if relay.index.get(key(n).did) is None]
    assert len(forgotten) == 1
    # the tombstones left still refuse an older document of their DID...
    kept = next(n for n in range(3) if n not in forgotten)
    older = relayed(make_doc, key(kept), at=-30)
    with pytest.raises(PresenceStale):
        relay.accept(older, at(100), client=REAL)
    # ...what a forgotten one gives up: an older, still valid document is taken again
    assert relay.accept(relayed(make_doc, key(forgotten[0]), at=-30), at(100), client=REAL)


def test_one_address_fills_only_its_share(tmp_path: Path, make_doc: MakeDoc) -> None:
    relay = store(tmp_path, max_entries=10, max_entries_per_address=3)
    for n in range(3):
        assert relay.accept(relayed(make_doc, key(n)), at(1), client=FLOOD)
    with pytest.raises(RelayAddressFull) as refused:
        relay.accept(relayed(make_doc, key(3)), at(1), client=FLOOD)
    assert refused.value.retry_after_s == pytest.approx(599)  # when its oldest expires
    assert relay.index.get(key(3).did) is None
    # a DID it holds may still replace its document; another address is not affected
    assert relay.accept(relayed(make_doc, key(0), at=5), at(5), client=FLOOD)
    assert relay.accept(relayed(make_doc, key(3)), at(5), client=REAL)
    # taking over another address's DID counts against the new address's share
    with pytest.raises(RelayAddressFull):
        relay.accept(relayed(make_doc, key(3), at=6), at(6), client=FLOOD)
    assert relay.accept(relayed(make_doc, key(1), at=6), at(6), client=REAL)
    assert relay.index.held_by(FLOOD) == 2 and relay.index.held_by(REAL) == 2


def test_full_relay_evicts_the_oldest_of_the_heaviest_address(
    tmp_path: Path, make_doc: MakeDoc
) -> None:
    relay = store(tmp_path, max_entries=4, max_entries_per_address=4)
    assert relay.accept(relayed(make_doc, key(100)), at(0), client=REAL)
    for n in range(3):
        assert relay.accept(relayed(make_doc, key(n)), at(1 + n), client=FLOOD)
    assert relay.accept(relayed(make_doc, key(101)), at(10), client=OTHER)
    assert relay.index.live == 4
    victim = relay.index.get(key(0).did)
    assert victim is not None and victim.tombstone
    assert relay.counters.get("relay_evictions", "fair") == 1
    # the evicted entry is a tombstone: its older documents stay out
    with pytest.raises(PresenceStale):
        relay.accept(relayed(make_doc, key(0), at=-1), at(10), client=OTHER)
    # the flooding address, at its own cap here, now loses entry after entry to others
    assert relay.accept(relayed(make_doc, key(102)), at(11), client=OTHER)
    assert relay.index.held_by(FLOOD) == 1
    assert relay.get(key(100).did, at(11)) is not None
    assert relay.get(key(0).did, at(11)) is None


def test_full_relay_buries_expired_before_evicting(tmp_path: Path, make_doc: MakeDoc) -> None:
    relay = store(tmp_path, max_entries=3, max_entries_per_address=3)
    assert relay.accept(relayed(make_doc, key(100), lifetime_s=30), at(0), client=REAL)
    for n in range(2):
        assert relay.accept(relayed(make_doc, key(n)), at(1), client=FLOOD)
    assert relay.accept(relayed(make_doc, key(101)), at(40), client=OTHER)
    assert relay.counters.get("relay_evictions", "expired") == 1
    assert relay.counters.get("relay_evictions", "fair") == 0
    assert relay.index.held_by(FLOOD) == 2


def test_a_did_may_replace_its_document_only_so_often(
    tmp_path: Path, make_doc: MakeDoc
) -> None:
    relay = store(tmp_path, did_pushes_per_minute=1.0, did_push_burst=2)
    who = key(7)
    assert relay.accept(relayed(make_doc, who, at=0), at(0), client=REAL)
    assert not relay.accept(relayed(make_doc, who, at=0), at(0), client=REAL)  # same: free
    assert relay.accept(relayed(make_doc, who, at=1), at(1), client=REAL)
    with pytest.raises(RelayDidRateLimited) as refused:
        relay.accept(relayed(make_doc, who, at=2), at(2), client=REAL)
    assert 55 < refused.value.retry_after_s <= 60
    assert relay.accept(relayed(make_doc, who, at=61), at(61), client=OTHER)
    got = relay.get(who.did, at(61))
    assert got is not None and got.doc["issued_at"] == "2025-01-01T11:51:01Z"


def test_address_push_rate_is_checked_first(tmp_path: Path) -> None:
    relay = store(tmp_path, address_pushes_per_minute=60.0, address_push_burst=3)
    for _ in range(3):
        relay.admit(FLOOD, at(0))
    with pytest.raises(RelayAddressRateLimited) as refused:
        relay.admit(FLOOD, at(0))
    assert refused.value.retry_after_s == pytest.approx(1.0)
    relay.admit(REAL, at(0))
    relay.admit("::ffff:" + REAL, at(0))
    relay.admit(FLOOD, at(1))
    # IPv6 clients share their /64's budget
    for n in range(3):
        relay.admit(f"2001:db8::{n}", at(0))
    with pytest.raises(RelayAddressRateLimited):
        relay.admit("2001:db8::ffff", at(0))


def test_no_request_lists_the_directory(
    tmp_path: Path, make_doc: MakeDoc, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay = store(tmp_path, max_entries=20, max_tombstones=5, max_entries_per_address=100)
    for n in range(20):
        relay.accept(relayed(make_doc, key(n), lifetime_s=60), at(0), client=FLOOD)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a request listed the relay directory")

    for name in ("iterdir", "glob", "rglob"):
        monkeypatch.setattr(Path, name, refuse)
    monkeypatch.setattr(os, "scandir", refuse)
    monkeypatch.setattr(os, "listdir", refuse)
    for n in range(20, 60):  # the first wave expires, is buried, overflows its bound
        assert relay.accept(relayed(make_doc, key(n), at=100), at(100 + n), client=REAL)
        assert relay.get(key(n).did, at(100 + n)) is not None
        assert relay.get(key(n - 20).did, at(100 + n)) is None
    monkeypatch.undo()
    assert relay.index.live == 20 and relay.index.tombstones == 5
    assert len(files(relay)) == 25


def test_housekeeping_per_push_is_bounded(tmp_path: Path, make_doc: MakeDoc) -> None:
    relay = store(tmp_path, max_entries_per_address=100)
    for n in range(30):
        relay.accept(relayed(make_doc, key(n), lifetime_s=60), at(0), client=FLOOD)
    assert relay.accept(relayed(make_doc, key(99), at=100), at(100), client=REAL)
    assert relay.counters.get("relay_evictions", "expired") == HOUSEKEEPING_STEPS
    assert relay.sweep(at(100)) == 30 - HOUSEKEEPING_STEPS
    assert relay.index.live == 1 and relay.index.tombstones == 30


def test_index_is_rebuilt_from_disk(tmp_path: Path, make_doc: MakeDoc) -> None:
    first = store(tmp_path, max_entries_per_address=2)
    assert first.accept(relayed(make_doc, key(1), lifetime_s=60), at(0), client=FLOOD)
    assert first.accept(relayed(make_doc, key(2)), at(0), client=FLOOD)
    assert first.accept(relayed(make_doc, key(3)), at(0), client=REAL)
    directory = first.directory
    (directory / ("0" * 64 + ".json")).write_text("{not json")
    (directory / f".{relay_file_name(key(9).did)}.123.tmp").write_text("half")
    # an entry written before the index kept serve_until and the pushing address
    legacy = relayed(make_doc, key(4))
    (directory / relay_file_name(key(4).did)).write_text(json.dumps({
        "did": key(4).did, "issued_at": legacy["issued_at"],
        "stored_at": "2025-01-01T11:50:00Z", "document": legacy}))

    again = store(tmp_path, now=at(70), max_entries_per_address=2)
    assert again.index.live == 3 and again.index.tombstones == 1
    assert again.counters.get("relay_evictions", "damaged") == 1
    assert again.index.held_by(FLOOD) == 1 and again.index.held_by(REAL) == 1
    assert again.index.held_by("unknown") == 1
    assert len(files(again)) == 4  # the damaged file and the temporary one are gone
    tomb = json.loads((directory / relay_file_name(key(1).did)).read_text())
    assert tomb["document"] is None  # shrunk to a tombstone on the way in
    with pytest.raises(PresenceStale):
        again.accept(relayed(make_doc, key(1), at=-5), at(70), client=REAL)
    served = again.get(key(2).did, at(70))
    assert served is not None and served.serve_until == at(600)
    # the address budget survives the restart
    assert again.accept(relayed(make_doc, key(5)), at(70), client=FLOOD)
    with pytest.raises(RelayAddressFull):
        again.accept(relayed(make_doc, key(6)), at(70), client=FLOOD)
    # a smaller configuration is applied on opening; tombstones past a week are dropped
    smaller = store(tmp_path, now=at(80), max_entries=2, max_tombstones=1)
    assert smaller.index.live == 2 and smaller.index.tombstones == 1
    assert store(tmp_path, now=at(8 * 86400)).count() == 0
    assert files(again) == []


def test_http_refusals_are_429_with_retry_after_and_counted(
    tmp_path: Path, clock: Clock, make_doc: MakeDoc
) -> None:
    counters = Counters()
    relay = RelayStore(
        tmp_path / "relay",
        RELAY.did,
        config=RelayConfig(address_push_burst=3, max_entries_per_address=1),
        counters=counters,
        now=T0,
    )
    with serve(create_app(relay=relay, clock=clock)) as url, httpx.Client(base_url=url) as c:
        def push(doc: dict[str, Any]) -> httpx.Response:
            return c.post("/v1/relay/presence", content=json.dumps(doc))

        assert push(relayed(make_doc, key(1))).status_code == 201
        full = push(relayed(make_doc, key(2)))
        assert full.status_code == 429 and full.json()["error"] == "relay_address_full"
        assert int(full.headers["retry-after"]) == 600
        assert push(relayed(make_doc, key(1))).status_code == 200
        limited = c.post("/v1/relay/presence", content=b"never parsed")
        assert limited.status_code == 429 and limited.json()["error"] == "relay_address_rate"
        assert limited.headers["retry-after"] == "1"
    assert counters.by_label("relay_pushes") == {
        "stored": 1, "relay_address_full": 1, "unchanged": 1, "relay_address_rate": 1
    }


def test_relay_config_from_env() -> None:
    config = RelayConfig.from_env({
        "HEREABOUTS_RELAY_MAX_ENTRIES": "50",
        "HEREABOUTS_RELAY_MAX_TOMBSTONES": "7",
        "HEREABOUTS_RELAY_ADDRESS_PUSHES_PER_MINUTE": "1.5",
        "HEREABOUTS_RELAY_TTL": "",
    })
    assert (config.max_entries, config.max_tombstones) == (50, 7)
    assert config.address_pushes_per_minute == 1.5 and config.ttl_s == 900.0
    with pytest.raises(ConfigError):
        RelayConfig.from_env({"HEREABOUTS_RELAY_MAX_ENTRIES": "many"})
    with pytest.raises(ConfigError):
        RelayConfig.from_env({"HEREABOUTS_RELAY_DID_PUSH_BURST": "0"})
