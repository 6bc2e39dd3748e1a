"""Shared fixtures for the presence@2 tests: keys, a movable clock, a real HTTP server."""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
import rfc8785
import uvicorn

from hereabouts.advert import build_presence
from hereabouts.advert.merkle import MerkleTree, format_root
from hereabouts.identity import Identity

T0 = datetime(2025, 1, 1, 11, 50, 0, tzinfo=UTC)
SEED = bytes(range(32))
ROOT = format_root(MerkleTree.from_leaves([b"one", b"two", b"three"]).root())


def independent_sign(fields: dict[str, Any], seed: bytes, did: str) -> dict[str, Any]:
    """presence@2 signing written from the spec with PyNaCl and rfc8785 only."""
    key = nacl.signing.SigningKey(seed)
    payload = rfc8785.dumps(fields)
    signature = key.sign(payload).signature
    return {
        **fields,
        "id": f"presence:{did}:{fields['issued_at']}",
        "signature": base64.b64encode(signature).decode(),
    }


class Clock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def identity() -> Identity:
    return Identity.from_seed(SEED)


@pytest.fixture
def make_doc(identity: Identity) -> Callable[..., dict[str, Any]]:
    def make(**overrides: Any) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "endpoints": {"mcp": "https://node.example.org:7733"},
            "merkle_root": ROOT,
            "issued_at": T0,
            "lifetime_s": 600,
        }
        who = overrides.pop("identity", identity)
        kwargs.update(overrides)
        return build_presence(who, **kwargs)

    return make


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """``hereabouts ARGS --home HOME`` in a subprocess, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "hereabouts.cli", *args, "--home", str(home)],
        capture_output=True, text=True, timeout=60, check=False,
    )


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` under a real uvicorn server on 127.0.0.1 and a free port; yields its URL.

    The listening socket is bound before the server starts, so there is no race for the
    port, and the server is always shut down on the way out.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
