"""``hereabouts up``: run a node, its HTTP API and dashboard, and optionally demo peers.

Everything one operator needs on one machine, in one process:

* the plaza: ``--broker mqtt://host:port``, or by default the embedded broker on
  127.0.0.1 (started here, or joined if another ``hereabouts up`` already runs one);
* the node, with its identity, ledger and keyring in the home directory;
* the HTTP server (peers, stream, health, metrics, dashboard, presence@2 and relay);
* a re-publisher keeping this node's latest presence@2 document fresh, if it has one;
* the site-presence hub for browsers (``/v1/site``, ``/widget.js``, ``/demo/site``) on its
  own connection to the same plaza, unless the ``presence_v0`` flag is off (``--no-sites``
  or ``HEREABOUTS_PRESENCE_V0=0``); ``--ghost-hard-off`` (flag
  ``presence_ghost_mode_hard_off``) forces ghost mode for every visitor of the hub;
* ``--peers N`` demo nodes in the same process (in-memory ledgers, fresh identities), so a
  newcomer sees a live neighbourhood at once.

SIGINT and SIGTERM stop everything in order: every node says ``chau`` first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
from collections.abc import Mapping
from typing import TYPE_CHECKING

from hereabouts import config as config_module
from hereabouts.config import (
    HTTP_CONNECTIONS_CEILING,
    Config,
    HttpLimits,
    HubConfig,
    NodeConfig,
    RelayConfig,
    SitesConfig,
)
from hereabouts.errors import ConfigError

if TYPE_CHECKING:  # the runtime pieces load only when a node really starts (fast --help)
    from starlette.routing import BaseRoute

    from hereabouts.advert.relay import RelayStore
    from hereabouts.advert.republish import Republisher
    from hereabouts.identity import Identity
    from hereabouts.peers.node import Node
    from hereabouts.sites.hub import SiteHub
    from hereabouts.web.app import HealthCheck

log = logging.getLogger(__name__)

RELAY_DIR = "relay"

PRESENCE_V0_ENV = "HEREABOUTS_PRESENCE_V0"
"""The ``presence_v0`` flag: site presence (the browser hub, widget and demo page) on this
node. On unless set to ``0``, ``false``, ``off`` or ``no``; ``--no-sites`` also turns it off."""


def presence_v0(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> bool:
    """Whether the ``presence_v0`` flag is on for this run."""
    if getattr(args, "no_sites", False):
        return False
    value = (os.environ if env is None else env).get(PRESENCE_V0_ENV, "").strip().lower()
    return value not in ("0", "false", "off", "no")


def parse_http(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``:PORT``) → (host, port)."""
    host, _, port = value.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(f"--http needs HOST:PORT, got {value!r}") from None
    return host or "127.0.0.1", number


def config_from_args(args: argparse.Namespace) -> Config:
    preset = config_module.testing if args.fast else config_module.production
    base = preset(getattr(args, "home", None))
    node: NodeConfig = base.node
    changes: dict[str, object] = {"stealth": args.stealth}
    if args.name:
        changes["name"] = args.name
    if args.broker:
        from hereabouts.peers.node import parse_broker_url

        parse_broker_url(args.broker)  # fail early on a malformed URL
        changes["broker_url"] = args.broker
    if args.broker_port is not None:
        changes["embedded_broker_port"] = args.broker_port
    if args.http:
        changes["http_host"], changes["http_port"] = parse_http(args.http)
    # PRESENCE_* variables tune the browser hub as they tune every site participant.
    node = dataclasses.replace(node, **changes)  # type: ignore[arg-type]
    hub = HubConfig.from_env()
    if getattr(args, "ghost_hard_off", False):
        hub = dataclasses.replace(hub, ghost_mode_hard_off=True)
    # HEREABOUTS_RELAY_* variables tune the relay (quotas, bounds; see RelayConfig), and
    # HEREABOUTS_HTTP_* the HTTP edge (see HttpLimits).
    return base.replace(
        node=node,
        sites=SitesConfig.from_env(),
        hub=hub,
        relay=RelayConfig.from_env(),
        http=HttpLimits.from_env(),
    )


async def _relay(config: Config, node: Node) -> RelayStore:
    """The relay's store, its index built from disk in a thread (it reads every entry
    file once), its counters and gauges in the node's registry."""
    from hereabouts.advert.relay import RelayStore
    from hereabouts.advert.relay_metrics import RelayCollector

    relay = await asyncio.to_thread(
        RelayStore,
        config.home / RELAY_DIR,
        node.did,
        config=config.relay,
        counters=node.counters,
    )
    node.registry.register(RelayCollector(relay))
    return relay


def _advert_routes(config: Config, relay: RelayStore) -> list[BaseRoute]:
    from hereabouts.advert.http import build_advert_routes
    from hereabouts.advert.store import PresenceStore

    store = PresenceStore(config.home)
    return list(build_advert_routes(store=store, relay=relay))


def _republisher(config: Config, identity: Identity) -> Republisher | None:
    """Keep the default alias's document fresh, if this node has published one."""
    from hereabouts.advert.republish import Republisher
    from hereabouts.advert.store import DEFAULT_ALIAS, PresenceStore

    store = PresenceStore(config.home)
    latest = store.latest(DEFAULT_ALIAS) if DEFAULT_ALIAS in store.aliases() else None
    if latest is None:
        return None
    return Republisher(
        identity=identity,
        store=store,
        endpoints=latest["endpoints"],
        relays=latest.get("relays", ()),
        merkle_root=latest["merkle_root"],
        ttl_seconds=latest.get("ttl_seconds"),
    )


def _site_hub(config: Config, node: Node) -> SiteHub:
    """A hub on its own connection to the node's plaza: a transport has one reader, and the
    node's reads only peer topics."""
    from hereabouts.sites.hub import SiteHub
    from hereabouts.transports.mqtt import MqttTransport

    plaza = node.transport
    if not isinstance(plaza, MqttTransport):
        raise ConfigError("the site hub needs an MQTT plaza")
    transport = MqttTransport(node_name=f"{node.name}-sites", settings=plaza.settings)
    return SiteHub(
        transport=transport,
        config=config.sites,
        hub=config.hub,
        wire_limits=config.wire,
        listen_host=config.node.http_host,  # loopback: any origin, unless origins are listed
    )


async def run(config: Config, *, demo_peers: int = 0, sites: bool = True) -> int:
    from hereabouts.identity import Identity
    from hereabouts.ledger import MemoryLedger
    from hereabouts.metrics import Counters
    from hereabouts.peers.keyring import Keyring
    from hereabouts.peers.node import Node
    from hereabouts.web.admission import raise_open_files_limit
    from hereabouts.web.app import create_app
    from hereabouts.web.server import HttpServer

    # Room for the HTTP cap plus everything else, where the hard limit allows it.
    limits = config.http
    raise_open_files_limit((limits.max_connections or HTTP_CONNECTIONS_CEILING) + limits.fd_reserve)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        node = await stack.enter_async_context(Node(config))
        routes = _advert_routes(config, await _relay(config, node))
        health_parts: dict[str, HealthCheck] = {}
        if sites:
            from hereabouts.web.site import build_site_routes

            hub = await stack.enter_async_context(_site_hub(config, node))
            hub.counters.register(node.registry)
            node.registry.register(hub.collector())
            routes += build_site_routes(hub)
            health_parts["sites"] = hub.health
        app = create_app(node, extra_routes=routes, health_parts=health_parts)
        host, port = config.node.http_host, config.node.http_port
        http_counters = Counters()
        http_counters.register(node.registry)
        try:
            server = await stack.enter_async_context(
                HttpServer(app, host=host, port=port, limits=limits, counters=http_counters)
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot serve HTTP on {host}:{port} ({exc.strerror or exc}); "
                "choose another with --http HOST:PORT"
            ) from None
        node.registry.register(server.collector())
        if sites and config.hub.max_connections > server.connection_limit:
            log.warning(
                "the site hub allows %d browsers but HTTP takes at most %d connections; "
                "raise the open-files limit (ulimit -n) or HEREABOUTS_HTTP_MAX_CONNECTIONS",
                config.hub.max_connections,
                server.connection_limit,
            )
        nodes = [node]
        for number in range(1, demo_peers + 1):
            demo = await stack.enter_async_context(
                Node(
                    config,
                    name=f"demo-{number}",
                    identity=Identity.generate(),
                    ledger=MemoryLedger(),
                    keyring=Keyring(),
                    stealth=False,
                    log_changes=False,
                )
            )
            nodes.append(demo)
        republisher = _republisher(config, node.identity)
        tasks = []
        if republisher is not None:
            tasks.append(asyncio.create_task(republisher.run(), name="presence-republisher"))
        print(f"hereabouts: {node.name} ({node.did})", flush=True)
        print(f"hereabouts: plaza {node.transport.state.endpoint}", flush=True)
        print(f"hereabouts: dashboard {server.url}/", flush=True)
        if sites:
            print(f"hereabouts: site presence demo {server.url}/demo/site", flush=True)
        await stop.wait()
        print("hereabouts: stopping (saying chau)…", flush=True)
        for task in tasks:
            task.cancel()
        # Goodbyes first: the HTTP server's shutdown must not delay anyone's chau.
        await asyncio.gather(*(each.stop() for each in nodes))
    return 0


def command(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.peers < 0:
        raise ConfigError("--peers must not be negative")
    config = config_from_args(args)
    return asyncio.run(run(config, demo_peers=args.peers, sites=presence_v0(args)))


def register(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
    home_parent: argparse.ArgumentParser,
) -> None:
    up = commands.add_parser(
        "up",
        parents=[home_parent],
        help="run a presence node with its HTTP API and dashboard",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    up.add_argument("--name", help="this node's name (default: the host name)")
    up.add_argument(
        "--broker",
        metavar="URL",
        help="mqtt://host:port of the plaza (default: the embedded broker on 127.0.0.1:1883)",
    )
    up.add_argument(
        "--broker-port",
        type=int,
        metavar="PORT",
        help="port of the embedded broker on 127.0.0.1, when no --broker (default: 1883)",
    )
    up.add_argument(
        "--http", metavar="HOST:PORT", help="where to serve the API (default: 127.0.0.1:8765)"
    )
    up.add_argument(
        "--stealth", action="store_true", help="listen only: publish nothing, not even a will"
    )
    up.add_argument(
        "--peers", type=int, default=0, metavar="N", help="also run N demo nodes (default: 0)"
    )
    up.add_argument(
        "--fast",
        action="store_true",
        help="short heartbeats and thresholds (seconds, not minutes): for demos and tests",
    )
    up.add_argument(
        "--no-sites",
        action="store_true",
        help="no site presence: no browser hub, widget or demo page (flag presence_v0 off)",
    )
    up.add_argument(
        "--ghost-hard-off",
        action="store_true",
        help="force ghost mode for every visitor of this hub: counts are shown, nobody is "
        "published (flag presence_ghost_mode_hard_off; also "
        "HEREABOUTS_PRESENCE_GHOST_MODE_HARD_OFF=1)",
    )
    up.add_argument("--verbose", action="store_true", help="debug logging")
    up.set_defaults(func=command)
