"""The spinner: on a terminal only, after a second, and never in the way of log lines."""

from __future__ import annotations

import io
import logging
import time

import pytest

from hereabouts.progress import FRAMES, Spinner, SpinnerAwareHandler, interactive, say


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_spinner_into_a_pipe_or_a_dumb_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = io.StringIO()
    with Spinner("waiting", stream=pipe, delay_s=0):
        time.sleep(0.3)
    assert pipe.getvalue() == ""
    monkeypatch.setenv("TERM", "dumb")
    assert not interactive(Terminal())
    monkeypatch.setenv("TERM", "xterm")
    assert interactive(Terminal())


def test_quick_waits_show_nothing() -> None:
    screen = Terminal()
    with Spinner("waiting", stream=screen, enabled=True, delay_s=1.0):
        time.sleep(0.05)
    assert screen.getvalue() == ""


def test_a_long_wait_spins_and_leaves_a_clean_line() -> None:
    screen = Terminal()
    with Spinner("waiting for the broker", stream=screen, enabled=True, delay_s=0):
        time.sleep(0.35)
    shown = screen.getvalue()
    assert shown.count("waiting for the broker") >= 2, "it turns"
    assert any(frame in shown for frame in FRAMES)
    assert shown.endswith("\r\x1b[K"), "the line is wiped when it ends"


def test_log_lines_and_prints_wipe_the_spinner_first() -> None:
    screen = Terminal()
    handler = SpinnerAwareHandler(screen)
    logger = logging.getLogger("tests.progress")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with Spinner("waiting", stream=screen, enabled=True, delay_s=0):
            time.sleep(0.15)
            logger.warning("something happened")
            say("a printed line", stream=screen)
            time.sleep(0.15)
    finally:
        logger.removeHandler(handler)
    shown = screen.getvalue()
    # Wiped before the record; the print after it starts on a clean line already.
    assert "waiting\r\x1b[Ksomething happened\na printed line\n" in shown
