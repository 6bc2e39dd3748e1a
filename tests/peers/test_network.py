"""Invited networks on a real Mosquitto: members only, names bound, revocations obeyed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hereabouts.core.effects import Status
from hereabouts.identity import Identity, save_identity
from hereabouts.peers.membership import Membership, issue_credential
from hereabouts.peers.network import NETWORK_KEY_FILE, network_dir, save_credential
from hereabouts.peers.node import Node
from hereabouts.transports.mqtt import MqttSettings, MqttTransport
from hereabouts.transports.topics import plaza_topic
from tests.fixtures.mosquitto import MosquittoServer
from tests.peers.support import light_node, sees, test_config, wait_until

pytestmark = pytest.mark.timeout(120)

DAY_MS = 86_400_000


def member(config: object, network: Identity, name: str, now_ms: int) -> Node:
    identity = Identity.generate()
    credential = issue_credential(
        network, network=network.did, member=identity.did, name=name,
        issued_at_ms=now_ms - 1000, expires_at_ms=now_ms + DAY_MS,
    )
    return light_node(
        config, name, identity=identity,  # type: ignore[arg-type]
        membership=Membership(network.did, own=credential),
    )


async def test_members_see_each_other_and_outsiders_are_refused_unchecked(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    config = test_config(tmp_path, broker_port=mosquitto.port)
    network = Identity.generate()
    now = Node(config, identity=Identity.generate())._now_ms()
    members = [member(config, network, f"m{i}", now) for i in range(3)]
    outsider = light_node(config, "m0")  # an open-network node using a member's name
    for node in [*members, outsider]:
        await node.start()
    try:
        for node in members:
            for other in members:
                await wait_until(lambda n=node, o=other: sees(n, o.did, Status.ONLINE))
            assert node.health()["network"]["ok"] is True  # type: ignore[index]
        await wait_until(
            lambda: members[1].counters.get("events_rejected", "not_a_member") >= 2,
            what="the outsider's events to be refused",
        )
        for node in members:
            assert node.status_of(outsider.did) is None
        labels = {view.did: view for view in members[1].peers()}
        assert labels[members[0].did].name == "m0"
        assert labels[members[0].did].name_status == "bound"
        assert labels[members[0].did].trust == "member"
    finally:
        for node in [*members, outsider]:
            await node.stop()


async def test_a_revocation_published_by_the_cli_removes_the_member_everywhere(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    config = test_config(tmp_path, broker_port=mosquitto.port)
    authority_home = tmp_path / "authority"
    network = Identity.generate()
    network_dir(authority_home).mkdir(parents=True, mode=0o700)
    save_identity(network, network_dir(authority_home) / NETWORK_KEY_FILE)
    owner = Identity.generate()
    now = Node(config, identity=owner)._now_ms()
    save_credential(authority_home, issue_credential(
        network, network=network.did, member=owner.did, name="owner",
        issued_at_ms=now, expires_at_ms=now + DAY_MS,
    ))
    members = [member(config, network, f"r{i}", now) for i in range(3)]
    for node in members:
        await node.start()
    try:
        doomed = members[2]
        for node in members[:2]:
            await wait_until(lambda n=node: sees(n, doomed.did, Status.ONLINE))
        revoke = subprocess.run(
            [sys.executable, "-m", "hereabouts.cli", "network", "revoke", doomed.did,
             "--home", str(authority_home), "--reason", "test",
             "--broker", f"mqtt://127.0.0.1:{mosquitto.port}"],
            capture_output=True, text=True, timeout=60,
        )
        assert revoke.returncode == 0, revoke.stderr
        for node in members[:2]:
            await wait_until(lambda n=node: n.status_of(doomed.did) is None,
                             what="the revoked member to be forgotten")
        # It goes on talking, and is refused; its own node says it has been revoked.
        await wait_until(
            lambda: members[0].counters.get("events_rejected", "not_a_member") >= 1
            or members[0].counters.get("events_rejected", "revoked") >= 1
        )
        assert members[0].status_of(doomed.did) is None
        await wait_until(lambda: doomed.health()["network"]["ok"] is False)  # type: ignore[index]
        # A member that starts later learns the revocation from the retained message.
        late = member(config, network, "late", now)
        await late.start()
        try:
            await wait_until(lambda: late.membership is not None
                             and late.membership.revoked(doomed.did))
            await wait_until(lambda: sees(late, members[0].did, Status.ONLINE))
            assert late.status_of(doomed.did) is None
        finally:
            await late.stop()
    finally:
        for node in members:
            await node.stop()


async def test_forged_and_foreign_revocations_change_nothing(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    config = test_config(tmp_path, broker_port=mosquitto.port)
    network = Identity.generate()
    now = Node(config, identity=Identity.generate())._now_ms()
    members = [member(config, network, f"f{i}", now) for i in range(2)]
    for node in members:
        await node.start()
    attacker = MqttTransport(node_name="attacker", settings=MqttSettings(port=mosquitto.port))
    try:
        await wait_until(lambda: sees(members[0], members[1].did, Status.ONLINE))
        from hereabouts.peers.membership import encode_revocation, revocation_key, sign_revocation
        from hereabouts.transports.topics import revoked_topic

        fake = sign_revocation(Identity.generate(), member=members[1].did, at_ms=now)
        async with attacker:
            await attacker.wait_connected(30)
            topic = revoked_topic(revocation_key(members[1].did))
            await attacker.publish(topic, encode_revocation(fake), qos=1)
            await attacker.publish(topic, b"{garbage", qos=1)
            await attacker.publish(plaza_topic("newspaper"), b"[" * 10_000, qos=1)
            await wait_until(
                lambda: members[0].counters.total("revocations_rejected") >= 2
                and members[0].counters.get("events_rejected", "too_deep") >= 1
            )
        assert sees(members[0], members[1].did, Status.ONLINE)
    finally:
        for node in members:
            await node.stop()
