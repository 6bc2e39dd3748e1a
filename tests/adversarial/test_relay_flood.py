"""Attack: flood a node's presence@2 relay with documents from freshly generated keys.

Keys are free, and every document the attacker signs with a new key is valid and names the
relay. Before the relay kept quotas, 10,000 of them filled it, its tombstones then refused
every real push (503 ``relay_full``) for up to a week, and each refusal listed and read the
whole relay directory on the event loop, slowing every other endpoint of the node to seconds.

Against a real ``hereabouts up`` these tests check that, while one address (127.0.0.2)
floods and afterwards:

* real pushes from 127.0.0.1 and 127.0.0.3 are accepted, and the relay keeps serving them;
* ``GET /v1/peers`` and ``/healthz`` keep answering promptly (asserted under 1 s, figures
  printed);
* what the relay keeps of the flood is bounded: entry files on disk never exceed
  ``max_entries + max_tombstones``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hereabouts.advert import sign_presence
from hereabouts.advert.merkle import MerkleTree, format_root
from hereabouts.advert.timestamps import format_time
from hereabouts.identity import Identity, load_or_create_identity
from tests.adversarial.processes import UpProcess, client_from

FLOOD = "127.0.0.2"
REAL = ("127.0.0.1", "127.0.0.3")
PUSH = "/v1/relay/presence"
HEADERS = {"content-type": "application/json"}
ROOT = format_root(MerkleTree.from_leaves([b"relay-flood"]).root())
PROMPT_S = 1.0
CAP = 200
TOMBSTONES = 100
REAL_PUSHES_EACH = 20


def document(relay_did: str, *, lifetime_s: int = 600) -> bytes:
    """A valid document of a fresh key naming the relay, as an attacker or a node sends it."""
    issued = datetime.now(UTC)
    body = {
        "endpoints": {"mcp": "https://node.example:7733"},
        "merkle_root": ROOT,
        "issued_at": format_time(issued),
        "expires_at": format_time(issued + timedelta(seconds=lifetime_s)),
        "relays": [{"host": relay_did, "url": "https://relay.example"}],
    }
    return json.dumps(sign_presence(body, Identity.generate())).encode()


def entry_files(node: UpProcess) -> int:
    directory = node.home / "relay"
    return sum(1 for p in directory.iterdir() if p.suffix == ".json") if directory.is_dir() else 0


def metric(text: str, name: str, label: str = "") -> float:
    pattern = re.escape(name) + (r"\{[^}]*\"" + re.escape(label) + r"\"\}" if label else "")
    match = re.search(r"^" + pattern + r" (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def relay_home(tmp_path: Path) -> tuple[Path, str]:
    home = tmp_path / "relay-node"
    home.mkdir()
    identity, _ = load_or_create_identity(home)
    return home, identity.did


class Probe:
    """Times ``/v1/peers`` and ``/healthz`` from 127.0.0.1 every 50 ms, and counts the
    relay's entry files each round."""

    def __init__(self, node: UpProcess) -> None:
        self.node = node
        self.peers: list[float] = []
        self.health: list[float] = []
        self.most_files = 0
        self.done = asyncio.Event()

    async def run(self) -> None:
        async with client_from("127.0.0.1", timeout=30.0) as client:
            while not self.done.is_set():
                for path, into in (("/v1/peers", self.peers), ("/healthz", self.health)):
                    started = time.perf_counter()
                    response = await client.get(self.node.url + path)
                    into.append(time.perf_counter() - started)
                    assert response.status_code in (200, 503)
                self.most_files = max(self.most_files, entry_files(self.node))
                await asyncio.sleep(0.05)

    def report(self, name: str) -> str:
        def ms(values: list[float]) -> str:
            ordered = sorted(values)
            return (f"p50 {ordered[len(ordered) // 2] * 1000:.1f} ms, "
                    f"max {ordered[-1] * 1000:.1f} ms over {len(ordered)}")
        return f"{name}: /v1/peers {ms(self.peers)}; /healthz {ms(self.health)}"


async def flood(node: UpProcess, bodies: Iterator[bytes], workers: int = 4) -> Counter[int]:
    """Push every body from 127.0.0.2 over ``workers`` connections; statuses by count."""
    statuses: Counter[int] = Counter()
    async with client_from(FLOOD, timeout=30.0) as client:
        async def worker() -> None:
            for body in bodies:  # one shared iterator: each body is pushed once
                response = await client.post(node.url + PUSH, content=body, headers=HEADERS)
                statuses[response.status_code] += 1
                if response.status_code == 429:
                    assert int(response.headers["retry-after"]) >= 1

        await asyncio.gather(*(worker() for _ in range(workers)))
    return statuses


async def real_pushes(
    node: UpProcess, relay_did: str, address: str, count: int, pushed: list[tuple[str, int]]
) -> None:
    """A real node behind ``address`` pushes ``count`` documents of its own, 0.25 s apart."""
    async with client_from(address, timeout=30.0) as client:
        for _ in range(count):
            body = document(relay_did)
            response = await client.post(node.url + PUSH, content=body, headers=HEADERS)
            pushed.append((json.loads(body)["did"], response.status_code))
            await asyncio.sleep(0.25)


async def test_flood_of_fresh_keys_does_not_close_the_relay(tmp_path: Path) -> None:
    """The flood has an unbounded address budget here, so it fills the relay and keeps
    displacing its own entries: the worst case for tombstones and eviction work."""
    home, relay_did = relay_home(tmp_path)
    env = {
        "HEREABOUTS_RELAY_MAX_ENTRIES": str(CAP),
        "HEREABOUTS_RELAY_MAX_TOMBSTONES": str(TOMBSTONES),
        "HEREABOUTS_RELAY_MAX_ENTRIES_PER_ADDRESS": "1000000",
        "HEREABOUTS_RELAY_ADDRESS_PUSHES_PER_MINUTE": "1000000",
        "HEREABOUTS_RELAY_ADDRESS_PUSH_BURST": "100000",
    }
    async with UpProcess(home, env=env) as node:
        # Phase 1: more short-lived documents than the relay holds; they all expire, which
        # before left a relay full of tombstones that refused every live document.
        short = [document(relay_did, lifetime_s=8) for _ in range(CAP + 50)]
        first = await flood(node, iter(short))
        assert first[201] == CAP + 50, first
        await asyncio.sleep(9)
        pushed: list[tuple[str, int]] = []
        await real_pushes(node, relay_did, REAL[0], 1, pushed)
        assert pushed[-1][1] == 201, "a relay full of expired entries refused a live one"

        # Phase 2: 1,250 long-lived documents while real nodes push and a probe watches.
        long = [document(relay_did) for _ in range(1250)]
        probe = Probe(node)
        watching = asyncio.create_task(probe.run())
        started = time.perf_counter()
        during = asyncio.gather(
            *(real_pushes(node, relay_did, address, REAL_PUSHES_EACH, pushed)
              for address in REAL)
        )
        second = await flood(node, iter(long))
        flood_s = time.perf_counter() - started
        await during
        probe.done.set()
        await watching
        await real_pushes(node, relay_did, REAL[1], 2, pushed)  # and after it

        async with client_from("127.0.0.1", timeout=30.0) as client:
            served = [(await client.get(f"{node.url}/v1/relay/{did}/presence")).status_code
                      for did, _ in pushed]
            metrics = (await client.get(node.url + "/metrics")).text
        files_after = entry_files(node)

    print(f"\nflood: 1250 pushes in {flood_s:.1f} s ({second}); " + probe.report("during"))
    print(f"entry files: at most {probe.most_files} during, {files_after} after "
          f"(bound {CAP + TOMBSTONES})")
    assert second[201] == 1250, second  # an address within its budget is never refused
    assert [status for _, status in pushed] == [201] * len(pushed)
    assert served == [200] * len(pushed), "a real node's document was displaced"
    assert max(probe.peers) < PROMPT_S and max(probe.health) < PROMPT_S, probe.report("slow")
    assert probe.most_files <= CAP + TOMBSTONES and files_after <= CAP + TOMBSTONES
    assert metric(metrics, "hereabouts_relay_entries", "live") == CAP
    assert metric(metrics, "hereabouts_relay_entries", "tombstone") == TOMBSTONES
    assert metric(metrics, "hereabouts_relay_evictions_total", "fair") > 900
    assert metric(metrics, "hereabouts_relay_evictions_total", "tombstone_overflow") > 1000
    stored = metric(metrics, "hereabouts_relay_pushes_total", "stored")
    assert stored == CAP + 50 + 1250 + len(pushed)


async def test_default_quotas_turn_one_address_away_cheaply(tmp_path: Path) -> None:
    """With the shipped defaults, a flood from one address gets its burst and then 429s
    that cost the node next to nothing, while other addresses are served as usual."""
    home, relay_did = relay_home(tmp_path)
    async with UpProcess(home) as node:
        bodies = [document(relay_did) for _ in range(600)]
        probe = Probe(node)
        watching = asyncio.create_task(probe.run())
        pushed: list[tuple[str, int]] = []
        during = real_pushes(node, relay_did, REAL[0], 5, pushed)
        started = time.perf_counter()
        statuses, _ = await asyncio.gather(flood(node, iter(bodies)), during)
        flood_s = time.perf_counter() - started
        probe.done.set()
        await watching
        async with client_from("127.0.0.1", timeout=30.0) as client:
            metrics = (await client.get(node.url + "/metrics")).text

    print(f"\ndefault quotas: 600 pushes in {flood_s:.1f} s ({statuses}); "
          + probe.report("during"))
    # the burst (60) and what the bucket refills (2/s) while the flood lasts, no more
    assert 60 <= statuses[201] <= 60 + 2 * flood_s + 2, statuses
    assert statuses[201] + statuses[429] == 600
    assert [status for _, status in pushed] == [201] * 5
    assert max(probe.peers) < PROMPT_S and max(probe.health) < PROMPT_S
    refused = metric(metrics, "hereabouts_relay_pushes_total", "relay_address_rate")
    assert refused == statuses[429]
