"""Every knob hereabouts has, with its default and the reasoning behind it.

Configuration is a tree of frozen dataclasses. Each field's comment says what it does, why the
default is what it is, and what it trades off. Cross-field rules are checked in
``__post_init__`` so an inconsistent configuration cannot be built at all.

Presets start from the production defaults and override a few fields:

* :func:`production` — the defaults below.
* :func:`testing` — fast time-outs and no start-up jitter, for tests and local demos.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from hereabouts.errors import ConfigError

HOME_ENV = "HEREABOUTS_HOME"
DEFAULT_HOME = Path("~/.hereabouts")


def resolve_home(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The home directory: ``--home``, else ``$HEREABOUTS_HOME``, else ``~/.hereabouts``."""
    chosen = explicit or os.environ.get(HOME_ENV) or DEFAULT_HOME
    return Path(chosen).expanduser()


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

    boot_window_max_s: float = 120.0
    """While our own node boots (until its first sync completes, and never longer than this),
    a chau does not move a peer from ONLINE to OFFLINE: stale goodbyes replayed during sync
    must not clobber live peers. Held chaus are judged again when the window ends."""

    def __post_init__(self) -> None:
        _positive("plaza_missing_after_s", self.plaza_missing_after_s)
        _positive("mesh_missing_after_s", self.mesh_missing_after_s)
        if self.boot_window_max_s < 0:
            raise ConfigError("boot_window_max_s must not be negative")


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
class Config:
    """The whole configuration of one node."""

    home: Path = field(default_factory=resolve_home)
    wire: WireLimits = field(default_factory=WireLimits)
    heartbeat: HeartbeatConfig = field(default_factory=HeartbeatConfig)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)

    def __post_init__(self) -> None:
        floor = THRESHOLD_FACTOR * self.heartbeat.max_interval_s
        for name in ("plaza_missing_after_s", "mesh_missing_after_s"):
            threshold = getattr(self.projection, name)
            if threshold < floor:
                raise ConfigError(
                    f"projection.{name}={threshold:g}s is shorter than {THRESHOLD_FACTOR} x "
                    f"the quiet heartbeat interval ({self.heartbeat.max_interval_s:g}s); "
                    "quiet peers would be marked MISSING"
                )
        if self.ledger.retention_s < self.projection.mesh_missing_after_s:
            raise ConfigError("ledger.retention_s must cover the longest MISSING threshold")

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
            plaza_missing_after_s=6.0, mesh_missing_after_s=30.0, boot_window_max_s=2.0
        ),
        ledger=LedgerConfig(retention_s=3600.0),
    )
