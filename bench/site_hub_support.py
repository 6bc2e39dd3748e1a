"""Parts of ``bench/site_hub.py``: the processes it runs and what it reads from them.

* :class:`Child` — a child process asked by the kernel to die with the benchmark
  (``PR_SET_PDEATHSIG``), stopped with SIGTERM then SIGKILL, its output in a log file;
* :class:`HubProcess` — ``hereabouts up`` on the benchmark's broker, serving ``/v1/site``;
* :class:`SinkProcess` — the baseline, ``bench/site_hub_sink.py``;
* :class:`LoadProcess` — ``bench/site_hub_load.py``, driven by JSON lines on its stdin;
* :func:`scrape` — a ``/metrics`` page as ``{(name, labels): value}``;
* :func:`rss_bytes` and :func:`cpu_seconds` — read from ``/proc/<pid>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from liveness_support import free_port

HERE = Path(__file__).parent
PR_SET_PDEATHSIG = 1
STOP_WAIT_S = 20.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")

Metrics = dict[tuple[str, str], float]


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it when the benchmark's thread dies."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def rss_bytes(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def parse_metrics(text: str) -> Metrics:
    samples: Metrics = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is not None:
            samples[(match[1], match[2] or "")] = float(match[3])
    return samples


def by_label(metrics: Metrics, name: str) -> dict[str, float]:
    """Samples of one metric, keyed by its (single) label's value."""
    return {
        labels.split('"')[1] if '"' in labels else "": value
        for (sample, labels), value in metrics.items()
        if sample == name
    }


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {
        key: value - before.get(key, 0.0)
        for key, value in after.items()
        if value - before.get(key, 0.0)
    }


async def scrape(port: int) -> Metrics:
    async with httpx.AsyncClient(timeout=30.0) as client:
        response = await client.get(f"http://127.0.0.1:{port}/metrics")
        response.raise_for_status()
        return parse_metrics(response.text)


class Child:
    """A child process of the benchmark with its output in ``log_path``."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self.process: asyncio.subprocess.Process | None = None

    async def spawn(
        self, argv: Sequence[str], *, env: dict[str, str] | None = None, pipes: bool = False
    ) -> None:
        with self.log_path.open("ab") as output:
            self.process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipes else output,
                stderr=output,
                preexec_fn=_die_with_parent,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                limit=16 * 1024 * 1024,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def tail(self, chars: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def check(self) -> None:
        if self.process is not None and self.process.returncode is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.process.returncode}; its log ends:\n{self.tail()}"
            )

    async def stop(self, wait_s: float = STOP_WAIT_S) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited in time; never raises."""
        process = self.process
        if process is None:
            return None
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), wait_s)
            except TimeoutError:
                log(f"  {self.name} did not stop within {wait_s:.0f} s: killing it")
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        return process.returncode


class HttpChild(Child):
    """A child serving HTTP on a free port, ready once its ``/metrics`` answers."""

    def __init__(self, name: str, workdir: Path) -> None:
        super().__init__(name, workdir)
        self.port = free_port()

    @property
    def socket_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/site"

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check()
            with contextlib.suppress(httpx.HTTPError):
                await scrape(self.port)
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} did not serve /metrics in {timeout_s:.0f} s")

    async def metrics(self) -> Metrics:
        return await scrape(self.port)


class HubProcess(HttpChild):
    """``hereabouts up`` with its idle peer node and the site hub, on the given broker."""

    async def start(self, broker_url: str, workdir: Path, env: dict[str, str]) -> None:
        binary = Path(sys.executable).with_name("hereabouts")
        command = str(binary) if binary.exists() else shutil.which("hereabouts") or "hereabouts"
        await self.spawn(
            [
                command,
                "up",
                "--home",
                str(workdir / "hub-home"),
                "--broker",
                broker_url,
                "--http",
                f"127.0.0.1:{self.port}",
                "--name",
                "bench-hub",
            ],
            env=env,
        )
        await self.wait_ready()

    async def pids(self) -> list[int]:
        """This process and its hub workers (from ``/healthz``), whose CPU is the hub's."""
        async with httpx.AsyncClient(timeout=10.0) as client:
            health = (await client.get(f"http://127.0.0.1:{self.port}/healthz")).json()
        workers = health.get("sites", {}).get("workers", [])
        return [self.pid] + [w["pid"] for w in workers if w.get("pid")]


def balanced_sources(count: int, workers: int) -> list[str]:
    """``count`` loopback source addresses, as many for each hub worker as for any other
    (the hub sends every connection of one address to the same worker)."""
    from hereabouts.sites.workers import worker_of

    per_worker: list[list[str]] = [[] for _ in range(workers)]
    want = -(-count // workers)
    for last in range(1, 255 * 255):
        host = f"127.0.{last // 255}.{last % 255 + 1}"
        bucket = per_worker[worker_of(host, workers)]
        if len(bucket) < want:
            bucket.append(host)
        if all(len(b) >= want for b in per_worker):
            break
    return [host for group in zip(*per_worker, strict=True) for host in group][:count]


def bare_verify_us(checks: int = 20_000) -> float:
    """CPU microseconds of one libsodium Ed25519 check (``crypto_sign_open``, the call the
    hub makes) on site-heartbeat-sized messages, in this process, now: the cost the hub's
    CPU per heartbeat is compared with."""
    import nacl.bindings
    import nacl.signing

    keys = [nacl.signing.SigningKey.generate() for _ in range(64)]
    body = b'{"kind":"site_heartbeat","did":"did:key:z6Mk' + b"x" * 44 + b'","epoch":1}' * 2
    signed = [(bytes(k.sign(body)), bytes(k.verify_key)) for k in keys]
    started = time.process_time()
    for number in range(checks):
        message, key = signed[number % len(signed)]
        nacl.bindings.crypto_sign_open(message, key)
    return (time.process_time() - started) / checks * 1e6


class SinkProcess(HttpChild):
    async def start(self) -> None:
        await self.spawn([sys.executable, str(HERE / "site_hub_sink.py"), "--port", str(self.port)])
        await self.wait_ready()


class LoadProcess(Child):
    """The load generator; each call sends one command and waits for its one-line reply."""

    async def start(
        self,
        url: str,
        *,
        interval_s: float,
        epoch_s: float,
        spread_s: float,
        sources: list[str] | None = None,
    ) -> None:
        argv = [
            sys.executable,
            str(HERE / "site_hub_load.py"),
            "--url",
            url,
            "--interval-ms",
            str(round(interval_s * 1000)),
            "--duration-ms",
            str(round(epoch_s * 1000)),
            "--spread-ms",
            str(max(1, round(spread_s * 1000))),
            "--sources",
            ",".join(sources or ["127.0.0.1"]),
        ]
        await self.spawn(argv, pipes=True)

    async def call(self, cmd: str, **arguments: Any) -> dict[str, Any]:
        process = self.process
        assert process is not None and process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps({"cmd": cmd, **arguments}).encode() + b"\n")
        await process.stdin.drain()
        line = await process.stdout.readline()
        if not line:
            self.check()
            raise RuntimeError(f"{self.name} closed its output; its log ends:\n{self.tail()}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def quit(self) -> None:
        process = self.process
        if process is not None and process.returncode is None and process.stdin is not None:
            with contextlib.suppress(Exception):
                process.stdin.write(b'{"cmd":"quit"}\n')
                await process.stdin.drain()
                await asyncio.wait_for(process.wait(), 10.0)
        await self.stop()
