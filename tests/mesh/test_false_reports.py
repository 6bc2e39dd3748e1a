"""Lying failure reports against live mesh nodes, from keys the mesh trusts.

Six mesh-only ``hereabouts up`` processes. The liars are real members of the mesh: the
test signs ``unreachable`` reports about bob with the keys of bob's own assigned observers
(read from their homes), the strongest position a liar can hold, and pushes them to every
node over the sync endpoint. Each report claims to have heard nothing from bob up to 20 s
from now (the most the clock skew allows), so it keeps standing against bob's heartbeats
for that long.

* One liar: every node counts its report, and bob stays ONLINE everywhere: below the
  quorum a report changes nothing.
* Three liars, a quorum: every node counts three and shortens bob's threshold, and bob
  still stays ONLINE everywhere, since its heartbeats keep arriving well within even the
  shortest threshold. Reports only decide how long to wait for a node gone quiet.
* A report about its own signer, or dated before what it claims to have seen, is refused
  with a typed reason and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import httpx
import pytest

from hereabouts.core.suspicion import QUORUM, observers_of
from hereabouts.events import Unreachable
from hereabouts.identity import KEY_FILE_NAME, Identity, load_identity
from hereabouts.peers.mesh.wire import SYNC_PATH, encode_message, sign_request
from hereabouts.wire import seal
from tests.adversarial.processes import UpProcess
from tests.mesh.support import eventually, names, peer_field, start_all, views

pytestmark = pytest.mark.timeout(240)

N = 6
STANDING_MS = 20_000
"""How far ahead the liars date what they claim to have seen (within the 30 s skew)."""


def report(identity: Identity, name: str, boot_id: str, subject: str, last_seen_ms: int) -> bytes:
    event = Unreachable(
        name=name,
        did=identity.did,
        boot_id=boot_id,
        at_ms=max(last_seen_ms, int(time.time() * 1000)),
        subject_did=subject,
        last_seen_ms=last_seen_ms,
    )
    return seal(event, identity)


async def push(client: httpx.AsyncClient, sender: Identity, url: str, data: bytes) -> None:
    body = encode_message(None, [data])
    headers = sign_request(sender, "POST", SYNC_PATH, body, int(time.time() * 1000))
    answer = await client.post(url + SYNC_PATH, content=body, headers=headers)
    assert answer.status_code == 200, answer.text


async def test_lying_reporters_cannot_make_a_live_node_missing(tmp_path: Path) -> None:
    all_names = names(N, "r")
    nodes: list[UpProcess] = []
    for name in all_names:
        seed = [] if not nodes else ["--mesh-seed", nodes[0].url]
        nodes.append(UpProcess(tmp_path / name, "--name", name, "--no-sites", *seed, plaza=False))
    async with contextlib.AsyncExitStack() as stack, httpx.AsyncClient(timeout=10) as client:
        await start_all(stack, nodes)

        async def all_online_and_proven() -> str | None:
            seen = await views(client, nodes)
            trust = await asyncio.gather(*(peer_field(client, n, "trust") for n in nodes))
            online = all(set(v.values()) == {"ONLINE"} and len(v) == N for v in seen)
            proven = all(t not in ("new", "") for row in trust for t in row.values())
            return None if online and proven else f"views {seen}, trust {trust}"

        await eventually(all_online_and_proven, timeout_s=90)
        peers = (await client.get(f"{nodes[0].url}/v1/peers")).json()["peers"]
        did_of = {p["claimed_name"]: p["did"] for p in peers}
        boot_of = {p["claimed_name"]: p["boot_id"] for p in peers}
        bob = all_names[1]
        by_did = {did: name for name, did in did_of.items()}
        liars = [by_did[d] for d in observers_of(did_of[bob], did_of.values())][:QUORUM]
        keys = {n: load_identity(tmp_path / n / KEY_FILE_NAME) for n in liars}
        others = [n for n in nodes if n.home.name != bob]

        async def lie(liar: str) -> None:
            data = report(
                keys[liar], liar, boot_of[liar], did_of[bob], int(time.time() * 1000) + STANDING_MS
            )
            await asyncio.gather(*(push(client, keys[liar], n.url, data) for n in nodes))

        for count in (1, QUORUM):
            for liar in liars[(1 if count > 1 else 0) : count]:
                await lie(liar)

            async def counted(want: int = count) -> str | None:
                rows = await asyncio.gather(*(peer_field(client, n, "reports") for n in others))
                got = [row[bob] for row in rows]
                return None if all(g == want for g in got) else f"reports about bob: {got}"

            await eventually(counted, timeout_s=10)
            for _ in range(int(STANDING_MS / 1000)):  # while the lies stand, bob stays ONLINE
                seen = await views(client, nodes)
                assert all(v[bob] == "ONLINE" for v in seen), f"{count} liars: views {seen}"
                await asyncio.sleep(1)

        # Malformed reports are refused by reason and counted.
        liar = liars[0]
        now = int(time.time() * 1000)
        self_report = report(keys[liar], liar, boot_of[liar], did_of[liar], now)
        backdated = seal(
            Unreachable(
                name=liar,
                did=keys[liar].did,
                boot_id=boot_of[liar],
                at_ms=now - 10_000,
                subject_did=did_of[bob],
                last_seen_ms=now,
            ),
            keys[liar],
        )
        target = next(n for n in nodes if n.home.name not in (liar, bob))
        for data in (self_report, backdated):
            await push(client, keys[liar], target.url, data)
        metrics = (await client.get(f"{target.url}/metrics")).text
        assert 'hereabouts_events_rejected_total{reason="bad_report"} 2.0' in metrics
