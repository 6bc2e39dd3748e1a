"""Writing files so that a crash never leaves half of one behind.

A reader (or the next start after ``kill -9``) sees either the whole old file or the whole
new one: data goes to a temporary file in the same directory, is flushed to disk, and is then
moved into place in one step; finally the directory itself is flushed, so the move survives a
power cut too.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_directory(directory: Path) -> None:
    """Flush a directory's entries (a rename or link in it) to disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, *, mode: int = 0o644, replace: bool = True) -> None:
    """Put ``data`` at ``path`` all at once, created with permission bits ``mode``.

    ``replace=False`` refuses to overwrite (``FileExistsError``): of two processes racing to
    create the same file, exactly one wins and the other can read the winner's.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if the target exists
    finally:
        tmp.unlink(missing_ok=True)
    fsync_directory(path.parent)
