"""``hereabouts status`` as a real process against a real server, and its table layout."""

from __future__ import annotations

import asyncio
import io
import json
import os
import pty
import signal
import socket
import sys

from starlette.applications import Starlette

from hereabouts.web.cli import use_colour
from hereabouts.web.server import HttpServer
from hereabouts.web.table import (
    age_text,
    display_width,
    render_status,
    short_did,
    terminal_safe,
)
from tests.web.conftest import ALPHA, BRAVO, CHARLIE, T_MS

CLI_TIMEOUT_S = 60.0


async def run_status(*args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hereabouts.cli", "status", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )
    try:
        async with asyncio.timeout(CLI_TIMEOUT_S):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_status_prints_an_aligned_table(server: HttpServer) -> None:
    code, out, err = await run_status("--url", server.url)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("node alpha") and ALPHA in lines[0]
    assert lines[1] == "1 online  1 missing  1 offline"
    header = next(i for i, line in enumerate(lines) if line.startswith("NAME"))
    rows = lines[header + 1 : header + 4]
    assert [row.split()[0] for row in rows] == ["alpha", "bravo", "charlie"]
    status_column = lines[header].index("STATUS")
    assert [row[status_column:].split()[0] for row in rows] == ["ONLINE", "MISSING", "OFFLINE"]
    assert rows[0].startswith("alpha *"), "this node is marked"
    assert short_did(BRAVO) in rows[1]
    assert "* this node" in out


async def test_status_json_prints_what_the_node_sent(server: HttpServer) -> None:
    code, out, err = await run_status("--url", server.url + "/", "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["node"]["did"] == ALPHA
    assert {p["did"] for p in document["peers"]} == {ALPHA, BRAVO, CHARLIE}


async def test_status_says_so_when_no_node_answers() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    code, out, err = await run_status("--url", url)
    assert code == 1
    assert out == ""
    assert err.strip() == f"no hereabouts node answers at {url} — is `hereabouts up` running?"
    assert "Traceback" not in err


async def test_status_says_so_when_something_else_answers() -> None:
    async with HttpServer(Starlette()) as other:
        code, _, err = await run_status("--url", other.url)
    assert code == 1
    assert "answered HTTP 404" in err and "Traceback" not in err


async def test_status_refuses_a_malformed_url() -> None:
    code, _, err = await run_status("--url", "http://127.0.0.1:1:1")
    assert code == 2
    assert "is not a valid URL" in err and "Traceback" not in err


def _interruptible() -> None:
    """In the child, before it runs: Ctrl-C back to its default. A shell running a job in
    the background hands its children SIGINT ignored, and Python then never turns it into
    KeyboardInterrupt, so the command could not be interrupted as the test means to."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def _stop(process: asyncio.subprocess.Process) -> None:
    """Kill ``process`` if it still runs and reap it. ``communicate`` reads both pipes to
    their end: ``wait`` alone never returns while a pipe the test stopped reading is full
    (Python 3.11 waits for the pipes to close as well as for the exit)."""
    if process.returncode is None:
        process.kill()
    await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_S)


async def test_status_watch_repeats_until_interrupted(server: HttpServer) -> None:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hereabouts.cli", "status", "--url", server.url,
        "--watch", "--json", "--interval", "0.2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        preexec_fn=_interruptible,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(CLI_TIMEOUT_S):
            for _ in range(2):  # one JSON document per line, again and again
                assert json.loads(await process.stdout.readline())["node"]["did"] == ALPHA
            process.send_signal(signal.SIGINT)
            await process.communicate()
            assert process.returncode == 0
    finally:
        await _stop(process)


def test_status_sorts_online_first_then_by_name() -> None:
    document = {
        "node": {"name": "alpha", "did": ALPHA},
        "peers": [
            {"name": "zed", "did": CHARLIE, "status": "ONLINE", "last_event": "newspaper",
             "last_event_at_ms": T_MS - 5_000, "restarts": 0},
            {"name": "amy", "did": BRAVO, "status": "OFFLINE", "last_event": "chau",
             "last_event_at_ms": T_MS - 3_600_000, "restarts": 2},
            {"name": "bob", "did": ALPHA, "status": "ONLINE", "last_event": "hey_there",
             "last_event_at_ms": T_MS - 65_000, "restarts": 0, "self": True},
        ],
    }
    lines = render_status(document, now_ms=T_MS)
    table = lines[lines.index(next(line for line in lines if line.startswith("NAME"))) :]
    assert [row.split()[0] for row in table[1:4]] == ["bob", "zed", "amy"]
    assert table[1].split()[:2] == ["bob", "*"]
    assert "1m05s" in table[1] and "5s" in table[2] and "1h00m" in table[3]
    widths = {len(row) for row in table[1:4]}
    assert len(widths) == 1, "rows are aligned"


def test_status_shows_hostile_names_without_obeying_them() -> None:
    name = "evil\x1b[2J\u202ename" + "x" * 100
    lines = render_status({"node": {}, "peers": [{"name": name, "status": "ONLINE"}]}, 0)
    text = "\n".join(lines)
    assert "\x1b" not in text and "\u202e" not in text
    assert "\\u001b[2J\\u202ename" in text
    assert terminal_safe("x" * 50, 10) == "x" * 9 + "…"


def test_ages_read_naturally() -> None:
    assert age_text(10_000, 10_000) == "0s"
    assert age_text(10_000, 20_000) == "0s"  # a clock ahead of ours is not a negative age
    assert age_text(200_000_000, 0) == "2d07h"
    assert age_text(0, None) == ""


def test_a_node_with_no_peers_says_so() -> None:
    assert render_status({"node": {"name": "n"}, "peers": []}, 0)[-1] == "no peers known yet"


async def run_on_a_terminal(*args: str, env: dict[str, str]) -> str:
    """``hereabouts status`` with its stdout on a pseudo-terminal, as a user runs it."""
    leader, follower = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hereabouts.cli", "status", *args,
        stdout=follower, stderr=asyncio.subprocess.DEVNULL, env=env,
    )
    os.close(follower)
    try:
        await asyncio.wait_for(process.wait(), CLI_TIMEOUT_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's other side is closed and drained
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return b"".join(chunks).decode()


async def test_status_is_coloured_on_a_terminal_and_plain_otherwise(server: HttpServer) -> None:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.pop("NO_COLOR", None)
    env["TERM"] = "xterm"
    coloured = await run_on_a_terminal("--url", server.url, env=env)
    assert "\x1b[32mONLINE" in coloured and "\x1b[33mMISSING" in coloured
    assert "─" in coloured, "a rule under the header"
    assert "\x1b[" not in await run_on_a_terminal("--url", server.url, env={**env, "NO_COLOR": "1"})
    code, piped, _ = await run_status("--url", server.url)
    assert code == 0 and "\x1b[" not in piped and "─" not in piped
    code, forced, _ = await run_status("--url", server.url, "--color", "always")
    assert code == 0 and "\x1b[32mONLINE" in forced


def test_colour_follows_the_terminal_and_no_color() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert use_colour("auto", Terminal(), env={"TERM": "xterm"})
    assert not use_colour("auto", Terminal(), env={"TERM": "xterm", "NO_COLOR": "1"})
    assert not use_colour("auto", Terminal(), env={"TERM": "dumb"})
    assert not use_colour("auto", io.StringIO(), env={})
    assert use_colour("always", io.StringIO(), env={"NO_COLOR": "1"})
    assert not use_colour("never", Terminal(), env={})


def test_wide_names_stay_aligned() -> None:
    peers = [
        {"name": "東京の家", "did": ALPHA, "status": "ONLINE", "restarts": 0},
        {"name": "plain", "did": BRAVO, "status": "ONLINE", "restarts": 0},
    ]
    lines = render_status({"node": {}, "peers": peers}, 0)
    header = next(i for i, line in enumerate(lines) if line.startswith("NAME"))
    column = display_width(lines[header][: lines[header].index("STATUS")])
    for row in lines[header + 1 : header + 3]:
        assert display_width(row[: row.index("ONLINE")]) == column, lines
    assert display_width("東京") == 4 and display_width("e\u0301") == 1


def test_status_says_how_each_peer_is_reached() -> None:
    peers = [
        {"name": name, "did": did, "status": "ONLINE", "transport": transport}
        for name, did, transport in (("p", ALPHA, "plaza"), ("m", BRAVO, "mesh"),
                                     ("h", CHARLIE, "hybrid"))
    ]
    lines = render_status({"node": {}, "peers": peers}, 0)
    header = next(line for line in lines if line.startswith("NAME"))
    assert header.split()[:3] == ["NAME", "STATUS", "VIA"]
    via = {line.split()[0]: line.split()[2] for line in lines[lines.index(header) + 1 :]}
    assert via == {"h": "both", "m": "mesh", "p": "plaza"}


def test_status_shows_failure_reports_about_a_peer() -> None:
    peers = [
        {"name": "quiet", "did": ALPHA, "status": "MISSING", "reports": 5},
        {"name": "lied-about", "did": BRAVO, "status": "ONLINE", "reports": 1},
        {"name": "fine", "did": CHARLIE, "status": "ONLINE", "reports": 0},
    ]
    rows = render_status({"node": {}, "peers": peers}, 0)
    assert any(r.startswith("quiet (5 reports)") for r in rows), rows
    assert any(r.startswith("lied-about (1 report) ") for r in rows), rows
    assert not any("fine (" in r for r in rows), rows
