"""``https://`` mesh peers: a node behind a TLS-terminating proxy, reached only over TLS.

Alpha serves plain HTTP on a port the test keeps to itself and announces
``--mesh-url https://127.0.0.1:<proxy>``: a TLS proxy in this test (a self-signed certificate
for 127.0.0.1, made with ``openssl``) forwards to it. Beta is seeded with that https URL and
trusts the certificate through ``--mesh-ca``. Beta can reach alpha only over TLS, and alpha
learns of beta only from what beta pushes, so both listing each other ONLINE means the TLS
exchanges worked. A beta without ``--mesh-ca`` refuses alpha's certificate and never gets in.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.adversarial.processes import UpProcess
from tests.fixtures.mosquitto import free_port
from tests.mesh.support import eventually, health, start_all, views

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command"),
]


def self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


@contextlib.asynccontextmanager
async def tls_proxy(cert: Path, key: Path, port: int, target_port: int) -> AsyncIterator[None]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", target_port
            )
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=context)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()


async def test_a_mesh_peer_reached_only_over_https(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    proxy = free_port()
    https_url = f"https://127.0.0.1:{proxy}"
    alpha = UpProcess(tmp_path / "alpha", "--name", "alpha", "--no-sites", "--mesh-url",
                      https_url, plaza=False)
    beta = UpProcess(tmp_path / "beta", "--name", "beta", "--no-sites", "--mesh-seed",
                     https_url, "--mesh-ca", str(cert), plaza=False)
    doubter = UpProcess(tmp_path / "doubter", "--name", "doubter", "--no-sites",
                        "--mesh-seed", https_url, plaza=False)
    async with (
        tls_proxy(cert, key, proxy, alpha.http_port),
        contextlib.AsyncExitStack() as stack,
        httpx.AsyncClient(timeout=10) as client,
    ):
        await start_all(stack, [alpha, beta, doubter])

        async def alpha_and_beta() -> str | None:
            seen = await views(client, [alpha, beta])
            ok = all(v.get("alpha") == v.get("beta") == "ONLINE" for v in seen)
            return None if ok else f"views: {seen}"

        await eventually(alpha_and_beta, timeout_s=60)
        assert (await health(client, alpha))["mesh"]["url"] == https_url  # type: ignore[index]
        # The doubter does not trust the private certificate: alpha never hears of it.
        assert "doubter" not in (await views(client, [alpha]))[0]
        doubter_mesh = (await health(client, doubter))["mesh"]
        assert isinstance(doubter_mesh, dict) and doubter_mesh["ok"] is False
