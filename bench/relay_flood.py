"""Relay flood: what a push costs, and whether the node stays responsive, while one address
floods the presence@2 relay with documents from freshly generated keys.

One ``hereabouts up --fast`` process (embedded broker on a free port), its relay directory
optionally prefilled with ``--prefill`` tombstones (entries of DIDs whose documents stopped
being served an hour ago: what a relay holds after a flood of short-lived documents). Then:

* **baseline** — ``GET /v1/peers`` from 127.0.0.1, 20 times, before any push;
* **flood** — ``--workers`` connections from 127.0.0.2 push ``--flood`` documents, each
  signed by a fresh key and naming the node as relay (signed before the flood starts, so
  the benchmark's own signing does not pace it). Each push's round trip is recorded with its
  status: 201 accepted, anything else refused;
* meanwhile, from 127.0.0.1, a prober times ``GET /v1/peers`` and ``GET /healthz`` every
  50 ms, and a *real* node pushes a document of a fresh key of its own every 250 ms; the
  statuses it gets say whether the relay stayed open to it.

Relay settings reach the node through its environment (``--env NAME=VALUE``, repeatable),
e.g. ``--env HEREABOUTS_RELAY_MAX_ENTRIES=500``. Figures go to stdout (``--json`` for one
JSON object), progress to stderr. The node is stopped at the end, or killed by the kernel if
the benchmark dies.

Run: ``.venv/bin/python bench/relay_flood.py [--prefill 10000] [--flood 2000]
[--workers 4] [--env NAME=VALUE ...] [--json]`` (under a minute with the defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from hereabouts.advert import build_presence
from hereabouts.advert.merkle import MerkleTree, format_root
from hereabouts.identity import Identity, load_or_create_identity
from liveness_support import free_port, percentile

PR_SET_PDEATHSIG = 1
ROOT = format_root(MerkleTree.from_leaves([b"bench"]).root())
PUSH_PATH = "/v1/relay/presence"
FLOOD_ADDRESS = "127.0.0.2"
REAL_ADDRESS = "127.0.0.1"


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def prefill(directory: Path, count: int, now: datetime) -> None:
    """``count`` tombstone files in the relay's on-disk format (DID and ``issued_at`` only)."""
    directory.mkdir(parents=True, exist_ok=True)
    issued = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for _ in range(count):
        did = Identity.generate().did
        name = hashlib.sha256(did.encode()).hexdigest() + ".json"
        body = {"did": did, "issued_at": issued, "stored_at": issued, "document": None}
        (directory / name).write_text(json.dumps(body, sort_keys=True) + "\n")


def documents(relay_did: str, count: int, now: datetime) -> list[bytes]:
    relays = [{"host": relay_did, "url": "https://relay.example"}]
    return [
        json.dumps(
            build_presence(
                Identity.generate(),
                endpoints={"mcp": "https://node.example:7733"},
                merkle_root=ROOT,
                issued_at=now,
                lifetime_s=600,
                relays=relays,
            )
        ).encode()
        for _ in range(count)
    ]


def client(address: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(transport=transport, timeout=30.0)


async def timed(call: Any) -> tuple[float, int]:
    started = time.perf_counter()
    response = await call
    return time.perf_counter() - started, response.status_code


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50) * 1000, 2),
        "p95_ms": round(percentile(values, 95) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="relay-flood-"))
    home = workdir / "home"
    home.mkdir()
    identity, _ = load_or_create_identity(home)
    now = datetime.now(UTC).replace(microsecond=0)
    if args.prefill:
        log(f"prefilling {args.prefill} tombstones")
        prefill(home / "relay", args.prefill, now)
    log(f"signing {args.flood} flood documents")
    flood_docs = documents(identity.did, args.flood, now)
    real_docs = documents(identity.did, 400, now)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for item in args.env:
        name, _, value = item.partition("=")
        env[name] = value
    argv = [sys.executable, "-m", "hereabouts.cli", "up", "--home", str(home), "--fast",
            "--broker-port", str(free_port()), "--http", f"127.0.0.1:{port}"]
    log_path = workdir / "up.log"
    with log_path.open("wb") as output:
        process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT, env=env,
                                   stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    try:
        return await measure(args, url, flood_docs, real_docs, process, log_path)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)


async def measure(
    args: argparse.Namespace,
    url: str,
    flood_docs: list[bytes],
    real_docs: list[bytes],
    process: subprocess.Popen[bytes],
    log_path: Path,
) -> dict[str, Any]:
    started = time.monotonic()
    async with client(REAL_ADDRESS) as real, client(FLOOD_ADDRESS) as flooder:
        while True:
            if process.poll() is not None or time.monotonic() - started > 60:
                raise RuntimeError(f"hereabouts up did not start:\n{log_path.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if (await real.get(f"{url}/healthz")).status_code in (200, 503):
                    break
            await asyncio.sleep(0.1)
        log(f"node up after {time.monotonic() - started:.1f} s")
        baseline = [(await timed(real.get(f"{url}/v1/peers")))[0] for _ in range(20)]
        headers = {"content-type": "application/json"}
        queue = list(reversed(flood_docs))
        pushes: list[tuple[float, int, float]] = []
        flood_started = time.perf_counter()

        async def worker() -> None:
            while queue:
                body = queue.pop()
                at = time.perf_counter() - flood_started
                took, status = await timed(flooder.post(url + PUSH_PATH, content=body,
                                                        headers=headers))
                pushes.append((took, status, at))

        done = asyncio.Event()
        peers: list[float] = []
        health: list[float] = []
        real_pushes: list[tuple[float, int]] = []

        async def prober() -> None:
            while not done.is_set():
                peers.append((await timed(real.get(f"{url}/v1/peers")))[0])
                health.append((await timed(real.get(f"{url}/healthz")))[0])
                await asyncio.sleep(0.05)

        async def real_node() -> None:
            for body in real_docs:
                if done.is_set():
                    break
                real_pushes.append(
                    await timed(real.post(url + PUSH_PATH, content=body, headers=headers))
                )
                await asyncio.sleep(0.25)

        side = [asyncio.create_task(prober()), asyncio.create_task(real_node())]
        await asyncio.gather(*(worker() for _ in range(args.workers)))
        flood_s = time.perf_counter() - flood_started
        done.set()
        await asyncio.gather(*side)
        after = [(await timed(real.post(url + PUSH_PATH, content=body, headers=headers)))
                 for body in real_docs[-5:]]
        metrics = (await real.get(f"{url}/metrics")).text
    accepted = [took for took, status, _ in pushes if status == 201]
    refused = [took for took, status, _ in pushes if status != 201]
    first = [took for took, status, at in pushes if status == 201][:100]
    last = [took for took, status, at in pushes if status == 201][-100:]
    relay_lines = [line for line in metrics.splitlines()
                   if re.match(r"hereabouts_relay_\w+\{", line)]
    return {
        "prefill": args.prefill,
        "flood": len(flood_docs),
        "workers": args.workers,
        "flood_seconds": round(flood_s, 2),
        "flood_statuses": dict(Counter(status for _, status, _ in pushes)),
        "push_accepted": summary(accepted),
        "push_accepted_first_100": summary(first),
        "push_accepted_last_100": summary(last),
        "push_refused": summary(refused),
        "peers_before": summary(baseline),
        "peers_during": summary(peers),
        "healthz_during": summary(health),
        "real_pushes_during": dict(Counter(status for _, status in real_pushes)),
        "real_pushes_after": dict(Counter(status for _, status in after)),
        "relay_metrics": relay_lines,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefill", type=int, default=10_000,
                        help="tombstone files in the relay directory before start")
    parser.add_argument("--flood", type=int, default=2000, help="documents pushed by the flood")
    parser.add_argument("--workers", type=int, default=4, help="concurrent flood connections")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment of the node (relay settings)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            if key == "relay_metrics":
                for line in value:
                    print(f"  {line}")
            else:
                print(f"{key:26} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
