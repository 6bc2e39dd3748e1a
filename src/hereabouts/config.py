"""Every knob hereabouts has, with its default and the reasoning behind it.

Configuration is a tree of frozen dataclasses. Each field's comment says what it does, why the
default is what it is, and what it trades off. Cross-field rules are checked in
``__post_init__`` so an inconsistent configuration cannot be built at all.

Presets start from the production defaults and override a few fields:

* :func:`production` — the defaults below.
* :func:`testing` — fast time-outs and no start-up jitter, for tests and local demos.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hereabouts.broker_url import DEFAULT_MQTT_PORT, parse_broker_url
from hereabouts.errors import ConfigError
from hereabouts.events import check_name

HOME_ENV = "HEREABOUTS_HOME"
DEFAULT_HOME = Path("~/.hereabouts")


def resolve_home(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The home directory: ``--home``, else ``$HEREABOUTS_HOME``, else ``~/.hereabouts``.

    It need not exist yet (whatever writes it first creates it), but it must be able to be a
    directory: a home that is a file, or lies under one, is a :class:`ConfigError` naming
    where the path came from."""
    if explicit:
        chosen, source = explicit, "--home"
    elif os.environ.get(HOME_ENV):
        chosen, source = os.environ[HOME_ENV], f"${HOME_ENV}"
    else:
        chosen, source = DEFAULT_HOME, "the default home"
    home = Path(chosen).expanduser()
    _check_home(home, source)
    return home


def _check_home(home: Path, source: str) -> None:
    """Refuse a home that cannot be a directory: it, or the nearest part of it that
    exists, is something else (a file, a socket)."""
    for part in (home, *home.parents):
        try:
            if part.is_dir():
                return
            if not part.exists():
                continue
        except OSError:  # unreadable on the way: whatever opens the home says why
            return
        what = "is a file" if part == home else f"lies under {part}, which is a file"
        raise ConfigError(
            f"home {home} (from {source}) {what}, not a directory; choose another with --home DIR"
        )


def certificate_file(text: str) -> str:
    """An argparse ``type``: a file that exists and holds PEM certificates (a CA bundle or a
    client certificate), checked by loading it as Python's TLS would."""
    import ssl

    try:
        ssl.create_default_context(cafile=text)
    except FileNotFoundError:
        raise argparse.ArgumentTypeError(f"{text!r}: no such file") from None
    except (OSError, ssl.SSLError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: not PEM certificates ({exc})") from None
    return text


def argument_type(check: Callable[[str], object]) -> Callable[[str], str]:
    """An argparse ``type`` running a check (``parse_broker_url``, ``check_name``, ...) on
    an option's text: the check's ConfigError becomes argparse's one-line message, so
    the command line refuses exactly what the configuration would."""

    def parse(text: str) -> str:
        try:
            check(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    return parse


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{name} must be positive, got {value!r}")


@dataclass(frozen=True, slots=True)
class WireLimits:
    """Limits applied to every sealed event before it is believed."""

    max_event_bytes: int = 16 * 1024
    """Largest sealed event accepted, in bytes. 16 KiB holds a howdy carrying ten signed
    hey_there events (about 600 bytes each) with room to spare, while keeping a flood of
    oversized messages cheap to refuse. MQTT brokers allow far more; this is our own cap."""

    max_future_skew_s: float = 30.0
    """How far an event's timestamp may lie ahead of our clock. NTP-synced hosts agree
    within milliseconds; 30 s tolerates a badly synced laptop without letting a forged
    far-future event win "most recent event wins" for long."""

    def __post_init__(self) -> None:
        _positive("max_event_bytes", self.max_event_bytes)
        if self.max_future_skew_s < 0:
            raise ConfigError("max_future_skew_s must not be negative")


HTTP_CONNECTIONS_CEILING = 4096
"""The most connections a derived :attr:`HttpLimits.max_connections` ever allows, however
many file descriptors the process may open. A connection waiting for its request costs the
node about 5.5 KiB (3,000 half-sent requests added 17 MB), a site hub WebSocket about
26 KiB (docs/benchmarks.md): 4,096 stay within 22 to 104 MiB, and hold four times the site
hub's default 1,000 browsers beside ordinary API clients. A hub allowed more browsers
needs ``HEREABOUTS_HTTP_MAX_CONNECTIONS`` raised with it (``hereabouts up`` warns)."""


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """The HTTP server's edge: how long a connection may take, and how many may be open.

    See :mod:`hereabouts.web.admission` (the cap) and :mod:`hereabouts.web.http_protocol`
    (the time-outs). ``hereabouts up`` reads them from ``HEREABOUTS_HTTP_*`` variables
    (:meth:`from_env`).
    """

    header_timeout_s: float = 10.0
    """``HEREABOUTS_HTTP_HEADER_TIMEOUT``: a request's headers must arrive whole within this
    long of the connection opening, or of the request's first byte on a kept-alive
    connection; otherwise the connection is closed. Real clients send their headers in one
    write, within a round trip even on a poor mobile link; 10 s leaves room for a slow link
    or proxy, while a slow-loris connection holds its slot for 10 s instead of for ever, so
    keeping the server full takes ``max_connections / 10`` new connections every second
    (nginx waits 60 s, Apache 20-40 s; shorter is harsher on bad links)."""

    body_timeout_s: float = 10.0
    """``HEREABOUTS_HTTP_BODY_TIMEOUT``: a request's body must arrive whole within this long
    of its headers. The only bodies the node takes are presence@2 documents of at most
    16 KiB, which need 1.6 KB/s to arrive in time; a body dribbled slower holds a
    connection, and whatever reads it, until it is closed."""

    keep_alive_timeout_s: float = 5.0
    """``HEREABOUTS_HTTP_KEEP_ALIVE_TIMEOUT``: an idle kept-alive connection (a response
    sent, no byte of a next request yet) is closed after this long. Long enough for a page
    to fetch its resources over one connection; short, so idle clients do not hold slots
    (uvicorn's default too)."""

    max_connections: int | None = None
    """``HEREABOUTS_HTTP_MAX_CONNECTIONS``: most connections open at once, WebSockets
    included; past it new ones are refused at once (a canned 503, then closed), never
    queued. ``None`` derives it from the process's limit on open files (soft
    ``RLIMIT_NOFILE``) when the server starts (:meth:`connection_cap`)."""

    fd_reserve: int = 256
    """File descriptors a derived cap leaves for everything else in the process: the
    SQLite ledger (3), the MQTT connections (node and site hub), the embedded broker and
    the nodes connected to it, outgoing presence@2 fetches, log files, the event loop's
    own. A node uses about 20 at rest; 256 leaves room for dozens of local nodes on the
    embedded broker."""

    trusted_proxies: tuple[str, ...] = ()
    """``HEREABOUTS_HTTP_TRUSTED_PROXIES`` (comma-separated addresses or networks): the only
    peers whose ``X-Forwarded-For`` and ``X-Forwarded-Proto`` headers are believed. Per-address
    budgets (the site hub, the relay) need the client's real address; behind a reverse proxy
    every client has the proxy's unless the proxy is listed here. Empty by default: the
    address is the TCP peer's, always (uvicorn alone would believe the header from
    127.0.0.1, which lets any local process claim any address)."""

    def __post_init__(self) -> None:
        _positive("header_timeout_s", self.header_timeout_s)
        _positive("body_timeout_s", self.body_timeout_s)
        _positive("keep_alive_timeout_s", self.keep_alive_timeout_s)
        if self.max_connections is not None:
            _positive("max_connections", self.max_connections)
        if self.fd_reserve < 0:
            raise ConfigError("fd_reserve must not be negative")

    def connection_cap(self, open_files: int) -> int:
        """The connection cap for a process that may open ``open_files`` descriptors.

        ``max_connections`` if set; else ``min(HTTP_CONNECTIONS_CEILING,
        max(open_files - fd_reserve, open_files // 2))``: all but the reserve, and never
        less than half the descriptors when the limit is small (1,024 gives 768; 256 gives
        128). At the cap the HTTP server holds no more descriptors, so ``accept`` cannot
        run the process out of them for the ledger or the plaza.
        """
        if self.max_connections is not None:
            return self.max_connections
        spare = max(open_files - self.fd_reserve, open_files // 2)
        return max(1, min(HTTP_CONNECTIONS_CEILING, spare))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> HttpLimits:
        """Read the ``HEREABOUTS_HTTP_*`` variables (unset or empty means the default)."""
        source = os.environ if env is None else env
        default = cls()
        raw_cap = source.get("HEREABOUTS_HTTP_MAX_CONNECTIONS", "").strip()
        values: dict[str, object] = {
            "header_timeout_s": _env_seconds(
                source, "HEREABOUTS_HTTP_HEADER_TIMEOUT", default.header_timeout_s
            ),
            "body_timeout_s": _env_seconds(
                source, "HEREABOUTS_HTTP_BODY_TIMEOUT", default.body_timeout_s
            ),
            "keep_alive_timeout_s": _env_seconds(
                source, "HEREABOUTS_HTTP_KEEP_ALIVE_TIMEOUT", default.keep_alive_timeout_s
            ),
            "max_connections": (
                _env_int(source, "HEREABOUTS_HTTP_MAX_CONNECTIONS", 0) if raw_cap else None
            ),
            "trusted_proxies": tuple(
                part.strip()
                for part in source.get("HEREABOUTS_HTTP_TRUSTED_PROXIES", "").split(",")
                if part.strip()
            ),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class HeartbeatConfig:
    """The newspaper cadence (driven by the node runtime)."""

    min_interval_s: float = 30.0
    """Interval while booting or after changes nearby: fresh news travels fast."""

    max_interval_s: float = 120.0
    """Quiet-time interval. Longer saves messages (N nodes send N/120 msgs/s) but every
    MISSING threshold must stay at least ``THRESHOLD_FACTOR`` times this."""

    jitter_fraction: float = 0.10
    """Each interval is stretched or shrunk by up to this fraction so nodes started together
    drift apart instead of heartbeating in lock-step."""

    def __post_init__(self) -> None:
        _positive("min_interval_s", self.min_interval_s)
        if self.max_interval_s < self.min_interval_s:
            raise ConfigError("max_interval_s must be at least min_interval_s")
        if not 0 <= self.jitter_fraction < 1:
            raise ConfigError("jitter_fraction must be in [0, 1)")


#: Every MISSING threshold must be at least this many quiet (longest nominal) heartbeat
#: intervals. With 2.5, a peer may lose one heartbeat entirely and have the next one arrive
#: late by up to the ±10% jitter without being marked MISSING (2 x 132 s = 264 s < 300 s). The
#: seed design used a 300 s interval against a 300 s threshold and flapped quiet peers.
THRESHOLD_FACTOR = 2.5


@dataclass(frozen=True, slots=True)
class ProjectionConfig:
    """How statuses are derived from events (see :mod:`hereabouts.core.projection`)."""

    plaza_missing_after_s: float = 300.0
    """A plaza peer that has been silent this long reads as MISSING. Plaza peers heartbeat at
    least every ``max_interval_s`` (120 s), so 300 s is 2.5 intervals. Crashes are normally
    caught far sooner by the broker's ``lost`` will; this is the fallback."""

    mesh_missing_after_s: float = 3600.0
    """The same for peers reachable only over the gossip mesh, whose news travels hop by hop
    and arrives in bursts; an hour keeps them from flapping."""

    reported_missing_after_s: float = 300.0
    """The shortest silence before MISSING once all of a subject's assigned observers report
    it unreachable (:mod:`hereabouts.core.suspicion`; the quorum, three of five, gets three
    quarters of the way from the full threshold down to this). Like the plaza threshold it must
    cover 2.5 quiet heartbeat intervals, so that even lying reporters cannot make a node
    whose heartbeats arrive MISSING."""

    def __post_init__(self) -> None:
        _positive("plaza_missing_after_s", self.plaza_missing_after_s)
        _positive("mesh_missing_after_s", self.mesh_missing_after_s)
        _positive("reported_missing_after_s", self.reported_missing_after_s)


@dataclass(frozen=True, slots=True)
class PulseConfig:
    """Pulses: each plaza node's short, signed, at-most-once beat on
    ``hereabouts/v1/pulse/<did>`` (:mod:`hereabouts.core.pulse`). They catch what the broker
    cannot see at once: a process that hangs with its socket open, and a cut link. A peer
    whose pulses stop for ``missed`` of its intervals reads as MISSING in our view; a node
    whose own pulses stop coming back through the broker knows it is cut off."""

    enabled: bool = True
    """Send and watch pulses. Off, hangs and cuts are caught only when the broker gives up
    the connection (1.5 x the keepalive, and a coarse broker tick: 19-20 s measured)."""

    interval_s: float = 1.0
    """Seconds between our pulses while the plaza is small. Each costs one ~150-byte QoS 0
    publish, delivered to every plaza node: N nodes cost N pulses/s in and N x N deliveries/s
    at the broker. One second, with ``missed`` = 3, sees a hang or a cut within about 3-4 s."""

    missed: int = 3
    """Intervals without a pulse before a peer reads as MISSING (and before we call ourselves
    cut off). Three rides out one lost or late pulse and a loaded machine's scheduling
    hiccups; fewer is faster and flaps sooner."""

    max_received_per_s: float = 200.0
    """Pulses per second each node should receive at most. Past ``max_received_per_s x
    interval_s`` plaza peers, everyone's interval stretches with the number of peers it sees
    (each pulse says its own interval), so the broker carries at most N x this deliveries/s
    and detection slows in proportion: about 3 s per 200 peers."""

    def __post_init__(self) -> None:
        if self.interval_s < 0.5:
            raise ConfigError("pulse.interval_s must be at least 0.5 s, the shortest judged")
        _positive("max_received_per_s", self.max_received_per_s)
        if self.missed < 2:
            raise ConfigError("pulse.missed must be at least 2: one lost pulse is not a hang")


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    """The append-only event store."""

    retention_s: float = 24 * 3600.0
    """Events older than this are pruned (a peer's latest events are always kept). A day
    covers any realistic partition; longer only grows the file. Events older than this are
    also refused on arrival, and pruned ids are remembered (tombstones) until then, so a
    re-gossiped old event is never accepted twice."""

    batch_max_events: int = 512
    """Most events written in one SQLite transaction by batch ingest. Batching amortises the
    commit; 512 keeps a batch's latency well under a millisecond-scale budget."""

    def __post_init__(self) -> None:
        _positive("retention_s", self.retention_s)
        _positive("batch_max_events", self.batch_max_events)


@dataclass(frozen=True, slots=True)
class HowdyConfig:
    """Welcoming newcomers without a thundering herd (see :mod:`hereabouts.core.howdy`)."""

    max_howdys: int = 10
    """A node stops planning a reply once it has seen this many *verified* howdys for the
    same hey_there. Ten replies of ten neighbours each let a newcomer learn up to a hundred
    peers in its first seconds; more only floods it (the seed design allowed 10·N² after a
    broker outage)."""

    max_neighbours: int = 10
    """Most neighbours one howdy lists, each as that neighbour's own signed hey_there."""

    jitter_max_s: float = 3.0
    """Replies are spread over ``[0, jitter_max_s)``, so the first few replies are seen by
    everyone else before their own timers fire. Longer spreads mean fewer surplus replies
    but a slower welcome; 3 s against millisecond broker latency keeps the surplus small."""

    fresh_within_s: float = 60.0
    """A hey_there older than this on arrival is history (replayed or gossiped late), not an
    arrival, and is never answered."""

    rejoin_settled_s: float = 10.0
    """A node that reconnects announces itself again (same boot, next session) so that
    howdys tell it who arrived while it was away. Only nodes whose own plaza connection has
    lasted this long answer such a rejoin: after a broker restart everyone reconnects at
    once, nobody missed anything the others heard, and nobody answers (no howdy storm)."""

    remember: int = 4096
    """How many hey_there ids the coordinator remembers (answered, suppressed or pending), so
    a replayed hey_there triggers nothing. Bounded: the oldest are forgotten first."""

    budget_burst: int = 10
    """Howdys one node may send at once. An ordinary join costs the whole fleet about
    ``max_howdys`` replies, spread over every node, so a node rarely sends more than one in a
    row; a fleet restart costs each node about ``max_howdys`` in all, which this covers.
    Newcomers are fresh keys, so a flood of fresh keys draws on this and nothing more."""

    budget_refill_s: float = 6.0
    """One more howdy may be sent every this many seconds (10 a minute). Bounds what a
    sustained flood of fake newcomers can draw from N nodes to ``N · (burst + t / 6 s)``."""

    def __post_init__(self) -> None:
        _positive("max_howdys", self.max_howdys)
        _positive("max_neighbours", self.max_neighbours)
        _positive("remember", self.remember)
        _positive("budget_burst", self.budget_burst)
        _positive("budget_refill_s", self.budget_refill_s)
        _positive("fresh_within_s", self.fresh_within_s)
        _positive("rejoin_settled_s", self.rejoin_settled_s)
        if self.jitter_max_s < 0:
            raise ConfigError("jitter_max_s must not be negative")


@dataclass(frozen=True, slots=True)
class TrustConfig:
    """Whom a node believes, and how much it keeps about keys that proved nothing
    (see :mod:`hereabouts.core.keys` and docs/security.md)."""

    admit_burst: int = 256
    """Unknown keys admitted at once. A newcomer learns about a hundred peers from its first
    howdys (ten of ten neighbours) and must admit them all; 256 leaves room for the
    heartbeats of the rest of a large fleet arriving meanwhile."""

    admit_per_s: float = 10.0
    """Unknown keys admitted per second, sustained. A newcomer to a fleet of N learns the
    peers its howdys did not name from their heartbeats within one quiet interval (120 s),
    so 10/s covers fleets of about 1,200 without delay; a larger fleet raises it. Events of
    keys past the limit are refused *before* their signature is checked (``admission``),
    which is what keeps a flood of fresh keys cheap."""

    max_unproven: int = 4_096
    """Admitted keys that have not proved themselves yet (the quarantine). When full, the
    least recently heard is forgotten to make room. A flood admitted at ``admit_per_s``
    reaches ``admit_per_s x plaza_missing_after_s`` keys at most (3,000 by default) before the
    silent ones are forgotten, so honest newcomers are not pushed out by it."""

    max_keys: int = 50_000
    """Keys remembered in all, proven or not (a few hundred bytes each). Past it, unknown
    keys are refused (``keys_full``) until some are forgotten."""

    settle_s: float = 600.0
    """A key whose own events reach us across this long, by *our* clock, has proved itself:
    it can hold its name, it counts as a responder that silences other howdys, it leaves the
    quarantine. Ten minutes is several heartbeats for a live node, and long enough that an
    attacker can only prove as many keys as it can keep talking, rate-limited, in the
    quarantine. Arrival times are used because a key chooses the times written in its
    events. Gaps longer than the MISSING threshold reset the clock (the key is forgotten)."""

    forget_after_s: float = 7 * 86_400.0
    """A proven peer silent this long (MISSING or OFFLINE for a week) drops out of the view
    and its events out of the ledger. Unproven keys are forgotten as soon as they fall
    silent for the plaza MISSING threshold instead of being shown MISSING."""

    pin_ttl_s: float = 30 * 86_400.0
    """A proven key's hold on its name lasts this long after it was last heard, so a machine
    can be away for weeks and come back to its name; after that, another key may prove
    itself under the name and hold it."""

    def __post_init__(self) -> None:
        for name in ("admit_burst", "admit_per_s", "max_unproven", "max_keys", "settle_s"):
            _positive(name, getattr(self, name))
        _positive("forget_after_s", self.forget_after_s)
        if self.pin_ttl_s < self.forget_after_s:
            raise ConfigError("pin_ttl_s must be at least forget_after_s")
        if self.max_unproven > self.max_keys:
            raise ConfigError("max_unproven must not exceed max_keys")


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """The asyncio node runtime (see :mod:`hereabouts.peers.node`)."""

    name: str | None = None
    """Display name; default: the machine's host name."""

    broker_url: str | None = field(default=None, repr=False)  # may hold a password
    """The plaza broker: ``mqtt[s]://[user[:password]@]host:port[,host:port...]
    [?protocol=3.1.1|5]`` (:mod:`hereabouts.broker_url`; several hosts fail over in order).
    None runs the embedded broker on 127.0.0.1:``embedded_broker_port``, or joins the one
    already listening there. A password missing from the URL is read from
    ``HEREABOUTS_BROKER_PASSWORD`` when the transport is made."""

    broker_ca: str | None = None
    """A PEM file of certificate authorities to check an ``mqtts://`` broker against,
    instead of the system's (``--broker-ca``): for a broker with a private CA."""

    broker_cert: str | None = None
    """A PEM client certificate to present to an ``mqtts://`` broker (``--broker-cert``),
    for brokers that authenticate clients by certificate; needs ``broker_key``."""

    broker_key: str | None = None
    """The PEM private key of ``broker_cert`` (``--broker-key``)."""

    embedded_broker_port: int = DEFAULT_MQTT_PORT
    """The standard MQTT port, bound to 127.0.0.1 only."""

    http_host: str = "127.0.0.1"
    """Where the node's HTTP API and dashboard listen; loopback unless you choose otherwise."""

    http_port: int = 8765
    """HTTP port; 0 picks a free one."""

    discovery_jitter_max_s: float = 5.0
    """Wait uniform ``[0, this)`` before the first hey_there, so machines booted together
    (a rack after a power cut) do not announce in the same instant."""

    keepalive_s: int = 10
    """MQTT keepalive. The broker declares a silent connection dead after 1.5x this and
    publishes its ``lost`` will: 19-20 s after a SIGSTOP on Mosquitto, which checks on a
    coarse tick (docs/benchmarks.md). Pulses (:class:`PulseConfig`) catch hangs and cut
    links in 3-4 s; the keepalive remains the backstop. A crash needs no keepalive: its
    socket closes and the will goes out at once."""

    stealth: bool = False
    """Listen and build the full view, but publish nothing at all, not even a will."""

    rate_limit_per_s: float = 5.0
    """Sustained events per second accepted from one emitter; a heartbeat every 30 s plus
    a burst of howdys stays far below it."""

    rate_limit_burst: int = 50
    """Events one emitter may send at once before the rate limit applies."""

    first_sync_s: float = 5.0
    """The node reports itself as booting (``/healthz``) until ``max_howdys`` welcomes arrive
    or this long after its hey_there, whichever comes first."""

    prune_every_s: float = 600.0
    """How often retention runs over the ledger."""

    def __post_init__(self) -> None:
        if self.name is not None:
            check_name(self.name)  # what peers would refuse is refused here, not on the wire
        self._check_broker()
        if self.discovery_jitter_max_s < 0:
            raise ConfigError("discovery_jitter_max_s must not be negative")
        _positive("keepalive_s", self.keepalive_s)
        _positive("rate_limit_per_s", self.rate_limit_per_s)
        _positive("rate_limit_burst", self.rate_limit_burst)
        _positive("prune_every_s", self.prune_every_s)
        if not 0 <= self.http_port <= 65535:
            raise ConfigError(
                f"http_port must be in 0-65535 (0 picks a free port), got {self.http_port}"
            )
        if not 1 <= self.embedded_broker_port <= 65535:
            raise ConfigError(
                f"embedded_broker_port must be in 1-65535, got {self.embedded_broker_port}"
            )

    def _check_broker(self) -> None:
        """The URL parses; TLS files go with an ``mqtts://`` URL, a certificate with its key."""
        tls_files = [
            flag
            for flag, value in (
                ("--broker-ca", self.broker_ca),
                ("--broker-cert", self.broker_cert),
                ("--broker-key", self.broker_key),
            )
            if value is not None
        ]
        if self.broker_url is None:
            if tls_files:
                raise ConfigError(f"{tls_files[0]} needs an mqtts:// broker (--broker mqtts://...)")
            return
        url = parse_broker_url(self.broker_url)
        if tls_files and not url.tls:
            raise ConfigError(
                f"{tls_files[0]} is for TLS, but the broker URL {url.redacted()!r} is "
                "mqtt://; write mqtts:// to use TLS"
            )
        if (self.broker_cert is None) != (self.broker_key is None):
            raise ConfigError("--broker-cert and --broker-key go together: give both or neither")


def _env_number(
    env: Mapping[str, str], name: str, default: float, *, what: str = "a number"
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {what}, got {raw!r}") from None


def _env_seconds(env: Mapping[str, str], name: str, default: float) -> float:
    return _env_number(env, name, default, what="a number of seconds")


def _env_optional_seconds(env: Mapping[str, str], name: str) -> float | None:
    """A number of seconds, or None when the variable is unset or empty."""
    if not env.get(name, "").strip():
        return None
    return _env_seconds(env, name, 0.0)


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


@dataclass(frozen=True, slots=True)
class SitesConfig:
    """Site presence: visitors counted per room under rotating ephemeral DIDs.

    See ``docs/site-presence.md`` and :mod:`hereabouts.core.sites` for the maths. Every
    participant of a room must use the same ``did_duration_s``: epochs are
    ``floor(unix time / did_duration_s)`` and heartbeats of another epoch length are refused.
    """

    did_duration_s: float = 300.0
    """``PRESENCE_DID_DURATION``: length of an epoch; each visitor uses a fresh key per room
    per epoch. Shorter limits how long one pseudonym can be followed; longer costs fewer
    rotations. Every room rotates at the same wall-clock instants, so old and new DIDs cannot
    be linked by *when* they changed."""

    heartbeat_interval_s: float = 10.0
    """``PRESENCE_HEARTBEAT_INTERVAL``: a visitor re-announces itself this often. A room of N
    visitors costs N/10 messages per second to every watcher."""

    stale_timeout_s: float = 30.0
    """``PRESENCE_STALE_TIMEOUT``: a DID silent this long is no longer counted (a visitor who
    vanished without a signed leave). Three heartbeats: one lost heartbeat does not flap."""

    ghost_mode_default: bool = False
    """``PRESENCE_GHOST_MODE_DEFAULT``: ghost mode for a home that has never set it. Once the
    visitor sets it, the persisted choice wins."""

    min_count: int = 0
    """``PRESENCE_MIN_COUNT``: k-anonymity floor. Counts below it leave the process only as
    "fewer than k". 0 or 1 disables the floor."""

    rotation_spread_s: float = None  # type: ignore[assignment]  # None: derived, see below
    """``PRESENCE_ROTATION_SPREAD``: after an epoch boundary each visitor sends its first
    heartbeat of the new epoch, with its new key, at a uniform random instant within this
    of the boundary. The order of new DIDs then says nothing about the order of old ones.

    Default (unset): one heartbeat interval. The first heartbeat of the new epoch then
    simply takes the place of the regular one each visitor would have sent anyway, and a
    hub receives the steady rate straight through every boundary; a spread of ``J`` brings
    all N visitors' first heartbeats within ``J``, ``H / J`` times the steady rate (ten
    times at 1 s). It follows ``heartbeat_interval_s`` when only that is changed. Where the
    stale timeout or the epoch leave no room for a whole interval, it is the widest spread
    they admit, ``min(H, S - H - 2 x skew, D/2 - skew)`` (the rules below), and the boundary
    brings ``H / J`` times the steady rate again: raise the stale timeout to
    ``2 x (H + skew)`` to keep it level.

    The trade-off is the settle window, ``this + max_clock_skew_s`` (13 s by default):
    counters show ``max(live(e), live(e-1))`` that long after each boundary, and in it an
    arrival or a departure may be shown late, until the window closes (see
    :mod:`hereabouts.core.sites`). Set explicitly, it must be positive, at most
    ``heartbeat_interval_s``, and fit the settle rules, or the config is refused."""

    max_clock_skew_s: float = 3.0
    """``PRESENCE_MAX_CLOCK_SKEW``: clock disagreement (plus delivery latency) between
    visitors that counts stay exact through. Counters fall back to the previous epoch's
    count for ``rotation_spread_s + max_clock_skew_s`` after each boundary (the settle
    window). It is also how far ahead of our clock a heartbeat may be dated."""

    max_room_participants: int = 100_000
    """Most DIDs one room's epoch holds; more are refused (``room_full``). Keys are free, so
    this bounds memory, not Sybil counts (see the docs)."""

    @property
    def settle_s(self) -> float:
        """After a boundary, how long the previous epoch's count still stands in."""
        return self.rotation_spread_s + self.max_clock_skew_s

    def widest_spread_s(self) -> float:
        """The widest rotation spread these timings admit, up to one heartbeat interval
        (the default spread; it may be zero or less, which no spread fits)."""
        return min(
            self.heartbeat_interval_s,
            self.stale_timeout_s - self.heartbeat_interval_s - 2 * self.max_clock_skew_s,
            self.did_duration_s / 2 - self.max_clock_skew_s,
        )

    def __post_init__(self) -> None:
        _positive("did_duration_s", self.did_duration_s)
        _positive("heartbeat_interval_s", self.heartbeat_interval_s)
        _positive("stale_timeout_s", self.stale_timeout_s)
        _positive("max_room_participants", self.max_room_participants)
        if self.min_count < 0:
            raise ConfigError("min_count must not be negative")
        if self.max_clock_skew_s < 0:
            raise ConfigError("max_clock_skew_s must not be negative")
        if self.stale_timeout_s <= self.heartbeat_interval_s:
            raise ConfigError("stale_timeout_s must exceed heartbeat_interval_s")
        if self.heartbeat_interval_s > self.did_duration_s:
            raise ConfigError("heartbeat_interval_s must not exceed did_duration_s")
        if self.rotation_spread_s is None:
            self._derive_spread()
        else:
            self._check_spread()

    def _derive_spread(self) -> None:
        widest = self.widest_spread_s()
        if not widest > 0:
            h, k = self.heartbeat_interval_s, self.max_clock_skew_s
            needs = []
            if self.stale_timeout_s <= h + 2 * k:
                needs.append(
                    f"stale_timeout_s ({self.stale_timeout_s:g} s) must exceed "
                    f"heartbeat_interval_s + 2 x max_clock_skew_s ({h:g} s + 2 x {k:g} s)"
                )
            if self.did_duration_s <= 2 * k:
                needs.append(
                    f"did_duration_s ({self.did_duration_s:g} s) must exceed "
                    f"2 x max_clock_skew_s (2 x {k:g} s)"
                )
            raise ConfigError("no rotation spread fits these timings: " + "; ".join(needs))
        object.__setattr__(self, "rotation_spread_s", widest)

    def _check_spread(self) -> None:
        """The rules an explicit ``rotation_spread_s`` must keep (the derived one keeps
        them by construction)."""
        spread = self.rotation_spread_s
        given = f"rotation_spread_s (PRESENCE_ROTATION_SPREAD) is {spread:g} s"
        if not spread > 0:
            raise ConfigError(
                f"{given}: it must be positive (with no spread every visitor heartbeats at "
                "the same instants all epoch); leave it unset for one heartbeat interval"
            )
        if spread > self.heartbeat_interval_s:
            raise ConfigError(
                f"{given}: it must not exceed heartbeat_interval_s "
                f"(PRESENCE_HEARTBEAT_INTERVAL, {self.heartbeat_interval_s:g} s); leave it "
                "unset to follow the interval"
            )
        # Old DIDs must still be fresh when the settle window ends, even those of visitors
        # whose clocks run ahead and stopped early, or the fallback count would sag; and the
        # window must close well inside the epoch it opens.
        if self.settle_s + self.max_clock_skew_s > self.stale_timeout_s - self.heartbeat_interval_s:
            raise ConfigError(
                f"{given}: rotation_spread_s + 2 x max_clock_skew_s must not exceed "
                f"stale_timeout_s - heartbeat_interval_s ({self.stale_timeout_s:g} s - "
                f"{self.heartbeat_interval_s:g} s), or old DIDs go stale inside the settle "
                f"window; the widest that fits is {max(0.0, self.widest_spread_s()):g} s"
            )
        if self.settle_s > self.did_duration_s / 2:
            raise ConfigError(
                f"{given}: the settle window (rotation_spread_s + max_clock_skew_s) must not "
                f"exceed half an epoch ({self.did_duration_s / 2:g} s)"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> SitesConfig:
        """Read the ``PRESENCE_*`` variables (unset or empty means the default)."""
        source = os.environ if env is None else env
        default = cls()
        values: dict[str, object] = {
            "did_duration_s": _env_seconds(source, "PRESENCE_DID_DURATION", default.did_duration_s),
            "heartbeat_interval_s": _env_seconds(
                source, "PRESENCE_HEARTBEAT_INTERVAL", default.heartbeat_interval_s
            ),
            "stale_timeout_s": _env_seconds(
                source, "PRESENCE_STALE_TIMEOUT", default.stale_timeout_s
            ),
            "ghost_mode_default": _env_bool(
                source, "PRESENCE_GHOST_MODE_DEFAULT", default.ghost_mode_default
            ),
            "min_count": _env_int(source, "PRESENCE_MIN_COUNT", default.min_count),
            # Unset: derived from the others (one heartbeat interval, if they admit it).
            "rotation_spread_s": _env_optional_seconds(source, "PRESENCE_ROTATION_SPREAD"),
            "max_clock_skew_s": _env_seconds(
                source, "PRESENCE_MAX_CLOCK_SKEW", default.max_clock_skew_s
            ),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


PRESENCE_GHOST_MODE_HARD_OFF_ENV = "HEREABOUTS_PRESENCE_GHOST_MODE_HARD_OFF"
"""The ``presence_ghost_mode_hard_off`` flag (see :attr:`HubConfig.ghost_mode_hard_off`)."""


@dataclass(frozen=True, slots=True)
class HubConfig:
    """The browser hub that ``hereabouts up`` serves on ``/v1/site``: limits and flags."""

    max_connections: int = 1000
    """``PRESENCE_HUB_MAX_CONNECTIONS``: browser connections one hub holds (all its workers
    together, each holding an equal share). Each costs a few KiB; past this, new ones are
    closed with 1013 (try again later) rather than slowing everyone down."""

    workers: int = 1
    """``PRESENCE_HUB_WORKERS`` (``hereabouts up --workers N``): processes serving browsers.
    1 runs the hub inside the node's process. More start that many hub processes, each on
    its own plaza connection and core, and the node's HTTP server hands each browser
    connection to the one its address belongs to (:mod:`hereabouts.sites.workers`). One
    process verifies about 8,000 heartbeats a second; one per core is the useful most."""

    max_rooms: int = 10_000
    """``PRESENCE_HUB_MAX_ROOMS``: distinct rooms one hub counts (and subscribes to) over
    its lifetime."""

    ghost_mode_hard_off: bool = False
    """``HEREABOUTS_PRESENCE_GHOST_MODE_HARD_OFF`` (flag ``presence_ghost_mode_hard_off``):
    force ghost mode for everyone on this hub. Browsers still see counts, but the hub
    accepts no event from them and tells every widget that ghost mode is forced, so none
    sends any. For an operator who must stop publishing visitors at once, whatever their
    own choice."""

    probe_interval_s: float = 10.0
    """How often the hub checks itself for ``/healthz``: a key generated, a probe signed,
    published to the plaza and received back. ``/healthz`` fails when no probe came back
    for three intervals."""

    allowed_origins: tuple[str, ...] = ()
    """``PRESENCE_HUB_ALLOWED_ORIGINS`` (comma-separated): the page origins whose browsers
    may connect. Every connection counts only in rooms of its own WebSocket ``Origin``
    (which a browser sends on every handshake and a script cannot change). Empty, the
    default: any origin when the node's HTTP server listens on loopback (a developer's
    machine), none otherwise, so a hub exposed to the network serves only the sites its
    operator names. ``*`` admits any origin anywhere (a public hub for many sites). The
    hub's own origin (its demo page) is always served. This
    binds *browsers*; a program outside a browser can send any ``Origin`` it likes, which
    is what the per-address budgets below are for."""

    origin_aliases: tuple[tuple[str, str], ...] = ()
    """``PRESENCE_HUB_ORIGIN_ALIASES`` (comma-separated ``page=counted`` pairs): a page
    origin whose visitors count in the rooms of another origin, for a site served under
    two names (``https://www.example.com=https://example.com``); its widget then says
    ``data-origin="https://example.com"``. The page origin must itself be allowed. Without
    an alias, a widget's ``data-origin`` must be the page's own origin."""

    max_connections_per_address: int = 32
    """``PRESENCE_HUB_MAX_CONNECTIONS_PER_ADDRESS``: connections one client address (an IPv4
    address, or an IPv6 /64) may hold at once; the next is closed with 1013. A household or
    an office behind one NAT opens one per tab; 32 keeps one script from taking the hub's
    ``max_connections`` slots (3 % of the default) while a few dozen people behind one
    address still connect. The price: past 32 tabs on this hub behind one address (a large
    office, carrier-grade NAT), further tabs wait and retry."""

    address_events_per_s: float = 8.0
    """``PRESENCE_HUB_ADDRESS_EVENTS_PER_S``: events per second one client address may send,
    over all its connections and reconnections (each connection also keeps its own 4/s). A
    widget sends one heartbeat per 10 s for the room it is counted in, so 8/s carries
    eighty busy tabs; a reconnecting flood gets no fresh tokens from a new socket."""

    address_event_burst: int = 64
    """``PRESENCE_HUB_ADDRESS_EVENT_BURST``: events one address may send at once: every tab
    behind it sending its first heartbeat of an epoch within the same second, twice."""

    joins_per_address: int = 64
    """``PRESENCE_HUB_JOINS_PER_ADDRESS``: distinct visitor DIDs one client address may bring
    into one room per epoch (a heartbeat of a DID the room does not hold yet is a join; a
    signed leave of a DID that was counted gives the join back). One address can therefore
    raise a room's count by at most this much, however often it reconnects. Twice the
    connection budget leaves room for reloads that sent no leave. The price: behind
    carrier-grade NAT, a room shows at most 64 visitors per shared address per epoch; the
    others still see counts, they are just not added."""

    pow_bits: int = 0
    """``PRESENCE_HUB_POW_BITS``: proof of work for every DID this hub does not hold yet, in
    leading zero bits of ``SHA-256(tag ‖ challenge ‖ did ‖ nonce)``; the challenge is fresh
    per connection. 0 (the default) turns it off. Priced for browsers (14 bits: 16,384
    hashes on average, 6-18 ms for the widget in headless Chromium), it costs a native
    program a few milliseconds per DID, so it does not stop Sybils; the join budget bounds
    them per address. Turn it on to make each fresh DID cost some CPU, up to 20 bits."""

    def __post_init__(self) -> None:
        _positive("max_connections", self.max_connections)
        if not 1 <= self.workers <= self.MAX_WORKERS:
            raise ConfigError(f"workers must be 1-{self.MAX_WORKERS}, got {self.workers!r}")
        _positive("max_rooms", self.max_rooms)
        _positive("probe_interval_s", self.probe_interval_s)
        _positive("max_connections_per_address", self.max_connections_per_address)
        _positive("address_events_per_s", self.address_events_per_s)
        _positive("address_event_burst", self.address_event_burst)
        _positive("joins_per_address", self.joins_per_address)
        if not 0 <= self.pow_bits <= self.MAX_POW_BITS:
            raise ConfigError(f"pow_bits must be 0-{self.MAX_POW_BITS}, got {self.pow_bits!r}")
        if any(not origin.strip() for origin in self.allowed_origins):
            raise ConfigError("allowed_origins must not hold an empty origin")
        for pair in self.origin_aliases:
            if len(pair) != 2 or not all(side.strip() for side in pair):
                raise ConfigError("origin_aliases holds (page origin, counted origin) pairs")

    MAX_POW_BITS = 20
    """Past 20 bits (a million hashes on average) a phone would work for seconds."""

    MAX_WORKERS = 64
    """Most hub worker processes: past one per core they only add plaza connections."""

    @staticmethod
    def _origins(env: Mapping[str, str], name: str) -> tuple[str, ...] | None:
        raw = env.get(name, "").strip()
        if not raw:
            return None
        return tuple(part.strip() for part in raw.split(",") if part.strip())

    @staticmethod
    def _aliases(env: Mapping[str, str], name: str) -> tuple[tuple[str, str], ...] | None:
        pairs = HubConfig._origins(env, name)
        if pairs is None:
            return None
        aliases = []
        for pair in pairs:
            page, sep, counted = pair.partition("=")
            if not sep or not page.strip() or not counted.strip():
                raise ConfigError(f"{name} holds page=counted pairs, got {pair!r}")
            aliases.append((page.strip(), counted.strip()))
        return tuple(aliases)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> HubConfig:
        """Read ``PRESENCE_HUB_*`` and the ghost flag (unset or empty means the default)."""
        source = os.environ if env is None else env
        default = cls()
        values: dict[str, object] = {
            "max_connections": _env_int(
                source, "PRESENCE_HUB_MAX_CONNECTIONS", default.max_connections
            ),
            "max_rooms": _env_int(source, "PRESENCE_HUB_MAX_ROOMS", default.max_rooms),
            "workers": _env_int(source, "PRESENCE_HUB_WORKERS", default.workers),
            "ghost_mode_hard_off": _env_bool(
                source, PRESENCE_GHOST_MODE_HARD_OFF_ENV, default.ghost_mode_hard_off
            ),
            "max_connections_per_address": _env_int(
                source,
                "PRESENCE_HUB_MAX_CONNECTIONS_PER_ADDRESS",
                default.max_connections_per_address,
            ),
            "address_events_per_s": _env_number(
                source, "PRESENCE_HUB_ADDRESS_EVENTS_PER_S", default.address_events_per_s
            ),
            "address_event_burst": _env_int(
                source, "PRESENCE_HUB_ADDRESS_EVENT_BURST", default.address_event_burst
            ),
            "joins_per_address": _env_int(
                source, "PRESENCE_HUB_JOINS_PER_ADDRESS", default.joins_per_address
            ),
            "pow_bits": _env_int(source, "PRESENCE_HUB_POW_BITS", default.pow_bits),
        }
        origins = cls._origins(source, "PRESENCE_HUB_ALLOWED_ORIGINS")
        if origins is not None:
            values["allowed_origins"] = origins
        aliases = cls._aliases(source, "PRESENCE_HUB_ORIGIN_ALIASES")
        if aliases is not None:
            values["origin_aliases"] = aliases
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """The presence@2 relay of ``hereabouts up`` (see :mod:`hereabouts.advert.relay` and
    ``docs/advert.md``): how long it serves a document, how much it holds, and how much of
    it one DID or one client address may take. ``HEREABOUTS_RELAY_*`` variables override
    each field (see :meth:`from_env`).

    Client addresses are what the relay's socket sees (IPv6 counted per /64). Behind a
    reverse proxy every client has the proxy's address, so every per-address budget below
    becomes one budget shared by all clients: size them for that, or keep the relay off
    proxies."""

    ttl_s: float = 900.0
    """``HEREABOUTS_RELAY_TTL``: longest a relay serves a document, whatever the document
    says. Longer than the default 600 s document lifetime so this limit rarely bites, short
    enough that a node whose delegation was revoked by omission drops out soon."""

    max_entries: int = 10_000
    """``HEREABOUTS_RELAY_MAX_ENTRIES``: most live documents held. At 16 KiB per document at
    worst this is 160 MiB of disk, and the in-memory index costs about 0.7 KiB per entry
    (live or tombstone: 21 MiB at the default bounds). When reached, a new document
    displaces an expired entry, else the oldest entry of the address holding the most (so
    the relay stays open)."""

    max_tombstones: int = 20_000
    """``HEREABOUTS_RELAY_MAX_TOMBSTONES``: most tombstones (DID and ``issued_at`` of a
    document no longer served; a file of about 200 bytes, one file-system block) kept so
    that an older document cannot replace a newer one. Twice ``max_entries``: every held
    entry can expire and be replaced once before tombstones are forgotten early. Past it
    the oldest goes first, and that DID can be rolled back by an older, still valid
    document until it pushes again."""

    max_entries_per_address: int = 1_000
    """``HEREABOUTS_RELAY_MAX_ENTRIES_PER_ADDRESS``: most live documents pushed from one
    client address. A tenth of ``max_entries``: one address flooding fresh keys fills only
    its share, while a NAT with hundreds of nodes behind it still fits."""

    address_pushes_per_minute: float = 120.0
    """``HEREABOUTS_RELAY_ADDRESS_PUSHES_PER_MINUTE``: sustained pushes accepted from one
    address (refused ones included), checked before the body is parsed. A node re-publishes
    about every 8 minutes, so this carries about 1,000 nodes behind one address, and bounds
    the signature checks and disk writes one address can ask for."""

    address_push_burst: int = 60
    """``HEREABOUTS_RELAY_ADDRESS_PUSH_BURST``: pushes one address may make at once before
    its rate applies (nodes behind one NAT re-publishing together after an outage)."""

    did_pushes_per_minute: float = 2.0
    """``HEREABOUTS_RELAY_DID_PUSHES_PER_MINUTE``: sustained pushes of new documents by one
    DID. A node re-publishes every few minutes; each replacement costs a disk write, so a key
    replacing its document in a loop is refused instead."""

    did_push_burst: int = 5
    """``HEREABOUTS_RELAY_DID_PUSH_BURST``: documents one DID may push in quick succession (a
    restart, a change of endpoints) before its rate applies."""

    def __post_init__(self) -> None:
        _positive("ttl_s", self.ttl_s)
        _positive("max_entries", self.max_entries)
        _positive("max_tombstones", self.max_tombstones)
        _positive("max_entries_per_address", self.max_entries_per_address)
        _positive("address_pushes_per_minute", self.address_pushes_per_minute)
        _positive("did_pushes_per_minute", self.did_pushes_per_minute)
        if self.address_push_burst < 1 or self.did_push_burst < 1:
            raise ConfigError("address_push_burst and did_push_burst must be at least 1")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> RelayConfig:
        """Read the ``HEREABOUTS_RELAY_*`` variables (unset or empty means the default)."""
        source = os.environ if env is None else env
        default = cls()
        prefix = "HEREABOUTS_RELAY_"
        values: dict[str, object] = {
            "ttl_s": _env_seconds(source, prefix + "TTL", default.ttl_s),
            "max_entries": _env_int(source, prefix + "MAX_ENTRIES", default.max_entries),
            "max_tombstones": _env_int(source, prefix + "MAX_TOMBSTONES", default.max_tombstones),
            "max_entries_per_address": _env_int(
                source, prefix + "MAX_ENTRIES_PER_ADDRESS", default.max_entries_per_address
            ),
            "address_pushes_per_minute": _env_number(
                source, prefix + "ADDRESS_PUSHES_PER_MINUTE", default.address_pushes_per_minute
            ),
            "address_push_burst": _env_int(
                source, prefix + "ADDRESS_PUSH_BURST", default.address_push_burst
            ),
            "did_pushes_per_minute": _env_number(
                source, prefix + "DID_PUSHES_PER_MINUTE", default.did_pushes_per_minute
            ),
            "did_push_burst": _env_int(source, prefix + "DID_PUSH_BURST", default.did_push_burst),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, kw_only=True)
class MeshConfig:
    """The HTTP gossip mesh (see :mod:`hereabouts.peers.mesh` and docs/mesh.md).

    A node is on the mesh when ``enabled`` (``hereabouts up --mesh``), when it has seeds
    (``--mesh-seed URL``), or when it runs without a plaza (``--no-plaza``): *plaza* mode
    is neither, *mesh* mode is mesh without plaza, *hybrid* is both."""

    enabled: bool = False
    seeds: tuple[str, ...] = ()
    """Mesh URLs (``http(s)://host:port``) of nodes to sync with first; their DIDs are
    learnt from what they send. Peers learnt later are kept in ``<home>/mesh-peers``."""

    plaza: bool = True
    """Whether the node uses the MQTT plaza at all (``--no-plaza`` turns it off)."""

    url: str | None = None
    """The mesh URL this node announces (``--mesh-url``); by default the URL its HTTP
    server listens on. Set it when peers reach the node by another address (a proxy, NAT,
    a server bound to 0.0.0.0)."""

    ca_file: str | None = None
    """A PEM file of certificate authorities to trust for ``https://`` peers, besides the
    system's (``--mesh-ca``): for a mesh behind TLS with a private CA."""

    round_s: float = 30.0
    """Interval between two sync rounds, stretched by ``round_jitter_fraction`` and by
    :func:`hereabouts.core.meshmath.round_scale` as the mesh grows (as memberlist scales
    its push-pull interval): 30 s up to 32 peers, 60 s up to 64, 90 s up to 128..."""

    round_jitter_fraction: float = 0.2
    """Each round waits ``round_s x scale x (1 +- this)``: nodes started together drift."""

    heal_every: int = 4
    """One round in this many targets a seed or a MISSING peer instead of a random
    reachable one, so a partition heals by itself once the link is back."""

    exchange_bytes: int = 256 * 1024
    """Event bytes one reply (or push) carries at most in a mesh of up to 32 nodes,
    stretched as the round is (:func:`hereabouts.core.meshmath.exchange_budget`: 2.5 MiB at
    10,000 nodes); what does not fit follows in later rounds."""

    max_peers: int = 1024
    """Mesh peers remembered; past this, the one failing longest is dropped first."""

    request_timeout_s: float = 10.0
    """A sync exchange taking longer than this counts as a failure of the peer."""

    max_clock_skew_s: float = 120.0
    """A signed sync request dated further than this from our clock is refused (replays)."""

    peer_requests_per_s: float = 1.0
    peer_request_burst: int = 10
    """Sync requests taken from one caller: a burst of 10, then one a second; the rounds of
    an honest peer come every ``round_s``, so only a flood meets this."""

    peer_bytes_per_s: float = 256 * 1024
    """Request bytes taken from one caller per second, with a burst of eight times this or
    of the largest sync message, whichever is larger."""

    expected_size: int = 1000
    """The mesh size the MISSING threshold must cover: with the defaults a thousand nodes'
    news crosses the mesh in 14 rounds of 180 s (42 min), within the hour that mesh peers
    may stay silent. A larger mesh needs a longer ``mesh_missing_after_s`` or shorter
    rounds; :class:`Config` checks (see :func:`hereabouts.core.meshmath.propagation_s`)."""

    graylist_s: float = 300.0
    """How long a peer that sent invalid data (a bad request signature, a malformed body,
    an event whose signature fails) is refused and not called."""

    report_after_s: float = 240.0
    """An assigned observer probes a subject it has not heard from for this long (two quiet
    heartbeat intervals), and reports it unreachable if the probe fails
    (:mod:`hereabouts.core.suspicion`). Must be at least one quiet heartbeat interval."""

    def __post_init__(self) -> None:
        _positive("mesh.round_s", self.round_s)
        _positive("mesh.report_after_s", self.report_after_s)
        _positive("mesh.request_timeout_s", self.request_timeout_s)
        _positive("mesh.peer_requests_per_s", self.peer_requests_per_s)
        _positive("mesh.peer_bytes_per_s", self.peer_bytes_per_s)
        if not 0 <= self.round_jitter_fraction < 1:
            raise ConfigError("mesh.round_jitter_fraction must be in [0, 1)")
        if self.heal_every < 1 or self.max_peers < 1 or self.peer_request_burst < 1:
            raise ConfigError("mesh.heal_every, max_peers and peer_request_burst must be >= 1")
        if self.exchange_bytes < 16 * 1024:
            raise ConfigError("mesh.exchange_bytes must hold one event (at least 16384)")

    @property
    def on(self) -> bool:
        """Whether the node takes part in the mesh."""
        return self.enabled or bool(self.seeds) or not self.plaza

    @property
    def mode(self) -> str:
        """``plaza``, ``mesh`` or ``hybrid``."""
        if not self.on:
            return "plaza"
        return "hybrid" if self.plaza else "mesh"


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration of one node."""

    home: Path = field(default_factory=resolve_home)
    wire: WireLimits = field(default_factory=WireLimits)
    http: HttpLimits = field(default_factory=HttpLimits)
    heartbeat: HeartbeatConfig = field(default_factory=HeartbeatConfig)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    howdy: HowdyConfig = field(default_factory=HowdyConfig)
    trust: TrustConfig = field(default_factory=TrustConfig)
    node: NodeConfig = field(default_factory=NodeConfig)
    sites: SitesConfig = field(default_factory=SitesConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    relay: RelayConfig = field(default_factory=RelayConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    pulse: PulseConfig = field(default_factory=PulseConfig)

    def __post_init__(self) -> None:
        floor = THRESHOLD_FACTOR * self.heartbeat.max_interval_s
        for name in ("plaza_missing_after_s", "mesh_missing_after_s", "reported_missing_after_s"):
            threshold = getattr(self.projection, name)
            if threshold < floor:
                raise ConfigError(
                    f"projection.{name}={threshold:g}s is shorter than {THRESHOLD_FACTOR} x "
                    f"the quiet heartbeat interval ({self.heartbeat.max_interval_s:g}s); "
                    "quiet peers would be marked MISSING"
                )
        if self.mesh.on:
            self._check_mesh_threshold(floor)
            if self.mesh.report_after_s < self.heartbeat.max_interval_s:
                raise ConfigError(
                    f"mesh.report_after_s={self.mesh.report_after_s:g}s is shorter than the "
                    f"quiet heartbeat interval ({self.heartbeat.max_interval_s:g}s): observers "
                    "would probe peers that are merely quiet"
                )
        if self.ledger.retention_s < self.projection.mesh_missing_after_s:
            raise ConfigError("ledger.retention_s must cover the longest MISSING threshold")

    def _check_mesh_threshold(self, heartbeat_floor_s: float) -> None:
        """A mesh peer's heartbeat must cross the mesh before its silence counts: the mesh
        threshold covers ``THRESHOLD_FACTOR`` quiet heartbeats plus the propagation time."""
        from hereabouts.core.meshmath import propagation_rounds, propagation_s

        mesh = self.mesh
        needed = heartbeat_floor_s + propagation_s(mesh.expected_size, mesh.round_s)
        threshold = self.projection.mesh_missing_after_s
        if threshold < needed:
            raise ConfigError(
                f"projection.mesh_missing_after_s={threshold:g}s is too short for a mesh of "
                f"{mesh.expected_size} nodes: {THRESHOLD_FACTOR} quiet heartbeats "
                f"({heartbeat_floor_s:g}s) plus {propagation_rounds(mesh.expected_size)} "
                f"rounds to cross it ({needed - heartbeat_floor_s:g}s) need {needed:g}s; "
                "raise the threshold, shorten mesh.round_s or lower mesh.expected_size"
            )

    def replace(self, **changes: object) -> Config:
        """A copy with some top-level fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def production(home: str | os.PathLike[str] | None = None) -> Config:
    """The documented defaults."""
    return Config(home=resolve_home(home))


def testing(home: str | os.PathLike[str] | None = None) -> Config:
    """Short intervals and thresholds so tests and demos see changes within seconds."""
    return Config(
        home=resolve_home(home),
        heartbeat=HeartbeatConfig(min_interval_s=1.0, max_interval_s=2.0, jitter_fraction=0.1),
        projection=ProjectionConfig(
            plaza_missing_after_s=6.0, mesh_missing_after_s=30.0, reported_missing_after_s=6.0
        ),
        trust=TrustConfig(settle_s=3.0, forget_after_s=600.0, pin_ttl_s=3600.0),
        ledger=LedgerConfig(retention_s=3600.0),
        howdy=HowdyConfig(jitter_max_s=0.5),
        node=NodeConfig(discovery_jitter_max_s=0.0, http_port=0, first_sync_s=1.0),
        mesh=MeshConfig(
            round_s=1.0,
            expected_size=50,
            request_timeout_s=5.0,
            graylist_s=30.0,
            report_after_s=4.0,
        ),
    )
