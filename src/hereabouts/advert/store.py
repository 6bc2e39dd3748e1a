"""This node's own published documents on disk: ``<home>/presence/<alias>/<stamp>.json``.

One directory per alias (a node may advertise several faces, e.g. ``default`` and
``public``), one file per issue, named by the file-system-safe form of ``issued_at``
(``20250101T115000Z.json``) so a directory listing sorts in time order. Files hold the
canonical JSON of the signed document plus a newline: byte-stable, so an ``ETag`` derived
from them is stable too.

Writes are atomic (temporary file, fsync, rename, fsync of the directory): a reader, such as
the well-known endpoint, sees the old document or the new one, never half of one. Aliases
are checked so that no alias can name a path outside ``<home>/presence``.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from hereabouts.advert.document import MAX_DOCUMENT_BYTES, decode_presence, encode_presence
from hereabouts.advert.errors import BadAlias, PresenceExists, PresenceOversize, PresenceRejected
from hereabouts.advert.timestamps import file_stamp, parse_file_stamp, parse_time
from hereabouts.errors import StorageError
from hereabouts.files import write_atomically

PRESENCE_DIR = "presence"

#: Alias used when none is given: most nodes advertise one face only.
DEFAULT_ALIAS = "default"

#: Documents kept per alias by :meth:`PresenceStore.prune` unless told otherwise. A handful
#: lets an operator see recent history; the newest is all the protocol itself needs.
DEFAULT_KEEP = 10

_ALIAS = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


#: Line-ending bytes a document file may end with (ours end with one ``\n``; an editor may
#: write ``\r\n``). They are not part of the document.
_TRAILING = b"\r\n"
_TAIL_BYTES = 64  # how much of an oversized file's end is read to leave its line endings out


def read_document_file(path: Path) -> bytes:
    """A document file's bytes without its final line ending, reading at most the size limit
    (plus the line ending). Raises ``OSError``, or :class:`PresenceOversize` naming the
    document's real size (from the file's size, not from the part read)."""
    with path.open("rb") as handle:
        raw = handle.read(MAX_DOCUMENT_BYTES + len(_TRAILING) + 1)
        body = raw.rstrip(_TRAILING)
        if len(raw) <= MAX_DOCUMENT_BYTES + len(_TRAILING):  # the whole file
            if len(body) <= MAX_DOCUMENT_BYTES:
                return body
            size = len(body)
        else:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):  # a pipe or a device: its size is unknown
                raise PresenceOversize(f"document is over {MAX_DOCUMENT_BYTES} bytes")
            handle.seek(max(0, info.st_size - _TAIL_BYTES))
            tail = handle.read(_TAIL_BYTES)
            size = info.st_size - len(tail) + len(tail.rstrip(_TRAILING))
    raise PresenceOversize(f"document is {size} bytes; the limit is {MAX_DOCUMENT_BYTES}")


def check_alias(alias: str) -> str:
    """``alias`` if it is a safe directory name: 1-64 of ``[A-Za-z0-9_.-]``, no leading dot."""
    if not isinstance(alias, str) or not _ALIAS.match(alias):
        raise BadAlias(f"alias {alias!r} must be 1-64 characters of A-Z a-z 0-9 _ . - "
                       "and start with a letter or digit")
    return alias


class PresenceStore:
    """The signed documents this node published, per alias, oldest to newest."""

    def __init__(self, home: Path) -> None:
        self.root = Path(home) / PRESENCE_DIR

    def alias_dir(self, alias: str) -> Path:
        return self.root / check_alias(alias)

    def aliases(self) -> list[str]:
        """Every alias that has a directory, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _ALIAS.match(p.name))

    def path_for(self, alias: str, doc: dict[str, Any]) -> Path:
        """Where the document issued at ``doc['issued_at']`` lives."""
        return self.alias_dir(alias) / f"{file_stamp(doc['issued_at'])}.json"

    def save(self, alias: str, doc: dict[str, Any]) -> Path:
        """Write a signed document; refuses to overwrite an issue of the same second."""
        path = self.path_for(alias, doc)
        if path.exists():
            raise PresenceExists(
                f"{path} already exists: one document per alias per second of issued_at"
            )
        try:
            write_atomically(path, encode_presence(doc) + b"\n")
        except OSError as exc:
            raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from None
        return path

    def paths(self, alias: str) -> list[Path]:
        """The alias's document files, oldest first (their names sort by time)."""
        folder = self.alias_dir(alias)
        if not folder.is_dir():
            return []
        found: list[Path] = []
        for path in folder.glob("*.json"):
            try:
                parse_file_stamp(path.stem)
            except ValueError:
                continue  # not one of ours
            found.append(path)
        return sorted(found)

    def load(self, path: Path) -> dict[str, Any]:
        """Read one document file (parsed, not verified)."""
        try:
            raw = read_document_file(path)
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None
        return decode_presence(raw)

    def documents(self, alias: str) -> Iterator[dict[str, Any]]:
        """The alias's documents newest first; unreadable files are skipped."""
        for path in reversed(self.paths(alias)):
            try:
                yield self.load(path)
            except (StorageError, PresenceRejected):
                continue

    def latest(self, alias: str) -> dict[str, Any] | None:
        """The newest document of the alias, expired or not."""
        return next(self.documents(alias), None)

    def latest_unexpired(self, alias: str, now: datetime) -> dict[str, Any] | None:
        """The newest document still valid at ``now``, or None."""
        doc = self.latest(alias)
        if doc is None:
            return None
        try:
            if parse_time(doc["expires_at"]) > now:
                return doc
        except (KeyError, ValueError):
            pass
        return None

    def prune(self, alias: str, now: datetime, *, keep: int = DEFAULT_KEEP) -> list[Path]:
        """Delete all but the newest ``keep`` files, and expired ones among those kept.

        The newest file is always kept, even expired: it is the anchor the next publish
        proves consistency against. Returns the deleted paths.
        """
        if keep < 1:
            raise ValueError("keep must be at least 1")
        paths = self.paths(alias)
        doomed = paths[:-keep]
        for path in paths[-keep:-1]:
            try:
                if parse_time(self.load(path)["expires_at"]) <= now:
                    doomed.append(path)
            except (StorageError, PresenceRejected, KeyError, ValueError):
                doomed.append(path)
        for path in doomed:
            path.unlink(missing_ok=True)
        return doomed
