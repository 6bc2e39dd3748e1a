"""Liars on the mesh, against real mesh-only nodes: replays, attestations and forged wills.

Three mesh-only ``hereabouts up`` processes (alice, bob and the victim) and a liar the test
plays itself over the sync endpoint with a key of its own:

* The victim is killed (SIGKILL). Every half second the liar pushes the victim's own last
  events again (captured while it was alive: genuine signatures) and its own signed
  ``seen`` events "attesting" the victim. Replays are events the nodes already hold and an
  attestation is evidence about its signer only, so the victim still goes MISSING at the
  mesh threshold.
* The liar reports a live node unreachable: a ``lost`` will naming bob's DID, signed by the
  liar. It does not verify as bob's, it is refused, the liar is graylisted, and bob stays
  ONLINE everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from pathlib import Path

import httpx
import pytest

from hereabouts import config as config_module
from hereabouts.core.reconcile import encode_digest
from hereabouts.events import HeyThere, Lost, Seen
from hereabouts.identity import Identity
from hereabouts.peers.mesh.wire import SYNC_PATH, decode_message, encode_message, sign_request
from hereabouts.wire import seal
from tests.adversarial.processes import UpProcess
from tests.mesh.support import eventually, health, start_all, views

pytestmark = pytest.mark.timeout(240)


class Liar:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.identity = Identity.generate()
        self.client = client
        self.boot = "11" * 8

    def now(self) -> int:
        return int(time.time() * 1000)

    async def push(self, url: str, events: list[bytes], digest: bool = False) -> httpx.Response:
        body = encode_message(encode_digest({}) if digest else None, events)
        headers = sign_request(self.identity, "POST", SYNC_PATH, body, self.now())
        return await self.client.post(url + SYNC_PATH, content=body, headers=headers)

    def hey_there(self) -> bytes:
        at = self.now()
        return seal(HeyThere(name="liar", did=self.identity.did, boot_id=self.boot, at_ms=at,
                             started_at_ms=at, transport="mesh"), self.identity)

    def seen(self, subject_did: str) -> bytes:
        return seal(Seen(name="liar", did=self.identity.did, boot_id=self.boot,
                         at_ms=self.now(), subject_did=subject_did, subject_name="victim"),
                    self.identity)


async def test_replays_and_attestations_cannot_keep_a_killed_node_online(tmp_path: Path) -> None:
    alice = UpProcess(tmp_path / "alice", "--name", "alice", "--no-sites", plaza=False)
    seed = ("--mesh-seed", alice.url)
    bob = UpProcess(tmp_path / "bob", "--name", "bob", "--no-sites", *seed, plaza=False)
    victim = UpProcess(tmp_path / "victim", "--name", "victim", "--no-sites", *seed, plaza=False)
    nodes = [alice, bob, victim]
    async with contextlib.AsyncExitStack() as stack, httpx.AsyncClient(timeout=10) as client:
        await start_all(stack, nodes)

        async def all_online() -> str | None:
            seen = await views(client, nodes)
            ok = all({v.get(n) for n in ("alice", "bob", "victim")} == {"ONLINE"} for v in seen)
            return None if ok else f"views: {seen}"

        await eventually(all_online, timeout_s=60)
        liar = Liar(client)
        victim_did = str((await health(client, victim))["did"])
        # The victim's own events, as the victim serves them: genuine, signed by it.
        answer = await liar.push(victim.url, [liar.hey_there()], digest=True)
        _, served = decode_message(answer.content, max_bytes=10_000_000, max_origins=100)
        victims_events = [e for e in served if json.loads(e)["body"]["did"] == victim_did]
        assert victims_events, "the victim served none of its own events"

        assert victim.process is not None
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()
        killed = time.monotonic()
        limit = config_module.testing().projection.mesh_missing_after_s + 20

        async def lie_meanwhile() -> None:
            while True:
                for target in (alice, bob):
                    await liar.push(target.url, [*victims_events, liar.seen(victim_did)])
                await asyncio.sleep(0.5)

        liar_task = asyncio.create_task(lie_meanwhile())
        try:
            async def victim_missing() -> str | None:
                seen = await views(client, [alice, bob])
                wrong = [v.get("victim") for v in seen if v.get("victim") != "MISSING"]
                return None if not wrong else f"victim shown as {wrong}"

            await eventually(victim_missing, timeout_s=limit)
        finally:
            liar_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await liar_task
        print(f"victim MISSING everywhere {time.monotonic() - killed:.1f} s after SIGKILL, "
              "despite the liar's replays and attestations")


async def test_one_liar_cannot_report_a_live_node_unreachable(tmp_path: Path) -> None:
    alice = UpProcess(tmp_path / "alice", "--name", "alice", "--no-sites", plaza=False)
    bob = UpProcess(tmp_path / "bob", "--name", "bob", "--no-sites", "--mesh-seed", alice.url,
                    plaza=False)
    async with contextlib.AsyncExitStack() as stack, httpx.AsyncClient(timeout=10) as client:
        for node in (alice, bob):
            node.start()
            stack.callback(node.stop)
        await asyncio.gather(alice.wait_http(), bob.wait_http())

        async def both_online() -> str | None:
            seen = await views(client, [alice, bob])
            ok = all(v.get("alice") == v.get("bob") == "ONLINE" for v in seen)
            return None if ok else f"views: {seen}"

        await eventually(both_online, timeout_s=60)
        bob_health = await health(client, bob)
        liar = Liar(client)
        forged = json.loads(seal(Lost(name="bob", did=liar.identity.did, boot_id="22" * 8,
                                      at_ms=liar.now()), liar.identity))
        forged["body"]["did"] = bob_health["did"]  # claims to be bob's will; signed by the liar
        forged["body"]["name"] = "bob"
        data = json.dumps(forged, separators=(",", ":")).encode()
        answer = await liar.push(alice.url, [liar.hey_there(), data])
        assert answer.status_code == 200
        later = await liar.push(alice.url, [liar.hey_there()])
        assert later.status_code == 403 and later.json()["error"] == "sync_graylisted"
        for _ in range(20):  # ten seconds: bob stays ONLINE everywhere
            assert await both_online() is None
            await asyncio.sleep(0.5)
        metrics = (await client.get(f"{alice.url}/metrics")).text
        assert 'hereabouts_mesh_graylisted_total{reason="bad_event"} 1.0' in metrics
