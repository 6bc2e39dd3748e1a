"""One liar on the plaza against real nodes: forged sightings, fake welcomes, squatted names,
malformed events, and two processes sharing one key.

Each test states the attack, runs it against ``hereabouts up`` processes on a real
Mosquitto, and asserts the bound docs/security.md gives for it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import time
from pathlib import Path

import pytest

from hereabouts.events import Chau, HeyThere, Howdy, Newspaper, Seen
from hereabouts.identity import Identity
from hereabouts.transports.topics import plaza_topic
from hereabouts.wire import SIGNING_TAG, seal, unseal
from tests.adversarial.plaza import (
    Attacker,
    eventually,
    health_of,
    metric,
    node_of,
    now_ms,
    peers_of,
)
from tests.adversarial.processes import UpProcess
from tests.fixtures.mosquitto import MosquittoServer
from tests.peers.support import WireTap

pytestmark = pytest.mark.timeout(180)


def up(tmp_path: Path, mosquitto: MosquittoServer, name: str, *args: str) -> UpProcess:
    return UpProcess(
        tmp_path / name, "--name", name, "--no-sites", *args,
        broker=f"mqtt://127.0.0.1:{mosquitto.port}",
    )


async def did_of(node: UpProcess) -> str:
    return str((await node_of(node.url))["did"])


async def sees(node: UpProcess, did: str, status: str) -> bool:
    return (await peers_of(node.url)).get(did, {}).get("status") == status


# --- forged sightings -------------------------------------------------------------------------


async def test_forged_seens_invent_nobody_and_revive_nobody(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    """45 ``seen`` events from fresh keys about invented peers and about a peer that said
    chau: before, 41 invented peers showed ONLINE and the departed one came back."""
    async with up(tmp_path, mosquitto, "observer") as observer, \
            up(tmp_path, mosquitto, "leaver") as leaver:
        leaver_did = await did_of(leaver)
        await eventually(lambda: sees(observer, leaver_did, "ONLINE"))
        leaver.stop()  # says chau
        await eventually(lambda: sees(observer, leaver_did, "OFFLINE"))
        invented = [Identity.generate().did for _ in range(40)]
        async with Attacker(mosquitto.port) as attacker:
            for n, subject in enumerate([*invented, *[leaver_did] * 5]):
                liar = Identity.generate()
                seen = Seen(
                    name=f"liar-{n}", did=liar.did, boot_id="x", at_ms=now_ms(),
                    subject_did=subject, subject_name="leaver",
                )
                await attacker.send("seen", seal(seen, liar))
        await eventually(lambda: metric_at_least(observer, "hereabouts_events_in_total",
                                                 45, kind="seen"))
        peers = await peers_of(observer.url)
        assert not set(invented) & set(peers)
        assert peers[leaver_did]["status"] == "OFFLINE"
        liars = [p for p in peers.values() if p["claimed_name"].startswith("liar-")]
        assert all(p["trust"] == "new" for p in liars)  # they speak only for themselves


async def metric_at_least(node: UpProcess, name: str, least: float, **labels: str) -> bool:
    return await metric(node.url, name, **labels) >= least


# --- fake welcomes ----------------------------------------------------------------------------


async def test_fake_howdys_do_not_silence_real_welcomes(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    """Ten howdys from ten fresh keys, answering a newcomer's hey_there the moment it
    arrives: before, they counted as ten responders and no real node answered. These nodes
    run the production preset, whose 3 s reply spread leaves the fakes time to arrive before
    the real replies are due (with the fast preset's 0.5 s some nodes would already have
    answered, and the attack would test nothing)."""
    broker = f"mqtt://127.0.0.1:{mosquitto.port}"

    def production(name: str) -> UpProcess:
        return UpProcess(tmp_path / name, "--name", name, "--no-sites", broker=broker,
                         fast=False)

    async with production("a") as a, production("b") as b, production("c") as c:
        olds = [await did_of(node) for node in (a, b, c)]
        for node in (a, b, c):
            for did in olds:
                await eventually(lambda n=node, d=did: sees(n, d, "ONLINE"))
        async with WireTap(mosquitto.port, "hereabouts/v1/plaza/+") as tap, \
                Attacker(mosquitto.port) as attacker:
            newcomer = production("newcomer")
            newcomer.start()
            try:
                hello = await eventually(lambda: first_hey_there(tap, set(olds)), every_s=0.01)
                for n in range(10):
                    fake = Identity.generate()
                    howdy = Howdy(
                        name=f"fake-{n}", did=fake.did, boot_id="x", at_ms=now_ms(),
                        to_did=hello.did, answers=hello.id,
                    )
                    await attacker.send("howdy", seal(howdy, fake))
                await newcomer.wait_http()
                await asyncio.sleep(4)  # the production reply spread is 3 s
                real = [m for m in answers(tap, hello.id) if m.did in olds]
                assert len({m.did for m in real}) == 3, "every real node still welcomed it"
                for did in olds:
                    await eventually(lambda d=did: sees(newcomer, d, "ONLINE"))
                judged = [
                    await metric(node.url, "hereabouts_howdys_total", outcome="untrusted")
                    for node in (a, b, c)
                ]
                print(f"\nfake welcomes: 3 of 3 real nodes answered; fakes judged untrusted "
                      f"at each node: {judged}")
                assert sum(judged) >= 10  # the fakes were seen and not counted
            finally:
                newcomer.stop()


async def first_hey_there(tap: WireTap, known: set[str]) -> object:
    for message in tap.messages:
        if message.topic == plaza_topic("hey_there"):
            signed = unseal(message.payload, check_clock=False)
            if signed.did not in known:
                return signed
    return None


def answers(tap: WireTap, hey_there_id: str) -> list[object]:
    found = []
    for message in tap.messages:
        if message.topic == plaza_topic("howdy"):
            signed = unseal(message.payload, check_clock=False)
            assert isinstance(signed.event, Howdy)
            if signed.event.answers == hey_there_id:
                found.append(signed)
    return found


# --- squatted names ---------------------------------------------------------------------------


async def test_a_squatter_cannot_lock_the_real_node_out_of_an_open_network(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    """One hey_there under ``victim-host`` from a throwaway key before the real node first
    starts: before, every event of the real node was refused, for good (the pin was kept
    across restarts). Now the real node is a peer at once, shown as ``victim-host~<print>``
    until it has proved itself, then as ``victim-host``; the squatter is forgotten."""
    async with up(tmp_path, mosquitto, "observer") as observer:
        squatter = Identity.generate()
        at = now_ms()
        async with Attacker(mosquitto.port) as attacker:
            await attacker.send("hey_there", seal(HeyThere(
                name="victim-host", did=squatter.did, boot_id="s", at_ms=at, started_at_ms=at,
            ), squatter))
        await eventually(lambda: sees(observer, squatter.did, "ONLINE"))
        async with up(tmp_path, mosquitto, "victim-host") as victim:
            victim_did = await did_of(victim)
            first = await eventually(lambda: peers_of(observer.url))
            assert victim_did in first or await eventually(
                lambda: sees(observer, victim_did, "ONLINE")
            )

            async def holds() -> bool:
                peer = (await peers_of(observer.url)).get(victim_did, {})
                return peer.get("name") == "victim-host" and peer.get("name_status") == "held"

            await eventually(holds, timeout_s=30)
            assert await metric(observer.url, "hereabouts_events_rejected_total",
                                reason="tofu_violation") == 0
            await eventually(lambda: gone(observer, squatter.did), timeout_s=30)
        # The observer restarts: the name stays with the real node (kept on disk).
        observer.stop()
        async with up(tmp_path, mosquitto, "observer") as again, \
                up(tmp_path, mosquitto, "victim-host") as victim:
            async def held_again() -> bool:
                peer = (await peers_of(again.url)).get(await did_of(victim), {})
                return peer.get("name") == "victim-host"

            await eventually(held_again, timeout_s=30)


async def gone(node: UpProcess, did: str) -> bool:
    return did not in await peers_of(node.url)


async def test_in_an_invited_network_an_outsider_cannot_use_a_members_name(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    from tests.test_cli import run_cli

    owner, member = tmp_path / "owner", tmp_path / "member"
    assert run_cli("network", "init", "--name", "owner", home=owner).returncode == 0
    member_did = run_cli("keys", "show", home=member).stdout.strip()
    credential = run_cli("network", "invite", member_did, "--name", "victim-host", home=owner)
    (tmp_path / "c.json").write_text(credential.stdout)
    assert run_cli("network", "join", str(tmp_path / "c.json"), home=member).returncode == 0
    broker = f"mqtt://127.0.0.1:{mosquitto.port}"
    async with UpProcess(owner, "--no-sites", broker=broker) as observer:
        squatter = Identity.generate()
        at = now_ms()
        async with Attacker(mosquitto.port) as attacker:
            await attacker.send("hey_there", seal(HeyThere(
                name="victim-host", did=squatter.did, boot_id="s", at_ms=at, started_at_ms=at,
            ), squatter))
        async with UpProcess(member, "--name", "victim-host", "--no-sites", broker=broker):
            await eventually(lambda: sees(observer, member_did, "ONLINE"))
            peer = (await peers_of(observer.url))[member_did]
            assert (peer["name"], peer["name_status"], peer["trust"]) == (
                "victim-host", "bound", "member",
            )
            assert squatter.did not in await peers_of(observer.url)
            assert await metric(observer.url, "hereabouts_events_rejected_total",
                                reason="not_a_member") >= 1


# --- malformed and two-faced events -----------------------------------------------------------


def signed_body(text: str, identity: Identity) -> bytes:
    sig = base64.b64encode(identity.sign(SIGNING_TAG + text.encode())).decode()
    return f'{{"body":{text},"sig":"{sig}","signer":"{identity.did}"}}'.encode()


async def test_malformed_events_are_refused_by_reason_and_change_nothing(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    async with up(tmp_path, mosquitto, "target") as target:
        liar = Identity.generate()
        at = now_ms()
        body = json.loads(seal(Newspaper(name="x", did=liar.did, boot_id="b", at_ms=at), liar))
        canonical = json.dumps(body["body"], separators=(",", ":"), sort_keys=True)
        attacks = {
            "too_deep": b"[" * 8_000 + b"]" * 8_000,  # under the size limit
            "duplicate_key": signed_body(
                canonical.replace('"name":"x"', '"name":"y","name":"x"'), liar
            ),
            "not_canonical": signed_body(canonical.replace(",", ", "), liar),
            "malformed": signed_body(
                canonical.replace('"name":"x"', '"name":"x\\u202e"'), liar
            ),
        }
        async with Attacker(mosquitto.port) as attacker:
            for payload in attacks.values():
                await attacker.send("newspaper", payload)
            chau = Chau(name="x", did=liar.did, boot_id="b", at_ms=at)
            await attacker.send("chau", seal(chau, liar)[:-1] + b',"extra":1}')
        for reason in attacks:
            await eventually(lambda r=reason: metric_at_least(
                target, "hereabouts_events_rejected_total", 1, reason=r
            ))
        assert liar.did not in await peers_of(target.url)
        code, health = await health_of(target.url)
        assert code == 200 and health["tasks"]["ok"] is True
        assert "Traceback" not in target.read_log()


async def test_two_processes_with_one_key_are_reported_by_both_and_by_their_peers(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    """Two ``hereabouts up`` with the same DID: before, nobody noticed and each corrupted
    the other's status everywhere. One home is held by one process now (tests/test_home.py),
    so the second runs on a copy of the first's key, as a home copied to a second machine."""
    async with up(tmp_path, mosquitto, "observer") as observer, \
            up(tmp_path, mosquitto, "twin") as first:
        twin_did = await did_of(first)
        await eventually(lambda: sees(observer, twin_did, "ONLINE"))
        copy = tmp_path / "twin-copy"
        copy.mkdir()
        shutil.copy2(tmp_path / "twin" / "identity.key", copy / "identity.key")  # keeps 0600
        async with UpProcess(
            copy, "--name", "twin", "--no-sites", broker=f"mqtt://127.0.0.1:{mosquitto.port}"
        ) as second:
            started = time.monotonic()
            assert await did_of(second) == twin_did

            async def reported(node: UpProcess) -> bool:
                code, health = await health_of(node.url)
                return code == 503 and health["identity"]["ok"] is False

            await eventually(lambda: reported(first), timeout_s=30)
            await eventually(lambda: reported(second), timeout_s=30)
            print(f"\nshared key: both processes report it {time.monotonic() - started:.1f}s "
                  "after the second one started serving")
            warnings = (await node_of(first.url))["warnings"]
            assert any("another process is using this node's key" in w for w in warnings)

            async def flagged() -> bool:
                return bool((await peers_of(observer.url)).get(twin_did, {}).get("shared_key"))

            await eventually(flagged, timeout_s=30)
        assert "another process is using this node's key" in first.read_log()
