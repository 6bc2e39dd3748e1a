"""Helpers for node tests: configs on a given broker, waiting for a condition, a wire tap."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable
from pathlib import Path

from hereabouts import config as config_module
from hereabouts.config import Config
from hereabouts.core.effects import Status
from hereabouts.identity import Identity
from hereabouts.ledger import MemoryLedger
from hereabouts.peers.keyring import Keyring
from hereabouts.peers.node import Node
from hereabouts.transports.base import Message, Transport
from hereabouts.transports.mqtt import MqttSettings, MqttTransport

TIMEOUT_S = 30.0
"""Generous: these tests check that things happen, never how fast (benchmarks do that)."""


def test_config(home: Path, *, broker_port: int | None = None) -> Config:
    base = config_module.testing(home)
    broker = None if broker_port is None else f"mqtt://127.0.0.1:{broker_port}"
    return base.replace(node=dataclasses.replace(base.node, broker_url=broker, keepalive_s=2))


test_config.__test__ = False  # type: ignore[attr-defined]  # not a test, despite its name


def light_node(config: Config, name: str, **kwargs: object) -> Node:
    """A node with a fresh identity and in-memory stores, for many nodes in one process."""
    options: dict[str, object] = {
        "identity": Identity.generate(), "ledger": MemoryLedger(), "keyring": Keyring(), **kwargs
    }
    return Node(config, name=name, **options)  # type: ignore[arg-type]


async def wait_until(
    predicate: Callable[[], bool], *, timeout_s: float = TIMEOUT_S, what: str = ""
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what or predicate}")
        await asyncio.sleep(0.05)


def sees(observer: Node, subject_did: str, status: Status) -> bool:
    return observer.status_of(subject_did) is status


class WireTap:
    """A plain MQTT subscriber recording every plaza message (the test's eyes on the wire)."""

    def __init__(self, port: int, topic_filter: str = "hereabouts/v1/plaza/#") -> None:
        self.transport: Transport = MqttTransport(
            node_name="wiretap", settings=MqttSettings(port=port)
        )
        self.topic_filter = topic_filter
        self.messages: list[Message] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> WireTap:
        await self.transport.subscribe(self.topic_filter)
        await self.transport.connect()
        assert await self.transport.wait_connected(TIMEOUT_S)
        self._task = asyncio.create_task(self._collect())
        return self

    async def _collect(self) -> None:
        async for message in self.transport.messages():
            self.messages.append(message)

    async def __aexit__(self, *exc: object) -> None:
        await self.transport.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

