"""Turn what a user publishes (a directory or a list file) into Merkle leaves.

Two forms, chosen by what ``--index PATH`` points at:

* **A directory.** One leaf per regular file below it, ordered by relative path (POSIX
  separators, compared as UTF-8 bytes). A leaf is ``path ‖ 0x00 ‖ SHA-256(content)``: the
  NUL cannot occur in a path, so no two (path, content) pairs give the same leaf bytes.
  Symbolic links are not followed (an index must not silently include files from elsewhere)
  and names starting with ``.`` are skipped (editor swap files, ``.git``).
  Because leaves are sorted, a new file only *appends* to the index when its path sorts
  after every existing one; otherwise no consistency proof exists and none is published.
* **A file.** One leaf per line: the line's UTF-8 bytes without its line ending. Empty lines
  are skipped. Appending lines to such a file is the natural way to keep an index that only
  grows, which is what consistency proofs demonstrate.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from hereabouts.advert.errors import AdvertUsageError
from hereabouts.advert.merkle import MerkleTree

#: Most leaves read from one index. A million leaves hash in about a second and keep the
#: tree's leaf hashes at 32 MB; an index past that belongs in a real log, not a CLI call.
MAX_INDEX_LEAVES = 1_000_000

_READ_CHUNK = 1 << 20


def _file_digest(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.digest()


def leaves_from_directory(root: Path) -> list[bytes]:
    """The leaves of a directory index (see the module docstring for the rules)."""
    found: list[tuple[bytes, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        base = Path(dirpath)
        for name in filenames:
            if name.startswith("."):
                continue
            full = base / name
            if full.is_symlink() or not full.is_file():
                continue
            rel = full.relative_to(root).as_posix().encode("utf-8", "surrogateescape")
            found.append((rel, full))
            if len(found) > MAX_INDEX_LEAVES:
                raise AdvertUsageError(f"{root} holds more than {MAX_INDEX_LEAVES} files")
    found.sort(key=lambda item: item[0])
    return [rel + b"\x00" + _file_digest(full) for rel, full in found]


def leaves_from_file(path: Path) -> list[bytes]:
    """The leaves of a list-file index: one per non-empty line, line ending removed."""
    leaves: list[bytes] = []
    with path.open("rb") as handle:
        for line in handle:
            entry = line.rstrip(b"\r\n")
            if entry:
                leaves.append(entry)
                if len(leaves) > MAX_INDEX_LEAVES:
                    raise AdvertUsageError(f"{path} holds more than {MAX_INDEX_LEAVES} entries")
    return leaves


def load_index(path: str | os.PathLike[str]) -> MerkleTree:
    """The Merkle tree of the index at ``path`` (a directory or a list file)."""
    where = Path(path)
    try:
        if where.is_dir():
            leaves = leaves_from_directory(where)
        elif where.is_file():
            leaves = leaves_from_file(where)
        else:
            raise AdvertUsageError(f"index {where} is neither a file nor a directory")
    except OSError as exc:
        raise AdvertUsageError(f"cannot read index {where}: {exc.strerror or exc}") from None
    return MerkleTree.from_leaves(leaves)
