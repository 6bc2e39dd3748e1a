"""Peer presence end to end on a real Mosquitto: joins, howdy cap, leaves, crashes, attacks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from hereabouts.config import Config, HowdyConfig
from hereabouts.core.effects import Status
from hereabouts.events import Chau, HeyThere, Howdy
from hereabouts.identity import Identity
from hereabouts.peers.node import Node
from hereabouts.transports.mqtt import MqttSettings, MqttTransport
from hereabouts.transports.topics import plaza_topic
from hereabouts.wire import seal, unseal
from tests.fixtures.mosquitto import MosquittoServer
from tests.peers.support import WireTap, light_node, sees, test_config, wait_until

pytestmark = pytest.mark.timeout(240)


async def start_nodes(config: object, count: int, prefix: str = "n") -> list[Node]:
    nodes = [light_node(config, f"{prefix}{i}") for i in range(count)]  # type: ignore[arg-type]
    for node in nodes:
        await node.start()
    for node in nodes:
        await node.wait_announced()
    return nodes


async def settle(nodes: list[Node], config: object) -> None:
    """Until every planned howdy has fired: joins are judged one at a time."""
    await wait_until(lambda: all(not node._howdy_due for node in nodes), what="howdys to settle")


async def stop_all(nodes: list[Node]) -> None:
    for node in nodes:
        await node.stop()


def howdys_for(tap: WireTap, hey_there_id: str) -> list[Howdy]:
    found = []
    for message in tap.messages:
        if message.topic != plaza_topic("howdy"):
            continue
        event = unseal(message.payload, check_clock=False).event
        if isinstance(event, Howdy) and event.answers == hey_there_id:
            found.append(event)
    return found


def with_default_howdy_spread(config: Config) -> Config:
    """The production 3 s reply spread: with sixteen nodes sharing one test process, the
    testing preset's 0.5 s spread is shorter than the time the process needs to hand every
    node each reply, and replies that cross each other are what the spread exists to avoid."""
    return config.replace(howdy=HowdyConfig())


async def test_sixteenth_node_learns_ten_peers_from_at_most_ten_howdys(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    config = with_default_howdy_spread(test_config(tmp_path, broker_port=mosquitto.port))
    nodes = await start_nodes(config, 15)
    try:
        for node in nodes:
            await wait_until(
                lambda node=node: sum(sees(node, o.did, Status.ONLINE) for o in nodes) == 15,
                what=f"{node.name} to see all 15",
            )
        await settle(nodes, config)
        async with WireTap(mosquitto.port) as tap:
            newcomer = light_node(config, "newcomer")
            await newcomer.start()
            nodes.append(newcomer)
            await newcomer.wait_announced()
            await wait_until(
                lambda: sum(sees(newcomer, o.did, Status.ONLINE) for o in nodes[:15]) >= 10,
                what="the newcomer to know 10 peers",
            )
            await asyncio.sleep(2 * config.howdy.jitter_max_s + 1)  # let every timer fire
            hey_there = next(
                unseal(m.payload, check_clock=False)
                for m in tap.messages
                if m.topic == plaza_topic("hey_there")
                and unseal(m.payload, check_clock=False).did == newcomer.did
            )
            replies = howdys_for(tap, hey_there.id)
            assert 1 <= len(replies) <= 10
            assert all(r.to_did == newcomer.did for r in replies)
            assert len({r.did for r in replies}) == len(replies)
    finally:
        await stop_all(nodes)


async def test_graceful_stop_is_seen_as_offline(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    config = test_config(tmp_path, broker_port=mosquitto.port)
    nodes = await start_nodes(config, 4)
    try:
        leaver = nodes[-1]
        for node in nodes[:-1]:
            await wait_until(lambda node=node: sees(node, leaver.did, Status.ONLINE))
        await leaver.stop()
        for node in nodes[:-1]:
            await wait_until(
                lambda node=node: sees(node, leaver.did, Status.OFFLINE),
                what=f"{node.name} to see the leaver OFFLINE",
            )
    finally:
        await stop_all(nodes)


def spawn_cli_node(tmp_path: Path, port: int, name: str) -> subprocess.Popen[str]:
    home = tmp_path / name
    return subprocess.Popen(
        [
            sys.executable, "-m", "hereabouts.cli", "up", "--fast", "--home", str(home),
            "--name", name, "--broker", f"mqtt://127.0.0.1:{port}", "--http", "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def wait_for_line(process: subprocess.Popen[str], needle: str) -> str:
    assert process.stdout is not None
    loop = asyncio.get_running_loop()
    seen = []
    while True:
        line = await asyncio.wait_for(loop.run_in_executor(None, process.stdout.readline), 60)
        if not line:
            raise AssertionError(f"process ended before {needle!r}: {''.join(seen)[-2000:]}")
        seen.append(line)
        if needle in line:
            return line


async def test_killed_process_is_seen_as_missing(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    config = test_config(tmp_path, broker_port=mosquitto.port)
    nodes = await start_nodes(config, 3)
    process = spawn_cli_node(tmp_path, mosquitto.port, "victim")
    try:
        line = await wait_for_line(process, "hereabouts: victim (")
        victim_did = line.split("(")[1].split(")")[0]
        for node in nodes:
            await wait_until(lambda node=node: sees(node, victim_did, Status.ONLINE))
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        for node in nodes:
            await wait_until(
                lambda node=node: sees(node, victim_did, Status.MISSING),
                what=f"{node.name} to see the killed node MISSING",
            )
            view = next(v for v in node.peers() if v.did == victim_did)
            assert view.last_event == "lost"  # the broker's will, not the silence threshold
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        await stop_all(nodes)


async def test_broker_restart_everyone_returns_online_never_offline(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    config = test_config(tmp_path, broker_port=mosquitto.port)
    nodes = await start_nodes(config, 20)
    seen_offline: list[str] = []

    async def watch(node: Node) -> None:
        async for change in node.changes():
            if change.new is Status.OFFLINE:
                seen_offline.append(f"{node.name} saw {change.name} OFFLINE")

    watchers = [asyncio.create_task(watch(node)) for node in nodes]
    try:
        for node in nodes:
            await wait_until(
                lambda node=node: sum(sees(node, o.did, Status.ONLINE) for o in nodes) == 20
            )
        async with WireTap(mosquitto.port, plaza_topic("howdy")) as tap:
            howdys_before = len(tap.messages)
            mosquitto.restart(down_for_s=1.0)
            await tap.transport.wait_connected(60)
            for node in nodes:
                await wait_until(lambda node=node: node.transport.state.connections >= 2)
            for node in nodes:
                await wait_until(
                    lambda node=node: sum(sees(node, o.did, Status.ONLINE) for o in nodes) == 20,
                    what=f"{node.name} to see all 20 ONLINE again",
                )
            assert len(tap.messages) - howdys_before <= 10 * len(nodes)
        assert seen_offline == []
    finally:
        for watcher in watchers:
            watcher.cancel()
        await stop_all(nodes)


async def test_forged_replayed_swapped_and_fake_howdy_attacks_are_refused(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    config = test_config(tmp_path, broker_port=mosquitto.port)
    nodes = await start_nodes(config, 3)
    target = nodes[0]
    attacker = MqttTransport(node_name="attacker", settings=MqttSettings(port=mosquitto.port))
    try:
        for node in nodes:  # the welcome of the first three is over before the attack
            await wait_until(
                lambda node=node: sum(sees(node, o.did, Status.ONLINE) for o in nodes) == 3
            )
        await settle(nodes, config)
        await asyncio.sleep(2 * config.howdy.jitter_max_s)
        async with attacker, WireTap(mosquitto.port, plaza_topic("howdy")) as tap:
            await attacker.wait_connected(30)
            victim = nodes[1]
            await wait_until(lambda: sees(target, victim.did, Status.ONLINE))
            await wait_until(lambda: target.ingestor.keys.proven(victim.did))  # holds its name
            mallory = Identity.generate()
            now = int(target._clock() * 1000)
            # forged: a chau "from" the victim, signed by mallory's key.
            forged = seal(Chau(name="m", did=mallory.did, boot_id="x", at_ms=now), mallory)
            envelope = msgspec.json.decode(forged)
            envelope["signer"] = victim.did
            envelope["body"]["did"] = victim.did
            await attacker.publish(plaza_topic("chau"), msgspec.json.encode(envelope))
            # key swap: a hey_there under the victim's name with another key: a peer of its
            # own, shown apart from the victim (docs/security.md: names are labels).
            swap = seal(
                HeyThere(
                    name=victim.name, did=mallory.did, boot_id="y", at_ms=now, started_at_ms=now
                ),
                mallory,
            )
            await attacker.publish(plaza_topic("hey_there"), swap)
            # replay: an old hey_there of the victim, already in everyone's ledger.
            victims_hey_there, _ = target.projection.evidence(victim.did, now)
            assert victims_hey_there is not None
            replay = target.ingestor.ledger.get(victims_hey_there)
            assert replay is not None
            await attacker.publish(plaza_topic("hey_there"), replay)
            # fake howdys for the victim's hey_there from an identity nobody signed for.
            fake = Identity.generate()
            for _ in range(12):
                howdy = Howdy(
                    name="fake", did=fake.did, boot_id="z", at_ms=now, to_did=victim.did,
                    answers=victims_hey_there,
                )
                data = msgspec.json.decode(seal(howdy, fake))
                data["sig"] = data["sig"][:-4] + "AAA="  # broken signature
                await attacker.publish(plaza_topic("howdy"), msgspec.json.encode(data))
            await attacker.publish(plaza_topic("newspaper"), b"{not json")
            await wait_until(
                lambda: target.counters.get("events_rejected", "bad_signature") >= 13
                and target.counters.get("events_rejected", "not_json") >= 1
                and target.status_of(mallory.did) is not None,
                what="the attacks to be counted",
            )
            assert target.status_of(victim.did) is Status.ONLINE
            labels = {view.did: view for view in target.peers()}
            assert labels[victim.did].name == victim.name
            assert labels[mallory.did].name == f"{victim.name}~{mallory.did[-6:]}"
            assert labels[mallory.did].name_status in ("settling", "contested")
            assert target.counters.get("events_duplicate", "hey_there") >= 1
            await asyncio.sleep(2 * config.howdy.jitter_max_s + 0.5)
            # Nobody answered the replayed hey_there (mallory's own key, new here, may be
            # welcomed like any newcomer to an open network).
            answered = [
                unseal(m.payload, check_clock=False).event
                for m in tap.messages
                if unseal_ok(m.payload)
            ]
            assert all(
                isinstance(h, Howdy) and h.answers != victims_hey_there for h in answered
            )
    finally:
        await stop_all(nodes)


def unseal_ok(data: bytes) -> bool:
    with contextlib.suppress(Exception):
        unseal(data, check_clock=False)
        return True
    return False


async def test_stealth_node_publishes_nothing_yet_sees_everyone(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    config = test_config(tmp_path, broker_port=mosquitto.port)
    async with WireTap(mosquitto.port) as tap:
        lurker = light_node(config, "lurker", stealth=True)
        await lurker.start()
        nodes = await start_nodes(config, 3)
        try:
            for node in nodes:
                await wait_until(lambda node=node: sees(lurker, node.did, Status.ONLINE))
            await asyncio.sleep(3)  # heartbeats and howdys flow meanwhile
            await lurker.stop()
            await asyncio.sleep(1)
        finally:
            await stop_all(nodes)
        senders = {unseal(m.payload, check_clock=False).did for m in tap.messages}
        assert lurker.did not in senders
        assert {n.did for n in nodes} <= senders


async def test_heartbeats_keep_quiet_peers_online(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    config = test_config(tmp_path, broker_port=mosquitto.port)
    nodes = await start_nodes(config, 2)
    try:
        threshold_s = config.projection.plaza_missing_after_s
        await asyncio.sleep(threshold_s + 2)
        assert sees(nodes[0], nodes[1].did, Status.ONLINE)
        assert nodes[0].counters.get("events_in", "newspaper") >= 2
    finally:
        await stop_all(nodes)
