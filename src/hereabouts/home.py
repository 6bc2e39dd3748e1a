"""One process per home directory: the home lock.

A home holds a node's key, ledger, keyring, published documents and network membership. Two
processes on one home run as one DID: each counts the other's events as its own key used
twice, and their writes to the same files interleave. So whatever writes a home first takes
``<home>/lock``:

* an advisory ``flock`` on that file, exclusive and non-blocking. The operating system drops
  it when the holder ends, however it ends (exit, crash, ``kill -9``), so a stale lock cannot
  exist and nothing ever has to be deleted by hand;
* the file holds the holder's PID, so a refusal can say who holds the home. The file itself
  stays after the holder ends (removing it would let two processes lock two different files
  of the same name); only the ``flock`` says whether the home is held;
* two locks on one home conflict within one process too (``flock`` belongs to the open file,
  not to the process), so two ``Node`` objects on one home in one program are refused the
  same way.

Who takes it: a :class:`~hereabouts.peers.node.Node` that reads its identity, ledger or
keyring from the home (``hereabouts up`` and ``async with Node()``), and the commands that
write the home (``network ...``, ``keys show`` and ``network show`` when they create the
key). Readers take no lock: ``hereabouts status``, ``keys show`` of an existing key,
``advert show`` and ``advert verify``. ``advert publish`` takes it only to create the key:
it writes only ``<home>/presence``, whose files are written whole and which a running node
reads on every request, so publishing beside a running node is how a document gets served.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType

from hereabouts.errors import ConfigError, LocalError
from hereabouts.identity import Identity, key_file_path, load_identity, load_or_create_identity

LOCK_FILE_NAME = "lock"

_PID_BYTES = 32
"""A PID is at most 7 digits on Linux; reading more than this is never needed."""


class HomeInUse(LocalError):
    """Another process (or another node of this one) holds the home."""

    reason = "home_in_use"

    def __init__(self, home: Path, pid: int | None) -> None:
        if pid == os.getpid():
            holder = "by another node of this process"
        elif pid is not None:
            holder = f"by another hereabouts process (PID {pid})"
        else:
            holder = "by another hereabouts process"
        super().__init__(
            f"home {home} is in use {holder}; stop that one first, or give this one its "
            "own home with --home DIR"
        )
        self.home = home
        self.pid = pid


def _os_problem(exc: OSError) -> str:
    return exc.strerror or str(exc)


class HomeLock:
    """The lock on one home; ``acquire`` it, ``release`` it (or use ``with``)."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.path = self.home / LOCK_FILE_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise :class:`HomeInUse`; creates the home (mode 0700) if
        needed, and raises :class:`~hereabouts.errors.ConfigError` if it cannot."""
        if self._fd is not None:
            return
        try:
            self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"cannot use {self.home} as a home ({_os_problem(exc)}); "
                "choose another with --home DIR"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise HomeInUse(self.home, pid) from None
        except OSError as exc:  # a file system without locks: say so rather than run unguarded
            os.close(fd)
            raise ConfigError(
                f"cannot lock {self.path} ({_os_problem(exc)}); a home must be on a file "
                "system that supports flock"
            ) from None
        with contextlib.suppress(OSError):  # the PID is for messages only
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the last descriptor drops the flock

    def __enter__(self) -> HomeLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, _PID_BYTES, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def hold_home(home: Path) -> HomeLock:
    """The lock on ``home``, taken (see the module rules)."""
    lock = HomeLock(home)
    lock.acquire()
    return lock


def identity_of(home: Path) -> tuple[Identity, bool]:
    """The home's identity, ``(identity, created)``: read without a lock when it exists,
    created under the home lock when it does not (so a running node is never given a
    second key file beside it)."""
    try:
        return load_identity(key_file_path(home)), False
    except FileNotFoundError:
        pass
    with HomeLock(home):
        return load_or_create_identity(home)


__all__ = ["LOCK_FILE_NAME", "HomeInUse", "HomeLock", "hold_home", "identity_of"]
