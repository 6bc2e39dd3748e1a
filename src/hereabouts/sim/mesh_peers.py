"""The shipped peer book, with its choice of peer found by index instead of by scan.

:meth:`MeshPeers.choose` lists the usable peers of a book (up to 1,024) on every call:
10 million attribute checks per round at 10,000 nodes, the largest single cost of a large
simulation. :class:`IndexedPeers` is the shipped :class:`~hereabouts.core.meshpeers.MeshPeers`
(learning, backoff, graylist, everything but that scan) and finds the same peer from the
same state and draw: the book's peers in their order, minus the few that back off, indexed
directly. It hands the choice back to the shipped scan whenever its shortcut would not be
exact: a graylist, a heal round of a caller that sees someone MISSING, a book that lost a
peer. ``tests/sim/test_mesh_peers.py`` drives both through the same random histories and
compares every choice.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections.abc import Callable

from hereabouts.core.backoff import Backoff
from hereabouts.core.meshpeers import PEER_BACKOFF, MeshPeer, MeshPeers


class IndexedPeers(MeshPeers):
    """:class:`MeshPeers` whose :meth:`choose` skips the scan of every peer."""

    def __init__(
        self,
        *,
        self_did: str,
        self_url: str | None = None,
        max_peers: int = 1024,
        heal_every: int = 4,
        backoff: Backoff = PEER_BACKOFF,
    ) -> None:
        super().__init__(
            self_did=self_did,
            self_url=self_url,
            max_peers=max_peers,
            heal_every=heal_every,
            backoff=backoff,
        )
        self._order: list[MeshPeer] = []
        self._position: dict[str, int] = {}
        self._seeds: list[int] = []
        self._backing: dict[str, MeshPeer] = {}
        """Peers that failed since they last succeeded (``failures`` > 0)."""
        self._exact = True
        """False once the book did something the index does not follow."""

    def _indexed(self) -> bool:
        """Bring the index up to date with the book's peers (which only ever grow here)."""
        peers, order = self._peers, self._order
        if len(peers) == len(order) and self._exact and not self.evicted:
            return True
        if not self._exact or self.evicted or len(peers) < len(order):
            self._exact = False
            return False
        for url in itertools.islice(peers, len(order), None):
            peer = peers[url]
            self._position[url] = len(order)
            if peer.seed:
                self._seeds.append(len(order))
            order.append(peer)
        return True

    def choose(
        self, now_ms: int, unit: float, missing: Callable[[str], bool] | None = None
    ) -> MeshPeer | None:
        heal = (self._rounds + 1) % self.heal_every == 0
        if not self._indexed() or (heal and missing is not None):
            return super().choose(now_ms, unit, missing)
        self._rounds += 1
        order, position = self._order, self._position
        if heal:
            failing = (position[url] for url, peer in self._backing.items() if peer.failures)
            healing = sorted({*self._seeds, *failing})
            if healing:
                return order[healing[int(unit * len(healing))]]
        blocked = sorted(
            position[url] for url, peer in self._backing.items() if peer.retry_at_ms > now_ms
        )
        usable = len(order) - len(blocked)
        if usable <= 0:
            return None
        k = int(unit * usable)
        # The k-th usable peer is at the least p with p = k + (blocked peers up to p).
        at = k
        while True:
            following = k + bisect_right(blocked, at)
            if following == at:
                return order[at]
            at = following

    def learn(self, did: str, url: str, now_ms: int) -> MeshPeer | None:
        moved = self._by_did.get(did)
        if moved is not None and moved != url:
            self._exact = False  # the peer moves to another URL: the order changes
        return super().learn(did, url, now_ms)

    def add_seed(self, url: str) -> None:
        known = url in self._peers
        super().add_seed(url)
        if known:
            self._exact = False  # a peer became a seed after it was indexed

    def failed(self, url: str, now_ms: int, unit: float) -> None:
        super().failed(url, now_ms, unit)
        peer = self._peers.get(url)
        if peer is not None:
            self._backing[url] = peer

    def succeeded(self, url: str, did: str | None, now_ms: int) -> None:
        peers = len(self._peers)
        super().succeeded(url, did, now_ms)
        if len(self._peers) != peers:
            self._exact = False  # another URL of this DID was dropped
        self._backing.pop(url, None)

    def graylist(self, *, did: str | None, url: str | None, until_ms: int) -> None:
        super().graylist(did=did, url=url, until_ms=until_ms)
        self._exact = False


__all__ = ["IndexedPeers"]
