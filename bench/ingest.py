"""Ingest throughput against the cost of the signature check alone.

What it measures, in one process and one run (so machine noise hits both sides alike):

* **baseline**: a plain PyNaCl loop, ``VerifyKey.verify(message, signature)``, over exactly
  the bytes our events are signed over, with the keys already built. This is the floor no
  verifying pipeline can beat on one core.
* **pipeline**: ``Ingestor.ingest_batch`` — unseal (size, depth, parse, canonical form,
  checks, verify, decode), admission and the key book, ledger append and projection apply —
  for the same sealed events, with the in-memory ledger and with the SQLite ledger (batched
  commits). The key book starts with the 1,000 emitters proven, as a node that has known
  its peers for a while does after a restart (its keyring holds them); the admission of
  fresh keys is measured by the flood test in ``tests/adversarial/test_sybil_flood.py``.

Events come from 1,000 emitters (a hey_there each, then newspapers), sealed before timing.
Rounds alternate baseline / memory / SQLite; medians are reported with the ratio
pipeline ÷ baseline. Targets: ≥ 0.8 in memory, ≥ 0.5 with SQLite.

Run: ``make bench`` or ``.venv/bin/python bench/ingest.py [--events N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import nacl.signing

from hereabouts.config import TrustConfig
from hereabouts.core.keys import KeyBook, KeyRecord
from hereabouts.core.projection import Projection
from hereabouts.events import HeyThere, Newspaper
from hereabouts.identity import Identity, public_key_from_did
from hereabouts.ledger import Ledger, MemoryLedger, SqliteLedger
from hereabouts.peers.ingest import Accepted, Ingestor
from hereabouts.wire import SIGNING_TAG, seal

BASE_MS = 1_800_000_000_000


def make_events(count: int, emitters: int) -> list[bytes]:
    identities = [Identity.from_seed(i.to_bytes(32, "big")) for i in range(1, emitters + 1)]
    sealed = []
    for n in range(count):
        who = n % emitters
        identity = identities[who]
        header = {"name": f"node-{who}", "did": identity.did, "boot_id": "b1", "at_ms": BASE_MS + n}
        if n < emitters:
            event: HeyThere | Newspaper = HeyThere(
                **header, started_at_ms=BASE_MS, endpoints={"mesh": f"http://10.0.0.{who % 250}:7"}
            )
        else:
            event = Newspaper(**header)
        sealed.append(seal(event, identity))
    return sealed


class _Parts(msgspec.Struct):
    body: msgspec.Raw
    signer: str
    sig: str


def baseline_inputs(sealed: list[bytes]) -> list[tuple[nacl.signing.VerifyKey, bytes, bytes]]:
    keys: dict[str, nacl.signing.VerifyKey] = {}
    inputs = []
    for data in sealed:
        parts = msgspec.json.decode(data, type=_Parts)
        if parts.signer not in keys:
            keys[parts.signer] = nacl.signing.VerifyKey(public_key_from_did(parts.signer))
        message = SIGNING_TAG + bytes(parts.body)
        inputs.append((keys[parts.signer], message, base64.b64decode(parts.sig)))
    return inputs


def time_baseline(inputs: list[tuple[nacl.signing.VerifyKey, bytes, bytes]]) -> float:
    start = time.perf_counter()
    for key, message, signature in inputs:
        key.verify(message, signature)
    return len(inputs) / (time.perf_counter() - start)


def known_peers(sealed: list[bytes], now_ms: int) -> list[KeyRecord]:
    """Proven records for every emitter of ``sealed``, last heard a minute ago."""
    records: dict[str, KeyRecord] = {}
    for data in sealed:
        body = msgspec.json.decode(data, type=_Parts).body
        head = msgspec.json.decode(bytes(body), type=dict[str, object])
        did, name = str(head["did"]), str(head["name"])
        records.setdefault(did, KeyRecord(
            did=did, name=name, first_ms=now_ms - 86_400_000, last_ms=now_ms - 60_000,
            proven_ms=now_ms - 86_000_000, claim_ms=now_ms - 86_000_000,
        ))
    return list(records.values())


def time_pipeline(sealed: list[bytes], make_ledger: Callable[[], Ledger], batch: int) -> float:
    ledger = make_ledger()
    now = BASE_MS + len(sealed)
    keys = KeyBook(TrustConfig(), silence_ms=300_000, max_howdys=10)
    keys.load(known_peers(sealed, now), now)
    ingestor = Ingestor(ledger=ledger, projection=Projection(), keys=keys)
    start = time.perf_counter()
    for offset in range(0, len(sealed), batch):
        outcomes = ingestor.ingest_batch(sealed[offset : offset + batch], now)
        if not all(isinstance(o, Accepted) and o.new for o in outcomes):
            raise SystemExit(f"benchmark events were refused: {outcomes[:3]}")
    elapsed = time.perf_counter() - start
    if len(ledger) != len(sealed) or len(ingestor.projection) == 0:
        raise SystemExit("pipeline did not store every event")
    ledger.close()
    return len(sealed) / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per round (20000)")
    parser.add_argument("--emitters", type=int, default=1_000, help="distinct emitters (1000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each measure (5)")
    parser.add_argument("--batch", type=int, default=512, help="events per ledger commit (512)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    print(f"sealing {args.events} events from {args.emitters} emitters…", file=sys.stderr)
    sealed = make_events(args.events, args.emitters)
    inputs = baseline_inputs(sealed)
    rates: dict[str, list[float]] = {"baseline": [], "memory": [], "sqlite": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_no in range(1, args.rounds + 1):
            rates["baseline"].append(time_baseline(inputs))
            rates["memory"].append(time_pipeline(sealed, MemoryLedger, args.batch))
            path = Path(tmp) / f"ledger-{round_no}.sqlite3"
            sqlite = functools.partial(SqliteLedger, path)
            rates["sqlite"].append(time_pipeline(sealed, sqlite, args.batch))
            print(
                f"round {round_no}/{args.rounds}: "
                + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rates.items()),
                file=sys.stderr,
            )
    median = {k: statistics.median(v) for k, v in rates.items()}
    ratios = {
        ledger: statistics.median(
            p / b for p, b in zip(rates[ledger], rates["baseline"], strict=True)
        )
        for ledger in ("memory", "sqlite")
    }
    if args.json:
        print(json.dumps({"events": args.events, "median_per_s": median, "ratio": ratios}))
    else:
        print(
            f"events per round      {args.events} from {args.emitters} emitters, "
            f"{args.rounds} rounds"
        )
        print(f"baseline (verify)     {median['baseline']:>10,.0f} events/s")
        for ledger, label, target in (("memory", "memory", 0.8), ("sqlite", "SQLite", 0.5)):
            print(
                f"pipeline, {label:<11} {median[ledger]:>10,.0f} events/s   "
                f"ratio {ratios[ledger]:.2f} (target ≥ {target:.2f})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
