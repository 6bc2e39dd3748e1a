"""One node process for ``bench/liveness.py``: ``hereabouts up``'s own ``run()``, reporting.

The process is what an operator runs (``hereabouts.up.run``: the node, its HTTP server,
SIGTERM handling that says ``chau``), with two differences:

* the configuration is built here, so the benchmark can choose the preset and the howdy
  spread (``hereabouts up --fast`` cannot keep the production spread);
* the node is a :class:`ReportingNode`, which prints on stdout, with ``time.monotonic()``
  (one clock for every process on a Linux host), the instant it starts and each status
  change it observes. The benchmark reads those lines; nothing else changes.

Lines: ``bench: started T`` and ``bench: change T DID STATUS``, besides ``up``'s own.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
import time

import hereabouts.peers.node
from hereabouts import config as config_module
from hereabouts.config import Config, HowdyConfig
from hereabouts.up import run


class ReportingNode(hereabouts.peers.node.Node):
    """A node that prints its start and its status changes, with monotonic timestamps."""

    async def start(self) -> None:
        print(f"bench: started {time.monotonic():.6f}", flush=True)
        self._reporter = asyncio.create_task(self._report(), name="bench-report")
        await asyncio.sleep(0)  # subscribe to changes before the first event can arrive
        await super().start()

    async def _report(self) -> None:
        async for change in self.changes():
            print(
                f"bench: change {time.monotonic():.6f} {change.did} {change.new.value}",
                flush=True,
            )


def bench_config(
    preset: str,
    home: str,
    name: str,
    broker: str,
    spread: float | None,
    keepalive_s: int | None = None,
    pulses: bool = True,
) -> Config:
    """``production`` or ``fast`` (``testing()``), without discovery jitter, any HTTP port,
    the howdy spread ``spread``, the MQTT keepalive (None keeps the preset's) and pulses on
    or off."""
    make = config_module.testing if preset == "fast" else config_module.production
    base = make(home)
    node = dataclasses.replace(
        base.node, name=name, broker_url=broker, http_port=0, discovery_jitter_max_s=0.0
    )
    if keepalive_s is not None:
        node = dataclasses.replace(node, keepalive_s=keepalive_s)
    howdy = base.howdy if spread is None else HowdyConfig(jitter_max_s=spread)
    pulse = dataclasses.replace(base.pulse, enabled=pulses)
    return base.replace(node=node, howdy=howdy, pulse=pulse)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--broker", required=True, help="mqtt://127.0.0.1:PORT")
    parser.add_argument("--preset", choices=("production", "fast"), default="production")
    parser.add_argument("--howdy-spread", type=float, default=None, metavar="S")
    parser.add_argument("--keepalive", type=int, default=None, metavar="S")
    parser.add_argument("--no-pulses", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(  # as `hereabouts up` does; stderr goes to a file per node
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = bench_config(
        args.preset,
        args.home,
        args.name,
        args.broker,
        args.howdy_spread,
        args.keepalive,
        pulses=not args.no_pulses,
    )
    hereabouts.peers.node.Node = ReportingNode  # type: ignore[misc]  # what up.run() imports
    return asyncio.run(run(config))


if __name__ == "__main__":
    sys.exit(main())
