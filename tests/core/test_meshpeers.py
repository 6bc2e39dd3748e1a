"""The mesh's peer book: learning, choosing, backing off, healing, graylisting, bounds."""

from __future__ import annotations

from hereabouts.core.meshmath import propagation_rounds, round_scale
from hereabouts.core.meshpeers import MeshPeers


def book(**kwargs: object) -> MeshPeers:
    return MeshPeers(self_did="did:me", self_url="http://me:1", **kwargs)  # type: ignore[arg-type]


def test_a_node_never_learns_itself_and_a_did_moves_with_its_url() -> None:
    peers = book()
    assert peers.learn("did:me", "http://elsewhere:1", 0) is None
    assert peers.learn("did:x", "http://me:1", 0) is None
    peers.learn("did:a", "http://a:1", 0)
    peers.learn("did:a", "http://a:2", 5)
    assert [p.url for p in peers.all()] == ["http://a:2"]
    assert peers.by_did("did:a") is not None and peers.by_did("did:a").url == "http://a:2"  # type: ignore[union-attr]


def test_choice_is_uniform_over_usable_peers_from_the_draw() -> None:
    peers = book(heal_every=1000)
    for n in range(4):
        peers.learn(f"did:{n}", f"http://{n}:1", 0)
    chosen = [peers.choose(0, unit).did for unit in (0.0, 0.26, 0.51, 0.99)]  # type: ignore[union-attr]
    assert chosen == ["did:0", "did:1", "did:2", "did:3"]


def test_a_failing_peer_backs_off_and_a_success_resets_it() -> None:
    peers = book(heal_every=1000)
    peers.learn("did:a", "http://a:1", 0)
    peers.failed("http://a:1", 0, 0.999)
    assert peers.choose(100, 0.5) is None  # backing off, no other peer
    peer = peers.get("http://a:1")
    assert peer is not None and peer.failures == 1 and peer.retry_at_ms > 100
    peers.succeeded("http://a:1", "did:a", 5_000)
    assert peer.failures == 0 and peers.choose(5_000, 0.5) is peer


def test_heal_rounds_reach_failing_peers_and_seeds_even_while_they_back_off() -> None:
    peers = book(heal_every=4)
    peers.add_seed("http://seed:1")
    peers.learn("did:far", "http://far:1", 0)
    peers.learn("did:near", "http://near:1", 0)
    peers.failed("http://far:1", 0, 0.999)
    peers.failed("http://seed:1", 0, 0.999)
    picks = [peers.choose(10, 0.99) for _ in range(8)]
    normal = [p.url for i, p in enumerate(picks) if (i + 1) % 4 and p is not None]
    healing = [p.url for i, p in enumerate(picks) if not (i + 1) % 4 and p is not None]
    assert set(normal) == {"http://near:1"}
    assert set(healing) <= {"http://seed:1", "http://far:1"} and healing


def test_heal_rounds_also_reach_peers_the_node_sees_missing() -> None:
    peers = book(heal_every=1)
    peers.learn("did:ok", "http://ok:1", 0)
    peers.learn("did:gone", "http://gone:1", 0)
    pick = peers.choose(0, 0.0, missing=lambda did: did == "did:gone")
    assert pick is not None and pick.did == "did:gone"


def test_a_graylisted_peer_is_neither_chosen_nor_healed() -> None:
    peers = book(heal_every=1)
    peers.learn("did:liar", "http://liar:1", 0)
    peers.failed("http://liar:1", 0, 0.5)
    peers.graylist(did="did:liar", url=None, until_ms=1_000)
    assert peers.graylisted("did:liar", 500)
    assert peers.choose(500, 0.0) is None
    assert not peers.graylisted("did:liar", 1_000)


def test_the_book_is_bounded_and_drops_the_longest_failing_first() -> None:
    peers = book(max_peers=3)
    peers.add_seed("http://seed:1")
    peers.learn("did:a", "http://a:1", 0)
    peers.learn("did:b", "http://b:1", 0)
    for _ in range(3):
        peers.failed("http://b:1", 0, 0.5)
    peers.learn("did:c", "http://c:1", 0)
    assert {p.url for p in peers.all()} == {"http://seed:1", "http://a:1", "http://c:1"}
    assert peers.evicted == 1 and peers.by_did("did:b") is None


def test_rounds_stretch_with_log_n_and_propagation_is_log_n_plus_four() -> None:
    assert [round_scale(n) for n in (1, 32, 33, 64, 65, 1000, 10_000)] == [1, 1, 2, 2, 3, 6, 10]
    assert [propagation_rounds(n) for n in (2, 20, 1000, 10_000)] == [5, 9, 14, 18]
