"""Merkle trees: roots against a reference, inclusion and consistency proofs, forgeries."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hereabouts.advert.errors import PresenceBadProof
from hereabouts.advert.merkle import (
    EMPTY_ROOT,
    ConsistencyProof,
    MerkleTree,
    format_root,
    leaf_hash,
    parse_root,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [b"leaf-%d" % i for i in range(64)]
TREE = MerkleTree.from_leaves(LEAVES)


def reference_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 MTH, written straight from its definition."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(
        b"\x01" + reference_root(leaves[:k]) + reference_root(leaves[k:])
    ).digest()


def test_roots_match_the_definition() -> None:
    for n in range(65):
        assert TREE.root(n) == reference_root(LEAVES[:n])
    assert MerkleTree().root() == EMPTY_ROOT


def test_known_vector() -> None:
    # RFC 6962 hashing of the empty leaf and of a two-leaf tree, computed by hand.
    empty_leaf = hashlib.sha256(b"\x00").hexdigest()
    assert leaf_hash(b"").hex() == empty_leaf
    two = MerkleTree.from_leaves([b"a", b"b"]).root()
    expected = hashlib.sha256(
        b"\x01" + hashlib.sha256(b"\x00a").digest() + hashlib.sha256(b"\x00b").digest()
    ).digest()
    assert two == expected


def test_inclusion_every_leaf_every_size() -> None:
    for n in range(1, 65):
        root = TREE.root(n)
        for i in range(n):
            proof = TREE.inclusion_proof(i, n)
            assert verify_inclusion(TREE.leaf_hash_at(i), i, n, proof, root), (i, n)
            assert not verify_inclusion(TREE.leaf_hash_at(i), i, n, proof, TREE.root(n - 1)) or (
                n == 1
            )
            if n > 1:
                other = (i + 1) % n
                assert not verify_inclusion(TREE.leaf_hash_at(other), i, n, proof, root)


def test_consistency_every_size_pair() -> None:
    for n in range(1, 65):
        new_root = TREE.root(n)
        for m in range(0, n + 1):
            proof = TREE.consistency_proof(m, n)
            assert verify_consistency(m, n, TREE.root(m), new_root, proof), (m, n)
            encoded = ConsistencyProof.between(TREE, m, n)
            decoded = ConsistencyProof.decode(encoded.encode())
            assert decoded == encoded and decoded.verify(new_root)
            if 0 < m < n:
                assert not verify_consistency(m, n, TREE.root(m), TREE.root(n - 1) if n > m + 1
                                              else reference_root([b"x"] * n), proof)


def test_diverged_histories_are_inconsistent() -> None:
    other = MerkleTree.from_leaves([*LEAVES[:5], b"rewritten", *LEAVES[6:20]])
    for m in range(6, 20):
        proof = other.consistency_proof(m, 20)
        assert not verify_consistency(m, 20, TREE.root(m), other.root(20), proof)


def test_prefix_search() -> None:
    for m in range(0, 65):
        assert TREE.prefix_with_root(TREE.root(m)) == m
        assert TREE.prefix_with_root(TREE.root(m), hint=m) == m
    assert TREE.prefix_with_root(b"\x00" * 32) is None


def test_root_text_form() -> None:
    root = TREE.root()
    assert parse_root(format_root(root)) == root
    for bad in ("sha256:" + "A" * 64, "sha256:abc", "sha1:" + "0" * 64, root.hex()):
        with pytest.raises(ValueError):
            parse_root(bad)


@pytest.mark.parametrize(
    "blob",
    ["", "AQ==", "not base64", "AgAAAAAAAAABAAAAAAAAAAI=" + "A" * 40, "A" * 9000],
)
def test_malformed_proof_encodings(blob: str) -> None:
    with pytest.raises(PresenceBadProof):
        ConsistencyProof.decode(blob)


def test_shrinking_proof_is_refused() -> None:
    bad = ConsistencyProof(5, 3, b"\x00" * 32, ())
    with pytest.raises(PresenceBadProof):
        ConsistencyProof.decode(bad.encode())


sizes = st.integers(min_value=1, max_value=64).flatmap(
    lambda n: st.tuples(st.integers(min_value=1, max_value=n), st.just(n))
)


@given(
    sizes,
    st.integers(min_value=0, max_value=200),
    st.integers(min_value=0, max_value=255),
)
def test_forged_consistency_proof_fails(
    pair: tuple[int, int], where: int, flip: int
) -> None:
    m, n = pair
    proof = TREE.consistency_proof(m, n)
    if not proof:
        return
    i = where % len(proof)
    forged = list(proof)
    forged[i] = bytes(b ^ (flip or 1) if j == where % 32 else b for j, b in enumerate(proof[i]))
    assert not verify_consistency(m, n, TREE.root(m), TREE.root(n), forged)
    assert not verify_consistency(m, n, TREE.root(m), TREE.root(n), proof[:-1])
    assert not verify_consistency(m, n, TREE.root(m), TREE.root(n), [*proof, proof[0]])
    assert not verify_consistency(m, n, TREE.root(n), TREE.root(n), proof) or m == n


@given(
    st.integers(min_value=1, max_value=64).flatmap(
        lambda n: st.tuples(st.integers(min_value=0, max_value=n - 1), st.just(n))
    ),
    st.integers(min_value=0, max_value=31),
)
def test_forged_inclusion_proof_fails(pair: tuple[int, int], byte: int) -> None:
    i, n = pair
    proof = TREE.inclusion_proof(i, n)
    root = TREE.root(n)
    if proof:
        forged = [bytes(x ^ 0xFF if j == byte else x for j, x in enumerate(proof[0])), *proof[1:]]
        assert not verify_inclusion(TREE.leaf_hash_at(i), i, n, forged, root)
        assert not verify_inclusion(TREE.leaf_hash_at(i), i, n, proof[:-1], root)
    assert not verify_inclusion(leaf_hash(b"forged"), i, n, proof, root)


@given(st.lists(st.binary(max_size=8), min_size=1, max_size=40), st.data())
def test_any_append_is_consistent(leaves: list[bytes], data: st.DataObject) -> None:
    tree = MerkleTree.from_leaves(leaves)
    m = data.draw(st.integers(min_value=0, max_value=len(leaves)))
    proof = ConsistencyProof.between(tree, m)
    assert ConsistencyProof.decode(proof.encode()).verify(tree.root())
    assert tree.root() == reference_root(leaves)
