"""Attacks on the HTTP edge of a real ``hereabouts up``: half-sent requests, exhausted files.

The slow-loris attack opens thousands of connections, sends part of a request on each and
never finishes. Each one costs the node a file descriptor for as long as it stays open;
before the header time-out and the connection cap, 2,000 of them took a node running
under the usual limit of 1,024 open files to that limit, for ever, and it answered nobody.

The node runs here under exactly that limit (soft and hard, so it cannot raise it), with
a 2 s header time-out (``HEREABOUTS_HTTP_HEADER_TIMEOUT``) so the test sees the clock run
out quickly; the cap is the one derived from the limit, as in production.
"""

from __future__ import annotations

import asyncio
import resource
import selectors
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hereabouts.config import HttpLimits
from tests.adversarial.processes import UpProcess

ATTACKERS = 2000
"""Half-sent requests per attack."""

OPEN_FILES = 1024
"""The node's limit on open files: the usual default for a service."""

CAP = HttpLimits().connection_cap(OPEN_FILES)
"""The connection cap the node derives from it (768: all but the 256 reserved)."""

HEADER_TIMEOUT_S = 2.0
"""Short, so the test waits seconds; production waits 10 s."""

FD_MARGIN = 64
"""Descriptors a node holds besides its HTTP connections: about 25 at rest (ledger, MQTT,
embedded broker, site hub, event loop), with room for one more of everything."""

WAIT_S = 30.0
"""Generous bound on anything that should take a few seconds."""

HALF_SENT = b"GET /v1/peers HTTP/1.1\r\nhost: 127.0.0.1\r\nuser-agent: slow"

_WITH_OPEN_FILES = (
    "import os, resource, sys; n = int(sys.argv[1]); "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); os.execv(sys.argv[2], sys.argv[2:])"
)


class LimitedUp(UpProcess):
    """``hereabouts up`` under a fixed open-files limit, soft and hard (the process keeps
    its pid: a small Python sets the limit, then execs the node)."""

    def __init__(self, home: Path, *args: str, open_files: int, env: dict[str, str]) -> None:
        super().__init__(home, *args, env=env)
        self.command = [sys.executable, "-c", _WITH_OPEN_FILES, str(open_files), *self.command]

    def open_files(self) -> int:
        return len(list(Path(f"/proc/{self.pid}/fd").iterdir()))


@pytest.fixture
def room_for_attackers() -> Iterator[None]:
    """This test process needs a descriptor per attacking connection: raise its own soft
    limit if it must, and put it back afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = ATTACKERS + 512
    if soft >= needed:
        yield
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"the hard open-files limit ({hard}) is below the {needed} this test needs")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def half_sent_requests(port: int, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
        sock.sendall(HALF_SENT)
        sock.setblocking(False)
        sockets.append(sock)
    return sockets


def wait_until_all_closed(sockets: list[socket.socket], timeout_s: float) -> list[float]:
    """Read every socket until the node closes (or resets) it; when each was closed
    (``time.monotonic()``). Fails if any is still open after ``timeout_s``."""
    started = time.monotonic()
    closed_at: list[float] = []
    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            selector.register(sock, selectors.EVENT_READ)
        while selector.get_map():
            left = timeout_s - (time.monotonic() - started)
            assert left > 0, f"{len(selector.get_map())} half-sent requests still open"
            for key, _ in selector.select(min(left, 1.0)):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    if sock.recv(65536):
                        continue  # a 503 for a refused one: its end follows
                except BlockingIOError:
                    continue
                except OSError:
                    pass  # reset: closed too
                selector.unregister(sock)
                closed_at.append(time.monotonic())
    return closed_at


def samples(metrics: str) -> dict[tuple[str, str], float]:
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            found[(sample.name, sample.labels.get("reason", ""))] = sample.value
    return found


async def fresh_client_gets(url: str, path: str) -> int | str:
    """A status code, or the name of the error if the node hung up at once."""
    async with httpx.AsyncClient(timeout=WAIT_S, trust_env=False) as client:
        try:
            return (await client.get(url + path)).status_code
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError) as exc:
            return type(exc).__name__


async def test_two_thousand_half_sent_requests_are_capped_and_closed(
    tmp_path: Path, room_for_attackers: None
) -> None:
    env = {"HEREABOUTS_HTTP_HEADER_TIMEOUT": str(HEADER_TIMEOUT_S)}
    async with LimitedUp(tmp_path / "node", open_files=OPEN_FILES, env=env) as node:
        async with httpx.AsyncClient(timeout=WAIT_S, trust_env=False) as client:
            before = samples((await client.get(f"{node.url}/metrics")).text)
        assert before[("hereabouts_http_connections_limit", "")] == CAP
        idle_files = node.open_files()

        attack_started = time.monotonic()
        attackers = half_sent_requests(node.http_port, ATTACKERS)
        try:
            peak = idle_files
            for _ in range(10):  # the node takes what it takes within a moment
                peak = max(peak, node.open_files())
                await asyncio.sleep(0.1)
            # Full: a newcomer is turned away at once (503, or a reset if it had already
            # written its request), not left waiting in a queue.
            refused = await fresh_client_gets(node.url, "/healthz")
            assert refused in (503, "RemoteProtocolError", "ReadError"), refused

            closed_at = await asyncio.to_thread(
                wait_until_all_closed, attackers, HEADER_TIMEOUT_S + WAIT_S
            )
        finally:
            for sock in attackers:
                sock.close()

        assert peak <= CAP + FD_MARGIN, (peak, CAP)
        assert len(closed_at) == ATTACKERS
        longest = max(closed_at) - attack_started
        async with asyncio.timeout(WAIT_S):
            while await fresh_client_gets(node.url, "/healthz") != 200:
                await asyncio.sleep(0.1)
        assert await fresh_client_gets(node.url, "/v1/peers") == 200

        async with httpx.AsyncClient(timeout=WAIT_S, trust_env=False) as client:
            after = samples((await client.get(f"{node.url}/metrics")).text)
        admitted = after[("hereabouts_http_timed_out_total", "headers")]
        refused_total = after[("hereabouts_http_refused_total", "at_capacity")]
        # Every attacker was either refused at once or timed out; none is open.
        assert 0 < admitted <= CAP
        assert admitted + refused_total >= ATTACKERS
        assert after[("hereabouts_http_connections", "")] <= 2  # our own, at most
        print(
            f"\nnode files: idle {idle_files}, peak {peak} (cap {CAP}); "
            f"every half-sent request closed within {longest:.1f}s of the attack's start; "
            f"{admitted:.0f} timed out, {refused_total:.0f} refused"
        )
    assert "out of system resource" not in node.output


async def test_out_of_files_for_another_reason_refuses_instead_of_spinning(
    tmp_path: Path, room_for_attackers: None
) -> None:
    # The cap is set far above what the node can open (an operator's mistake, or a leak
    # elsewhere in the process): accept itself runs out of files. Without the spare
    # descriptor asyncio logged a traceback for every waiting connection, on a loop.
    env = {"HEREABOUTS_HTTP_HEADER_TIMEOUT": str(HEADER_TIMEOUT_S)}
    env["HEREABOUTS_HTTP_MAX_CONNECTIONS"] = str(ATTACKERS)
    async with LimitedUp(tmp_path / "node", open_files=256, env=env) as node:
        attackers = half_sent_requests(node.http_port, 600)
        try:
            await asyncio.to_thread(wait_until_all_closed, attackers, HEADER_TIMEOUT_S + WAIT_S)
        finally:
            for sock in attackers:
                sock.close()
        assert node.open_files() < 256
        async with asyncio.timeout(WAIT_S):
            while await fresh_client_gets(node.url, "/healthz") != 200:
                await asyncio.sleep(0.1)
        async with httpx.AsyncClient(timeout=WAIT_S, trust_env=False) as client:
            after = samples((await client.get(f"{node.url}/metrics")).text)
        assert after[("hereabouts_http_refused_total", "out_of_files")] > 0
        assert after[("hereabouts_http_timed_out_total", "headers")] > 0
    assert "out of system resource" not in node.output
