"""Whom to sync with: the mesh's peer book, as rules over events and the time.

* **Learning.** Peers come from seeds (a URL, DID unknown until it answers), from
  hey_theres that carry a ``mesh`` endpoint, and from callers of our sync endpoint (whose
  requests are signed, and whose hey_there names their URL). At most ``max_peers`` are
  kept; past that, the peer that has failed longest (then the one heard from least
  recently) makes way.
* **Choosing.** Each round picks one peer uniformly among those not backing off and not
  graylisted. One round in ``heal_every`` instead picks a seed or a peer the caller says is
  MISSING, backing off or not: a partition otherwise never heals, since the peers on the
  far side look dead from here (the earlier nara design gossiped only with ONLINE peers
  and stayed split for ever).
* **Failing.** A failed exchange backs the peer off with capped exponential backoff and
  full jitter (:class:`~hereabouts.core.backoff.Backoff`); a success resets it.
* **Graylisting.** A peer that sent invalid data is neither called nor answered until its
  graylist time is over.

Sans-I/O: the caller passes the time and uniform draws in ``[0, 1)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from hereabouts.core.backoff import Backoff

PEER_BACKOFF = Backoff(base_s=2.0, cap_s=300.0)
"""A failing peer is retried after up to 2 s, then 4, 8, ... at most 5 minutes (a long
partition costs each side one attempt per 2.5 minutes on average per peer)."""


@dataclass(slots=True)
class MeshPeer:
    """What we know of one mesh peer."""

    url: str
    did: str | None = None
    seed: bool = False
    failures: int = 0
    retry_at_ms: int = 0
    graylisted_until_ms: int = 0
    last_ok_ms: int = -1
    last_heard_ms: int = -1
    stats: dict[str, int] = field(default_factory=dict)

    def usable(self, now_ms: int) -> bool:
        return self.retry_at_ms <= now_ms and self.graylisted_until_ms <= now_ms

    def count(self, what: str, amount: int = 1) -> None:
        self.stats[what] = self.stats.get(what, 0) + amount


class MeshPeers:
    """The peer book. Keyed by URL (the one thing known of a seed); DIDs are attached as
    peers prove them by signing."""

    def __init__(
        self,
        *,
        self_did: str,
        self_url: str | None = None,
        max_peers: int = 1024,
        heal_every: int = 4,
        backoff: Backoff = PEER_BACKOFF,
    ) -> None:
        self.self_did = self_did
        self.self_url = self_url
        self.max_peers = max_peers
        self.heal_every = heal_every
        self.backoff = backoff
        self._peers: dict[str, MeshPeer] = {}
        self._by_did: dict[str, str] = {}
        self._rounds = 0
        self.evicted = 0

    # --- learning -------------------------------------------------------------------------

    def add_seed(self, url: str) -> None:
        peer = self._add(url)
        if peer is not None:
            peer.seed = True

    def learn(self, did: str, url: str, now_ms: int) -> MeshPeer | None:
        """``did`` says (in a signed hey_there) it is reachable at ``url``."""
        if did == self.self_did or url == self.self_url:
            return None
        old_url = self._by_did.get(did)
        if old_url is not None and old_url != url:
            old = self._peers.pop(old_url, None)
            if old is not None and old.seed:  # keep seeds: the URL may still be right
                old.did = None
                self._peers[old_url] = old
        peer = self._add(url)
        if peer is None:
            return None
        if peer.did not in (None, did):
            self._by_did.pop(peer.did, None)
        peer.did = did
        peer.last_heard_ms = max(peer.last_heard_ms, now_ms)
        self._by_did[did] = url
        return peer

    def _add(self, url: str) -> MeshPeer | None:
        peer = self._peers.get(url)
        if peer is not None:
            return peer
        if url == self.self_url:
            return None
        if len(self._peers) >= self.max_peers:
            self._evict()
        peer = self._peers[url] = MeshPeer(url=url)
        return peer

    def _evict(self) -> None:
        victim = max(
            self._peers.values(),
            key=lambda p: (not p.seed, p.failures, -p.last_heard_ms, p.url),
        )
        del self._peers[victim.url]
        if victim.did is not None:
            self._by_did.pop(victim.did, None)
        self.evicted += 1

    # --- choosing -------------------------------------------------------------------------

    def choose(
        self, now_ms: int, unit: float, missing: Callable[[str], bool] | None = None
    ) -> MeshPeer | None:
        """The peer for this round, from a uniform draw ``unit`` in ``[0, 1)``."""
        self._rounds += 1
        if self._rounds % self.heal_every == 0:
            healing = [
                p
                for p in self._peers.values()
                if p.graylisted_until_ms <= now_ms
                and (p.seed or p.failures or (p.did is not None and missing and missing(p.did)))
            ]
            if healing:
                return healing[int(unit * len(healing))]
        ready = [p for p in self._peers.values() if p.usable(now_ms)]
        if not ready:
            return None
        return ready[int(unit * len(ready))]

    # --- outcomes -------------------------------------------------------------------------

    def succeeded(self, url: str, did: str | None, now_ms: int) -> None:
        """An exchange with ``url`` worked; ``did`` is the peer's, once learnt (a seed's is
        not known until its hey_there names the URL: then only its backoff ends)."""
        peer = self._peers.get(url)
        if peer is None:
            return
        if did is None:
            peer.failures = 0
            peer.retry_at_ms = 0
            return
        if peer.did != did:
            if peer.did is not None:
                self._by_did.pop(peer.did, None)
            other = self._by_did.get(did)
            if other is not None and other != url and not self._peers[other].seed:
                del self._peers[other]
            peer.did = did
            self._by_did[did] = url
        peer.failures = 0
        peer.retry_at_ms = 0
        peer.last_ok_ms = peer.last_heard_ms = now_ms

    def failed(self, url: str, now_ms: int, unit: float) -> None:
        peer = self._peers.get(url)
        if peer is None:
            return
        delay_s = self.backoff.delay(peer.failures, unit)
        peer.failures += 1
        peer.retry_at_ms = now_ms + int(delay_s * 1000)

    def graylist(self, *, did: str | None, url: str | None, until_ms: int) -> None:
        for peer in self._matching(did, url):
            peer.graylisted_until_ms = max(peer.graylisted_until_ms, until_ms)

    def graylisted(self, did: str, now_ms: int) -> bool:
        url = self._by_did.get(did)
        peer = None if url is None else self._peers.get(url)
        return peer is not None and peer.graylisted_until_ms > now_ms

    def _matching(self, did: str | None, url: str | None) -> Iterable[MeshPeer]:
        if url is not None and url in self._peers:
            yield self._peers[url]
        if did is not None:
            by_did = self._by_did.get(did)
            if by_did is not None and by_did != url:
                yield self._peers[by_did]

    # --- views ----------------------------------------------------------------------------

    def by_did(self, did: str) -> MeshPeer | None:
        url = self._by_did.get(did)
        return None if url is None else self._peers.get(url)

    def get(self, url: str) -> MeshPeer | None:
        return self._peers.get(url)

    def __len__(self) -> int:
        return len(self._peers)

    def all(self) -> list[MeshPeer]:
        return list(self._peers.values())
