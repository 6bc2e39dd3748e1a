"""Merkle trees over a node's published index, RFC 6962 style, with both kinds of proof.

Rules this module keeps (RFC 6962 section 2.1, restated in RFC 9162 section 2.1):

* A leaf hashes as ``SHA-256(0x00 ‖ leaf)`` and an inner node as ``SHA-256(0x01 ‖ left ‖
  right)``. The different prefixes stop a leaf from being passed off as an inner node.
* A tree of ``n > 1`` leaves splits at ``k``, the largest power of two below ``n``: the left
  subtree holds the first ``k`` leaves and is perfect, the right one holds the rest. The empty
  tree's root is ``SHA-256()`` of nothing.
* An *inclusion* proof shows one leaf is at a given position of a tree; a *consistency* proof
  shows a tree of ``m`` leaves is a prefix of a tree of ``n >= m`` leaves, i.e. the index only
  grew. presence@2 carries the latter in the ``proof`` field, encoded by
  :class:`ConsistencyProof`.
* Roots are written ``sha256:<64 lower-case hex digits>`` in documents.

Proof generation recurses over the tree the way the RFC defines it; verification walks the
proof bottom-up tracking the node's position (``fn``) and the tree's last position (``sn``),
so it needs no tree at all, only sizes and hashes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hereabouts.advert.errors import PresenceBadProof

HASH_BYTES = 32
ROOT_PREFIX = "sha256:"
EMPTY_ROOT = hashlib.sha256(b"").digest()

#: Longest consistency proof accepted, in hashes. A proof between trees of up to 2^64 leaves
#: has at most about 2 x 64 hashes; anything longer is junk and is refused before hashing.
MAX_PROOF_HASHES = 130

#: Version byte that opens an encoded consistency proof; see :class:`ConsistencyProof`.
PROOF_VERSION = 1
_PROOF_HEADER = struct.Struct(">BQQ")
_ROOT_RE = re.compile(r"\Asha256:[0-9a-f]{64}\Z")


def leaf_hash(leaf: bytes) -> bytes:
    """The hash of one leaf's bytes: ``SHA-256(0x00 ‖ leaf)``."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an inner node: ``SHA-256(0x01 ‖ left ‖ right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def format_root(root: bytes) -> str:
    """A root as documents write it: ``sha256:<hex>``."""
    return ROOT_PREFIX + root.hex()


def parse_root(text: str) -> bytes:
    """The 32 bytes of a ``sha256:<hex>`` root; :class:`ValueError` on any other form."""
    if not isinstance(text, str) or _ROOT_RE.match(text) is None:
        raise ValueError("a Merkle root is 'sha256:' followed by 64 lower-case hex digits")
    return bytes.fromhex(text[len(ROOT_PREFIX) :])


class MerkleTree:
    """An append-only list of leaf hashes that can answer for any of its prefixes.

    Every method takes an optional ``size`` so one tree object serves as both the old and the
    new tree of a consistency proof.
    """

    __slots__ = ("_hashes",)

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._hashes: list[bytes] = list(leaf_hashes)

    @classmethod
    def from_leaves(cls, leaves: Iterable[bytes]) -> MerkleTree:
        """A tree over raw leaf bytes (each is hashed with :func:`leaf_hash`)."""
        return cls(leaf_hash(leaf) for leaf in leaves)

    def append(self, leaf: bytes) -> None:
        self._hashes.append(leaf_hash(leaf))

    @property
    def size(self) -> int:
        return len(self._hashes)

    def leaf_hash_at(self, index: int) -> bytes:
        return self._hashes[index]

    def _check_size(self, size: int | None) -> int:
        chosen = self.size if size is None else size
        if not 0 <= chosen <= self.size:
            raise ValueError(f"size {chosen} is outside this tree (0..{self.size})")
        return chosen

    def _subtree(self, lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return self._hashes[lo]
        k = _split(hi - lo)
        return node_hash(self._subtree(lo, lo + k), self._subtree(lo + k, hi))

    def root(self, size: int | None = None) -> bytes:
        """The root of the first ``size`` leaves (all of them by default)."""
        n = self._check_size(size)
        return EMPTY_ROOT if n == 0 else self._subtree(0, n)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The audit path of leaf ``index`` in the tree of the first ``size`` leaves."""
        n = self._check_size(size)
        if not 0 <= index < n:
            raise ValueError(f"leaf {index} is not in a tree of {n} leaves")
        path: list[bytes] = []
        lo, hi = 0, n
        # Walk down from the root; siblings are collected top-down, the proof lists bottom-up.
        while hi - lo > 1:
            k = _split(hi - lo)
            if index - lo < k:
                path.append(self._subtree(lo + k, hi))
                hi = lo + k
            else:
                path.append(self._subtree(lo, lo + k))
                lo = lo + k
        path.reverse()
        return path

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """The hashes proving the first ``old_size`` leaves are a prefix of ``new_size``."""
        n = self._check_size(new_size)
        m = self._check_size(old_size)
        if m > n:
            raise ValueError("the old tree cannot be larger than the new one")
        if m == 0 or m == n:
            return []
        return self._subproof(m, 0, n, complete=True)

    def _subproof(self, m: int, lo: int, hi: int, *, complete: bool) -> list[bytes]:
        # ``complete`` is true while the old tree's root is itself a node on this path, in
        # which case the verifier already knows it and it is left out of the proof.
        if m == hi - lo:
            return [] if complete else [self._subtree(lo, hi)]
        k = _split(hi - lo)
        if m <= k:
            return [*self._subproof(m, lo, lo + k, complete=complete), self._subtree(lo + k, hi)]
        return [*self._subproof(m - k, lo + k, hi, complete=False), self._subtree(lo, lo + k)]

    def prefix_with_root(self, root: bytes, hint: int | None = None) -> int | None:
        """The size of the prefix whose root is ``root``, or None when no prefix has it.

        Used to find where a previous document's index ends inside today's index without
        storing its size. ``hint`` (a size the caller believes in) is tried first; otherwise
        every prefix root is computed in one pass with a stack of perfect subtrees, which
        costs O(n log n) hashes.
        """
        if root == EMPTY_ROOT:
            return 0
        if hint is not None and 0 < hint <= self.size and self.root(hint) == root:
            return hint
        stack: list[bytes] = []
        for count, h in enumerate(self._hashes, start=1):
            stack.append(h)
            merges = count
            while merges % 2 == 0:  # each trailing zero bit closes one perfect subtree
                right = stack.pop()
                stack.append(node_hash(stack.pop(), right))
                merges //= 2
            folded = stack[-1]
            for left in reversed(stack[:-1]):
                folded = node_hash(left, folded)
            if folded == root:
                return count
        return None


def verify_inclusion(
    leaf_digest: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """True when ``proof`` shows the leaf hashing to ``leaf_digest`` sits at ``index``."""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    acc = leaf_digest
    for sibling in proof:
        if sn == 0:
            return False  # proof longer than the path to the root
        if fn & 1 or fn == sn:
            acc = node_hash(sibling, acc)
            # A right-edge node with no sibling is promoted unchanged: skip those levels.
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            acc = node_hash(acc, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and acc == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True when ``proof`` shows the tree (``old_size``, ``old_root``) is a prefix of the
    tree (``new_size``, ``new_root``)."""
    if old_size < 0 or new_size < old_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        # A power-of-two old tree is a complete left subtree: its root starts the walk.
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:  # climb past the levels where the old tree's last node is a right child
        fn >>= 1
        sn >>= 1
    old_acc = new_acc = path[0]
    for sibling in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            old_acc = node_hash(sibling, old_acc)
            new_acc = node_hash(sibling, new_acc)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            new_acc = node_hash(new_acc, sibling)  # only the new tree extends to the right
        fn >>= 1
        sn >>= 1
    return sn == 0 and old_acc == old_root and new_acc == new_root


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """The ``proof`` field of a presence@2 document.

    Encoding (then standard, padded base64)::

        version   1 byte   always 1
        old_size  8 bytes  unsigned big-endian: leaves in the previous document's index
        new_size  8 bytes  unsigned big-endian: leaves in this document's index
        old_root 32 bytes  the previous document's merkle_root (raw SHA-256)
        hashes   32 bytes each, as many as remain: the RFC 6962 consistency proof

    Carrying ``old_root`` makes the proof checkable from the document alone: a verifier
    checks it against this document's ``merkle_root``, and a follower then only has to
    compare ``old_root`` with the root it saw before.
    """

    old_size: int
    new_size: int
    old_root: bytes
    hashes: tuple[bytes, ...]

    def encode(self) -> str:
        body = _PROOF_HEADER.pack(PROOF_VERSION, self.old_size, self.new_size)
        raw = body + self.old_root + b"".join(self.hashes)
        return base64.b64encode(raw).decode("ascii")

    @classmethod
    def decode(cls, text: str) -> ConsistencyProof:
        """Parse the field; raises :class:`PresenceBadProof` on any malformed input."""
        limit = _PROOF_HEADER.size + HASH_BYTES * (1 + MAX_PROOF_HASHES)
        if not isinstance(text, str) or len(text) > 4 * (limit // 3 + 1):
            raise PresenceBadProof("proof is not a string of acceptable length")
        try:
            raw = base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise PresenceBadProof("proof is not standard base64") from None
        head = _PROOF_HEADER.size
        if len(raw) < head + HASH_BYTES or (len(raw) - head) % HASH_BYTES:
            raise PresenceBadProof("proof has the wrong length for its encoding")
        version, old_size, new_size = _PROOF_HEADER.unpack_from(raw)
        if version != PROOF_VERSION:
            raise PresenceBadProof(f"proof encoding version {version} is not supported")
        if old_size > new_size:
            raise PresenceBadProof("proof claims the index shrank")
        old_root = raw[head : head + HASH_BYTES]
        rest = raw[head + HASH_BYTES :]
        hashes = tuple(rest[i : i + HASH_BYTES] for i in range(0, len(rest), HASH_BYTES))
        if len(hashes) > MAX_PROOF_HASHES:
            raise PresenceBadProof("proof holds too many hashes")
        return cls(old_size, new_size, old_root, hashes)

    def verify(self, new_root: bytes) -> bool:
        """True when this proof links ``old_root`` to ``new_root``."""
        return verify_consistency(
            self.old_size, self.new_size, self.old_root, new_root, self.hashes
        )

    @classmethod
    def between(cls, tree: MerkleTree, old_size: int, new_size: int | None = None) -> (
        ConsistencyProof
    ):
        """The proof from ``tree``'s first ``old_size`` leaves to its first ``new_size``."""
        n = tree.size if new_size is None else new_size
        return cls(old_size, n, tree.root(old_size), tuple(tree.consistency_proof(old_size, n)))
