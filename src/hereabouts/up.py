"""``hereabouts up``: run a node, its HTTP API and dashboard, and optionally demo peers.

Everything one operator needs on one machine, in one process:

* the plaza: ``--broker mqtt[s]://[user@]host:port[,host:port...]`` (repeatable; TLS files
  with ``--broker-ca``, ``--broker-cert`` and ``--broker-key``, the password in the URL or
  in ``HEREABOUTS_BROKER_PASSWORD``; :mod:`hereabouts.broker_url`), or by default the
  embedded broker on 127.0.0.1 (started here, or joined if another ``hereabouts up``
  already runs one);
* the node, with its identity, ledger and keyring in the home directory, which it holds
  (:mod:`hereabouts.home`: a second process on the same home is refused in one line);
* the HTTP server (peers, stream, health, metrics, dashboard, presence@2 and relay);
* a re-publisher keeping this node's latest presence@2 document fresh, if it has one;
* the site-presence hub for browsers (``/v1/site``, ``/widget.js``, ``/demo/site``) on its
  own connection to the same plaza, unless the ``presence_v0`` flag is off (``--no-sites``
  or ``HEREABOUTS_PRESENCE_V0=0``); ``--ghost-hard-off`` (flag
  ``presence_ghost_mode_hard_off``) forces ghost mode for every visitor of the hub;
* ``--peers N`` demo nodes in the same process, so a newcomer sees a live neighbourhood at
  once. Their keys live in ``<home>/demo/demo-<n>.key`` (created once, mode 0600), so every
  run shows the *same* demo peers coming back, never a new key under an old name. Their
  ledgers and keyrings are in memory: what a demo peer thinks of the others is never shown,
  and each run it learns the neighbourhood again from its welcomes in a second.

Every option is checked before anything starts: a value peers or the operating system would
refuse (a name, a port, a broker URL) ends the command in one line.

SIGINT and SIGTERM stop everything in order, and the console says who said goodbye: the demo
peers first (this node still listens, so its ledger records their ``chau`` and the next run
replays them OFFLINE, not ONLINE from the past), then the site hub, then this node, whose
embedded broker goes last so nobody else's connection is cut from under it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from hereabouts import config as config_module
from hereabouts.broker_url import combine_broker_urls, parse_broker_url
from hereabouts.config import (
    HTTP_CONNECTIONS_CEILING,
    Config,
    HttpLimits,
    HubConfig,
    NodeConfig,
    RelayConfig,
    SitesConfig,
    argument_type,
    certificate_file,
)
from hereabouts.errors import ConfigError
from hereabouts.events import check_name
from hereabouts.home import HomeLock
from hereabouts.progress import Spinner, SpinnerAwareHandler, say

if TYPE_CHECKING:  # the runtime pieces load only when a node really starts (fast --help)
    from starlette.routing import BaseRoute

    from hereabouts.advert.relay import RelayStore
    from hereabouts.advert.republish import Republisher
    from hereabouts.identity import Identity
    from hereabouts.peers.node import Node
    from hereabouts.sites.hub import SiteHub
    from hereabouts.sites.workers import HubWorkers
    from hereabouts.web.app import HealthCheck, RoomCounts
    from hereabouts.web.http_protocol import Adopter

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


MAX_DEMO_PEERS = 50
"""Most ``--peers``: each demo peer is a whole node with its own broker connection in this
process. A few make a neighbourhood to look at; for hundreds, run real processes
(``bench/liveness.py``)."""

DEMO_DIR = "demo"
"""Where the demo peers' keys live under the home."""

GOODBYE_WAIT_S = 3.0
"""How long shutdown waits for this node to hear its demo peers' ``chau`` (milliseconds on
one machine) before it says its own; a plaza that went away does not hold up the exit."""


def parse_http(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``[IPv6]:PORT`` → (host, port); port 0 picks a free one."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.strip().isdigit():
        raise ConfigError(f"--http {value!r}: write it as HOST:PORT, or :PORT for 127.0.0.1")
    number = int(port)
    if not 0 <= number <= 65535:
        raise ConfigError(f"--http {value!r}: the port must be in 0-65535 (0 picks a free one)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "127.0.0.1", number


def _port(text: str) -> int:
    """An argparse type: a TCP port to connect to or bind, 1-65535."""
    if not text.strip().isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1-65535)")
    return int(text)


def _workers(text: str) -> int:
    """An argparse type: hub worker processes, 1-:attr:`HubConfig.MAX_WORKERS`."""
    if not text.strip().isdigit() or not 1 <= int(text) <= HubConfig.MAX_WORKERS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a number of processes, 1-{HubConfig.MAX_WORKERS}"
        )
    return int(text)


def _peers(text: str) -> int:
    if not text.strip().isdigit() or int(text) > MAX_DEMO_PEERS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of demo peers (0-{MAX_DEMO_PEERS})"
        )
    return int(text)


def demo_identity(home: Path, number: int) -> Identity:
    """Demo peer ``number``'s key from ``<home>/demo/``, created on first use (mode 0600)."""
    from hereabouts.identity import Identity, load_identity, save_identity

    path = home / DEMO_DIR / f"demo-{number}.key"
    try:
        return load_identity(path)
    except FileNotFoundError:
        pass
    identity = Identity.generate()
    try:
        save_identity(identity, path)  # never overwrites; the home lock is held meanwhile
    except FileExistsError:
        return load_identity(path)
    return identity


def config_from_args(args: argparse.Namespace) -> Config:
    preset = config_module.testing if args.fast else config_module.production
    base = preset(getattr(args, "home", None))
    node: NodeConfig = base.node
    changes: dict[str, object] = {"stealth": args.stealth}
    if args.name is not None:
        changes["name"] = args.name
    if args.broker:
        if args.broker_port is not None:
            raise ConfigError(
                "--broker-port is the embedded broker's port; with --broker, the port is "
                "part of the URL (mqtt://HOST:PORT)"
            )
        combine_broker_urls(args.broker)  # refuses a password variable with no user, now
        # One URL for all the --broker values; a password from the environment stays there.
        changes["broker_url"] = combine_broker_urls(args.broker, env={}).url()
    for flag in ("broker_ca", "broker_cert", "broker_key"):
        if getattr(args, flag, None) is not None:
            changes[flag] = getattr(args, flag)
    if args.broker_port is not None:
        changes["embedded_broker_port"] = args.broker_port
    if args.http:
        changes["http_host"], changes["http_port"] = parse_http(args.http)
    # PRESENCE_* variables tune the browser hub as they tune every site participant.
    node = dataclasses.replace(node, **changes)  # type: ignore[arg-type]
    mesh = dataclasses.replace(
        base.mesh,
        enabled=args.mesh or bool(args.mesh_seed) or args.mesh_url is not None,
        seeds=tuple(args.mesh_seed or ()),
        url=args.mesh_url,
        ca_file=args.mesh_ca,
        plaza=not args.no_plaza,
    )
    if args.no_plaza and (args.broker or args.broker_port is not None):
        raise ConfigError("--no-plaza runs without a broker; drop --broker and --broker-port")
    hub = HubConfig.from_env()
    if getattr(args, "ghost_hard_off", False):
        hub = dataclasses.replace(hub, ghost_mode_hard_off=True)
    if getattr(args, "workers", None) is not None:
        hub = dataclasses.replace(hub, workers=args.workers)
    # HEREABOUTS_RELAY_* variables tune the relay (quotas, bounds; see RelayConfig), and
    # HEREABOUTS_HTTP_* the HTTP edge (see HttpLimits).
    return base.replace(
        node=node,
        sites=SitesConfig.from_env(),
        hub=hub,
        relay=RelayConfig.from_env(),
        http=HttpLimits.from_env(),
        mesh=mesh,
        pulse=dataclasses.replace(base.pulse, enabled=not getattr(args, "no_pulses", False)),
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


def _site_hub(config: Config, node: Node) -> SiteHub | HubWorkers:
    """A hub on its own connection to the node's plaza (a transport has one reader, and the
    node's reads only peer topics); with ``workers`` > 1, that many hub processes."""
    from hereabouts.sites.hub import SiteHub
    from hereabouts.transports.mqtt import MqttTransport

    plaza = node.transport
    if not isinstance(plaza, MqttTransport):
        raise ConfigError("the site hub needs an MQTT plaza")
    if config.hub.workers > 1:
        from hereabouts.sites.workers import HubWorkers

        return HubWorkers(
            config.hub.workers,
            node_name=node.name,
            mqtt=plaza.settings,
            sites=config.sites,
            hub=config.hub,
            wire=config.wire,
            listen_host=config.node.http_host,
        )
    # quiet: the node's own connection already reports this broker's outages, once each.
    transport = MqttTransport(node_name=f"{node.name}-sites", settings=plaza.settings, quiet=True)
    return SiteHub(
        transport=transport,
        config=config.sites,
        hub=config.hub,
        wire_limits=config.wire,
        listen_host=config.node.http_host,  # loopback: any origin, unless origins are listed
    )


async def run(config: Config, *, demo_peers: int = 0, sites: bool = True) -> int:
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
        node = await stack.enter_async_context(Node(config, serves_mesh=config.mesh.on))
        routes = _advert_routes(config, await _relay(config, node))
        if node.mesh is not None:
            from hereabouts.peers.mesh.http import mesh_routes

            routes += mesh_routes(node.mesh)
        if sites and not node.has_plaza:
            say("hereabouts: site presence needs the plaza; it is off in mesh mode")
            sites = False
        health_parts: dict[str, HealthCheck] = {}
        close_hub: Callable[[], Awaitable[None]] | None = None
        rooms: RoomCounts | None = None
        upgrades: dict[str, Adopter] = {}
        if sites:
            from hereabouts.web.site import build_site_routes, site_upgrades

            hub = _site_hub(config, node)
            await stack.enter_async_context(hub)
            close_hub = _once(hub.__aexit__, None, None, None)
            stack.push_async_callback(close_hub)  # a no-op after the ordered shutdown
            hub.counters.register(node.registry)
            node.registry.register(hub.collector())
            routes += build_site_routes()
            upgrades = site_upgrades(hub)
            health_parts["sites"] = hub.health
            rooms = hub.counts
        app = create_app(node, extra_routes=routes, health_parts=health_parts, rooms=rooms)
        host, port = config.node.http_host, config.node.http_port
        http_counters = Counters()
        http_counters.register(node.registry)
        try:
            server = await stack.enter_async_context(
                HttpServer(
                    app,
                    host=host,
                    port=port,
                    limits=limits,
                    counters=http_counters,
                    upgrades=upgrades,
                )
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot serve HTTP on {host}:{port} ({exc.strerror or exc}); "
                "choose another with --http HOST:PORT"
            ) from None
        node.registry.register(server.collector())
        if node.mesh is not None:
            node.advertise_mesh(config.mesh.url or server.url)
        if sites and config.hub.max_connections > server.connection_limit:
            log.warning(
                "the site hub allows %d browsers but HTTP takes at most %d connections; "
                "raise the open-files limit (ulimit -n) or HEREABOUTS_HTTP_MAX_CONNECTIONS",
                config.hub.max_connections,
                server.connection_limit,
            )
        demos: list[Node] = []
        for number in range(1, demo_peers + 1):
            demo = await stack.enter_async_context(
                Node(
                    _demo_config(config, server.url),
                    name=f"demo-{number}",
                    identity=demo_identity(config.home, number),
                    ledger=MemoryLedger(),
                    keyring=Keyring(),
                    stealth=False,
                    log_changes=False,
                )
            )
            demos.append(demo)
        republisher = _republisher(config, node.identity)
        tasks = []
        if republisher is not None:
            tasks.append(asyncio.create_task(republisher.run(), name="presence-republisher"))
        say(f"hereabouts: {node.name} ({node.did})")
        if node.has_plaza:
            say(f"hereabouts: plaza {', '.join(node.transport.state.brokers)}")
        if node.mesh is not None:
            seeds = ", ".join(config.mesh.seeds) or "none yet; others join with --mesh-seed"
            say(f"hereabouts: mesh {node.mesh.url} ({node.mode}; seeds: {seeds})")
        say(f"hereabouts: dashboard {server.url}/")
        if sites:
            say(f"hereabouts: site presence demo {server.url}/demo/site")
            if config.hub.workers > 1:
                say(f"hereabouts: site hub in {config.hub.workers} worker processes")
        if node.has_plaza and not node.transport.state.connected:
            tasks.append(asyncio.create_task(_wait_for_broker(node), name="broker-wait"))
        await stop.wait()
        say("hereabouts: stopping; every node says chau…")
        for task in tasks:
            task.cancel()
        await _goodbyes(node, demos, close_hub)
    return 0


def _once(close: Callable[..., Awaitable[object]], *args: object) -> Callable[[], Awaitable[None]]:
    """``close(*args)``, awaited the first time the result is called and never again."""
    done = False

    async def run_once() -> None:
        nonlocal done
        if not done:
            done = True
            await close(*args)

    return run_once


def _demo_config(config: Config, main_url: str) -> Config:
    """Demo peers join the main node's mesh (as callers: they serve no endpoint)."""
    if not config.mesh.on:
        return config
    return config.replace(mesh=dataclasses.replace(config.mesh, seeds=(main_url,)))


async def _wait_for_broker(node: Node) -> None:
    """A spinner (on a terminal) until the plaza answers; the transport logs each try."""
    endpoint = " or ".join(node.transport.state.brokers)
    with Spinner(f"waiting for the broker at {endpoint} (Ctrl-C to stop)"):
        await node.transport.wait_connected()


async def _goodbyes(
    node: Node, demos: list[Node], close_hub: Callable[[], Awaitable[None]] | None
) -> None:
    """Stop every node in order (see the module docstring) and say who said goodbye."""
    from hereabouts.core.effects import Status

    await asyncio.gather(*(demo.stop() for demo in demos))
    deadline = asyncio.get_running_loop().time() + GOODBYE_WAIT_S
    while any(_said_chau(d) and node.status_of(d.did) is not Status.OFFLINE for d in demos):
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.02)
    for demo in demos:
        say(_goodbye(demo))
    if close_hub is not None:
        await close_hub()
    await node.stop()
    say(_goodbye(node))


def _said_chau(node: Node) -> bool:
    return node.counters.get("events_out", "chau") > 0


def _goodbye(node: Node) -> str:
    if _said_chau(node):
        return f"hereabouts: {node.name} said chau"
    if node.stealth:
        return f"hereabouts: {node.name} left without a word (stealth)"
    if not node.counters.total("events_out") and not node.counters.total("publish_failed"):
        return f"hereabouts: {node.name} left before it had said anything"
    return f"hereabouts: {node.name} could not say chau (no plaza connection)"


def _key_file(text: str) -> str:
    """An argparse type: a file that exists and can be read (a private key)."""
    try:
        with open(text, "rb"):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc.strerror or exc}") from None
    return text


def _mesh_seed(text: str) -> str:
    """``--mesh-seed``'s type: an http(s) URL with a host, and nothing after the port."""
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: its port is not a number in 1-65535") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r}: write it as http://HOST:PORT (or https://)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(f"{text!r}: a node's mesh URL ends after the port")
    return text.rstrip("/")


def check_http(host: str, port: int) -> None:
    """Refuse, before anything starts, an HTTP address this machine cannot listen on (a
    host that does not resolve or is not ours, a port in use or not ours to take)."""
    problem: str | None = None
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
            probe.bind(address)
    except OSError as exc:  # socket.gaierror included
        problem = exc.strerror or str(exc)
    if problem is not None:
        raise ConfigError(
            f"cannot serve HTTP on {host}:{port} ({problem}); choose another with --http HOST:PORT"
        )


def command(args: argparse.Namespace) -> int:
    config = config_from_args(args)  # every option checked before anything starts
    with HomeLock(config.home):
        pass  # a home held by another up says so first (the node takes it for real)
    check_http(config.node.http_host, config.node.http_port)
    handler = SpinnerAwareHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    # One line per mesh exchange would drown the log; failures are counted and in /healthz.
    logging.getLogger("httpx").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    return asyncio.run(run(config, demo_peers=args.peers, sites=presence_v0(args)))


DESCRIPTION = (
    "Run a presence node with its HTTP API and dashboard, and optionally demo peers. "
    "Without --broker it starts an MQTT broker on 127.0.0.1 (or joins the one already "
    "there). Ctrl-C stops it: every node says goodbye (chau) first."
)


def register(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
    home_parent: argparse.ArgumentParser,
) -> None:
    up = commands.add_parser(
        "up",
        parents=[home_parent],
        help="run a presence node with its HTTP API and dashboard",
        description=DESCRIPTION,
    )
    up.add_argument(
        "--name",
        type=argument_type(check_name),
        help="this node's name, 1-64 printable characters (default: the host name)",
    )
    up.add_argument(
        "--broker",
        type=argument_type(parse_broker_url),
        action="append",
        metavar="URL",
        help="the plaza broker: mqtt[s]://[USER[:PASSWORD]@]HOST[:PORT][,HOST[:PORT]...]"
        "[?protocol=3.1.1|5]; several hosts (or a repeated --broker) fail over in order; "
        "the password may come from HEREABOUTS_BROKER_PASSWORD "
        "(default: the embedded broker on 127.0.0.1:1883)",
    )
    up.add_argument(
        "--broker-ca",
        type=certificate_file,
        metavar="FILE",
        help="PEM certificate authorities to check an mqtts:// broker against, instead of "
        "the system's",
    )
    up.add_argument(
        "--broker-cert",
        type=certificate_file,
        metavar="FILE",
        help="PEM client certificate to present to an mqtts:// broker (with --broker-key)",
    )
    up.add_argument(
        "--broker-key",
        type=_key_file,
        metavar="FILE",
        help="PEM private key of --broker-cert",
    )
    up.add_argument(
        "--broker-port",
        type=_port,
        metavar="PORT",
        help="port of the embedded broker on 127.0.0.1, when no --broker (default: 1883)",
    )
    up.add_argument(
        "--http",
        type=argument_type(parse_http),
        metavar="HOST:PORT",
        help="where to serve the API and dashboard; port 0 picks a free one "
        "(default: 127.0.0.1:8765)",
    )
    up.add_argument(
        "--stealth", action="store_true", help="listen only: publish nothing, not even a will"
    )
    up.add_argument(
        "--no-pulses",
        action="store_true",
        help="send and watch no pulses (hangs and cut links are then found only by the "
        "broker's keepalive); for a broker whose access rules forbid hereabouts/v1/pulse/+",
    )
    up.add_argument(
        "--peers",
        type=_peers,
        default=0,
        metavar="N",
        help=f"also run N demo nodes, 0-{MAX_DEMO_PEERS}; their keys stay in the home (default: 0)",
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
    up.add_argument(
        "--workers",
        type=_workers,
        default=None,
        metavar="N",
        help="site hub processes serving browsers (default 1: inside this process; "
        "also PRESENCE_HUB_WORKERS); one per core spreads the signature checks",
    )
    up.add_argument(
        "--mesh",
        action="store_true",
        help="also take part in the HTTP gossip mesh (hybrid mode), serving it on --http",
    )
    up.add_argument(
        "--mesh-seed",
        type=_mesh_seed,
        action="append",
        metavar="URL",
        help="http(s)://HOST:PORT of a mesh node to join through (repeatable; implies --mesh)",
    )
    up.add_argument(
        "--mesh-url",
        type=_mesh_seed,
        metavar="URL",
        help="the mesh URL peers should call, when not the --http address (implies --mesh)",
    )
    up.add_argument(
        "--mesh-ca",
        type=certificate_file,
        metavar="FILE",
        help="PEM certificate authorities to trust for https:// mesh peers, besides the system's",
    )
    up.add_argument(
        "--no-plaza",
        action="store_true",
        help="run without any MQTT broker, on the mesh alone (mesh mode)",
    )
    up.add_argument("--verbose", action="store_true", help="debug logging")
    up.set_defaults(func=command)
