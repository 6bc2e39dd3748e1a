"""The plaza across the members of a real three-member RabbitMQ cluster.

Real ``hereabouts up`` processes, each pointed at one member (RabbitMQ 3.10's MQTT plugin
speaks 3.1.1 only, so the URLs pin it): nodes on different members see each other; a node
killed on one member is MISSING on the others through its will, which the cluster routes
to every member; and when a member is lost, its nodes move to the next member of their
failover list while the nodes elsewhere keep showing them ONLINE; nodes lost together with
their member (whose wills die with it) are MISSING everywhere within 5 s by their pulses;
and two site hubs on different members share one count, each hub in the test's process or
in two worker processes (as ``hereabouts up --workers 2``). The cluster
(``tests/fixtures/rabbitmq.py``) starts once for the module.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest

from hereabouts.config import HubConfig
from hereabouts.sites import room_key
from hereabouts.sites.workers import HubWorkers
from hereabouts.transports.mqtt import MqttSettings
from tests.adversarial.plaza import health_of, peers_of
from tests.adversarial.processes import UpProcess
from tests.fixtures.rabbitmq import Member, RabbitCluster
from tests.sites.hubs import Plaza, ServedHub, serve_hub
from tests.sites.support import ACCEPTANCE, SimulatedWidget, eventually

WAIT_S = 60.0
"""Generous: each wait below normally ends within a few seconds."""

FAILOVER_BOUND_S = 1.0 + 10.0
"""After a lost connection a node waits ``uniform(0, 1 s)`` (the first backoff step, base
1 s) before it tries its broker again; that one refuses at once (nothing listens on a lost
member), so the next of the list is tried at once. The connect, subscribe and re-announce
that follow take well under a second on an idle machine; 10 s of slack for a loaded one."""

LOST_WITH_MEMBER_BOUND_S = 5.0
"""Pulses every second, three missed, judged four times a second: 3-4 s."""

pytestmark = pytest.mark.timeout(240)


def url_for(*members: Member) -> str:
    """A failover URL: the given members in order, MQTT 3.1.1."""
    return f"mqtt://{','.join(m.mqtt for m in members)}?protocol=3.1.1"


def one_on_each(cluster: RabbitCluster) -> list[tuple[str, str]]:
    """alpha, bravo and charlie, each on its own member only (bravo on member 2)."""
    return [
        (name, url_for(member))
        for name, member in zip(("alpha", "bravo", "charlie"), cluster.members, strict=True)
    ]


async def statuses(watcher: UpProcess) -> dict[str, str]:
    """Name (without any ~suffix) to status, as the watcher shows its peers."""
    try:
        peers = await peers_of(watcher.url)
    except httpx.HTTPError:
        return {}
    return {str(p["name"]).split("~")[0]: str(p["status"]) for p in peers.values()}


async def until(check: Callable[[], Awaitable[bool]], what: str, node: UpProcess) -> float:
    """Seconds until ``check`` holds; fails with the node's log after WAIT_S."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > WAIT_S:
            raise AssertionError(f"timed out waiting for {what}; log:\n{node.read_log()}")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def watching(node: UpProcess, peers: int) -> bool:
    """Whether ``node`` watches the pulses of ``peers`` peers."""
    _, health = await health_of(node.url)
    return bool(health["pulse"]["watched"] == peers)


async def sees(watcher: UpProcess, name: str, status: str = "ONLINE") -> bool:
    return (await statuses(watcher)).get(name) == status


@asynccontextmanager
async def nodes_on(
    tmp_path: Path, placed: Sequence[tuple[str, str]], *extra: str
) -> AsyncIterator[dict[str, UpProcess]]:
    """``hereabouts up --no-sites`` per (name, broker URL), all stopped on leaving."""
    async with AsyncExitStack() as stack:
        started = {
            name: UpProcess(tmp_path / name, "--name", name, "--no-sites", *extra, broker=url)
            for name, url in placed
        }
        for node in started.values():
            node.start()
            stack.callback(node.stop)
        for node in started.values():
            await node.wait_http()
        yield started


async def all_see_each_other(nodes: dict[str, UpProcess]) -> float:
    started = time.monotonic()
    for name, node in nodes.items():
        for other in nodes:
            if other != name:
                await until(lambda n=node, o=other: sees(n, o), f"{name} to see {other}", node)
    return time.monotonic() - started


async def test_nodes_on_different_members_see_each_other(
    rabbitmq_cluster: RabbitCluster, tmp_path: Path
) -> None:
    placed = one_on_each(rabbitmq_cluster)
    async with nodes_on(tmp_path, placed) as nodes:
        took = await all_see_each_other(nodes)
        print(f"\nthree nodes on three members all ONLINE to each other {took:.1f}s after HTTP")
        for node in nodes.values():
            code, health = await health_of(node.url)
            assert health["broker"]["protocol"] == "3.1.1"
            assert code == 200, health
    for node in nodes.values():
        assert "Traceback" not in node.output


async def test_a_node_killed_on_one_member_is_missing_on_the_others_by_its_will(
    rabbitmq_cluster: RabbitCluster, tmp_path: Path
) -> None:
    placed = one_on_each(rabbitmq_cluster)
    async with nodes_on(tmp_path, placed) as nodes:
        await all_see_each_other(nodes)
        os.kill(nodes["bravo"].pid, signal.SIGKILL)
        killed = time.monotonic()
        for watcher in ("alpha", "charlie"):
            node = nodes[watcher]
            took = await until(lambda n=node: sees(n, "bravo", "MISSING"), "MISSING", node)
            print(f"\n{watcher} shows bravo MISSING {time.monotonic() - killed:.2f}s after kill")
            assert took >= 0
        logs = {name: nodes[name].read_log() for name in ("alpha", "charlie")}
    for name, log in logs.items():
        # "(event)": the will, routed from bravo's member to this one, and not "(timeout)",
        # which silence alone would give after plaza_missing_after_s.
        assert re.search(r"bravo(~\S+)? is MISSING \(event\)", log), f"{name}:\n{log}"


async def test_nodes_lost_with_their_member_are_missing_everywhere_within_5s_by_pulses(
    rabbitmq_cluster: RabbitCluster, tmp_path: Path
) -> None:
    """A machine that dies takes its member and its nodes with it: their wills die with the
    member that held them, and before pulses their peers showed them ONLINE until the 5 min
    silence threshold. Their pulses stop, so everyone shows them MISSING within 5 s."""
    m2 = rabbitmq_cluster.members[1]  # bravo's member
    placed = one_on_each(rabbitmq_cluster)
    async with nodes_on(tmp_path, placed) as nodes:
        await all_see_each_other(nodes)
        for node in nodes.values():  # a peer is watched from its first pulse after its key
            # is known; over RabbitMQ that pulse may overtake the hey_there (QoS 0 and QoS 1
            # subscriptions are separate queues), so the next one, a second later, counts.
            await until(lambda n=node: watching(n, 2), "every pulse watched", node)
        try:
            await asyncio.to_thread(rabbitmq_cluster.kill, m2)  # the member first: no will
            os.kill(nodes["bravo"].pid, signal.SIGKILL)
            lost = time.monotonic()
            for watcher in ("alpha", "charlie"):
                node = nodes[watcher]
                await until(lambda n=node: sees(n, "bravo", "MISSING"), "MISSING", node)
                took = time.monotonic() - lost
                print(f"\n{watcher} shows bravo MISSING {took:.2f}s after it and its member died")
                assert took < LOST_WITH_MEMBER_BOUND_S
            logs = {name: nodes[name].read_log() for name in ("alpha", "charlie")}
        finally:
            await asyncio.to_thread(rabbitmq_cluster.restore, m2)
    for name, log in logs.items():
        assert re.search(r"bravo(~\S+)? is MISSING \(pulse\)", log), f"{name}:\n{log}"


ORIGIN = "https://cluster.example"
ROOM = room_key(ORIGIN, "lobby")
PER_HUB = 3


@pytest.mark.parametrize("hub_mode", ["process", "workers"])
async def test_two_site_hubs_on_different_members_share_one_count(
    rabbitmq_cluster: RabbitCluster, hub_mode: str
) -> None:
    """Browser visitors on a hub attached to member 1 and on one attached to member 2 are
    one room: every hub and every widget shows them all, and a leave on one side is
    counted on the other. MQTT 3.1.1 has no No Local, so each hub also gets its own
    republished events back (and a worker its sibling's); the count must not double them."""
    m1, m2, _ = rabbitmq_cluster.members
    rng = random.Random(13)
    async with AsyncExitStack() as stack:
        hubs: list[ServedHub] = []
        for name, member in (("hub-1", m1), ("hub-2", m2)):
            settings = MqttSettings(host="127.0.0.1", port=member.mqtt_port, protocol="3.1.1")
            hub = await stack.enter_async_context(
                serve_hub(
                    Plaza(mqtt=settings),
                    hub_mode,
                    config=ACCEPTANCE,
                    hub=HubConfig(allowed_origins=(ORIGIN,)),
                    listen_host="0.0.0.0",  # not loopback: no origin but the listed one
                    name=name,
                )
            )
            hubs.append(hub)
        urls = [hub.url for hub in hubs]
        widgets: list[SimulatedWidget] = []
        for n, url in enumerate(urls):
            for k in range(PER_HUB):
                # Addresses the two workers of a hub divide between them (checked below).
                widget = SimulatedWidget(
                    url, ORIGIN, "lobby", rng=rng, address=f"127.0.{2 + n * PER_HUB + k}.1"
                )
                stack.push_async_callback(widget.close)
                await widget.start()
                widgets.append(widget)

        def counts(present: Sequence[SimulatedWidget]) -> list[object]:
            return [
                *(hub.counts()[ROOM].value if ROOM in hub.counts() else None for hub in hubs),
                *(w.count for w in present),
            ]

        total = 2 * PER_HUB
        await eventually(lambda: set(counts(widgets)) == {total}, timeout_s=WAIT_S)
        for hub in hubs:  # with workers, each hub's visitors are spread over both
            if isinstance(hub.hub, HubWorkers):
                workers = hub.hub.health()["workers"]
                handed = [w["connections_handed"] for w in workers]  # type: ignore[union-attr]
                assert len(handed) == 2 and all(handed), handed
        # Through two key rotations (2 s epochs), still exactly everybody.
        await asyncio.sleep(2 * ACCEPTANCE.did_duration_s)
        await eventually(lambda: set(counts(widgets)) == {total}, timeout_s=WAIT_S)
        leaving = widgets[0]  # on hub-1
        await leaving.leave()
        staying = widgets[1:]
        await eventually(lambda: set(counts(staying)) == {total - 1}, timeout_s=WAIT_S)
        assert all(w.errors == [] for w in widgets)


async def watch_for_blips(
    watchers: Sequence[UpProcess], names: Sequence[str], stop: asyncio.Event
) -> list[str]:
    """Every sample in which a watcher shows one of ``names`` as anything but ONLINE."""
    seen: list[str] = []
    started = time.monotonic()
    while not stop.is_set():
        for watcher in watchers:
            shown = await statuses(watcher)
            for name in names:
                status = shown.get(name)
                if status != "ONLINE":
                    seen.append(f"{time.monotonic() - started:.2f}s {watcher.url}: {name} {status}")
        await asyncio.sleep(0.1)
    return seen


async def lose_a_member(
    cluster: RabbitCluster, tmp_path: Path, how: Callable[[Member], None]
) -> tuple[float, list[str]]:
    """Three nodes, each listing its own member first; member 2 is lost with ``how``.

    Returns how long bravo (on member 2) took to be connected through another member, and
    what alpha and charlie showed of bravo meanwhile.
    """
    m1, m2, m3 = cluster.members
    placed = [
        ("alpha", url_for(m1, m2, m3)),
        ("bravo", url_for(m2, m3, m1)),
        ("charlie", url_for(m3, m1, m2)),
    ]
    async with nodes_on(tmp_path, placed) as nodes:
        await all_see_each_other(nodes)
        bravo = nodes["bravo"]
        stop = asyncio.Event()
        watching = asyncio.create_task(
            watch_for_blips([nodes["alpha"], nodes["charlie"]], ["bravo"], stop)
        )
        lost = time.monotonic()
        try:
            await asyncio.to_thread(how, m2)

            async def moved() -> bool:
                _, health = await health_of(bravo.url)
                broker = health["broker"]
                return bool(broker["connected"]) and broker["endpoint"] != f"mqtt://{m2.mqtt}"

            await until(moved, "bravo to fail over", bravo)
            took = time.monotonic() - lost
            _, health = await health_of(bravo.url)
            print(f"\nbravo connected through {health['broker']['endpoint']} {took:.2f}s later")
            # Keep watching past the silence threshold: a will published by the lost member
            # or a broken re-announce would show here.
            await asyncio.sleep(8.0)
            for watcher in ("alpha", "charlie"):
                assert await sees(nodes[watcher], "bravo"), await statuses(nodes[watcher])
        finally:
            stop.set()
            blips = await watching
            restoring = time.monotonic()
            await asyncio.to_thread(cluster.restore, m2)
            print(f"\n{m2.node} back {time.monotonic() - restoring:.1f}s after restore()")
    return took, blips


@pytest.mark.parametrize("how", ["stop_app", "kill"])
async def test_a_lost_member_s_nodes_fail_over_and_nobody_goes_missing(
    rabbitmq_cluster: RabbitCluster, tmp_path: Path, how: str
) -> None:
    """The member is stopped (``rabbitmqctl stop_app``) or killed outright."""
    took, blips = await lose_a_member(rabbitmq_cluster, tmp_path, getattr(rabbitmq_cluster, how))
    print("\n".join(["not ONLINE meanwhile:", *blips]) if blips else "no blips")
    assert took < FAILOVER_BOUND_S
    assert not [b for b in blips if "MISSING" in b], blips
