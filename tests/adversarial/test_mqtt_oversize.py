"""Attacks on the plaza with one huge message: the node must not read it whole.

A client publishes 40 MB on a plaza topic. Nothing signed is ever that large (events are at
most 16 KiB), but before packet limits the node read the message whole and then dropped
it: its resident memory peaked 122 MB above idle on Mosquitto, 183 MB on the embedded
broker (which read it whole first, in the same process). Now:

* on a Mosquitto configured *without* ``max_packet_size`` (the client's own declaration is
  all that protects the node), the node's MQTT 5 Maximum Packet Size makes the broker keep
  the message back;
* on the embedded broker (MQTT 3.1.1: nothing can be declared), the broker hangs up on the
  sender as soon as the packet's length is announced.

Either way the node's peak memory stays within a few MiB of idle, and it keeps hearing its
peers. Peak memory is the kernel's high-water mark (VmHWM), reset before the attack.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiomqtt
import httpx
from prometheus_client.parser import text_string_to_metric_families

from hereabouts.transports.broker import _connect_packet
from hereabouts.transports.mqtt_batch import remaining_length
from hereabouts.transports.topics import plaza_topic
from tests.adversarial.processes import UpProcess
from tests.fixtures.mosquitto import MosquittoServer, free_port

MESSAGE_BYTES = 40_000_000
"""Tens of MB: far past every limit, small enough to publish in a blink on loopback."""

RSS_BOUND_BYTES = 16 * 1024 * 1024
"""How far above idle the node's peak memory may go: a fraction of the message, which it
must never hold (before: three to five copies of it)."""

WAIT_S = 30.0


def status_bytes(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {key} line")


def reset_peak_memory(pid: int) -> None:
    """From now on, VmHWM is the peak since this call (Linux's clear_refs, value 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


async def peers_of(node: UpProcess) -> dict[str, dict[str, str]]:
    async with httpx.AsyncClient(timeout=WAIT_S, trust_env=False) as client:
        body = (await client.get(f"{node.url}/v1/peers")).json()
    return {peer["name"]: peer for peer in body["peers"]}


async def online_peer_event_at(node: UpProcess, name: str) -> str:
    """When the node last heard ``name``, once it sees it ONLINE."""
    async with asyncio.timeout(WAIT_S):
        while True:
            peer = (await peers_of(node)).get(name)
            if peer is not None and peer["status"] == "ONLINE":
                return peer["last_event_at"]
            await asyncio.sleep(0.2)


async def still_hears(node: UpProcess, name: str, since: str) -> None:
    """The node hears a newer event from ``name`` than the one at ``since``."""
    async with asyncio.timeout(WAIT_S):
        while True:
            peer = (await peers_of(node)).get(name)
            if peer is not None and peer["status"] == "ONLINE" and peer["last_event_at"] > since:
                return
            await asyncio.sleep(0.2)


async def oversize_drops(node: UpProcess) -> float:
    async with httpx.AsyncClient(timeout=WAIT_S, trust_env=False) as client:
        text = (await client.get(f"{node.url}/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            dropped = sample.name == "hereabouts_plaza_dropped_total"
            if dropped and sample.labels.get("reason") == "oversize":
                return sample.value
    return 0.0


async def settle(node: UpProcess) -> int:
    """Idle resident memory, once start-up work is over."""
    await node.wait_idle(below=0.2, over_s=1.0, timeout_s=WAIT_S)
    return node.rss_bytes()


async def test_a_node_on_mosquitto_without_a_packet_limit_never_reads_a_huge_message(
    tmp_path: Path, mosquitto_binary: str
) -> None:
    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    broker = MosquittoServer(
        binary=mosquitto_binary, workdir=workdir, port=free_port(), max_packet_size=None
    )
    broker.start()
    url = f"mqtt://127.0.0.1:{broker.port}"
    try:
        async with (
            UpProcess(tmp_path / "node", "--no-sites", "--name", "node", broker=url) as node,
            UpProcess(tmp_path / "peer", "--no-sites", "--name", "peer", broker=url),
        ):
            heard = await online_peer_event_at(node, "peer")
            idle = await settle(node)
            reset_peak_memory(node.pid)

            async with aiomqtt.Client("127.0.0.1", broker.port) as attacker:
                await attacker.publish(
                    plaza_topic("newspaper"), b"x" * MESSAGE_BYTES, qos=1, timeout=WAIT_S
                )
            await still_hears(node, "peer", heard)

            peak = status_bytes(node.pid, "VmHWM")
            assert peak - idle < RSS_BOUND_BYTES, (idle, peak)
            assert await oversize_drops(node) == 0  # kept back by the broker, never read
            print(f"\nnode memory: idle {idle / 1e6:.1f} MB, peak {peak / 1e6:.1f} MB")
    finally:
        broker.stop()


async def test_the_embedded_broker_hangs_up_on_a_huge_message(tmp_path: Path) -> None:
    async with UpProcess(tmp_path / "node", "--no-sites", "--name", "node", "--peers", "1") as node:
        port = int(node.command[node.command.index("--broker-port") + 1])
        heard = await online_peer_event_at(node, "demo-1")
        idle = await settle(node)
        reset_peak_memory(node.pid)

        # An MQTT 3.1.1 client, byte by byte: CONNECT, then a QoS 1 PUBLISH of 40 MB.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(_connect_packet("attacker"))
            assert (await asyncio.wait_for(reader.readexactly(4), WAIT_S))[3] == 0  # accepted
            topic = plaza_topic("newspaper").encode()
            head = len(topic).to_bytes(2, "big") + topic + b"\x00\x01"  # packet id 1
            length = remaining_length(len(head) + MESSAGE_BYTES)
            writer.write(b"\x32" + length + head + b"x" * MESSAGE_BYTES)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            # Hung up on, with no PUBACK (a broker that took the message would answer and
            # keep the connection open).
            try:
                answer = await asyncio.wait_for(reader.read(), WAIT_S)
            except ConnectionError:  # reset, or our write broke first
                answer = b""
            assert answer == b""
        finally:
            writer.close()
        await still_hears(node, "demo-1", heard)

        peak = status_bytes(node.pid, "VmHWM")
        assert peak - idle < RSS_BOUND_BYTES, (idle, peak)
        print(f"\nnode memory: idle {idle / 1e6:.1f} MB, peak {peak / 1e6:.1f} MB")
    assert "PacketTooLarge" in node.output
