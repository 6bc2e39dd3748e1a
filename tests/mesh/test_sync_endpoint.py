"""The sync endpoint under bad input: every refusal typed, counted, and bounded.

One mesh-only node (in-memory stores) serves ``POST /v1/mesh/sync`` on a real HTTP server;
the test is the caller, signing requests itself with keys it makes, and checks the answer,
the node's counters and who ends up graylisted.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
import pytest
from starlette.applications import Starlette

from hereabouts import config as config_module
from hereabouts.core.reconcile import decode_digest, encode_digest, origin_key
from hereabouts.events import HeyThere, Howdy, Neighbour, Newspaper
from hereabouts.identity import Identity
from hereabouts.peers.mesh.http import mesh_routes
from hereabouts.peers.mesh.wire import SYNC_PATH, encode_message, sign_request
from hereabouts.peers.node import Node
from hereabouts.web.server import HttpServer
from hereabouts.wire import seal
from tests.peers.support import light_node

pytestmark = pytest.mark.timeout(120)


@dataclasses.dataclass
class Served:
    node: Node
    url: str
    client: httpx.AsyncClient

    async def post(
        self, body: bytes, identity: Identity | None, *, at_ms: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        signed = {} if identity is None else sign_request(
            identity, "POST", SYNC_PATH, body, at_ms if at_ms is not None else now_ms()
        )
        return await self.client.post(
            self.url + SYNC_PATH, content=body, headers={**signed, **(headers or {})}
        )

    def refused(self, reason: str) -> int:
        return self.node.counters.get("mesh_refused", reason)


def now_ms() -> int:
    return int(time.time() * 1000)


@contextlib.asynccontextmanager
async def served_node(tmp_path: Path, **mesh: object) -> AsyncIterator[Served]:
    base = config_module.testing(tmp_path)
    config = base.replace(mesh=dataclasses.replace(base.mesh, plaza=False, **mesh))
    async with light_node(config, "served") as node:
        assert node.mesh is not None
        app = Starlette(routes=mesh_routes(node.mesh))
        async with HttpServer(app) as server, httpx.AsyncClient(timeout=10) as client:
            node.advertise_mesh(server.url)
            yield Served(node, server.url, client)


def hey_there(identity: Identity, name: str) -> bytes:
    at = now_ms()
    return seal(
        HeyThere(name=name, did=identity.did, boot_id="ab" * 8, at_ms=at, started_at_ms=at,
                 transport="mesh"),
        identity,
    )


async def test_an_honest_exchange_answers_with_what_the_caller_lacks(tmp_path: Path) -> None:
    caller = Identity.generate()
    async with served_node(tmp_path) as served:
        answer = await served.post(encode_message(encode_digest({}), [hey_there(caller, "c")]),
                                   caller)
        assert answer.status_code == 200
        message = json.loads(answer.content)
        theirs = decode_digest(base64.b64decode(message["digest"]), max_entries=100)
        assert theirs.get(origin_key(caller.did)) is not None  # it took our hey_there in
        served_dids = {json.loads(json.dumps(e))["body"]["did"] for e in message["events"]}
        assert served.node.did in served_dids  # and told us about itself
        assert served.node.status_of(caller.did) is not None

        # Now we agree: digests only, no events either way.
        versions = {served.node.did: theirs[origin_key(served.node.did)],
                    caller.did: theirs[origin_key(caller.did)]}
        again = await served.post(encode_message(encode_digest(versions), []), caller)
        assert again.status_code == 200 and json.loads(again.content)["events"] == []


async def test_unsigned_forged_and_stale_requests_are_refused_and_counted(tmp_path: Path) -> None:
    victim, forger = Identity.generate(), Identity.generate()
    body = encode_message(encode_digest({}), [])
    async with served_node(tmp_path) as served:
        unsigned = await served.post(body, None)
        assert (unsigned.status_code, unsigned.json()["error"]) == (401, "sync_unsigned")

        # Signed by the forger, claiming the victim's DID.
        forged_headers = sign_request(forger, "POST", SYNC_PATH, body, now_ms())
        forged_headers["x-hereabouts-did"] = victim.did
        forged = await served.post(body, None, headers=forged_headers)
        assert (forged.status_code, forged.json()["error"]) == (401, "sync_bad_signature")

        # The body changed after signing.
        tampered_headers = sign_request(victim, "POST", SYNC_PATH, body, now_ms())
        tampered = await served.post(body + b" ", None, headers=tampered_headers)
        assert tampered.json()["error"] == "sync_bad_signature"

        stale = await served.post(body, victim, at_ms=now_ms() - 10 * 60_000)
        assert (stale.status_code, stale.json()["error"]) == (401, "sync_stale")

        # A forgery names the victim but proves nothing: the victim is not graylisted.
        honest = await served.post(body, victim)
        assert honest.status_code == 200
        for reason in ("sync_unsigned", "sync_bad_signature", "sync_stale"):
            assert served.refused(reason) >= 1


async def test_malformed_and_oversized_bodies_are_refused_and_the_sender_graylisted(
    tmp_path: Path,
) -> None:
    sender, other = Identity.generate(), Identity.generate()
    async with served_node(tmp_path) as served:
        huge = b"{" + b" " * (served.node.mesh.max_message_bytes + 10) + b"}"  # type: ignore[union-attr]
        oversized = await served.post(huge, sender)
        assert (oversized.status_code, oversized.json()["error"]) == (413, "sync_oversize")

        for body, reason in (
            (b"not json", "sync_malformed"),
            (b'{"v": 1, "digest": null, "events": [], "extra": 1}', "sync_malformed"),
            (b'{"v": 2}', "sync_malformed"),
            (b"[" * 5000 + b"]" * 5000, "sync_malformed"),
            (encode_message(b"\x00" * 17, []), "digest_malformed"),
        ):
            answer = await served.post(body, other)
            assert answer.json()["error"] in (reason, "sync_graylisted"), body[:40]
            assert answer.status_code in (400, 403)
        assert served.refused("sync_malformed") >= 1
        # The first malformed body graylisted the sender: it is now refused outright.
        later = await served.post(encode_message(encode_digest({}), []), other)
        assert (later.status_code, later.json()["error"]) == (403, "sync_graylisted")
        # The oversized sender was cut off before anything was parsed, not graylisted.
        fine = await served.post(encode_message(encode_digest({}), []), sender)
        assert fine.status_code == 200


async def test_an_event_whose_signature_fails_graylists_who_pushed_it(tmp_path: Path) -> None:
    liar, victim = Identity.generate(), Identity.generate()
    forged = bytearray(hey_there(victim, "victim"))
    forged[forged.index(b'"name":"victim"') + 9] ^= 1  # one byte of the signed body changed
    async with served_node(tmp_path) as served:
        answer = await served.post(encode_message(None, [bytes(forged)]), liar)
        assert answer.status_code == 200  # the request was fine; the event is refused
        assert served.node.status_of(victim.did) is None
        assert served.node.counters.get("mesh_events_in", "refused") == 1
        later = await served.post(encode_message(encode_digest({}), []), liar)
        assert later.json()["error"] == "sync_graylisted"


async def test_a_howdy_with_a_neighbours_events_is_taken_not_refused(tmp_path: Path) -> None:
    """Sync messages nest as deep as events do: a howdy carrying a neighbour's hey_there and
    newspaper once tripped the depth limit and got an honest peer graylisted."""
    welcomer, neighbour = Identity.generate(), Identity.generate()
    at = now_ms()
    news = seal(Newspaper(name="n", did=neighbour.did, boot_id="cd" * 8, at_ms=at), neighbour)
    howdy = seal(
        Howdy(
            name="w", did=welcomer.did, boot_id="ef" * 8, at_ms=at, to_did=welcomer.did,
            answers="0" * 64,
            neighbours=[Neighbour(hey_there=msgspec.Raw(hey_there(neighbour, "n")),
                                  latest=msgspec.Raw(news))],
        ),
        welcomer,
    )
    async with served_node(tmp_path) as served:
        answer = await served.post(
            encode_message(encode_digest({}), [hey_there(welcomer, "w"), howdy]), welcomer
        )
        assert answer.status_code == 200, answer.text
        assert served.node.status_of(welcomer.did) is not None
        assert not served.node.counters.total("mesh_graylisted")


async def test_one_flooding_caller_is_throttled_without_slowing_another(tmp_path: Path) -> None:
    flooder, neighbour = Identity.generate(), Identity.generate()
    body = encode_message(encode_digest({}), [])
    async with served_node(tmp_path, peer_request_burst=5, peer_requests_per_s=1.0) as served:
        codes = [(await served.post(body, flooder)).status_code for _ in range(40)]
        assert codes[:5] == [200] * 5 and codes.count(429) >= 30, codes
        assert served.refused("sync_throttled") == codes.count(429)
        assert (await served.post(body, neighbour)).status_code == 200


async def test_health_says_so_when_no_mesh_peer_answers(tmp_path: Path) -> None:
    from tests.fixtures.mosquitto import free_port
    from tests.peers.support import wait_until

    nowhere = f"http://127.0.0.1:{free_port()}"
    async with served_node(tmp_path, seeds=(nowhere,)) as served:
        mesh = served.node.mesh
        assert mesh is not None
        await wait_until(lambda: mesh.rounds >= 2, what="two sync rounds")
        health = served.node.health()
        part = health["mesh"]
        assert health["ok"] is False
        assert isinstance(part, dict) and part["ok"] is False
        assert part["error"] == "no mesh peer answered lately"
        assert served.node.counters.get("mesh_exchanges", "failed") >= 1


async def test_a_key_whose_news_is_older_than_the_node_keeps_silent_keys_is_not_admitted(
    tmp_path: Path,
) -> None:
    """It would be forgotten at once and re-learnt from the next peer holding it: a churn of
    admissions (and of admission budget) for nothing."""
    caller, ghost, fresh = Identity.generate(), Identity.generate(), Identity.generate()
    at = now_ms() - 45_000  # the fast preset keeps silent new keys for 30 s on the mesh
    old = seal(HeyThere(name="ghost", did=ghost.did, boot_id="ab" * 8, at_ms=at,
                        started_at_ms=at, transport="mesh"), ghost)
    async with served_node(tmp_path) as served:
        answer = await served.post(encode_message(None, [old, hey_there(fresh, "fresh")]), caller)
        assert answer.status_code == 200
        assert served.node.status_of(ghost.did) is None
        assert served.node.status_of(fresh.did) is not None
        assert served.refused("stale_unknown") == 1
        assert not served.node.counters.total("mesh_graylisted")
