"""A node that loses its broker connection for a while is told who arrived meanwhile.

Four nodes on a real Mosquitto; one of them, A, reaches it through a TCP relay the test
controls. The relay is cut (A's connection dies, the broker publishes A's will) and, while
A is away, D joins. When the relay is back, A reconnects and announces itself again (same
boot, next session): B and C, connected all along, answer with howdys that name D, so A
sees D ONLINE at once, where it would otherwise wait for D's first heartbeat (60-120 s
here). Everyone sees A ONLINE again: its new session outranks its will.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from pathlib import Path

import pytest

from hereabouts.config import Config, HeartbeatConfig
from hereabouts.core.effects import Status
from hereabouts.peers.node import Node
from hereabouts.transports.topics import plaza_topic
from hereabouts.wire import unseal
from tests.fixtures.mosquitto import MosquittoServer, free_port
from tests.peers.support import WireTap, light_node, sees, test_config, wait_until

pytestmark = pytest.mark.timeout(120)


class Relay:
    """A TCP relay from ``port`` to the broker that can be cut and restored."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._target = target_port
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def cut(self) -> None:
        """Refuse new connections and drop every open one."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        self._links.update((writer, up_writer))

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))


def quiet_heartbeats(config: Config) -> Config:
    """Heartbeats every 60-120 s, so nothing but a howdy can tell A about D in time."""
    return config.replace(
        heartbeat=HeartbeatConfig(min_interval_s=60.0, max_interval_s=120.0),
        projection=dataclasses.replace(
            config.projection,
            plaza_missing_after_s=300.0,
            mesh_missing_after_s=3600.0,
            reported_missing_after_s=300.0,
        ),
        howdy=dataclasses.replace(config.howdy, rejoin_settled_s=1.0),
    )


async def test_a_reconnected_node_hears_who_arrived_while_it_was_away(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    relay = Relay(mosquitto.port)
    await relay.open()
    direct = quiet_heartbeats(test_config(tmp_path, broker_port=mosquitto.port))
    relayed = quiet_heartbeats(test_config(tmp_path, broker_port=relay.port))
    a = light_node(relayed, "a")
    b, c, d = (light_node(direct, name) for name in "bcd")
    started: list[Node] = []
    try:
        for node in (a, b, c):
            await node.start()
            started.append(node)
        for node in (a, b, c):
            await node.wait_announced()
        trio = (a, b, c)
        await wait_until(
            lambda: all(sees(x, y.did, Status.ONLINE) for x in trio for y in trio),
            what="a, b and c to see each other",
        )
        await asyncio.sleep(1.5)  # b's and c's connections are settled (rejoin_settled_s)

        async with WireTap(mosquitto.port, plaza_topic("howdy")) as tap:
            await relay.cut()
            await wait_until(lambda: not a.transport.state.connected, what="a to lose its broker")
            await wait_until(lambda: sees(b, a.did, Status.MISSING), what="a's will to reach b")
            await d.start()
            started.append(d)
            await d.wait_announced()
            await wait_until(lambda: sees(b, d.did, Status.ONLINE), what="b to see d")
            assert a.status_of(d.did) is None, "a heard of d while cut off"

            await relay.open()
            await wait_until(
                lambda: a.transport.state.connections >= 2, timeout_s=30, what="a to reconnect"
            )
            await wait_until(
                lambda: sees(a, d.did, Status.ONLINE), timeout_s=15, what="a to hear of d"
            )
            for other in (b, c, d):
                await wait_until(
                    lambda other=other: sees(other, a.did, Status.ONLINE),
                    timeout_s=15,
                    what=f"{other.name} to see a ONLINE again",
                )
            answers = [unseal(m.payload, check_clock=False).event for m in tap.messages]
            to_a = [h for h in answers if getattr(h, "to_did", None) == a.did]
            assert to_a, "nobody answered a's rejoin"
            assert len(to_a) <= direct.howdy.max_howdys + 2  # the howdy cap, give or take
        assert b.status_of(a.did) is Status.ONLINE
    finally:
        for node in reversed(started):
            await node.stop()
        await relay.cut()
