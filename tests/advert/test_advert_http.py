"""The well-known endpoint and the relay, over a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from hereabouts.advert import encode_presence
from hereabouts.advert.http import create_app
from hereabouts.advert.relay import RelayStore, relay_file_name
from hereabouts.advert.store import PresenceStore
from hereabouts.advert.timestamps import parse_time
from hereabouts.config import RelayConfig
from hereabouts.identity import Identity
from tests.advert.conftest import T0, Clock, serve

RELAY = Identity.from_seed(b"\x42" * 32)


def max_age(response: httpx.Response) -> int:
    match = re.search(r"max-age=(\d+)", response.headers["cache-control"])
    assert match is not None
    return int(match.group(1))


@pytest.fixture
def node(tmp_path: Path, clock: Clock) -> Iterator[tuple[str, PresenceStore]]:
    store = PresenceStore(tmp_path / "node")
    with serve(create_app(store=store, clock=clock)) as url:
        yield url, store


@pytest.fixture
def relay(tmp_path: Path, clock: Clock) -> Iterator[tuple[str, RelayStore]]:
    held = RelayStore(tmp_path / "relay", RELAY.did, config=RelayConfig(ttl_s=900), now=T0)
    with serve(create_app(relay=held, clock=clock)) as url:
        yield url, held


def test_well_known_serves_latest_unexpired(
    node: tuple[str, PresenceStore], clock: Clock, make_doc: Any
) -> None:
    url, store = node
    with httpx.Client(base_url=url) as client:
        missing = client.get("/.well-known/hn/presence")
        assert missing.status_code == 404 and missing.json()["error"] == "no_presence"
        doc = make_doc(ttl_seconds=600)
        store.save("default", doc)
        served = 0
        for step in range(0, 700, 25):
            clock.now = T0 + timedelta(seconds=step)
            response = client.get("/.well-known/hn/presence")
            remaining = (parse_time(doc["expires_at"]) - clock.now).total_seconds()
            if remaining <= 0:
                assert response.status_code == 404
                continue
            served += 1
            assert response.status_code == 200
            assert response.content == encode_presence(doc)
            assert response.json() == doc
            assert 0 <= max_age(response) <= remaining
            assert response.headers["etag"].startswith('"')
        assert served == 24


def test_well_known_etag_and_ttl(
    node: tuple[str, PresenceStore], clock: Clock, make_doc: Any
) -> None:
    url, store = node
    store.save("default", make_doc(ttl_seconds=60))
    clock.advance(10)
    with httpx.Client(base_url=url) as client:
        first = client.get("/.well-known/hn/presence")
        assert max_age(first) == 60
        etag = first.headers["etag"]
        again = client.get("/.well-known/hn/presence", headers={"if-none-match": etag})
        assert again.status_code == 304 and again.headers["etag"] == etag
        newer = make_doc(issued_at=T0 + timedelta(seconds=5))
        store.save("default", newer)
        changed = client.get("/.well-known/hn/presence", headers={"if-none-match": etag})
        assert changed.status_code == 200 and changed.json() == newer


def test_well_known_refuses_tampered_file(
    node: tuple[str, PresenceStore], clock: Clock, make_doc: Any
) -> None:
    url, store = node
    doc = make_doc()
    path = store.save("default", doc)
    path.write_text(json.dumps({**doc, "endpoints": {"mcp": "https://evil.example"}}))
    clock.advance(5)
    assert httpx.get(url + "/.well-known/hn/presence").status_code == 404


def relayed(make_doc: Any, **kw: Any) -> dict[str, Any]:
    entry = {"host": RELAY.did, "url": "https://relay.example"}
    if "relay_expires_at" in kw:
        entry["expires_at"] = kw.pop("relay_expires_at")
    doc: dict[str, Any] = make_doc(relays=[entry], **kw)
    return doc


def post(client: httpx.Client, doc: Any) -> httpx.Response:
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return client.post("/v1/relay/presence", content=body,
                       headers={"content-type": "application/json"})


def test_relay_accepts_serves_and_refuses(
    relay: tuple[str, RelayStore], clock: Clock, make_doc: Any
) -> None:
    url, store = relay
    clock.advance(10)
    doc = relayed(make_doc)
    newer = relayed(make_doc, issued_at=T0 + timedelta(seconds=5))
    with httpx.Client(base_url=url) as client:
        path = f"/v1/relay/{doc['did']}/presence"
        assert client.get(path).status_code == 404
        assert post(client, doc).status_code == 201
        assert post(client, doc).json() == {"stored": False, "id": doc["id"]}
        got = client.get(path)
        assert got.status_code == 200 and got.json() == doc
        assert (store.directory / relay_file_name(doc["did"])).exists()

        assert post(client, newer).status_code == 201
        stale = post(client, doc)
        assert stale.status_code == 409 and stale.json()["error"] == "presence_stale"
        assert client.get(path).json() == newer

        not_named = post(client, make_doc(issued_at=T0 + timedelta(seconds=9)))
        assert not_named.status_code == 403 and not_named.json()["error"] == "relay_not_named"

        unsigned = {k: v for k, v in newer.items() if k != "signature"}
        assert post(client, unsigned).status_code == 400
        bad = base64.b64encode(b"\x00" * 64).decode()
        forged = post(client, {**relayed(make_doc, issued_at=T0 + timedelta(seconds=8)),
                               "signature": bad})
        assert forged.status_code == 403 and forged.json()["error"] == "presence_bad_signature"

        assert post(client, b"not json").status_code == 400
        huge = post(client, b"{" + b" " * 20_000 + b"}")
        assert huge.status_code == 413 and huge.json()["error"] == "presence_oversize"
        assert client.get(path).json() == newer


def test_relay_refuses_a_number_python_will_not_read_as_malformed(
    relay: tuple[str, RelayStore]
) -> None:
    """Found by the fuzzer: an integer of more than 4,300 digits made ``json.loads`` raise
    a plain ValueError, which the push handler did not catch (HTTP 500, nothing counted)."""
    url, store = relay
    with httpx.Client(base_url=url) as client:
        answer = post(client, b'{"ttl_seconds":' + b"9" * 5000 + b"}")
    assert answer.status_code == 400 and answer.json()["error"] == "presence_malformed"
    assert store.counters.by_label("relay_pushes") == {"presence_malformed": 1}


def test_relay_honours_document_expiry(
    relay: tuple[str, RelayStore], clock: Clock, make_doc: Any
) -> None:
    url, _ = relay
    doc = relayed(make_doc, lifetime_s=300)
    with httpx.Client(base_url=url) as client:
        assert post(client, doc).status_code == 201
        clock.now = T0 + timedelta(seconds=299)
        response = client.get(f"/v1/relay/{doc['did']}/presence")
        assert response.status_code == 200 and max_age(response) <= 1
        clock.now = T0 + timedelta(seconds=300)
        assert client.get(f"/v1/relay/{doc['did']}/presence").status_code == 404


def test_relay_honours_delegation_expiry(
    relay: tuple[str, RelayStore], clock: Clock, make_doc: Any
) -> None:
    url, _ = relay
    doc = relayed(make_doc, relay_expires_at="2025-01-01T11:53:20Z")  # T0 + 200 s
    with httpx.Client(base_url=url) as client:
        assert post(client, doc).status_code == 201
        clock.now = T0 + timedelta(seconds=100)
        response = client.get(f"/v1/relay/{doc['did']}/presence")
        assert response.status_code == 200 and max_age(response) <= 100
        clock.now = T0 + timedelta(seconds=200)
        assert client.get(f"/v1/relay/{doc['did']}/presence").status_code == 404
        # and a delegation already over is refused on arrival
        later = relayed(make_doc, issued_at=T0 + timedelta(seconds=1),
                        relay_expires_at="2025-01-01T11:53:20Z")
        assert post(client, later).json()["error"] == "relay_not_named"


def test_relay_honours_its_own_ttl(tmp_path: Path, clock: Clock, make_doc: Any) -> None:
    held = RelayStore(tmp_path / "relay", RELAY.did, config=RelayConfig(ttl_s=100), now=T0)
    doc = relayed(make_doc)
    clock.now = T0 + timedelta(seconds=10)
    with serve(create_app(relay=held, clock=clock)) as url, httpx.Client(base_url=url) as client:
        assert post(client, doc).status_code == 201
        clock.now = T0 + timedelta(seconds=109)
        response = client.get(f"/v1/relay/{doc['did']}/presence")
        assert response.status_code == 200 and max_age(response) <= 1
        clock.now = T0 + timedelta(seconds=110)
        assert client.get(f"/v1/relay/{doc['did']}/presence").status_code == 404
        # the newer document stopped being served, yet an older one still cannot replace it
        older = relayed(make_doc, issued_at=T0 - timedelta(seconds=60), lifetime_s=3600)
        assert post(client, older).status_code == 409


def test_relay_full_buries_the_first_expired_entry(tmp_path: Path, make_doc: Any) -> None:
    held = RelayStore(tmp_path / "relay", RELAY.did, config=RelayConfig(max_entries=2), now=T0)
    now = T0 + timedelta(seconds=1)
    docs = [relayed(make_doc, identity=Identity.from_seed(bytes([i]) * 32), lifetime_s=60 * i)
            for i in range(1, 4)]
    assert held.accept(docs[0], now) and held.accept(docs[1], now)
    later = T0 + timedelta(seconds=61)
    assert held.get(docs[0]["did"], later) is None
    assert held.get(docs[1]["did"], later) is not None
    assert held.accept(docs[2], later)  # full: the expired entry makes room
    assert held.index.live == 2 and held.index.tombstones == 1
    assert held.get(docs[1]["did"], later) is not None
    assert held.sweep(T0 + timedelta(days=8)) == 5  # two buried, then three forgotten
    assert held.count() == 0 and not list(held.directory.iterdir())


def test_every_alias_is_served_at_its_own_path(
    node: tuple[str, PresenceStore], clock: Clock, make_doc: Any
) -> None:
    url, store = node
    web = make_doc(endpoints={"api": "https://example.org/api"})
    store.save("web", web)
    clock.advance(5)
    with httpx.Client(base_url=url) as client:
        served = client.get("/.well-known/hn/presence/web")
        assert served.status_code == 200 and served.json() == web
        # Nothing under the default alias: the 404 says where the published ones are.
        bare = client.get("/.well-known/hn/presence")
        assert bare.status_code == 404 and bare.json()["error"] == "no_presence"
        assert "/.well-known/hn/presence/web" in bare.json()["detail"]
        default = make_doc(issued_at=T0 + timedelta(seconds=1))
        store.save("default", default)
        assert client.get("/.well-known/hn/presence").json() == default
        assert client.get("/.well-known/hn/presence/default").status_code == 200
        assert client.get("/.well-known/hn/presence/nobody").status_code == 404
        assert client.get("/.well-known/hn/presence/..%2F..%2Fetc").status_code == 404


def test_relay_takes_a_ttl_spelled_as_a_float(
    relay: tuple[str, RelayStore], clock: Clock, make_doc: Any
) -> None:
    """600.0 is 600 in RFC 8785: accepted, served canonically, and its cap still holds."""
    url, _ = relay
    clock.advance(10)
    doc = relayed(make_doc, lifetime_s=3600, ttl_seconds=60)
    body = json.dumps(doc).replace('"ttl_seconds": 60', '"ttl_seconds": 60.0').encode()
    assert b"60.0" in body
    with httpx.Client(base_url=url) as client:
        stored = post(client, body)
        assert stored.status_code == 201, stored.text
        got = client.get(f"/v1/relay/{doc['did']}/presence")
        assert got.status_code == 200 and got.content == encode_presence(doc)
        assert max_age(got) <= 60
