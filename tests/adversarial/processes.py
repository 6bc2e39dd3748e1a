"""Real ``hereabouts up`` processes for attacks: start, watch CPU and memory, stop.

Attack tests run the node as an operator would, in its own process, so that what they
measure (CPU seconds, resident memory, health, what it publishes) is the product's and not
the test's. Several source addresses on loopback (127.0.0.2, 127.0.0.3, …; Linux routes the
whole 127.0.0.0/8 to ``lo``) stand in for distinct clients.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import httpx

from tests.fixtures.mosquitto import free_port

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


class UpProcess:
    """One ``hereabouts up --fast`` in its own process, with its own home and HTTP port.

    ``broker`` is an ``mqtt://`` URL (a test's Mosquitto); without it the process runs the
    embedded broker on a free port, and with ``plaza=False`` none at all (mesh mode). Extra
    command-line arguments and environment variables pass through. ``prefix`` goes before
    the command (``["ip", "netns", "exec", NS]`` runs it in a network namespace), and
    ``http_host``/``http_port`` say where it serves (default: a free port on 127.0.0.1;
    pass the port for a host whose free ports this process cannot probe). Use as
    ``async with UpProcess(...) as node:``; leaving stops it (SIGTERM, then SIGKILL) and
    keeps its output in :attr:`output`.
    """

    def __init__(
        self,
        home: Path,
        *args: str,
        broker: str | None = None,
        env: dict[str, str] | None = None,
        fast: bool = True,
        plaza: bool = True,
        prefix: Sequence[str] = (),
        http_host: str = "127.0.0.1",
        http_port: int | None = None,
    ) -> None:
        self.home = home
        self.http_port = free_port() if http_port is None else http_port
        self.url = f"http://{http_host}:{self.http_port}"
        command = [*prefix, sys.executable, "-m", "hereabouts.cli", "up", "--home", str(home)]
        if fast:
            command.append("--fast")
        if not plaza:
            command.append("--no-plaza")
        elif broker is None:
            command += ["--broker-port", str(free_port())]
        else:
            command += ["--broker", broker]
        command += ["--http", f"{http_host}:{self.http_port}", *args]
        self.command = command
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.process: subprocess.Popen[str] | None = None
        self.output = ""
        self._log = home / "up.log"

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        with self._log.open("w") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                env=self.env,
            )

    async def wait_http(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until ``/healthz`` answers at all (200 or 503)."""
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self.process is None or self.process.poll() is not None:
                    raise AssertionError(f"hereabouts up exited early:\n{self.read_log()}")
                try:
                    if (await client.get(f"{self.url}/healthz")).status_code in (200, 503):
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"hereabouts up never served HTTP:\n{self.read_log()}")

    def stop(self) -> str:
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT_S)
        self.output = self.read_log()
        return self.output

    def read_log(self) -> str:
        try:
            return self._log.read_text(errors="replace")
        except OSError:
            return ""

    # --- what the operating system says about it ------------------------------------------

    def cpu_seconds(self) -> float:
        """User plus system CPU time the process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S

    def rss_bytes(self) -> int:
        """Resident memory now."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS line")

    async def cpu_share(self, over_s: float = 2.0) -> float:
        """Fraction of one core the process used over the next ``over_s`` seconds."""
        before, started = self.cpu_seconds(), time.monotonic()
        await asyncio.sleep(over_s)
        return (self.cpu_seconds() - before) / (time.monotonic() - started)

    async def wait_idle(
        self, *, below: float = 0.1, over_s: float = 2.0, timeout_s: float = 120.0
    ) -> float:
        """Seconds until the process uses less than ``below`` of a core over ``over_s``."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if await self.cpu_share(over_s) < below:
                return time.monotonic() - started
        raise AssertionError(f"still busy after {timeout_s}s")

    # --- context manager -----------------------------------------------------------------

    async def __aenter__(self) -> UpProcess:
        self.start()
        try:
            await self.wait_http()
        except BaseException:
            self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def client_from(address: str, **kwargs: object) -> httpx.AsyncClient:
    """An HTTP client whose connections come from ``address`` (e.g. ``127.0.0.2``)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(transport=transport, **kwargs)  # type: ignore[arg-type]


def loopback_addresses(count: int, *, first: int = 2) -> Sequence[str]:
    """``count`` distinct loopback source addresses, 127.0.0.2 upwards."""
    return [f"127.0.0.{first + n}" for n in range(count)]
