"""Showing that something is happening: a spinner on stderr, on a terminal only.

A wait longer than a second (the broker at ``hereabouts up``'s start, a node slow to answer
``hereabouts status``, a revocation being published) gets a spinner and a line saying what
it waits for. It is drawn only when stderr is a terminal (never into a pipe, a log file or
CI output) and ``TERM`` is not ``dumb``; it appears only after :data:`SPINNER_DELAY_S`, so
quick operations print nothing extra.

Log records share stderr with it: :class:`SpinnerAwareHandler` wipes the spinner's line
before a record is written, and the spinner draws itself again on its next tick, so the two
never garble each other. The spinner runs in a daemon thread, so it turns in synchronous
code (an HTTP request) and beside an event loop alike.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from types import TracebackType
from typing import Final, TextIO

SPINNER_DELAY_S: Final = 1.0
"""Waits shorter than this show nothing: a spinner that flashes for 100 ms is noise."""

FRAME_S: Final = 0.1
"""Ten frames a second: visibly alive, negligible CPU."""

FRAMES: Final = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

_CLEAR_LINE: Final = "\r\x1b[K"

_lock = threading.Lock()
_active: Spinner | None = None


def interactive(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal that understands cursor movement."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False
    return tty and os.environ.get("TERM", "") != "dumb"


class Spinner:
    """``with Spinner("waiting for X"):`` shows ``⠋ waiting for X`` while the block runs."""

    def __init__(
        self,
        text: str,
        *,
        stream: TextIO | None = None,
        delay_s: float = SPINNER_DELAY_S,
        enabled: bool | None = None,
    ) -> None:
        """``enabled`` defaults to whether ``stream`` (stderr) is a terminal."""
        self.text = text
        self._stream = stream if stream is not None else sys.stderr
        self._delay_s = delay_s
        self.enabled = interactive(self._stream) if enabled is None else enabled
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._shown = False

    def __enter__(self) -> Spinner:
        if self.enabled:
            self._thread = threading.Thread(target=self._spin, name="spinner", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        global _active
        with _lock:
            if _active is self:
                _active = None
            self._wipe()

    def _spin(self) -> None:
        global _active
        if self._done.wait(self._delay_s):
            return
        frame = 0
        while not self._done.is_set():
            with _lock:
                _active = self
                self._write(f"{_CLEAR_LINE}{FRAMES[frame % len(FRAMES)]} {self.text}")
                self._shown = True
            frame += 1
            self._done.wait(FRAME_S)

    def _wipe(self) -> None:
        """Clear the spinner's line (the caller holds the lock)."""
        if self._shown:
            self._write(_CLEAR_LINE)
            self._shown = False

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # the terminal went away: stop drawing, never raise
            self._done.set()


def say(text: str, *, stream: TextIO | None = None) -> None:
    """Print one line (to stdout by default) without garbling an active spinner."""
    with _lock:
        if _active is not None:
            _active._wipe()
        print(text, file=stream if stream is not None else sys.stdout, flush=True)


class SpinnerAwareHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stderr log handler that wipes an active spinner's line before each record."""

    def emit(self, record: logging.LogRecord) -> None:
        with _lock:
            if _active is not None:
                _active._wipe()
            super().emit(record)


__all__ = [
    "FRAMES", "SPINNER_DELAY_S", "Spinner", "SpinnerAwareHandler", "interactive", "say"
]
