"""Lies about pulses, against real ``hereabouts up`` processes on a real Mosquitto.

Pulses decide who looks hung, so an attacker on the plaza will try to:

* **keep a hung node alive**: publish pulses on its topic, forged (any signature but its
  key's) or recorded earlier and replayed. Both are refused (``bad_pulse``, ``replayed``)
  and the hung node is MISSING as fast as without them;
* **make a live node look hung**: flood its topic with forged pulses, hoping to crowd
  out the real ones. Every pulse is checked before it counts, so the real ones still do:
  the node stays ONLINE on every watcher throughout;
* **make every node work**: pulses under 10,000 fresh keys nobody knows. Each costs a
  dictionary look-up (``unknown_key``), no signature check; nothing is kept about them
  (not watched, not a key, not a peer) and nothing changes in any view.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
from pathlib import Path

import pytest

from hereabouts.identity import Identity
from hereabouts.peers.pulse import seal_pulse
from hereabouts.transports.topics import pulse_topic
from tests.adversarial.plaza import Attacker, health_of, metric, now_ms
from tests.adversarial.processes import UpProcess
from tests.fixtures.mosquitto import MosquittoServer
from tests.peers.pulsing import all_see, node, start_all, statuses, until

pytestmark = pytest.mark.timeout(180)

BOUND_S = 5.0
"""A hung node is MISSING within this, lies or not (tests/peers/test_hangs_and_cuts.py)."""

FRESH_KEYS = 10_000


async def did_of(process: UpProcess) -> str:
    _, health = await health_of(process.url)
    return str(health["did"])


async def test_forged_and_replayed_pulses_do_not_keep_a_hung_node_alive(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    broker = f"mqtt://127.0.0.1:{mosquitto.port}"
    watchers = [node(tmp_path, name, broker) for name in ("a", "b")]
    hung = node(tmp_path, "x", broker)
    everyone = [*watchers, hung]
    try:
        await start_all(everyone)
        victim = await did_of(hung)
        topic = pulse_topic(victim)
        async with Attacker(mosquitto.port) as attacker:
            recorded = []
            await attacker.transport.subscribe(topic, qos=0)
            async for message in attacker.transport.messages():
                recorded.append(message.payload)
                if len(recorded) == 3:
                    break
            os.kill(hung.pid, signal.SIGSTOP)
            try:
                forger = Identity.generate()  # signs as itself, publishes as the victim

                async def lie() -> None:
                    seq = 10**6
                    while True:
                        seq += 1
                        forged = seal_pulse(
                            forger, boot="forged", seq=seq, at_ms=now_ms(), every_ms=1000
                        )
                        await attacker.transport.publish(topic, forged, qos=0)
                        for old in recorded:  # the victim's own words, again
                            await attacker.transport.publish(topic, old, qos=0)
                        await asyncio.sleep(0.2)

                liar = asyncio.create_task(lie())
                try:
                    await until(all_see(watchers, ["x"], "MISSING"), "x MISSING", BOUND_S)
                finally:
                    liar.cancel()
            finally:
                os.kill(hung.pid, signal.SIGCONT)
        for watcher in watchers:
            assert await metric(watcher.url, "hereabouts_pulses_in_total", outcome="bad_pulse") > 0
            assert await metric(watcher.url, "hereabouts_pulses_in_total", outcome="replayed") > 0
        await until(all_see(watchers, ["x"], "ONLINE"), "x ONLINE again", BOUND_S)
    finally:
        for process in everyone:
            process.stop()


async def test_a_flood_of_forged_pulses_does_not_make_a_live_node_look_hung(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    broker = f"mqtt://127.0.0.1:{mosquitto.port}"
    everyone = [node(tmp_path, name, broker) for name in ("a", "b", "x")]
    watchers = everyone[:2]
    try:
        await start_all(everyone)
        topic = pulse_topic(await did_of(everyone[2]))
        forger = Identity.generate()
        async with Attacker(mosquitto.port) as attacker:
            sent = 0
            for round_ in range(40):  # 8 s: far past the 3 s a silence takes
                for seq in range(50):
                    forged = seal_pulse(
                        forger,
                        boot="forged",
                        seq=round_ * 50 + seq,
                        at_ms=now_ms(),
                        every_ms=1000,
                    )
                    await attacker.transport.publish(topic, forged, qos=0)
                    sent += 1
                views = await asyncio.gather(*(statuses(w) for w in watchers))
                assert all(view.get("x") == "ONLINE" for view in views), views
                await asyncio.sleep(0.2)
        for watcher in watchers:
            refused = await metric(watcher.url, "hereabouts_pulses_in_total", outcome="bad_pulse")
            assert refused > sent / 2, (refused, sent)  # most arrived, and all were refused
            _, health = await health_of(watcher.url)
            assert health["ok"] and health["pulse"]["quiet"] == 0, health
    finally:
        for process in everyone:
            process.stop()


async def test_pulses_from_ten_thousand_fresh_keys_cost_a_lookup_each_and_change_nothing(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    broker = f"mqtt://127.0.0.1:{mosquitto.port}"
    everyone = [node(tmp_path, name, broker) for name in ("a", "b")]
    try:
        await start_all(everyone)
        key = Identity.generate()  # signing is the attacker's cost; one key signs them all

        async def flood() -> None:
            async with Attacker(mosquitto.port) as attacker:
                for n in range(FRESH_KEYS):
                    fresh = f"did:key:z6Mk{secrets.token_hex(20)}"  # a new name per pulse
                    payload = seal_pulse(key, boot="flood", seq=n, at_ms=now_ms(), every_ms=100)
                    await attacker.transport.publish(pulse_topic(fresh), payload, qos=0)
                    if n % 500 == 499:
                        await asyncio.sleep(0.05)

            async def all_counted() -> bool:
                counted = [
                    await metric(p.url, "hereabouts_pulses_in_total", outcome="unknown_key")
                    for p in everyone
                ]
                return all(c >= FRESH_KEYS * 0.9 for c in counted)

            await until(all_counted, "the flood counted as unknown keys", 60.0)

        known_before = [(await health_of(p.url))[1]["keys"]["known"] for p in everyone]
        await flood()
        for process, known in zip(everyone, known_before, strict=True):
            _, health = await health_of(process.url)
            assert health["ok"], health
            # Nothing is kept per unknown key: not watched, not a key, not a peer.
            assert health["pulse"]["watched"] == 1, "nobody unknown is watched"
            assert health["keys"]["known"] == known, health["keys"]
            assert sum(health["peers"].values()) == 2, health["peers"]
            assert await metric(process.url, "hereabouts_pulses_in_total", outcome="bad_pulse") == 0
        assert await all_see(everyone, ["a", "b"], "ONLINE")()
    finally:
        for process in everyone:
            process.stop()


async def test_a_peer_restarted_after_a_hang_is_online_again_even_without_pulses(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    """Its new boot's hey_there ends what its old boot's silence said, pulses or not (a
    rolling downgrade, a broker rule against the pulse topic)."""
    broker = f"mqtt://127.0.0.1:{mosquitto.port}"
    watcher = node(tmp_path, "a", broker)
    hung = node(tmp_path, "x", broker)
    again = node(tmp_path, "x", broker, "--no-pulses")  # the same home, so the same key
    try:
        await start_all([watcher, hung])
        os.kill(hung.pid, signal.SIGSTOP)
        await until(all_see([watcher], ["x"], "MISSING"), "x MISSING", BOUND_S)
        os.kill(hung.pid, signal.SIGKILL)
        hung.stop()
        again.start()
        await until(all_see([watcher], ["x"], "ONLINE"), "x ONLINE after its restart", 30.0)
        await asyncio.sleep(4.0)  # it sends no pulses: nothing may take that for a hang
        assert await all_see([watcher], ["x"], "ONLINE")()
    finally:
        for process in (watcher, hung, again):
            process.stop()
