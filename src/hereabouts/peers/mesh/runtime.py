"""The mesh runtime: sync rounds out, the sync endpoint in, the peer book on disk.

The rules live sans-I/O in :mod:`hereabouts.core.reconcile` (what to send) and
:mod:`hereabouts.core.meshpeers` (whom to call); this module does the HTTP and the
bookkeeping:

* **A round** (every ``round_s``, jittered, stretched by :func:`round_scale` as the mesh
  grows, as is the reply's byte budget, :func:`exchange_budget`): choose a peer, send our
  digest, take in the events it answers with (each through the node's ingest path, exactly
  as if it had come from the plaza), then push what its digest says it lacks. Two nodes
  that agree exchange two digests and nothing else.
* **The endpoint**: check the caller's signature and its budgets before reading anything
  else, take in what it pushes, answer with what it lacks (when it sent a digest).
* **Defences**: bodies are capped before they are parsed; a caller that sends a bad
  signature, a malformed body or an event whose signature fails is graylisted for
  ``graylist_s``; per-caller token buckets on requests and bytes; every refusal is counted
  by its reason (``hereabouts_mesh_refused_total``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

import httpx

from hereabouts.config import MeshConfig, WireLimits
from hereabouts.core.meshmath import exchange_budget, round_scale
from hereabouts.core.meshpeers import MeshPeer, MeshPeers
from hereabouts.core.ratelimit import RateLimiter
from hereabouts.core.reconcile import Item, encode_digest, plan_reply
from hereabouts.errors import HereaboutsError, RemoteError
from hereabouts.files import write_atomically
from hereabouts.identity import Identity
from hereabouts.metrics import Counters
from hereabouts.peers.mesh.errors import (
    SyncFailed,
    SyncGraylisted,
    SyncOversize,
    SyncRefused,
    SyncThrottled,
)
from hereabouts.peers.mesh.wire import (
    SYNC_PATH,
    caller_of,
    decode_message,
    encode_message,
    max_message_bytes,
    sign_request,
)

log = logging.getLogger(__name__)

PEERS_FILE_NAME: Final = "mesh-peers.json"
MESH_ENDPOINT: Final = "mesh"
"""The name of a node's mesh URL among its hey_there endpoints."""

MAX_GRAYLISTED: Final = 4096
"""Callers remembered as graylisted, whether or not they are in the peer book; past this
the one whose time ends first is forgotten (a flood of fresh keys cannot grow it)."""

MAX_ORIGINS: Final = 65_536
"""Digest entries read: far above the keys a node keeps (see TrustConfig)."""

BAD_DATA: Final = frozenset(
    {
        "sync_malformed",
        "digest_malformed",
        # Events no honest peer relays: it passes on only events it verified itself.
        "bad_signature",
        "emitter_mismatch",
        "missing_signature",
        "not_canonical",
        "duplicate_key",
        "not_json",
        "malformed",
        "invalid_did",
    }
)
"""Refusals that graylist the peer that caused them: an honest peer never sends these. Not
here: events that are old, replayed, from the future, rate limited or of a kind we do not
know (an honest peer relays those, or runs a newer version), nor a request signature that
fails (it proves nothing about the DID it names)."""

COUNTER_HELP: Final = {
    "mesh_exchanges": ("Sync exchanges this node started, by outcome.", "outcome"),
    "failure_reports": (
        "Probes of quiet nodes this node observes, by outcome (answered, reported, ...).",
        "outcome",
    ),
    "mesh_requests": ("Sync requests this node answered, by outcome.", "outcome"),
    "mesh_refused": ("Sync requests and replies refused, by reason.", "reason"),
    "mesh_events_in": (
        "Events taken in from the mesh, by outcome (new, known, refused).",
        "outcome",
    ),
    "mesh_bytes": ("Sync message bytes, by direction (in, out).", "direction"),
    "mesh_farewells": ("Chaus handed to mesh peers on stopping, by outcome.", "outcome"),
    "mesh_graylisted": ("Mesh peers graylisted for sending invalid data, by reason.", "reason"),
    "mesh_left_out": (
        "Events a sync reply left for a later round (over the byte budget), by why.",
        "why",
    ),
}


class MeshHost(Protocol):
    """What the mesh needs of its node."""

    @property
    def identity(self) -> Identity: ...

    def mesh_versions(self) -> dict[str, int]: ...

    def mesh_evidence(self, did: str) -> Sequence[Item]: ...

    def mesh_raw(self, event_id: str) -> bytes | None: ...

    def mesh_take_in(self, data: bytes, now_ms: int) -> str:
        """Ingest one sealed event from the mesh: ``new``, ``known``, ``held`` (taken in
        later) or a refusal reason."""
        ...

    def mesh_missing(self, did: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Answer:
    """The endpoint's answer: an HTTP status and a body."""

    status: int
    body: bytes
    content_type: str = "application/json"


class Mesh:
    """One node's part in the mesh."""

    def __init__(
        self,
        host: MeshHost,
        config: MeshConfig,
        *,
        wire: WireLimits,
        counters: Counters,
        clock_ms: Callable[[], int],
        rng: random.Random,
        home: Path | None = None,
    ) -> None:
        self.host = host
        self.config = config
        self.counters = counters
        for name, (help_text, label) in COUNTER_HELP.items():
            counters.describe(name, help_text, label)
        self._clock_ms = clock_ms
        self._rng = rng
        self._home = home
        self._verify_tls: bool | ssl.SSLContext = (
            True if config.ca_file is None else ssl.create_default_context(cafile=config.ca_file)
        )
        self.url: str | None = None
        self._url_known = asyncio.Event()
        self.serves = False
        """Whether a URL will be set (the node serves the endpoint): rounds wait for it, so
        the first hey_there peers receive already says where to call us back."""
        self.peers = MeshPeers(
            self_did=host.identity.did,
            max_peers=config.max_peers,
            heal_every=config.heal_every,
        )
        for seed in config.seeds:
            self.peers.add_seed(seed.rstrip("/"))
        self._requests = RateLimiter(
            rate_per_s=config.peer_requests_per_s, burst=config.peer_request_burst
        )
        self.max_message_bytes = max_message_bytes(
            exchange_bytes=exchange_budget(
                max(config.exchange_bytes, wire.max_event_bytes), MAX_ORIGINS
            ),
            max_origins=MAX_ORIGINS,
        )
        self._bytes = RateLimiter(
            rate_per_s=config.peer_bytes_per_s / 1024,
            burst=max(1, int(8 * config.peer_bytes_per_s / 1024), self.max_message_bytes // 1024),
        )
        self._origins_held = 0
        """Origins in our latest digest: with the peer book, the mesh's size as far as we
        know, which rounds and reply budgets scale with."""
        self._client: httpx.AsyncClient | None = None
        self._graylisted: dict[str, int] = {}  # caller DID -> until (ms)
        self.rounds = 0
        self.last_round_ms: int | None = None
        self.last_ok_ms: int | None = None
        self._load_peers()

    # --- lifecycle ----------------------------------------------------------------------

    def set_url(self, url: str) -> None:
        """Our own mesh URL (it travels in our hey_there): never a peer of ourselves."""
        self.url = url.rstrip("/")
        self.peers.self_url = self.url
        self._url_known.set()

    async def run(self) -> None:
        """Sync rounds until cancelled."""
        self._client = httpx.AsyncClient(
            timeout=self.config.request_timeout_s,
            verify=self._verify_tls,
            trust_env=False,
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
        )
        try:
            if self.serves:
                await self._url_known.wait()
            await self._round()  # the first round at once: a newcomer learns the mesh
            while True:
                await asyncio.sleep(self.next_round_s())
                await self._round()
        finally:
            client, self._client = self._client, None
            await client.aclose()
            self.save_peers()

    def next_round_s(self) -> float:
        scale = round_scale(self._size())
        jitter = self.config.round_jitter_fraction * (2 * self._rng.random() - 1)
        return self.config.round_s * scale * (1 + jitter)

    async def _round(self) -> None:
        now = self._clock_ms()
        self.rounds += 1
        self.last_round_ms = now
        peer = self.peers.choose(now, self._rng.random(), self.host.mesh_missing)
        if peer is not None:
            await self._attempt(peer)

    async def _attempt(self, peer: MeshPeer) -> bool:
        """One exchange with ``peer``, its failure counted and backed off: whether it
        worked. Whatever failed, the node's next round goes on."""
        try:
            await self.exchange(peer)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not isinstance(exc, (HereaboutsError, httpx.HTTPError, OSError)):
                self.counters.add("handler_errors", "mesh_round")
                log.exception("a sync round with %s failed on a bug", peer.url)
            reason = exc.reason if isinstance(exc, HereaboutsError) else "unreachable"
            self.counters.add("mesh_exchanges", "failed")
            peer.count("failures")
            self.peers.failed(peer.url, self._clock_ms(), self._rng.random())
            if reason in BAD_DATA:
                self._graylist(peer.did, peer.url, reason)
            log.debug("sync with %s failed: %s", peer.url, exc)
            return False
        self.counters.add("mesh_exchanges", "ok")
        self.last_ok_ms = self._clock_ms()
        return True

    async def farewell(self, chau: bytes, peers: int) -> None:
        """Hand our chau to up to ``peers`` reachable peers at once: rounds have stopped,
        and a mesh-only node's goodbye would otherwise wait for nobody."""
        now = self._clock_ms()
        targets = [p for p in self.peers.all() if p.usable(now) and p.did is not None]
        self._rng.shuffle(targets)
        if not targets:
            return
        body = encode_message(None, [chau])
        timeout = min(2.0, self.config.request_timeout_s)
        async with httpx.AsyncClient(
            timeout=timeout, verify=self._verify_tls, trust_env=False
        ) as client:
            results = await asyncio.gather(
                *(self._post(client, peer, body) for peer in targets[:peers]),
                return_exceptions=True,
            )
        told = sum(1 for r in results if not isinstance(r, BaseException))
        self.counters.add("mesh_farewells", "told" if told else "nobody")

    async def probe(self, did: str) -> bool:
        """An exchange with ``did`` now, out of turn: whether it answered."""
        peer = self.peers.by_did(did)
        if peer is None or self._client is None:
            return False
        return await self._attempt(peer)

    # --- calling ------------------------------------------------------------------------

    async def exchange(self, peer: MeshPeer) -> None:
        """One push-pull exchange with ``peer``."""
        client = self._client
        if client is None:
            raise SyncFailed("the mesh is not running")
        versions = self.host.mesh_versions()
        answer = await self._post(client, peer, encode_message(encode_digest(versions), []))
        theirs, events = decode_message(
            answer, max_bytes=self.max_message_bytes, max_origins=MAX_ORIGINS
        )
        self._take_in(events, peer)
        if theirs is not None:
            reply = self._plan(self.host.mesh_versions(), theirs)
            if reply:
                await self._post(client, peer, encode_message(None, reply))
        peer.count("exchanges")
        # Its DID is learnt from its hey_there, which names this URL.
        self.peers.succeeded(peer.url, peer.did, self._clock_ms())

    async def _post(self, client: httpx.AsyncClient, peer: MeshPeer, body: bytes) -> bytes:
        headers = sign_request(self.host.identity, "POST", SYNC_PATH, body, self._clock_ms())
        headers["content-type"] = "application/json"
        async with client.stream(
            "POST", peer.url + SYNC_PATH, content=body, headers=headers
        ) as response:
            data = bytearray()
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) > self.max_message_bytes:
                    raise SyncFailed(f"{peer.url} answered more than a sync message may hold")
        self._bytes_counted(peer, out=len(body), into=len(data))
        if response.status_code != 200:
            raise SyncFailed(f"{peer.url} answered HTTP {response.status_code}")
        return bytes(data)

    # --- answering ----------------------------------------------------------------------

    def handle(self, headers: Mapping[str, str], body: bytes, *, too_big: bool = False) -> Answer:
        """Answer one sync request (``too_big``: the body was cut at the cap)."""
        now = self._clock_ms()
        try:
            if too_big:
                raise SyncOversize(f"a sync request over {self.max_message_bytes} bytes")
            caller = caller_of(
                headers,
                "POST",
                SYNC_PATH,
                body,
                now_ms=now,
                max_skew_ms=int(self.config.max_clock_skew_s * 1000),
            )
            if self._graylisted.get(caller, 0) > now or self.peers.graylisted(caller, now):
                raise SyncGraylisted("this node sent invalid data recently")
            if not self._requests.allow(caller, now) or not self._budget(caller, len(body), now):
                raise SyncThrottled("too many sync requests; slow down")
            try:
                theirs, events = decode_message(
                    body, max_bytes=self.max_message_bytes, max_origins=MAX_ORIGINS
                )
            except RemoteError as exc:
                self._graylist(caller, None, exc.reason)
                raise
            peer = self.peers.by_did(caller)
            if self._take_in(events, peer, caller=caller):
                self._graylist(caller, None, "bad_event")
            self.counters.add("mesh_bytes", "in", len(body))
            if peer is not None:
                peer.count("bytes_in", len(body))
                peer.last_heard_ms = now
            if theirs is None:
                self.counters.add("mesh_requests", "push")
                return Answer(200, encode_message(None, []))
            versions = self.host.mesh_versions()
            reply = encode_message(encode_digest(versions), self._plan(versions, theirs))
            self.counters.add("mesh_requests", "sync")
            self.counters.add("mesh_bytes", "out", len(reply))
            if peer is not None:
                peer.count("bytes_out", len(reply))
            return Answer(200, reply)
        except RemoteError as exc:  # SyncRefused, or a malformed digest (400)
            return self._refused(exc)
        except Exception:  # a bug must not take the endpoint down: count it, answer 500
            self.counters.add("handler_errors", "mesh_request")
            log.exception("answering a sync request failed on a bug")
            return Answer(500, json.dumps({"error": "internal"}).encode())

    def _refused(self, exc: RemoteError) -> Answer:
        self.counters.add("mesh_refused", exc.reason)
        self.counters.add("mesh_requests", "refused")
        body = json.dumps({"error": exc.reason, "detail": str(exc)}).encode()
        return Answer(exc.status if isinstance(exc, SyncRefused) else 400, body)

    def _budget(self, caller: str, size: int, now_ms: int) -> bool:
        """Spend ``size`` bytes of the caller's byte bucket (tokens are KiB)."""
        return self._bytes.allow(caller, now_ms, cost=max(1.0, size / 1024))

    # --- shared -------------------------------------------------------------------------

    def _take_in(
        self, events: Sequence[bytes], peer: MeshPeer | None, *, caller: str | None = None
    ) -> int:
        """Ingest ``events``; the number whose signature failed (a liar's mark)."""
        bad = 0
        new = 0
        for data in events:
            outcome = self.host.mesh_take_in(data, self._clock_ms())
            if outcome == "new":
                new += 1
            elif outcome not in ("known", "held"):
                self.counters.add("mesh_refused", outcome)
                if outcome in BAD_DATA:
                    bad += 1
            self.counters.add(
                "mesh_events_in", outcome if outcome in ("new", "known", "held") else "refused"
            )
        if peer is not None:
            peer.count("events_learnt", new)
        if bad and peer is not None and caller is None:
            self._graylist(peer.did, peer.url, "bad_event")
        return bad

    def _size(self) -> int:
        return max(len(self.peers), self._origins_held)

    def _plan(self, versions: dict[str, int], theirs: Mapping[bytes, int]) -> list[bytes]:
        self._origins_held = len(versions)
        budget = exchange_budget(self.config.exchange_bytes, self._size())
        reply = plan_reply(versions, self.host.mesh_evidence, theirs, budget_bytes=budget)
        if reply.left_out:
            self.counters.add("mesh_left_out", "budget", reply.left_out)
        found = (
            item.data if item.data is not None else self.host.mesh_raw(item.event_id)
            for item in reply.items
        )
        return [data for data in found if data is not None]

    def _bytes_counted(self, peer: MeshPeer, *, out: int, into: int) -> None:
        self.counters.add("mesh_bytes", "out", out)
        self.counters.add("mesh_bytes", "in", into)
        peer.count("bytes_out", out)
        peer.count("bytes_in", into)

    def _graylist(self, did: str | None, url: str | None, reason: str) -> None:
        now = self._clock_ms()
        until = now + int(self.config.graylist_s * 1000)
        self.peers.graylist(did=did, url=url, until_ms=until)
        if did is not None:
            table = self._graylisted
            table[did] = until
            if len(table) > MAX_GRAYLISTED:
                for stale in [d for d, t in table.items() if t <= now]:
                    del table[stale]
                while len(table) > MAX_GRAYLISTED:
                    del table[min(table, key=table.__getitem__)]
        self.counters.add("mesh_graylisted", reason)
        log.warning(
            "mesh peer %s graylisted for %.0f s: %s", did or url, self.config.graylist_s, reason
        )

    # --- learning and remembering -------------------------------------------------------

    def learn(self, did: str, endpoints: Mapping[str, str]) -> None:
        """A verified hey_there of ``did`` named its endpoints."""
        url = endpoints.get(MESH_ENDPOINT)
        if url:
            self.peers.learn(did, url.rstrip("/"), self._clock_ms())

    def _load_peers(self) -> None:
        if self._home is None:
            return
        path = self._home / PEERS_FILE_NAME
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("ignoring %s: %s", path, exc)
            return
        now = self._clock_ms()
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("url"), str):
                did = entry.get("did")
                if isinstance(did, str):
                    self.peers.learn(did, entry["url"], now)
                else:
                    self.peers.add_seed(entry["url"])

    def save_peers(self) -> None:
        """Write the peer book to ``<home>/mesh-peers.json`` (restarts start from it)."""
        if self._home is None:
            return
        entries = [{"url": p.url, "did": p.did} for p in self.peers.all() if p.did or p.seed]
        with contextlib.suppress(OSError):
            write_atomically(self._home / PEERS_FILE_NAME, json.dumps(entries).encode())

    # --- reporting ----------------------------------------------------------------------

    def health(self, now_ms: int) -> dict[str, object]:
        """The mesh part of /healthz: ok while a round ran recently and, if we know peers,
        an exchange succeeded within a few rounds."""
        stale_ms = int(self.config.round_s * round_scale(self._size()) * 1000 * 6)
        ran = self.last_round_ms is not None and now_ms - self.last_round_ms <= stale_ms
        reachable = not len(self.peers) or (
            self.last_ok_ms is not None and now_ms - self.last_ok_ms <= 2 * stale_ms
        )
        ok = bool(ran and reachable) or self.last_round_ms is None
        error = None
        if not ok:
            error = "sync rounds have stopped" if not ran else "no mesh peer answered lately"
        return {
            "ok": ok,
            "error": error,
            "url": self.url,
            "peers": len(self.peers),
            "rounds": self.rounds,
            "last_ok_ms": self.last_ok_ms,
            "graylisted": len(
                {p.url for p in self.peers.all() if p.graylisted_until_ms > now_ms}
                | {did for did, until in self._graylisted.items() if until > now_ms}
            ),
        }


__all__ = ["MESH_ENDPOINT", "Mesh", "MeshHost"]
