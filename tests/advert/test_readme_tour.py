"""The README's advert commands, run exactly as printed against a real ``hereabouts up``.

The commands are read out of README.md's "A short tour", so the README cannot drift from
what works. They name the default address (``127.0.0.1:8765``), so the node is started
there; the home directory is the only thing the test chooses (``HEREABOUTS_HOME``, as a
user's shell might set it). The tour runs twice on the same home, back to back: a newcomer
who repeats it must not meet an error either.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.adversarial.processes import UpProcess

README = Path(__file__).resolve().parents[2] / "README.md"
TOUR_HEADING = "## A short tour"
PROGRAM = ".venv/bin/hereabouts"
ADDRESS = ("127.0.0.1", 8765)
PORT_WAIT_S = 60.0


def tour_commands() -> list[list[str]]:
    """Every ``hereabouts advert`` line of the tour's first shell block, as argv lists."""
    text = README.read_text()
    section = text[text.index(TOUR_HEADING):]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match is not None, "the tour has no ```sh block"
    commands = []
    for line in match.group(1).splitlines():
        words = shlex.split(line, comments=True)
        if len(words) > 1 and words[1] == "advert":
            assert words[0] == PROGRAM, line
            commands.append(words)
    return commands


def program() -> list[str]:
    """The ``hereabouts`` that the README's ``.venv/bin/hereabouts`` names, in this venv."""
    script = Path(sys.executable).parent / "hereabouts"
    return [str(script)] if script.exists() else [sys.executable, "-m", "hereabouts.cli"]


def port_is_free() -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(ADDRESS)
        except OSError:
            return False
    return True


@contextmanager
def default_address() -> Iterator[None]:
    """Hold the README's address for this test: one such test at a time on this machine,
    and a clear failure (not a confusing one) when something else listens there."""
    lock_path = Path(tempfile.gettempdir()) / "hereabouts-readme-tour.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        deadline = time.monotonic() + PORT_WAIT_S
        while not port_is_free():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{ADDRESS[0]}:{ADDRESS[1]} is in use; the README's commands name it, "
                    "so stop whatever listens there (a `make run`?) and run this test again"
                )
            time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def test_readme_tour_commands_are_there() -> None:
    commands = tour_commands()
    verbs = [words[2] for words in commands]
    assert "publish" in verbs and "verify" in verbs, verbs
    urls = [w for words in commands for w in words if w.startswith("http://127.0.0.1:")]
    assert urls and all(u.startswith("http://{}:{}/".format(*ADDRESS)) for u in urls), urls


def test_readme_advert_tour_runs_as_printed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "HEREABOUTS_HOME": str(home)}
    commands = tour_commands()
    with default_address():
        node = UpProcess(home, "--http", "{}:{}".format(*ADDRESS))  # the later --http wins
        node.url = "http://{}:{}".format(*ADDRESS)
        node.start()
        try:
            asyncio.run(node.wait_http())
            for round_ in (1, 2):
                for words in commands:
                    result = subprocess.run(
                        [*program(), *words[1:]], env=env, cwd=tmp_path,
                        capture_output=True, text=True, timeout=60, check=False,
                    )
                    said = f"round {round_}: {shlex.join(words)}\n{result.stdout}{result.stderr}"
                    assert result.returncode == 0, said
                    assert "Traceback" not in result.stdout + result.stderr, said
                    if words[2] == "verify":
                        assert "valid presence@2 document" in result.stdout, said
                        endpoints = [w.partition("=") for w in published_endpoints(commands)]
                        for name, _, url in endpoints:
                            assert f"endpoint    {name} = {url}" in result.stdout, said
        finally:
            node.stop()
    assert "Traceback" not in node.output, node.output


def published_endpoints(commands: list[list[str]]) -> list[str]:
    """The ``--endpoint`` values of the tour's publish command."""
    found = []
    for words in commands:
        if words[2] == "publish":
            found += [words[i + 1] for i, w in enumerate(words) if w == "--endpoint"]
    return found
