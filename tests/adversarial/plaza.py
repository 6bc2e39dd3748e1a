"""An attacker on the plaza: fresh keys, signed lies, and a way to read what nodes believe."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import httpx

from hereabouts.events import AnyEvent, HeyThere
from hereabouts.identity import Identity
from hereabouts.transports.mqtt import MqttSettings, MqttTransport
from hereabouts.transports.topics import plaza_topic
from hereabouts.wire import seal


def now_ms() -> int:
    return int(time.time() * 1000)


def fresh_hey_there(name: str, *, at_ms: int | None = None, **fields: Any) -> bytes:
    """A hey_there from a key made for the occasion."""
    identity = Identity.generate()
    at = now_ms() if at_ms is None else at_ms
    event = HeyThere(
        name=name, did=identity.did, boot_id="flood", at_ms=at, started_at_ms=at, **fields
    )
    return seal(event, identity)


def sealed(event: AnyEvent, identity: Identity) -> bytes:
    return seal(event, identity)


class Attacker:
    """A plain MQTT client publishing whatever it is told to on the plaza."""

    def __init__(self, port: int, name: str = "attacker") -> None:
        self.transport = MqttTransport(node_name=name, settings=MqttSettings(port=port))

    async def __aenter__(self) -> Attacker:
        await self.transport.connect()
        assert await self.transport.wait_connected(30), "the attacker could not connect"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.transport.close()

    async def send(self, kind: str, payload: bytes, *, qos: int = 0) -> None:
        await self.transport.publish(plaza_topic(kind), payload, qos=qos)

    async def flood(
        self, kind: str, payloads: Iterable[bytes], *, per_s: float, qos: int = 0
    ) -> int:
        """Publish ``payloads`` at about ``per_s`` a second; returns how many went out."""
        sent, started = 0, time.monotonic()
        for payload in payloads:
            await self.transport.publish(plaza_topic(kind), payload, qos=qos)
            sent += 1
            ahead = sent / per_s - (time.monotonic() - started)
            if ahead > 0.005:
                await asyncio.sleep(ahead)
        return sent


async def peers_of(url: str) -> dict[str, dict[str, Any]]:
    """A node's ``/v1/peers``, by DID."""
    async with httpx.AsyncClient(timeout=10) as client:
        body = (await client.get(f"{url}/v1/peers")).json()
    return {peer["did"]: peer for peer in body["peers"]}


async def node_of(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as client:
        body: dict[str, Any] = (await client.get(f"{url}/v1/peers")).json()["node"]
    return body


async def health_of(url: str) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{url}/healthz")
    return response.status_code, response.json()


async def metric(url: str, name: str, **labels: str) -> float:
    """One sample of ``/metrics`` (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{url}/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


async def eventually(check: Any, *, timeout_s: float = 60.0, every_s: float = 0.2) -> Any:
    """Await ``check()`` until it returns something true; returns it."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {check}")
        await asyncio.sleep(every_s)
